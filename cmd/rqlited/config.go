package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/rqlited/rqlited/db"
)

// Config is everything the command line sets. Flag names and defaults are
// rqlite's, so existing command lines keep working.
type Config struct {
	DataDir string

	NodeID      string
	HTTPAddr    string
	HTTPAdvAddr string
	RaftAddr    string
	RaftAdvAddr string

	JoinAddrs               []string
	JoinAttempts            int
	JoinInterval            time.Duration
	JoinAs                  string
	BootstrapExpect         int
	BootstrapExpectTimeout  time.Duration
	RaftNonVoter            bool
	RaftRemoveShutdown      bool
	RaftClusterRemoveShut   bool
	RaftReapNodeTimeout     time.Duration
	RaftReapReadOnlyTimeout time.Duration
	ClusterConnectTimeout   time.Duration

	DiscoMode   string
	DiscoKey    string
	DiscoConfig string
	// DiscoAllowLoopback accepts loopback advertised addresses in KV modes.
	DiscoAllowLoopback bool
	// DiscoConfigJSON is -disco-config loaded and checked by Validate.
	DiscoConfigJSON []byte

	RaftSnapThreshold  uint64
	RaftSnapInterval   time.Duration
	RaftHeartbeat      time.Duration
	RaftElection       time.Duration
	RaftCommit         time.Duration
	RaftLeaderLease    time.Duration
	RaftApply          time.Duration
	RaftLogLevel       string
	RaftShutdownStepdn bool

	ForeignKeys  bool
	MaxReadConns int
	MaxSteps     int64
	MaxResult    int64

	WriteQueueCapacity  int
	WriteQueueBatchSize int
	WriteQueueTimeout   time.Duration
	WriteQueueTx        bool

	HTTPAllowOrigin string
	HTTPMaxBody     int64
	LogLevel        string

	// Security (see DOC/SECURITY.md).
	AuthFile             string
	HTTPCert             string
	HTTPKey              string
	HTTPCACert           string
	HTTPVerifyClient     bool
	HTTPVerifyCommonName string
	NodeCert             string
	NodeKey              string
	NodeCACert           string
	NodeNoVerify         bool
	NodeVerifyClient     bool
	NodeVerifyServerName string
	NodeVerifyCommonName string

	CPUProfile   string
	MemProfile   string
	TraceProfile string

	// Periodic maintenance run by the leader through the log.
	AutoVacuumInterval   time.Duration
	AutoOptimizeInterval time.Duration

	// Flags of rqlite that tune what rqlited does another way (accepted,
	// with a warning when set).
	CompressSnapTransport bool
	RaftSnapWALSize       uint64

	// Flags of rqlite features rqlited does not have yet (accepted at their
	// defaults only).
	ExtensionsPath  string
	AutoBackupFile  string
	AutoRestoreFile string
	CDCConfig       string
	OTLPEndpoint    string
	OTLPInterval    time.Duration
	OTLPInsecure    bool
	OTLPNoVerify    bool
	OTLPCACert      string
	OTLPCert        string
	OTLPKey         string

	ShowVersion bool

	// Warnings are problems with the flags that do not stop the node; run
	// logs each at start.
	Warnings []string

	join string // -join as given; parsed into JoinAddrs
}

func (c *Config) warn(msg string) { c.Warnings = append(c.Warnings, msg) }

// errUsage is returned after the flag package has printed its own message.
var errUsage = errors.New("usage")

// envDefaults are the environment variables of rqlite's Docker image. Each
// sets the default of its flag; a flag given on the command line wins.
var envDefaults = map[string]string{
	"HTTP_ADDR": "http-addr", "HTTP_ADV_ADDR": "http-adv-addr",
	"RAFT_ADDR": "raft-addr", "RAFT_ADV_ADDR": "raft-adv-addr", "NODE_ID": "node-id",
}

// parseFlags parses args (without the program name) into a Config. getenv
// reads the environment (os.Getenv, or a map in tests).
func parseFlags(args []string, stderr io.Writer, getenv func(string) string) (*Config, error) {
	c := &Config{}
	fs := newFlagSet(c, stderr)

	for env, name := range envDefaults {
		if v := getenv(env); v != "" {
			if err := fs.Set(name, v); err != nil {
				return nil, fmt.Errorf("environment variable %s=%q: %w", env, v, err)
			}
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, flag.ErrHelp
		}
		return nil, errUsage
	}
	if err := checkFlagStatus(fs, c); err != nil {
		return nil, err
	}
	for _, j := range strings.Split(c.join, ",") {
		if j = strings.TrimSpace(j); j != "" {
			c.JoinAddrs = append(c.JoinAddrs, j)
		}
	}
	if c.ShowVersion {
		return c, nil
	}
	switch fs.NArg() {
	case 0:
		if d := getenv("DATA_DIR"); d != "" {
			c.DataDir = d
			break
		}
		return nil, errors.New("no data directory set: usage is rqlited [flags] <data directory> (or set DATA_DIR)")
	case 1:
		c.DataDir = fs.Arg(0)
	default:
		return nil, fmt.Errorf("arguments after data directory (%s) are not accepted: put every flag before the data directory",
			strings.Join(fs.Args()[1:], " "))
	}
	if err := c.finish(os.Hostname); err != nil {
		return nil, err
	}
	return c, nil
}

// flagStatus says how rqlited treats a flag of rqlite's.
type flagStatus int

const (
	// flagSupported flags do what they do in rqlite (or are rqlited's own).
	flagSupported flagStatus = iota
	// flagUnavailable flags name a feature rqlited does not have yet: the
	// default is accepted, any other value stops the node at start.
	flagUnavailable
	// flagDifferent flags tune something rqlited does another way: any value
	// is accepted, and a value other than the default is logged with what
	// rqlited does instead.
	flagDifferent
)

// flagSpec is one command-line flag: its name, default, help and the Config
// field it sets. def's type (string, bool, int, int64, uint64 or
// time.Duration) must be the type of the field target returns a pointer to.
type flagSpec struct {
	name   string
	def    any
	help   string
	target func(*Config) any
	status flagStatus
	// note is, for flagUnavailable, the feature that is missing; for
	// flagDifferent, what rqlited does instead.
	note string
}

// flagSpecs is every flag rqlited accepts: rqlite's 68 with rqlite's names
// and defaults, then rqlited's own.
var flagSpecs = []flagSpec{
	{name: "node-id", def: "", help: "Unique ID for node. If not set, set to advertised Raft address", target: func(c *Config) any { return &c.NodeID }},
	{name: "http-addr", def: "localhost:4001", help: "HTTP server bind address (host:port)", target: func(c *Config) any { return &c.HTTPAddr }},
	{name: "http-adv-addr", def: "", help: "Advertised HTTP address (host:port). If not set, same as HTTP server bind address", target: func(c *Config) any { return &c.HTTPAdvAddr }},
	{name: "raft-addr", def: "localhost:4002", help: "Raft communication bind address (host:port)", target: func(c *Config) any { return &c.RaftAddr }},
	{name: "raft-adv-addr", def: "", help: "Advertised Raft communication address (host:port). If not set, same as Raft bind address", target: func(c *Config) any { return &c.RaftAdvAddr }},

	{name: "join", def: "", help: "Comma-delimited list of nodes to join, as Raft addresses (host:port) or HTTP URLs (http://host:port)", target: func(c *Config) any { return &c.join }},
	{name: "join-attempts", def: 5, help: "Number of join attempts to make", target: func(c *Config) any { return &c.JoinAttempts }},
	{name: "join-interval", def: 3 * time.Second, help: "Period between join attempts", target: func(c *Config) any { return &c.JoinInterval }},
	{name: "join-as", def: "", help: "Username in authentication file to join as. If not set, joins anonymously", target: func(c *Config) any { return &c.JoinAs }},
	{name: "bootstrap-expect", def: 0, help: "Minimum number of nodes required for a bootstrap", target: func(c *Config) any { return &c.BootstrapExpect }},
	{name: "bootstrap-expect-timeout", def: 120 * time.Second, help: "Maximum time for bootstrap process", target: func(c *Config) any { return &c.BootstrapExpectTimeout }},
	{name: "raft-non-voter", def: false, help: "Configure as non-voting node (read replica)", target: func(c *Config) any { return &c.RaftNonVoter }},
	{name: "raft-remove-shutdown", def: false, help: "Shutdown Raft if node removed from cluster", target: func(c *Config) any { return &c.RaftRemoveShutdown }},
	{name: "raft-cluster-remove-shutdown", def: false, help: "Node removes itself from cluster on graceful shutdown", target: func(c *Config) any { return &c.RaftClusterRemoveShut }},
	{name: "raft-reap-node-timeout", def: time.Duration(0), help: "Time after which a non-reachable voting node will be reaped. If not set, no reaping takes place", target: func(c *Config) any { return &c.RaftReapNodeTimeout }},
	{name: "raft-reap-read-only-node-timeout", def: time.Duration(0), help: "Time after which a non-reachable non-voting node will be reaped. If not set, no reaping takes place", target: func(c *Config) any { return &c.RaftReapReadOnlyTimeout }},
	{name: "cluster-connect-timeout", def: 30 * time.Second, help: "Timeout for initial connection to other nodes", target: func(c *Config) any { return &c.ClusterConnectTimeout }},

	{name: "disco-mode", def: "", help: "Choose clustering discovery mode. If not set, no node discovery is performed (consul-kv, etcd-kv, dns, dns-srv)", target: func(c *Config) any { return &c.DiscoMode }},
	{name: "disco-key", def: "rqlite", help: "Key prefix for cluster discovery service", target: func(c *Config) any { return &c.DiscoKey }},
	{name: "disco-config", def: "", help: "Set discovery config, or path to cluster discovery config file", target: func(c *Config) any { return &c.DiscoConfig }},

	{name: "raft-snap", def: uint64(8192), help: "Number of outstanding log entries which triggers Raft snapshot", target: func(c *Config) any { return &c.RaftSnapThreshold }},
	{name: "raft-snap-int", def: 10 * time.Second, help: "Snapshot threshold check interval", target: func(c *Config) any { return &c.RaftSnapInterval }},
	{name: "raft-snap-wal-size", def: uint64(4194304), help: "SQLite WAL file size in bytes which triggers Raft snapshot. Set to 0 to disable (accepted; rqlited snapshots on -raft-snap only)",
		target: func(c *Config) any { return &c.RaftSnapWALSize }, status: flagDifferent,
		note: "rqlited does not snapshot on WAL size: snapshots are triggered by -raft-snap (log entries since the last snapshot), checked every -raft-snap-int; SQLite checkpoints the WAL itself"},
	{name: "raft-heartbeat-timeout", def: time.Second, help: "Raft heartbeat timeout", target: func(c *Config) any { return &c.RaftHeartbeat }},
	{name: "raft-election-timeout", def: time.Second, help: "Raft election timeout", target: func(c *Config) any { return &c.RaftElection }},
	{name: "raft-commit-timeout", def: 50 * time.Millisecond, help: "Raft commit timeout", target: func(c *Config) any { return &c.RaftCommit }},
	{name: "raft-leader-lease-timeout", def: time.Duration(0), help: "Raft leader lease timeout. Use 0s for Raft default", target: func(c *Config) any { return &c.RaftLeaderLease }},
	{name: "raft-apply-timeout", def: 10 * time.Second, help: "Raft apply timeout", target: func(c *Config) any { return &c.RaftApply }},
	{name: "raft-log-level", def: "WARN", help: "Minimum log level for Raft module (ERROR, WARN, INFO, DEBUG)", target: func(c *Config) any { return &c.RaftLogLevel }},
	{name: "raft-shutdown-stepdown", def: true, help: "If leader, stepdown before shutting down. Enabled by default", target: func(c *Config) any { return &c.RaftShutdownStepdn }},
	{name: "compress-snap-transport", def: false, help: "Compress snapshots sent to other nodes (accepted; rqlited sends them uncompressed)",
		target: func(c *Config) any { return &c.CompressSnapTransport }, status: flagDifferent,
		note: "rqlited sends snapshots to other nodes uncompressed, as hashicorp/raft streams them; the flag has no effect (and need not match across nodes)"},

	{name: "fk", def: false, help: "Enable SQLite foreign key constraints", target: func(c *Config) any { return &c.ForeignKeys }},
	{name: "db-max-ro-conns", def: 256, help: "Maximum number of read-only SQLite connections (0 for no limit)", target: func(c *Config) any { return &c.MaxReadConns }},
	{name: "db-max-result-bytes", def: int64(db.DefaultMaxResultBytes), help: "Maximum memory the rows of one statement's result may take; a larger result fails with an error (0 for no limit)", target: func(c *Config) any { return &c.MaxResult }},
	{name: "db-max-steps", def: int64(db.DefaultMaxSteps), help: "Maximum SQLite steps of one statement applied from the Raft log, the same on every node; a statement that needs more fails with an error (0 for no limit)", target: func(c *Config) any { return &c.MaxSteps }},
	{name: "auto-vacuum-int", def: time.Duration(0), help: "Period between automatic VACUUMs, run by the leader through the Raft log. If not set, not enabled", target: func(c *Config) any { return &c.AutoVacuumInterval }},
	{name: "auto-optimize-int", def: 24 * time.Hour, help: "Period between automatic 'PRAGMA optimize', run by the leader through the Raft log. Set to 0h to disable", target: func(c *Config) any { return &c.AutoOptimizeInterval }},
	{name: "extensions-path", def: "", help: "Comma-delimited list of paths to directories, zipfiles, or tar.gz files containing SQLite extensions (not available yet in rqlited)",
		target: func(c *Config) any { return &c.ExtensionsPath }, status: flagUnavailable, note: "loading SQLite extensions"},

	{name: "write-queue-capacity", def: 1024, help: "Write queue capacity", target: func(c *Config) any { return &c.WriteQueueCapacity }},
	{name: "write-queue-batch-size", def: 128, help: "Write queue batch size", target: func(c *Config) any { return &c.WriteQueueBatchSize }},
	{name: "write-queue-timeout", def: 50 * time.Millisecond, help: "Time after which write queue will be flushed, even if not full", target: func(c *Config) any { return &c.WriteQueueTimeout }},
	{name: "write-queue-tx", def: false, help: "Use a transaction when processing a queued write", target: func(c *Config) any { return &c.WriteQueueTx }},

	{name: "http-allow-origin", def: "", help: "Value to set for Access-Control-Allow-Origin HTTP header", target: func(c *Config) any { return &c.HTTPAllowOrigin }},
	{name: "http-max-body", def: int64(64 << 20), help: "Largest request body accepted, in bytes (larger requests get 413)", target: func(c *Config) any { return &c.HTTPMaxBody }},
	{name: "auth", def: "", help: "Path to authentication and authorization file. If not set, not enabled", target: func(c *Config) any { return &c.AuthFile }},
	{name: "http-cert", def: "", help: "Path to HTTPS X.509 certificate", target: func(c *Config) any { return &c.HTTPCert }},
	{name: "http-key", def: "", help: "Path to HTTPS X.509 private key", target: func(c *Config) any { return &c.HTTPKey }},
	{name: "http-ca-cert", def: "", help: "Path to X.509 CA certificate for HTTPS: verifies client certificates, and leaders' HTTPS when forwarding", target: func(c *Config) any { return &c.HTTPCACert }},
	{name: "http-verify-client", def: false, help: "Enable mutual TLS for HTTPS", target: func(c *Config) any { return &c.HTTPVerifyClient }},
	{name: "http-verify-common-name", def: "", help: "Common name a client certificate must have (needs -http-verify-client)", target: func(c *Config) any { return &c.HTTPVerifyCommonName }},
	{name: "node-cert", def: "", help: "Path to X.509 certificate for inter-node communication", target: func(c *Config) any { return &c.NodeCert }},
	{name: "node-key", def: "", help: "Path to X.509 private key for inter-node communication", target: func(c *Config) any { return &c.NodeKey }},
	{name: "node-ca-cert", def: "", help: "Path to X.509 CA certificate for inter-node communication", target: func(c *Config) any { return &c.NodeCACert }},
	{name: "node-no-verify", def: false, help: "Skip verification of any node-node certificate", target: func(c *Config) any { return &c.NodeNoVerify }},
	{name: "node-verify-client", def: false, help: "Enable mutual TLS for node-to-node communication", target: func(c *Config) any { return &c.NodeVerifyClient }},
	{name: "node-verify-server-name", def: "", help: "Hostname to verify on certificates returned by other nodes", target: func(c *Config) any { return &c.NodeVerifyServerName }},
	{name: "node-verify-common-name", def: "", help: "Common name other nodes' certificates must have (needs -node-verify-client)", target: func(c *Config) any { return &c.NodeVerifyCommonName }},

	{name: "auto-backup", def: "", help: "Path to automatic backup configuration file. If not set, not enabled (not available yet in rqlited)",
		target: func(c *Config) any { return &c.AutoBackupFile }, status: flagUnavailable, note: "automatic backups"},
	{name: "auto-restore", def: "", help: "Path to automatic restore configuration file. If not set, not enabled (not available yet in rqlited)",
		target: func(c *Config) any { return &c.AutoRestoreFile }, status: flagUnavailable, note: "automatic restore"},
	{name: "cdc-config", def: "", help: "Change Data Capture (CDC) configuration: a URL, or a path to a configuration file. If not set, not enabled (not available yet in rqlited)",
		target: func(c *Config) any { return &c.CDCConfig }, status: flagUnavailable, note: "change data capture (CDC)"},
	{name: "otlp-endpoint", def: "", help: "OTLP endpoint to export metrics to. If not set, not enabled (not available yet in rqlited)",
		target: func(c *Config) any { return &c.OTLPEndpoint }, status: flagUnavailable, note: "OTLP metrics export"},
	{name: "otlp-interval", def: 30 * time.Second, help: "Period between OTLP metrics exports (not available yet in rqlited)",
		target: func(c *Config) any { return &c.OTLPInterval }, status: flagUnavailable, note: "OTLP metrics export"},
	{name: "otlp-insecure", def: false, help: "Use plain HTTP to the OTLP endpoint (not available yet in rqlited)",
		target: func(c *Config) any { return &c.OTLPInsecure }, status: flagUnavailable, note: "OTLP metrics export"},
	{name: "otlp-no-verify", def: false, help: "Skip verification of the OTLP endpoint's certificate (not available yet in rqlited)",
		target: func(c *Config) any { return &c.OTLPNoVerify }, status: flagUnavailable, note: "OTLP metrics export"},
	{name: "otlp-ca-cert", def: "", help: "Path to X.509 CA certificate for the OTLP endpoint (not available yet in rqlited)",
		target: func(c *Config) any { return &c.OTLPCACert }, status: flagUnavailable, note: "OTLP metrics export"},
	{name: "otlp-cert", def: "", help: "Path to X.509 client certificate for the OTLP endpoint (not available yet in rqlited)",
		target: func(c *Config) any { return &c.OTLPCert }, status: flagUnavailable, note: "OTLP metrics export"},
	{name: "otlp-key", def: "", help: "Path to X.509 client private key for the OTLP endpoint (not available yet in rqlited)",
		target: func(c *Config) any { return &c.OTLPKey }, status: flagUnavailable, note: "OTLP metrics export"},

	{name: "log-level", def: "INFO", help: "Minimum level of rqlited's own log lines (ERROR, WARN, INFO, DEBUG)", target: func(c *Config) any { return &c.LogLevel }},
	{name: "disco-allow-loopback", def: false, help: "Publish loopback advertised addresses with consul-kv and etcd-kv without a warning (single-host test setups)", target: func(c *Config) any { return &c.DiscoAllowLoopback }},
	{name: "cpu-profile", def: "", help: "Path to file for CPU profiling information", target: func(c *Config) any { return &c.CPUProfile }},
	{name: "mem-profile", def: "", help: "Path to file for memory profiling information", target: func(c *Config) any { return &c.MemProfile }},
	{name: "trace-profile", def: "", help: "Path to file for trace profiling information (accepted; rqlited writes no execution trace)",
		target: func(c *Config) any { return &c.TraceProfile }, status: flagDifferent,
		note: "rqlited writes no Go execution trace: use -cpu-profile and -mem-profile, or fetch /debug/pprof/trace from the HTTP API"},
	{name: "version", def: false, help: "Show version information and exit", target: func(c *Config) any { return &c.ShowVersion }},
}

// register defines spec on fs, bound to its field of c. A default whose
// type differs from the field's is a programming error, caught by the tests.
func (spec flagSpec) register(fs *flag.FlagSet, c *Config) {
	switch def := spec.def.(type) {
	case string:
		fs.StringVar(spec.target(c).(*string), spec.name, def, spec.help)
	case bool:
		fs.BoolVar(spec.target(c).(*bool), spec.name, def, spec.help)
	case int:
		fs.IntVar(spec.target(c).(*int), spec.name, def, spec.help)
	case int64:
		fs.Int64Var(spec.target(c).(*int64), spec.name, def, spec.help)
	case uint64:
		fs.Uint64Var(spec.target(c).(*uint64), spec.name, def, spec.help)
	case time.Duration:
		fs.DurationVar(spec.target(c).(*time.Duration), spec.name, def, spec.help)
	default:
		panic(fmt.Sprintf("flag -%s: default of unsupported type %T", spec.name, spec.def))
	}
}

// newFlagSet builds the flag set from flagSpecs, bound to c.
func newFlagSet(c *Config, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("rqlited", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: rqlited [flags] <data directory>\n\nFlags:\n")
		fs.PrintDefaults()
	}
	for _, spec := range flagSpecs {
		spec.register(fs, c)
	}
	return fs
}

// checkFlagStatus refuses a flag of a feature rqlited does not have yet set
// to anything but its default, and adds a warning for each flag that tunes
// something rqlited does another way.
func checkFlagStatus(fs *flag.FlagSet, c *Config) error {
	for _, spec := range flagSpecs {
		if spec.status == flagSupported {
			continue
		}
		f := fs.Lookup(spec.name)
		if f.Value.String() == f.DefValue {
			continue
		}
		switch spec.status {
		case flagUnavailable:
			return fmt.Errorf("-%s is set (%q) but %s is not available yet in rqlited: remove -%s to start the node",
				spec.name, f.Value.String(), spec.note, spec.name)
		case flagDifferent:
			c.warn(fmt.Sprintf("-%s %s is accepted for compatibility with rqlite, but %s", spec.name, f.Value.String(), spec.note))
		}
	}
	return nil
}
