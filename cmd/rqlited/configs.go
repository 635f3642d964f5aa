package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"

	"github.com/rqlited/rqlited/db"
	httpd "github.com/rqlited/rqlited/http"
	"github.com/rqlited/rqlited/mux"
	"github.com/rqlited/rqlited/queue"
	"github.com/rqlited/rqlited/store"
)

// This file maps the command line onto each package's Config.

// storeConfig is the store's Config: Raft and SQLite settings, the data
// directory and the Raft layer of the inter-node port. A write this node
// cannot apply as the others did stops it with exitFatal.
func storeConfig(cfg *Config, dir string, layer *mux.Layer, logger *slog.Logger, stderr io.Writer) store.Config {
	sc := store.DefaultConfig()
	sc.Dir = dir
	sc.NodeID = cfg.NodeID
	sc.Addr = cfg.RaftAdvAddr
	sc.Layer = layer
	sc.HeartbeatTimeout = cfg.RaftHeartbeat
	sc.ElectionTimeout = cfg.RaftElection
	sc.CommitTimeout = cfg.RaftCommit
	sc.LeaderLeaseTimeout = cfg.RaftLeaderLease
	sc.ApplyTimeout = cfg.RaftApply
	sc.SnapshotThreshold = cfg.RaftSnapThreshold
	sc.SnapshotInterval = cfg.RaftSnapInterval
	sc.TrailingLogs = cfg.RaftSnapThreshold + cfg.RaftSnapThreshold/4
	sc.NonVoter = cfg.RaftNonVoter
	sc.ReapTimeout = cfg.RaftReapNodeTimeout
	sc.ReapReadOnlyTimeout = cfg.RaftReapReadOnlyTimeout
	sc.RemoveShutdown = cfg.RaftRemoveShutdown
	sc.ForeignKeys = cfg.ForeignKeys
	sc.MaxReadConns = cfg.MaxReadConns
	sc.MaxSteps = cfg.MaxSteps
	sc.MaxResultBytes = cfg.MaxResult
	sc.RaftLogLevel = strings.ToUpper(cfg.RaftLogLevel)
	sc.LogOutput = stderr
	sc.Logger = logger
	sc.Fatal = func(err error) {
		logger.Error("stopping", "error", err)
		fmt.Fprintf(stderr, "rqlited: %v\n", err)
		os.Exit(exitFatal)
	}
	return sc
}

// httpConfig is the HTTP API's Config: addresses, limits, -auth and TLS,
// the write queue and the build information /status reports.
func httpConfig(cfg *Config, sec *security) httpd.Config {
	hc := httpd.DefaultConfig()
	hc.Addr = cfg.HTTPAddr
	hc.AdvAddr = cfg.HTTPAdvAddr
	hc.MaxBodyBytes = cfg.HTTPMaxBody
	hc.AllowOrigin = cfg.HTTPAllowOrigin
	if sec.auth != nil {
		hc.Auth = sec.auth
	}
	hc.TLS = sec.httpServer
	if tr := sec.httpTransport(); tr != nil {
		hc.ForwardTransport = tr
	}
	hc.Queue = queueConfig(cfg)
	hc.Build = httpd.BuildInfo{Version: version, Commit: commit, BuildTime: buildTime,
		Compiler: runtime.Version(), SQLite: db.Version()}
	return hc
}

// queueConfig is the write queue's Config (-write-queue-*); a queued batch
// is applied within the Raft apply timeout.
func queueConfig(cfg *Config) queue.Config {
	return queue.Config{
		Capacity: cfg.WriteQueueCapacity, BatchSize: cfg.WriteQueueBatchSize,
		Timeout: cfg.WriteQueueTimeout, Transaction: cfg.WriteQueueTx, ExecTimeout: cfg.RaftApply,
	}
}
