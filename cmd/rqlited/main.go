// Command rqlited runs one node of a distributed SQLite database: SQLite
// under Raft, behind rqlite's HTTP API.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rqlited/rqlited/cluster"
	"github.com/rqlited/rqlited/command"
	"github.com/rqlited/rqlited/db"
	"github.com/rqlited/rqlited/disco"
	"github.com/rqlited/rqlited/disco/consul"
	"github.com/rqlited/rqlited/disco/etcd"
	"github.com/rqlited/rqlited/dns"
	httpd "github.com/rqlited/rqlited/http"
	"github.com/rqlited/rqlited/mux"
	"github.com/rqlited/rqlited/queue"
	"github.com/rqlited/rqlited/store"
)

// exitBootTimeout is the exit status when no cluster was formed or joined
// within -bootstrap-expect-timeout, so supervisors can tell it apart from a
// configuration error (status 1).
const exitBootTimeout = 3

// exitFatal is the exit status of a node that stopped because it could not
// apply a committed write as the other nodes did (disk full, I/O error).
const exitFatal = 4

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
	cfg, err := parseFlags(args, stderr, os.Getenv)
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
	for _, w := range cfg.Warnings {
		logger.Warn(w)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, logger, stderr); err != nil {
		logger.Error("rqlited failed", "error", err)
		fmt.Fprintf(stderr, "rqlited: %v\n", err)
		if errors.Is(err, command.ErrBootTimeout) {
			return exitBootTimeout
		}
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
	sec, err := newSecurity(cfg, logger)
	if err != nil {
		ln.Close()
		return err
	}
	warnOpenInterNode(cfg, ln.Addr(), logger)
	var mx *mux.Mux
	if sec.nodeServer != nil {
		mx = mux.NewTLS(ln, sec.nodeServer, sec.nodeClient, logger)
	} else {
		mx = mux.New(ln, logger)
	}
	raftLayer, clusterLayer := mx.Layer(mux.HeaderRaft), mx.Layer(mux.HeaderCluster)
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
	client := cluster.NewClient(clusterLayer, cfg.ClusterConnectTimeout)
	defer client.Close()
	if sec.joinAs != nil {
		client.SetCredentials(sec.joinAs)
	}
	// Followers serve linearizable reads themselves after a read-index
	// call to the leader, unless the leader would refuse the call (it
	// checks -auth and this node has no -join-as credentials to send).
	if sec.clusterAuth() == nil || sec.joinAs != nil {
		sc.ReadIndexer = client
	}
	str, err := store.New(sc)
	if err != nil {
		return err
	}
	client.SetMemberCheck(raftMember(str))
	if err := str.Open(); err != nil {
		return err
	}
	defer func() {
		if err := str.Close(cfg.RaftShutdownStepdn); err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("close store: %w", err))
		}
	}()

	apiURL := "http://" + cfg.HTTPAdvAddr
	if sec.httpServer != nil {
		apiURL = "https://" + cfg.HTTPAdvAddr
	}
	csvc := cluster.NewService(clusterLayer, str, cluster.ServiceConfig{APIURL: apiURL, Version: version, Auth: sec.clusterAuth()}, logger)
	stopHUP := sec.reloadOnHUP(logger)
	defer stopHUP()

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
	hs.SetCluster(client)
	addStatusSections(hs, cfg, str, dir, sec.httpServer != nil, sec.nodeServer != nil)

	hasState, err := str.HasState()
	if err != nil {
		return err
	}
	self := cluster.Self{ID: cfg.NodeID, Addr: cfg.RaftAdvAddr, Voter: !cfg.RaftNonVoter, ClusterID: str.ClusterID}
	httpClient := &http.Client{Timeout: 5 * time.Second}
	if tr := sec.httpTransport(); tr != nil {
		httpClient.Transport = tr
	}
	provider, discoName, err := addressProvider(cfg)
	if err != nil {
		return err
	}
	var boot *cluster.Bootstrapper
	if !hasState && provider != nil && (cfg.BootstrapExpect > 0 || cfg.DiscoMode != "") {
		boot = cluster.NewBootstrapper(cluster.BootConfig{Expect: cfg.BootstrapExpect, Timeout: cfg.BootstrapExpectTimeout,
			Self: self}, provider, str, client, httpClient, logger)
		csvc.SetNotifyState(boot.NotifyState)
		hs.AddStatus("bootstrap", boot.Stats)
	}
	var kvDisco *disco.Service
	if disco.IsKV(cfg.DiscoMode) {
		kv, err := newKV(cfg)
		if err != nil {
			return err
		}
		join := func(ctx context.Context, addr string) error {
			return client.Join(ctx, addr, self.ID, self.Addr, self.Voter, self.ClusterID())
		}
		kvDisco = disco.NewService(disco.Config{Mode: cfg.DiscoMode, Key: cfg.DiscoKey, Voter: self.Voter, APIURL: apiURL,
			Timeout: cfg.BootstrapExpectTimeout}, kv, str, join, logger)
		hs.AddStatus("disco", kvDiscoStatus(kvDisco))
		kvDisco.Start()
		defer kvDisco.Close()
	} else if cfg.DiscoMode != "" {
		hs.AddStatus("disco", dnsDiscoStatus(cfg, discoName, boot))
	}
	hs.SetReadyExplain(func() string {
		var st map[string]any
		switch {
		case kvDisco != nil:
			st = kvDisco.Stats()
		case boot != nil:
			st = boot.Stats()
		default:
			return ""
		}
		why, _ := st["phase"].(string)
		if e, _ := st["last_error"].(string); e != "" {
			why += " (" + e + ")"
		}
		return why
	})
	csvc.Start()
	defer csvc.Close()
	if err := hs.Start(); err != nil {
		return err
	}
	defer func() {
		// Requests waiting for a long statement being applied would hold
		// the shutdown: if they have not drained within 2 s, the statement
		// is stopped (it is applied again from the log at restart).
		slow := time.AfterFunc(2*time.Second, str.Interrupt)
		defer slow.Stop()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := hs.Close(shutdownCtx); err != nil {
			logger.Warn("HTTP shutdown", "error", err)
		}
	}()
	if tasks := maintenanceTasks(cfg); len(tasks) > 0 {
		// Stopped before the store closes (deferred earlier, runs later).
		maint := startMaintenance(str, tasks, cfg.RaftApply, logger)
		defer maint.Close()
	}
	logger.Info("rqlited started", "version", version, "node-id", cfg.NodeID,
		"http", hs.Addr().String(), "raft", ln.Addr().String(), "dir", dir)

	if provider != nil || kvDisco != nil {
		// Peers dial the advertised address; a name that does not resolve
		// yet (a Kubernetes pod before its DNS record exists) is waited for.
		if err := waitResolvable(ctx, cfg.RaftAdvAddr, cfg.BootstrapExpectTimeout, logger); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancelJoin := context.WithCancel(ctx) // runs before wg.Wait
	defer cancelJoin()
	joiner := &cluster.Joiner{Client: client, HTTP: httpClient, Self: self,
		Attempts: cfg.JoinAttempts, Interval: cfg.JoinInterval, Logger: logger}
	switch {
	case hasState:
		logger.Info("existing state found: restarting into the cluster", "dir", dir, "cluster-id", str.ClusterID())
		// If every member came back at a new address, no leader can be
		// elected from the old configuration: find them through discovery
		// (the -join list, DNS, or the KV store's member list) while there
		// is no leader.
		var members cluster.AddressProvider
		if provider != nil {
			members = provider
		} else if kvDisco != nil {
			members = kvDisco
		}
		if members != nil {
			finder := &cluster.PeerFinder{Book: str, Client: client, HTTP: httpClient, Addresses: members,
				Self: cfg.NodeID, Interval: cfg.RaftElection, Logger: logger}
			wg.Add(1)
			go func() {
				defer wg.Done()
				finder.Run(ctx)
			}()
		}
		if kvDisco != nil {
			// As with DNS below: tell the leader this node's address, in
			// case it changed or the node was removed while away.
			wg.Add(2)
			go func() {
				defer wg.Done()
				kvDisco.Rejoin(ctx)
			}()
			go func() {
				defer wg.Done()
				kvDisco.Publish(ctx)
			}()
		}
		if provider != nil {
			// Harmless if nothing changed; updates the leader's entry if this
			// node restarted at a new address.
			wg.Add(1)
			go func() {
				defer wg.Done()
				targets, err := provider.Lookup(ctx)
				if err == nil {
					_, err = joiner.Join(ctx, targets)
				}
				switch {
				case err == nil || ctx.Err() != nil:
				case errors.Is(err, command.ErrClusterMismatch):
					logger.Error("this node's data belongs to a different cluster than the one at -join; it was not joined. "+
						"Start it with an empty data directory to join that cluster", "error", err)
				default:
					logger.Info("re-join on restart did not complete (fine if the cluster already has this node's address)", "error", err)
				}
			}()
		}
	case kvDisco != nil:
		wg.Add(1)
		go func() {
			defer wg.Done()
			kvDisco.Publish(ctx)
		}()
		// Stopped while still registering: carry on to the shutdown
		// steps below, which may have a cluster to leave already.
		if err := kvDisco.Register(ctx); err != nil && ctx.Err() == nil {
			return err
		}
	case provider == nil:
		if cfg.RaftNonVoter {
			return errors.New("a read replica (-raft-non-voter) cannot form a cluster on its own: give it -join with the address of a cluster node")
		}
		logger.Info("no existing state and no -join: bootstrapping a single-node cluster", "node-id", cfg.NodeID)
		if err := str.BootstrapSelf(); err != nil {
			return err
		}
	case boot != nil:
		if err := boot.Run(ctx); err != nil && ctx.Err() == nil {
			return err
		}
	default:
		if _, err := joiner.Join(ctx, cfg.JoinAddrs); err != nil && ctx.Err() == nil {
			if errors.Is(err, cluster.ErrJoinSelf) {
				return fmt.Errorf("-join: %w (to start a new cluster, leave out -join)", err)
			}
			return err
		}
	}

	select {
	case <-ctx.Done():
	case <-str.Removed():
	}
	logger.Info("shutting down")
	if cfg.RaftClusterRemoveShut && str.IsMember(cfg.NodeID) {
		removeSelf(str, client, cfg.NodeID, logger)
	}
	return nil
}

// addStatusSections adds rqlite's /status sections that only main knows
// of: "cluster" (the cluster service: addr, https, api_addr, and ours),
// "http.cluster" (the cluster client), "http.tls" (certificate files),
// "mux" and "extensions" (rqlited loads none).
func addStatusSections(hs *httpd.Service, cfg *Config, str *store.Store, dir string, httpTLS, nodeTLS bool) {
	hs.AddStatus("cluster", func() map[string]any {
		return map[string]any{"addr": cfg.RaftAdvAddr, "https": strconv.FormatBool(httpTLS), "api_addr": cfg.HTTPAdvAddr,
			"cluster_id": str.ClusterID(), "join": cfg.JoinAddrs, "non_voter": cfg.RaftNonVoter,
			"node_tls": nodeTLS, "join_as": cfg.JoinAs}
	})
	hs.AddStatus("http.cluster", func() map[string]any {
		return map[string]any{"timeout": cfg.ClusterConnectTimeout.String(), "local_node_addr": cfg.RaftAdvAddr}
	})
	if httpTLS {
		hs.AddStatus("http.tls", func() map[string]any {
			return map[string]any{"cert_file": cfg.HTTPCert, "key_file": cfg.HTTPKey, "ca_file": cfg.HTTPCACert}
		})
	}
	tlsState := "disabled"
	if nodeTLS {
		tlsState = "enabled"
	}
	hs.AddStatus("mux", func() map[string]any {
		return map[string]any{"addr": cfg.RaftAdvAddr, "timeout": "10s", "tls": tlsState,
			"handlers": string([]byte{mux.HeaderRaft, mux.HeaderCluster})}
	})
	hs.AddStatus("extensions", func() map[string]any {
		return map[string]any{"dir": filepath.Join(dir, "extensions"), "names": []string{}}
	})
}

// kvDiscoStatus is the "disco" section in the key-value modes: ours, with
// rqlite's intervals as nanoseconds (its JSON of a time.Duration). A
// refused registration is retried after at most 2 s (rqlite: every 3 s).
func kvDiscoStatus(d *disco.Service) func() map[string]any {
	return func() map[string]any {
		m := d.Stats()
		if s, ok := m["report_interval"].(string); ok {
			m["report_interval_s"] = s
			if v, err := time.ParseDuration(s); err == nil {
				m["report_interval"] = v.Nanoseconds()
			}
		}
		m["register_interval"] = (2 * time.Second).Nanoseconds()
		return m
	}
}

// dnsDiscoStatus is the "disco" section in the DNS modes: rqlite's keys
// (mode, name, port or service and "dns_name:", last_contact and
// last_addresses once looked up, last_error), and the bootstrap progress.
func dnsDiscoStatus(cfg *Config, lookedUp string, boot *cluster.Bootstrapper) func() map[string]any {
	var dc struct {
		Name    string `json:"name"`
		Port    int    `json:"port"`
		Service string `json:"service"`
	}
	disco.Decode(cfg.DiscoConfigJSON, &dc) //nolint:errcheck // checked by addressProvider
	return func() map[string]any {
		m := map[string]any{"mode": cfg.DiscoMode, "name": cmp.Or(dc.Name, "rqlite")}
		if cfg.DiscoMode == disco.ModeDNSSRV {
			m["service"] = cmp.Or(dc.Service, "rqlite")
			m["dns_name:"] = lookedUp + "."
		} else {
			_, port, _ := net.SplitHostPort(cfg.RaftAdvAddr)
			p, _ := strconv.Atoi(port)
			m["port"] = cmp.Or(dc.Port, p)
		}
		if boot == nil {
			m["phase"] = "joined"
			return m
		}
		for k, v := range boot.Stats() {
			m[k] = v
		}
		if e, _ := m["last_error"].(string); e == "" {
			delete(m, "last_error") // rqlite reports it only after a failure
		}
		return m
	}
}

// addressProvider returns where the join or bootstrap targets come from:
// the -join list, DNS, or nothing (a node that forms a cluster alone), and
// the name looked up, for /status.
func addressProvider(cfg *Config) (cluster.AddressProvider, string, error) {
	switch cfg.DiscoMode {
	case "":
		if len(cfg.JoinAddrs) == 0 {
			return nil, "", nil
		}
		return cluster.StaticAddresses(cfg.JoinAddrs), "", nil
	case disco.ModeDNS:
		var dc dns.Config
		if err := disco.Decode(cfg.DiscoConfigJSON, &dc); err != nil {
			return nil, "", err
		}
		_, port, _ := net.SplitHostPort(cfg.RaftAdvAddr)
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, "", fmt.Errorf("-raft-adv-addr %s has no numeric port", cfg.RaftAdvAddr)
		}
		prov, err := dns.New(dc, p)
		if err != nil {
			return nil, "", err
		}
		return prov, prov.Name(), nil
	case disco.ModeDNSSRV:
		var sc dns.SRVConfig
		if err := disco.Decode(cfg.DiscoConfigJSON, &sc); err != nil {
			return nil, "", err
		}
		prov, err := dns.NewSRV(sc)
		if err != nil {
			return nil, "", err
		}
		return prov, prov.Name(), nil
	default: // key-value modes find the leader through the store
		return nil, "", nil
	}
}

// waitResolvable waits until the host of addr resolves, logging the problem
// (when it changes, and every 30 s) and giving up after timeout with the
// boot-timeout error.
func waitResolvable(ctx context.Context, addr string, timeout time.Duration, logger *slog.Logger) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || net.ParseIP(host) != nil {
		return nil
	}
	deadline := time.Now().Add(timeout)
	var lastLog time.Time
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := net.DefaultResolver.LookupHost(rctx, host)
		cancel()
		if err == nil {
			return nil
		}
		if time.Since(lastLog) > 30*time.Second {
			logger.Warn("the advertised Raft address does not resolve yet; other nodes could not reach this one. Waiting",
				"addr", addr, "error", err)
			lastLog = time.Now()
		}
		if time.Now().After(deadline) {
			return command.BootTimeout(timeout, fmt.Sprintf("advertised address %s does not resolve: %v", addr, err))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// newKV connects the leader-key store of a KV discovery mode.
func newKV(cfg *Config) (disco.KV, error) {
	switch cfg.DiscoMode {
	case disco.ModeConsulKV:
		var cc consul.Config
		if err := disco.Decode(cfg.DiscoConfigJSON, &cc); err != nil {
			return nil, err
		}
		return consul.New(cc, cfg.DiscoKey)
	case disco.ModeEtcdKV:
		var ec etcd.Config
		if err := disco.Decode(cfg.DiscoConfigJSON, &ec); err != nil {
			return nil, err
		}
		return etcd.New(ec, cfg.DiscoKey)
	}
	return nil, fmt.Errorf("-disco-mode %s has no key-value store", cfg.DiscoMode)
}

// removeSelf asks the leader to remove this node (-raft-cluster-remove-shutdown).
func removeSelf(str *store.Store, client *cluster.Client, id string, logger *slog.Logger) {
	for attempt := 0; attempt < 5; attempt++ {
		_, leader := str.Leader()
		if leader != "" {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			err := client.Remove(ctx, leader, id)
			cancel()
			if err == nil {
				logger.Info("removed this node from the cluster before shutting down")
				return
			}
			logger.Warn("remove self before shutdown", "attempt", attempt+1, "error", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
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
