// Command rqlited runs one node of a distributed SQLite database: SQLite
// under Raft, behind rqlite's HTTP API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/rqlited/rqlited/db"
	httpd "github.com/rqlited/rqlited/http"
	"github.com/rqlited/rqlited/mux"
	"github.com/rqlited/rqlited/queue"
	"github.com/rqlited/rqlited/store"
)

// Build information, set with -ldflags "-X main.version=...".
var (
	version   = "v0.1.0-dev"
	commit    = "unknown"
	buildTime = "unknown"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the exit, so tests can call it.
func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "rqlited: %v\n", err)
		return 1
	}
	if cfg.ShowVersion {
		fmt.Fprintf(stdout, "rqlited %s (commit %s, built %s) %s %s/%s, SQLite %s\n",
			version, commit, buildTime, runtime.Version(), runtime.GOOS, runtime.GOARCH, db.Version())
		return 0
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: parseLevel(cfg.LogLevel)}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, logger, stderr); err != nil {
		logger.Error("rqlited failed", "error", err)
		fmt.Fprintf(stderr, "rqlited: %v\n", err)
		return 1
	}
	return 0
}

func parseLevel(s string) slog.Level {
	var l slog.Level
	l.UnmarshalText([]byte(strings.ToUpper(s)))
	return l
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

// serve runs the node until ctx ends, then shuts down in reverse order of
// start-up: HTTP first (clients learn at once), then Raft and storage.
func serve(ctx context.Context, cfg *Config, logger *slog.Logger, stderr io.Writer) (retErr error) {
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return fmt.Errorf("-cpu-profile: %w", err)
		}
		pprof.StartCPUProfile(f)
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	if cfg.MemProfile != "" {
		defer writeMemProfile(cfg.MemProfile, logger)
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return err
	}
	if err := checkDataDir(dir); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.RaftAddr)
	if err != nil {
		return fmt.Errorf("listen on Raft address %s (-raft-addr): %w", cfg.RaftAddr, err)
	}
	mx := mux.New(ln, logger)
	raftLayer := mx.Layer(mux.HeaderRaft)
	mx.Serve()
	defer mx.Close()

	sc := store.DefaultConfig()
	sc.Dir = dir
	sc.NodeID = cfg.NodeID
	sc.Addr = cfg.RaftAdvAddr
	sc.Layer = raftLayer
	sc.HeartbeatTimeout = cfg.RaftHeartbeat
	sc.ElectionTimeout = cfg.RaftElection
	sc.CommitTimeout = cfg.RaftCommit
	sc.LeaderLeaseTimeout = cfg.RaftLeaderLease
	sc.ApplyTimeout = cfg.RaftApply
	sc.SnapshotThreshold = cfg.RaftSnapThreshold
	sc.SnapshotInterval = cfg.RaftSnapInterval
	sc.TrailingLogs = cfg.RaftSnapThreshold + cfg.RaftSnapThreshold/4
	sc.ForeignKeys = cfg.ForeignKeys
	sc.MaxReadConns = cfg.MaxReadConns
	sc.RaftLogLevel = strings.ToUpper(cfg.RaftLogLevel)
	sc.LogOutput = stderr
	sc.Logger = logger
	str, err := store.New(sc)
	if err != nil {
		return err
	}
	if err := str.Open(); err != nil {
		return err
	}
	defer func() {
		if err := str.Close(cfg.RaftShutdownStepdn); err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("close store: %w", err))
		}
	}()
	hasState, err := str.HasState()
	if err != nil {
		return err
	}
	if !hasState {
		logger.Info("no existing state: bootstrapping a single-node cluster", "node-id", cfg.NodeID)
		if err := str.BootstrapSelf(); err != nil {
			return err
		}
	} else {
		logger.Info("existing state found: restarting", "dir", dir)
	}

	hc := httpd.DefaultConfig()
	hc.Addr = cfg.HTTPAddr
	hc.AdvAddr = cfg.HTTPAdvAddr
	hc.MaxBodyBytes = cfg.HTTPMaxBody
	hc.AllowOrigin = cfg.HTTPAllowOrigin
	hc.Queue = queue.Config{
		Capacity: cfg.WriteQueueCapacity, BatchSize: cfg.WriteQueueBatchSize,
		Timeout: cfg.WriteQueueTimeout, Transaction: cfg.WriteQueueTx, ExecTimeout: cfg.RaftApply,
	}
	hc.Build = httpd.BuildInfo{Version: version, Commit: commit, BuildTime: buildTime,
		Compiler: runtime.Version(), SQLite: db.Version()}
	hs, err := httpd.New(hc, str, logger)
	if err != nil {
		return err
	}
	if err := hs.Start(); err != nil {
		return err
	}
	logger.Info("rqlited started", "version", version, "node-id", cfg.NodeID,
		"http", hs.Addr().String(), "raft", ln.Addr().String(), "dir", dir)

	<-ctx.Done()
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Close(shutdownCtx); err != nil {
		logger.Warn("HTTP shutdown", "error", err)
	}
	return nil
}

func writeMemProfile(path string, logger *slog.Logger) {
	f, err := os.Create(path)
	if err != nil {
		logger.Error("-mem-profile", "error", err)
		return
	}
	defer f.Close()
	runtime.GC()
	pprof.WriteHeapProfile(f)
}
