package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/rqlited/rqlited/cluster"
	"github.com/rqlited/rqlited/command"
	"github.com/rqlited/rqlited/disco"
	"github.com/rqlited/rqlited/disco/consul"
	"github.com/rqlited/rqlited/disco/etcd"
	"github.com/rqlited/rqlited/dns"
	"github.com/rqlited/rqlited/store"
)

// removeSelfInterval is the pause between attempts to leave the cluster
// at shutdown (-raft-cluster-remove-shutdown).
const removeSelfInterval = 250 * time.Millisecond

// bootMode is how a node gets into a cluster at start-up.
type bootMode int

const (
	// bootRestart: the data directory has state; the node rejoins the
	// cluster it belongs to.
	bootRestart bootMode = iota
	// bootKV: -disco-mode consul-kv or etcd-kv; the key-value store elects
	// the first node, the others join it.
	bootKV
	// bootSingle: no -join and no discovery; the node forms a cluster alone.
	bootSingle
	// bootExpect: -bootstrap-expect with -join, or -disco-mode dns or
	// dns-srv; the expected nodes form the cluster together.
	bootExpect
	// bootJoin: -join; the node joins an existing cluster.
	bootJoin
)

// bootMode returns how this node starts, from its state and configuration.
func (n *node) bootMode() bootMode {
	switch {
	case n.hasState:
		return bootRestart
	case n.kvDisco != nil:
		return bootKV
	case n.provider == nil:
		return bootSingle
	case n.boot != nil:
		return bootExpect
	default:
		return bootJoin
	}
}

// newDiscovery finds whether the node has state and where its join or
// bootstrap targets come from, and starts key-value discovery.
func (n *node) newDiscovery() error {
	hasState, err := n.store.HasState()
	if err != nil {
		return err
	}
	n.hasState = hasState
	n.self = cluster.Self{ID: n.cfg.NodeID, Addr: n.cfg.RaftAdvAddr, Voter: !n.cfg.RaftNonVoter, ClusterID: n.store.ClusterID}
	n.httpClient = &http.Client{Timeout: joinHTTPTimeout}
	if tr := n.sec.httpTransport(); tr != nil {
		n.httpClient.Transport = tr
	}
	if n.provider, n.discoName, err = addressProvider(n.cfg); err != nil {
		return err
	}
	if !n.hasState && n.provider != nil && (n.cfg.BootstrapExpect > 0 || n.cfg.DiscoMode != "") {
		n.boot = cluster.NewBootstrapper(cluster.BootConfig{Expect: n.cfg.BootstrapExpect, Timeout: n.cfg.BootstrapExpectTimeout,
			Self: n.self}, n.provider, n.store, n.client, n.httpClient, n.logger)
		n.clusterSvc.SetNotifyState(n.boot.NotifyState)
		n.http.AddStatus("bootstrap", n.boot.Stats)
	}
	if disco.IsKV(n.cfg.DiscoMode) {
		return n.startKVDisco()
	}
	if n.cfg.DiscoMode != "" {
		n.http.AddStatus("disco", dnsDiscoStatus(n.cfg, n.discoName, n.boot))
	}
	return nil
}

// startKVDisco connects the key-value store of -disco-mode consul-kv or
// etcd-kv and starts reporting to it.
func (n *node) startKVDisco() error {
	kv, err := newKV(n.cfg)
	if err != nil {
		return err
	}
	self := n.self
	join := func(ctx context.Context, addr string) error {
		return n.client.Join(ctx, addr, self.ID, self.Addr, self.Voter, self.ClusterID())
	}
	d := disco.NewService(disco.Config{Mode: n.cfg.DiscoMode, Key: n.cfg.DiscoKey, Voter: self.Voter, APIURL: n.apiURL,
		Timeout: n.cfg.BootstrapExpectTimeout}, kv, n.store, join, n.logger)
	n.http.AddStatus("disco", kvDiscoStatus(d))
	d.Start()
	n.kvDisco = d
	return nil
}

// start gets the node into its cluster, as its boot mode says. Stopped by
// ctx while still forming or joining, it returns nil: the shutdown steps
// may have a cluster to leave already. Goroutines it leaves running are
// stopped by Close.
func (n *node) start(ctx context.Context) error {
	if n.provider != nil || n.kvDisco != nil {
		// Peers dial the advertised address; a name that does not resolve
		// yet (a Kubernetes pod before its DNS record exists) is waited for.
		if err := waitResolvable(ctx, n.cfg.RaftAdvAddr, n.cfg.BootstrapExpectTimeout, n.logger); err != nil {
			return err
		}
	}
	ctx, n.cancel = context.WithCancel(ctx)
	switch n.bootMode() {
	case bootRestart:
		n.restart(ctx)
	case bootKV:
		n.goRun(ctx, n.kvDisco.Publish)
		if err := n.kvDisco.Register(ctx); err != nil && ctx.Err() == nil {
			return err
		}
	case bootSingle:
		return n.bootstrapSelf()
	case bootExpect:
		if err := n.boot.Run(ctx); err != nil && ctx.Err() == nil {
			return err
		}
	case bootJoin:
		return n.join(ctx)
	}
	return nil
}

// goRun runs f(ctx) on a goroutine Close waits for.
func (n *node) goRun(ctx context.Context, f func(context.Context)) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f(ctx)
	}()
}

// joiner joins the cluster at -join or the discovered addresses.
func (n *node) joiner() *cluster.Joiner {
	return &cluster.Joiner{Client: n.client, HTTP: n.httpClient, Self: n.self,
		Attempts: n.cfg.JoinAttempts, Interval: n.cfg.JoinInterval, Logger: n.logger}
}

// restart brings a node with state back into its cluster.
func (n *node) restart(ctx context.Context) {
	n.logger.Info("existing state found: restarting into the cluster", "dir", n.dir, "cluster-id", n.store.ClusterID())
	// If every member came back at a new address, no leader can be
	// elected from the old configuration: find them through discovery
	// (the -join list, DNS, or the KV store's member list) while there
	// is no leader.
	var members cluster.AddressProvider
	if n.provider != nil {
		members = n.provider
	} else if n.kvDisco != nil {
		members = n.kvDisco
	}
	if members != nil {
		finder := &cluster.PeerFinder{Book: n.store, Client: n.client, HTTP: n.httpClient, Addresses: members,
			Self: n.cfg.NodeID, Interval: n.cfg.RaftElection, Logger: n.logger}
		n.goRun(ctx, finder.Run)
	}
	if n.kvDisco != nil {
		// As with DNS below: tell the leader this node's address, in
		// case it changed or the node was removed while away.
		n.goRun(ctx, n.kvDisco.Rejoin)
		n.goRun(ctx, n.kvDisco.Publish)
	}
	if n.provider != nil {
		// Harmless if nothing changed; updates the leader's entry if this
		// node restarted at a new address.
		n.goRun(ctx, n.rejoin)
	}
}

// rejoin joins the cluster again at restart, through -join or DNS.
func (n *node) rejoin(ctx context.Context) {
	targets, err := n.provider.Lookup(ctx)
	if err == nil {
		_, err = n.joiner().Join(ctx, targets)
	}
	switch {
	case err == nil || ctx.Err() != nil:
	case errors.Is(err, command.ErrClusterMismatch):
		n.logger.Error("this node's data belongs to a different cluster than the one at -join; it was not joined. "+
			"Start it with an empty data directory to join that cluster", "error", err)
	default:
		n.logger.Info("re-join on restart did not complete (fine if the cluster already has this node's address)", "error", err)
	}
}

// bootstrapSelf forms a single-node cluster.
func (n *node) bootstrapSelf() error {
	if n.cfg.RaftNonVoter {
		return errors.New("a read replica (-raft-non-voter) cannot form a cluster on its own: give it -join with the address of a cluster node")
	}
	n.logger.Info("no existing state and no -join: bootstrapping a single-node cluster", "node-id", n.cfg.NodeID)
	return n.store.BootstrapSelf()
}

// join joins the cluster at -join.
func (n *node) join(ctx context.Context) error {
	if _, err := n.joiner().Join(ctx, n.cfg.JoinAddrs); err != nil && ctx.Err() == nil {
		if errors.Is(err, cluster.ErrJoinSelf) {
			return fmt.Errorf("-join: %w (to start a new cluster, leave out -join)", err)
		}
		return err
	}
	return nil
}

// run starts the node and serves until ctx ends or the node is removed
// from the cluster, then leaves the cluster if -raft-cluster-remove-shutdown
// says so. Close stops the node.
func (n *node) run(ctx context.Context) error {
	if err := n.start(ctx); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-n.store.Removed():
	}
	n.logger.Info("shutting down")
	if n.cfg.RaftClusterRemoveShut && n.store.IsMember(n.cfg.NodeID) {
		removeSelf(n.store, n.client, n.cfg.NodeID, n.logger)
	}
	return nil
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
		time.Sleep(removeSelfInterval)
	}
}
