package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/rqlited/rqlited/db"
	"github.com/rqlited/rqlited/disco"
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

	CPUProfile string
	MemProfile string

	ShowVersion bool
}

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
	fs := flag.NewFlagSet("rqlited", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: rqlited [flags] <data directory>\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&c.NodeID, "node-id", "", "Unique ID for node. If not set, set to advertised Raft address")
	fs.StringVar(&c.HTTPAddr, "http-addr", "localhost:4001", "HTTP server bind address (host:port)")
	fs.StringVar(&c.HTTPAdvAddr, "http-adv-addr", "", "Advertised HTTP address (host:port). If not set, same as HTTP server bind address")
	fs.StringVar(&c.RaftAddr, "raft-addr", "localhost:4002", "Raft communication bind address (host:port)")
	fs.StringVar(&c.RaftAdvAddr, "raft-adv-addr", "", "Advertised Raft communication address (host:port). If not set, same as Raft bind address")

	var join string
	fs.StringVar(&join, "join", "", "Comma-delimited list of nodes to join, as Raft addresses (host:port) or HTTP URLs (http://host:port)")
	fs.IntVar(&c.JoinAttempts, "join-attempts", 5, "Number of join attempts to make")
	fs.DurationVar(&c.JoinInterval, "join-interval", 3*time.Second, "Period between join attempts")
	fs.StringVar(&c.JoinAs, "join-as", "", "Username in authentication file to join as. If not set, joins anonymously")
	fs.IntVar(&c.BootstrapExpect, "bootstrap-expect", 0, "Minimum number of nodes required for a bootstrap")
	fs.DurationVar(&c.BootstrapExpectTimeout, "bootstrap-expect-timeout", 120*time.Second, "Maximum time for bootstrap process")
	fs.BoolVar(&c.RaftNonVoter, "raft-non-voter", false, "Configure as non-voting node (read replica)")
	fs.BoolVar(&c.RaftRemoveShutdown, "raft-remove-shutdown", false, "Shutdown Raft if node removed from cluster")
	fs.BoolVar(&c.RaftClusterRemoveShut, "raft-cluster-remove-shutdown", false, "Node removes itself from cluster on graceful shutdown")
	fs.DurationVar(&c.RaftReapNodeTimeout, "raft-reap-node-timeout", 0, "Time after which a non-reachable voting node will be reaped. If not set, no reaping takes place")
	fs.DurationVar(&c.RaftReapReadOnlyTimeout, "raft-reap-read-only-node-timeout", 0, "Time after which a non-reachable non-voting node will be reaped. If not set, no reaping takes place")
	fs.DurationVar(&c.ClusterConnectTimeout, "cluster-connect-timeout", 30*time.Second, "Timeout for initial connection to other nodes")

	fs.StringVar(&c.DiscoMode, "disco-mode", "", "Choose clustering discovery mode. If not set, no node discovery is performed (consul-kv, etcd-kv, dns, dns-srv)")
	fs.StringVar(&c.DiscoKey, "disco-key", "rqlite", "Key prefix for cluster discovery service")
	fs.StringVar(&c.DiscoConfig, "disco-config", "", "Set discovery config, or path to cluster discovery config file")
	fs.BoolVar(&c.DiscoAllowLoopback, "disco-allow-loopback", false, "Accept loopback advertised addresses with consul-kv and etcd-kv (single-host test setups only)")

	fs.Uint64Var(&c.RaftSnapThreshold, "raft-snap", 8192, "Number of outstanding log entries which triggers Raft snapshot")
	fs.DurationVar(&c.RaftSnapInterval, "raft-snap-int", 10*time.Second, "Snapshot threshold check interval")
	fs.DurationVar(&c.RaftHeartbeat, "raft-heartbeat-timeout", time.Second, "Raft heartbeat timeout")
	fs.DurationVar(&c.RaftElection, "raft-election-timeout", time.Second, "Raft election timeout")
	fs.DurationVar(&c.RaftCommit, "raft-commit-timeout", 50*time.Millisecond, "Raft commit timeout")
	fs.DurationVar(&c.RaftLeaderLease, "raft-leader-lease-timeout", 0, "Raft leader lease timeout. Use 0s for Raft default")
	fs.DurationVar(&c.RaftApply, "raft-apply-timeout", 10*time.Second, "Raft apply timeout")
	fs.StringVar(&c.RaftLogLevel, "raft-log-level", "WARN", "Minimum log level for Raft module (ERROR, WARN, INFO, DEBUG)")
	fs.BoolVar(&c.RaftShutdownStepdn, "raft-shutdown-stepdown", true, "If leader, stepdown before shutting down. Enabled by default")

	fs.BoolVar(&c.ForeignKeys, "fk", false, "Enable SQLite foreign key constraints")
	fs.IntVar(&c.MaxReadConns, "db-max-ro-conns", 256, "Maximum number of read-only SQLite connections (0 for no limit)")
	fs.Int64Var(&c.MaxResult, "db-max-result-bytes", db.DefaultMaxResultBytes, "Maximum memory the rows of one statement's result may take; a larger result fails with an error (0 for no limit)")
	fs.Int64Var(&c.MaxSteps, "db-max-steps", db.DefaultMaxSteps, "Maximum SQLite steps of one statement applied from the Raft log, the same on every node; a statement that needs more fails with an error (0 for no limit)")

	fs.IntVar(&c.WriteQueueCapacity, "write-queue-capacity", 1024, "Write queue capacity")
	fs.IntVar(&c.WriteQueueBatchSize, "write-queue-batch-size", 128, "Write queue batch size")
	fs.DurationVar(&c.WriteQueueTimeout, "write-queue-timeout", 50*time.Millisecond, "Time after which write queue will be flushed, even if not full")
	fs.BoolVar(&c.WriteQueueTx, "write-queue-tx", false, "Use a transaction when processing a queued write")

	fs.StringVar(&c.HTTPAllowOrigin, "http-allow-origin", "", "Value to set for Access-Control-Allow-Origin HTTP header")
	fs.Int64Var(&c.HTTPMaxBody, "http-max-body", 64<<20, "Largest request body accepted, in bytes (larger requests get 413)")
	fs.StringVar(&c.AuthFile, "auth", "", "Path to authentication and authorization file. If not set, not enabled")
	fs.StringVar(&c.HTTPCert, "http-cert", "", "Path to HTTPS X.509 certificate")
	fs.StringVar(&c.HTTPKey, "http-key", "", "Path to HTTPS X.509 private key")
	fs.StringVar(&c.HTTPCACert, "http-ca-cert", "", "Path to X.509 CA certificate for HTTPS: verifies client certificates, and leaders' HTTPS when forwarding")
	fs.BoolVar(&c.HTTPVerifyClient, "http-verify-client", false, "Enable mutual TLS for HTTPS")
	fs.StringVar(&c.HTTPVerifyCommonName, "http-verify-common-name", "", "Common name a client certificate must have (needs -http-verify-client)")
	fs.StringVar(&c.NodeCert, "node-cert", "", "Path to X.509 certificate for inter-node communication")
	fs.StringVar(&c.NodeKey, "node-key", "", "Path to X.509 private key for inter-node communication")
	fs.StringVar(&c.NodeCACert, "node-ca-cert", "", "Path to X.509 CA certificate for inter-node communication")
	fs.BoolVar(&c.NodeNoVerify, "node-no-verify", false, "Skip verification of any node-node certificate")
	fs.BoolVar(&c.NodeVerifyClient, "node-verify-client", false, "Enable mutual TLS for node-to-node communication")
	fs.StringVar(&c.NodeVerifyServerName, "node-verify-server-name", "", "Hostname to verify on certificates returned by other nodes")
	fs.StringVar(&c.NodeVerifyCommonName, "node-verify-common-name", "", "Common name other nodes' certificates must have (needs -node-verify-client)")
	fs.StringVar(&c.LogLevel, "log-level", "INFO", "Minimum level of rqlited's own log lines (ERROR, WARN, INFO, DEBUG)")

	fs.StringVar(&c.CPUProfile, "cpu-profile", "", "Path to file for CPU profiling information")
	fs.StringVar(&c.MemProfile, "mem-profile", "", "Path to file for memory profiling information")
	fs.BoolVar(&c.ShowVersion, "version", false, "Show version information and exit")

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
	for _, j := range strings.Split(join, ",") {
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
	if err := c.Validate(os.Hostname); err != nil {
		return nil, err
	}
	return c, nil
}

// advertise returns the address to advertise: adv if set, else bind, with
// an unspecified bind host replaced by this host's name.
func advertise(adv, bind string, hostname func() (string, error)) (string, error) {
	if adv != "" {
		return adv, nil
	}
	host, port, err := net.SplitHostPort(bind)
	if err != nil {
		return bind, nil // reported by the bind address check
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return bind, nil
	}
	name, err := hostname()
	if err != nil || name == "" {
		return "", fmt.Errorf("the bind address %s listens on all interfaces and this host's name is unknown (%v): set the advertised address", bind, err)
	}
	return net.JoinHostPort(name, port), nil
}

// isLocalOnly reports whether host:port names a loopback or unspecified
// address, which no other host can reach.
func isLocalOnly(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "" || strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && (ip.IsLoopback() || ip.IsUnspecified())
}

// Validate checks the combination of flags and fills in derived defaults.
//
// An advertised address left unset takes the bind address, except that a
// bind address on all interfaces (0.0.0.0:4001, :4001) advertises this
// host's name with the same port: the identical `docker run` line on every
// host then advertises each container's own name.
func (c *Config) Validate(hostname func() (string, error)) error {
	for _, a := range []struct{ flag, val string }{
		{"-http-addr", c.HTTPAddr}, {"-http-adv-addr", c.HTTPAdvAddr},
		{"-raft-addr", c.RaftAddr}, {"-raft-adv-addr", c.RaftAdvAddr},
	} {
		if a.val == "" {
			continue
		}
		if strings.HasPrefix(a.val, "http") {
			return fmt.Errorf("%s %q must be host:port, without a scheme", a.flag, a.val)
		}
		if _, _, err := net.SplitHostPort(a.val); err != nil {
			return fmt.Errorf("%s %q is not a valid host:port: %w", a.flag, a.val, err)
		}
	}
	var err error
	if c.HTTPAdvAddr, err = advertise(c.HTTPAdvAddr, c.HTTPAddr, hostname); err != nil {
		return fmt.Errorf("-http-adv-addr: %w", err)
	}
	advertisedHost := c.RaftAdvAddr == ""
	if c.RaftAdvAddr, err = advertise(c.RaftAdvAddr, c.RaftAddr, hostname); err != nil {
		return fmt.Errorf("-raft-adv-addr: %w", err)
	}
	advertisedHost = advertisedHost && c.RaftAdvAddr != c.RaftAddr
	for _, a := range []struct{ flag, val string }{{"-http-adv-addr", c.HTTPAdvAddr}, {"-raft-adv-addr", c.RaftAdvAddr}} {
		host, _, _ := net.SplitHostPort(a.val)
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			return fmt.Errorf("advertised address %s (%s) is not routable: set %s to an address other nodes and clients can reach", a.val, a.flag, a.flag)
		}
	}
	if c.HTTPAddr == c.RaftAddr {
		return fmt.Errorf("-http-addr and -raft-addr must differ (both are %s)", c.HTTPAddr)
	}
	if c.HTTPAdvAddr == c.RaftAdvAddr {
		return fmt.Errorf("-http-adv-addr and -raft-adv-addr must differ (both are %s)", c.HTTPAdvAddr)
	}
	if c.NodeID == "" {
		// As in rqlite's image, a node that advertises its host name (it
		// binds all interfaces) is named after the host; otherwise the ID is
		// the advertised Raft address.
		c.NodeID = c.RaftAdvAddr
		if advertisedHost {
			c.NodeID, _, _ = net.SplitHostPort(c.RaftAdvAddr)
		}
	}
	for _, j := range c.JoinAddrs {
		hostport := j
		if strings.HasPrefix(j, "http://") || strings.HasPrefix(j, "https://") {
			u, err := url.Parse(j)
			if err != nil || u.Host == "" {
				return fmt.Errorf("-join address %q is not a valid URL", j)
			}
			hostport = u.Host
		}
		if _, port, err := net.SplitHostPort(hostport); err != nil || port == "" {
			return fmt.Errorf("-join address %q must be host:port (a Raft address) or http://host:port", j)
		}
	}
	if c.BootstrapExpect < 0 {
		return errors.New("-bootstrap-expect must not be negative")
	}
	if c.BootstrapExpect > 0 && c.RaftNonVoter {
		return errors.New("-bootstrap-expect cannot be used with -raft-non-voter: read replicas never form a cluster, they join one")
	}
	if c.DiscoMode != "" {
		if !disco.ValidMode(c.DiscoMode) {
			return fmt.Errorf("-disco-mode %q is not one of consul-kv, etcd-kv, dns, dns-srv", c.DiscoMode)
		}
		if len(c.JoinAddrs) > 0 {
			return errors.New("-disco-mode and -join cannot be used together: discovery finds the nodes to join")
		}
		if disco.IsKV(c.DiscoMode) && c.BootstrapExpect > 0 {
			return fmt.Errorf("-bootstrap-expect cannot be used with -disco-mode %s: the key-value store elects the first node", c.DiscoMode)
		}
		if !disco.IsKV(c.DiscoMode) && !c.RaftNonVoter && c.BootstrapExpect == 0 {
			return fmt.Errorf("-disco-mode %s needs -bootstrap-expect: how many voters form the cluster", c.DiscoMode)
		}
		if disco.IsKV(c.DiscoMode) && !c.DiscoAllowLoopback {
			for _, a := range []struct{ flag, val string }{{"-raft-adv-addr", c.RaftAdvAddr}, {"-http-adv-addr", c.HTTPAdvAddr}} {
				if isLocalOnly(a.val) {
					return fmt.Errorf("-disco-mode %s would publish %s (%s) to the key-value store, where other hosts could never reach it: "+
						"set %s to an address other nodes can reach (or give -disco-allow-loopback for a single-host test)", c.DiscoMode, a.val, a.flag, a.flag)
				}
			}
		}
		if c.DiscoKey == "" {
			return errors.New("-disco-key must not be empty")
		}
		b, err := disco.LoadConfig(c.DiscoConfig)
		if err != nil {
			return err
		}
		c.DiscoConfigJSON = b
	} else if c.DiscoConfig != "" {
		return errors.New("-disco-config is set but -disco-mode is not")
	}
	if c.BootstrapExpect > 0 && c.DiscoMode == "" && len(c.JoinAddrs) == 0 {
		return errors.New("-bootstrap-expect needs -join with the addresses of the nodes that form the cluster")
	}
	if c.BootstrapExpect > 0 && c.DiscoMode == "" && len(c.JoinAddrs) < c.BootstrapExpect {
		return fmt.Errorf("-bootstrap-expect %d needs at least %d addresses in -join (it has %d)", c.BootstrapExpect, c.BootstrapExpect, len(c.JoinAddrs))
	}
	if c.BootstrapExpectTimeout <= 0 {
		return errors.New("-bootstrap-expect-timeout must be positive")
	}
	if c.JoinAttempts < 1 {
		return errors.New("-join-attempts must be at least 1")
	}
	if c.RaftReapNodeTimeout < 0 || c.RaftReapReadOnlyTimeout < 0 {
		return errors.New("-raft-reap-node-timeout and -raft-reap-read-only-node-timeout must not be negative")
	}
	if c.ClusterConnectTimeout <= 0 {
		return errors.New("-cluster-connect-timeout must be positive")
	}
	if c.RaftSnapThreshold == 0 {
		return errors.New("-raft-snap must be at least 1")
	}
	if c.RaftSnapInterval <= 0 {
		return errors.New("-raft-snap-int must be positive")
	}
	for _, d := range []struct {
		flag string
		val  time.Duration
		min  time.Duration
	}{
		{"-raft-heartbeat-timeout", c.RaftHeartbeat, 5 * time.Millisecond},
		{"-raft-election-timeout", c.RaftElection, 5 * time.Millisecond},
		{"-raft-commit-timeout", c.RaftCommit, time.Microsecond},
		{"-raft-apply-timeout", c.RaftApply, time.Millisecond},
		{"-write-queue-timeout", c.WriteQueueTimeout, time.Microsecond},
	} {
		if d.val < d.min {
			return fmt.Errorf("%s %v is too short (minimum %v)", d.flag, d.val, d.min)
		}
	}
	if c.RaftLeaderLease < 0 {
		return errors.New("-raft-leader-lease-timeout must not be negative")
	}
	if c.WriteQueueCapacity < 1 || c.WriteQueueBatchSize < 1 {
		return errors.New("-write-queue-capacity and -write-queue-batch-size must be at least 1")
	}
	switch strings.ToUpper(c.RaftLogLevel) {
	case "ERROR", "WARN", "INFO", "DEBUG", "TRACE":
	default:
		return fmt.Errorf("-raft-log-level %q is not one of ERROR, WARN, INFO, DEBUG", c.RaftLogLevel)
	}
	if c.HTTPMaxBody <= 0 {
		return errors.New("-http-max-body must be positive")
	}
	if c.MaxReadConns < 0 {
		return errors.New("-db-max-ro-conns must not be negative")
	}
	if c.MaxSteps < 0 {
		return errors.New("-db-max-steps must not be negative (0 for no limit)")
	}
	if c.MaxResult < 0 {
		return errors.New("-db-max-result-bytes must not be negative (0 for no limit)")
	}
	switch strings.ToUpper(c.LogLevel) {
	case "ERROR", "WARN", "INFO", "DEBUG":
	default:
		return fmt.Errorf("-log-level %q is not one of ERROR, WARN, INFO, DEBUG", c.LogLevel)
	}
	return c.validateSecurity()
}

// validateSecurity checks the -auth and TLS flags: pairs that go together,
// options that need TLS on, and files that must be readable now.
func (c *Config) validateSecurity() error {
	if (c.HTTPCert == "") != (c.HTTPKey == "") {
		return errors.New("-http-cert and -http-key go together: set both or neither")
	}
	if (c.NodeCert == "") != (c.NodeKey == "") {
		return errors.New("-node-cert and -node-key go together: set both or neither")
	}
	if c.HTTPCert == "" {
		if c.HTTPVerifyClient {
			return errors.New("-http-verify-client needs HTTPS: set -http-cert and -http-key")
		}
	}
	if c.HTTPVerifyCommonName != "" && !c.HTTPVerifyClient {
		return errors.New("-http-verify-common-name needs -http-verify-client")
	}
	if c.NodeCert == "" {
		for _, f := range []struct {
			flag string
			set  bool
		}{
			{"-node-ca-cert", c.NodeCACert != ""}, {"-node-no-verify", c.NodeNoVerify},
			{"-node-verify-client", c.NodeVerifyClient}, {"-node-verify-server-name", c.NodeVerifyServerName != ""},
		} {
			if f.set {
				return fmt.Errorf("%s needs node TLS: set -node-cert and -node-key", f.flag)
			}
		}
	}
	if c.NodeVerifyCommonName != "" && !c.NodeVerifyClient {
		return errors.New("-node-verify-common-name needs -node-verify-client")
	}
	if c.NodeNoVerify && c.NodeVerifyClient {
		return errors.New("-node-no-verify and -node-verify-client contradict each other: verification is either on or off")
	}
	if c.JoinAs != "" && c.AuthFile == "" {
		return errors.New("-join-as names a user of the -auth file: set -auth too")
	}
	for _, f := range []struct{ flag, path string }{
		{"-auth", c.AuthFile}, {"-http-cert", c.HTTPCert}, {"-http-key", c.HTTPKey}, {"-http-ca-cert", c.HTTPCACert},
		{"-node-cert", c.NodeCert}, {"-node-key", c.NodeKey}, {"-node-ca-cert", c.NodeCACert},
	} {
		if f.path == "" {
			continue
		}
		fh, err := os.Open(f.path)
		if err != nil {
			return fmt.Errorf("%s: %w", f.flag, err)
		}
		fh.Close()
	}
	return nil
}
