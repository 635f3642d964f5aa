package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/rqlited/rqlited/cluster"
	"github.com/rqlited/rqlited/disco"
	httpd "github.com/rqlited/rqlited/http"
	"github.com/rqlited/rqlited/mux"
	"github.com/rqlited/rqlited/store"
)

// httpShutdownTimeout bounds the HTTP API's graceful shutdown.
const httpShutdownTimeout = 10 * time.Second

// interruptAfter is how long requests waiting for a long statement being
// applied may hold the shutdown before the statement is stopped (it is
// applied again from the log at restart).
const interruptAfter = 2 * time.Second

// joinHTTPTimeout bounds each HTTP call made to join or bootstrap.
const joinHTTPTimeout = 5 * time.Second

// node is one running rqlited: what the configuration builds, in the order
// it is built. A field is set once its part is running, so Close stops
// exactly what was started.
type node struct {
	cfg    *Config
	logger *slog.Logger
	stderr io.Writer

	prof *profiler
	dir  string // the data directory, absolute
	ln   net.Listener
	sec  *security

	mux          *mux.Mux
	raftLayer    *mux.Layer
	clusterLayer *mux.Layer
	client       *cluster.Client
	store        *store.Store
	apiURL       string
	stopHUP      func()

	clusterSvc     *cluster.Service
	clusterStarted bool
	http           *httpd.Service
	httpStarted    bool

	// Discovery: where the join or bootstrap targets come from.
	hasState   bool
	self       cluster.Self
	httpClient *http.Client
	provider   cluster.AddressProvider
	discoName  string
	boot       *cluster.Bootstrapper
	kvDisco    *disco.Service

	maint *maintenance

	// cancel stops the goroutines start leaves running (wg).
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// newNode builds and starts every part of the node, serving HTTP and the
// inter-node port, but not yet in a cluster (see start). On error the node
// holds what was started: Close it.
func newNode(cfg *Config, logger *slog.Logger, stderr io.Writer) (*node, error) {
	n := &node{cfg: cfg, logger: logger, stderr: stderr}
	for _, step := range []func() error{
		n.openProfiles,
		n.openDataDir,
		n.openMux,
		n.openStore,
		n.newServices,
		n.newDiscovery,
		n.startServices,
	} {
		if err := step(); err != nil {
			return n, err
		}
	}
	n.logger.Info("rqlited started", "version", version, "node-id", cfg.NodeID,
		"http", n.http.Addr().String(), "raft", n.ln.Addr().String(), "dir", n.dir)
	return n, nil
}

// openProfiles starts -cpu-profile and arranges -mem-profile.
func (n *node) openProfiles() error {
	p, err := startProfiles(n.cfg.CPUProfile, n.cfg.MemProfile)
	if err != nil {
		return err
	}
	n.prof = p
	return nil
}

// openDataDir makes the data directory absolute and proves it writable.
func (n *node) openDataDir() error {
	dir, err := filepath.Abs(n.cfg.DataDir)
	if err != nil {
		return err
	}
	if err := checkDataDir(dir); err != nil {
		return err
	}
	n.dir = dir
	return nil
}

// checkDataDir creates the data directory and proves it is writable.
func checkDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cannot create data directory %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".write-test-*")
	if err != nil {
		return fmt.Errorf("data directory %s is not writable (check its owner and permissions): %w", dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// openMux listens on -raft-addr and serves the inter-node port: Raft and
// the cluster service share it, with TLS if configured.
func (n *node) openMux() error {
	ln, err := net.Listen("tcp", n.cfg.RaftAddr)
	if err != nil {
		return fmt.Errorf("listen on Raft address %s (-raft-addr): %w", n.cfg.RaftAddr, err)
	}
	sec, err := newSecurity(n.cfg, n.logger)
	if err != nil {
		ln.Close()
		return err
	}
	warnOpenInterNode(n.cfg, ln.Addr(), n.logger)
	var mx *mux.Mux
	if sec.nodeServer != nil {
		mx = mux.NewTLS(ln, sec.nodeServer, sec.nodeClient, n.logger)
	} else {
		mx = mux.New(ln, n.logger)
	}
	n.raftLayer, n.clusterLayer = mx.Layer(mux.HeaderRaft), mx.Layer(mux.HeaderCluster)
	mx.Serve()
	n.ln, n.sec, n.mux = ln, sec, mx
	return nil
}

// openStore opens the store (Raft and SQLite) and the cluster client it
// reads through.
func (n *node) openStore() error {
	sc := storeConfig(n.cfg, n.dir, n.raftLayer, n.logger, n.stderr)
	n.client = cluster.NewClient(n.clusterLayer, n.cfg.ClusterConnectTimeout)
	if n.sec.joinAs != nil {
		n.client.SetCredentials(n.sec.joinAs)
	}
	// Followers serve linearizable reads themselves after a read-index
	// call to the leader, unless the leader would refuse the call (it
	// checks -auth and this node has no -join-as credentials to send).
	if n.sec.clusterAuth() == nil || n.sec.joinAs != nil {
		sc.ReadIndexer = n.client
	}
	str, err := store.New(sc)
	if err != nil {
		return err
	}
	n.client.SetMemberCheck(raftMember(str))
	if err := str.Open(); err != nil {
		return err
	}
	n.store = str
	return nil
}

// newServices builds the cluster service and the HTTP API (not started
// yet), and reloads -auth on SIGHUP.
func (n *node) newServices() error {
	n.apiURL = "http://" + n.cfg.HTTPAdvAddr
	if n.sec.httpServer != nil {
		n.apiURL = "https://" + n.cfg.HTTPAdvAddr
	}
	n.clusterSvc = cluster.NewService(n.clusterLayer, n.store,
		cluster.ServiceConfig{APIURL: n.apiURL, Version: version, Auth: n.sec.clusterAuth()}, n.logger)
	n.stopHUP = n.sec.reloadOnHUP(n.logger)

	hs, err := httpd.New(httpConfig(n.cfg, n.sec), n.store, n.logger)
	if err != nil {
		return err
	}
	hs.SetCluster(n.client)
	addStatusSections(hs, n.cfg, n.store, n.dir, n.sec.httpServer != nil, n.sec.nodeServer != nil)
	n.http = hs
	return nil
}

// startServices starts the cluster service, the HTTP API and periodic
// maintenance.
func (n *node) startServices() error {
	n.http.SetReadyExplain(readyExplain(n.kvDisco, n.boot))
	n.clusterSvc.Start()
	n.clusterStarted = true
	if err := n.http.Start(); err != nil {
		return err
	}
	n.httpStarted = true
	if tasks := maintenanceTasks(n.cfg); len(tasks) > 0 {
		n.maint = startMaintenance(n.store, tasks, n.cfg.RaftApply, n.logger)
	}
	return nil
}

// Close stops the node in reverse order of start-up: the goroutines start
// left running, maintenance, HTTP (clients learn at once), the cluster
// service, discovery, then Raft and storage, the inter-node port and the
// profiles. It returns every error met, joined; those that do not fail
// the node (all but the store's) are shutdownWarnings.
func (n *node) Close() error {
	if n.cancel != nil {
		n.cancel()
	}
	n.wg.Wait()
	if n.maint != nil {
		n.maint.Close()
	}
	var errs []error
	if n.httpStarted {
		errs = append(errs, warning("HTTP shutdown", n.closeHTTP()))
	}
	if n.clusterStarted {
		errs = append(errs, warning("cluster service shutdown", n.clusterSvc.Close()))
	}
	if n.kvDisco != nil {
		errs = append(errs, warning("discovery shutdown", n.kvDisco.Close()))
	}
	if n.stopHUP != nil {
		n.stopHUP()
	}
	if n.store != nil {
		if err := n.store.Close(n.cfg.RaftShutdownStepdn); err != nil {
			errs = append(errs, fmt.Errorf("close store: %w", err))
		}
	}
	if n.client != nil {
		errs = append(errs, warning("cluster client shutdown", n.client.Close()))
	}
	if n.mux != nil {
		errs = append(errs, warning("inter-node port shutdown", n.mux.Close()))
	}
	if n.prof != nil {
		errs = append(errs, n.prof.Close())
	}
	return errors.Join(errs...)
}

// closeHTTP shuts the HTTP API down. Requests waiting for a long statement
// being applied would hold the shutdown: if they have not drained within
// interruptAfter, the statement is stopped.
func (n *node) closeHTTP() error {
	slow := time.AfterFunc(interruptAfter, n.store.Interrupt)
	defer slow.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
	defer cancel()
	return n.http.Close(ctx)
}

// shutdownWarning is a Close error that does not fail the node: it is
// logged (at level) and the exit status stays 0.
type shutdownWarning struct {
	msg   string
	level slog.Level
	err   error
}

func (w *shutdownWarning) Error() string { return w.msg + ": " + w.err.Error() }
func (w *shutdownWarning) Unwrap() error { return w.err }

// warning wraps err, if any, as a shutdownWarning logged as msg.
func warning(msg string, err error) error {
	if err == nil {
		return nil
	}
	return &shutdownWarning{msg: msg, level: slog.LevelWarn, err: err}
}

// logShutdownWarnings logs the shutdownWarnings in err (an error of Close)
// and returns the rest joined, nil if none.
func logShutdownWarnings(err error, logger *slog.Logger) error {
	var rest []error
	for _, e := range flatten(err) {
		var w *shutdownWarning
		if errors.As(e, &w) {
			logger.Log(context.Background(), w.level, w.msg, "error", w.err)
			continue
		}
		rest = append(rest, e)
	}
	return errors.Join(rest...)
}

// flatten returns the errors joined in err, joins within joins included.
func flatten(err error) []error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		if err == nil {
			return nil
		}
		return []error{err}
	}
	var errs []error
	for _, e := range j.Unwrap() {
		errs = append(errs, flatten(e)...)
	}
	return errs
}

// profiler is -cpu-profile and -mem-profile: the CPU profile runs from
// start to Close, the heap profile is written at Close.
type profiler struct {
	cpu     *os.File
	memPath string
}

func startProfiles(cpuPath, memPath string) (*profiler, error) {
	p := &profiler{memPath: memPath}
	if cpuPath != "" {
		f, err := os.Create(cpuPath)
		if err != nil {
			return nil, fmt.Errorf("-cpu-profile: %w", err)
		}
		pprof.StartCPUProfile(f) //nolint:errcheck // fails only if already profiling
		p.cpu = f
	}
	return p, nil
}

// Close writes the heap profile, then stops the CPU profile.
func (p *profiler) Close() error {
	var errs []error
	if p.memPath != "" {
		errs = append(errs, writeMemProfile(p.memPath))
	}
	if p.cpu != nil {
		pprof.StopCPUProfile()
		errs = append(errs, warning("-cpu-profile", p.cpu.Close()))
	}
	return errors.Join(errs...)
}

// writeMemProfile writes the heap profile to path; its errors are logged
// as errors, and do not fail the node.
func writeMemProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return &shutdownWarning{msg: "-mem-profile", level: slog.LevelError, err: err}
	}
	runtime.GC()
	err = pprof.WriteHeapProfile(f)
	err = errors.Join(err, f.Close())
	if err != nil {
		return &shutdownWarning{msg: "-mem-profile", level: slog.LevelError, err: err}
	}
	return nil
}
