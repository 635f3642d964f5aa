package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rqlited/rqlited/command"
)

// ErrBootTimeout is command.ErrBootTimeout.
var ErrBootTimeout = command.ErrBootTimeout

// AddressProvider returns the current join targets: a static -join list,
// or (in discovery modes) addresses from DNS.
type AddressProvider interface {
	Lookup(ctx context.Context) ([]string, error)
}

// StaticAddresses is an AddressProvider for a fixed list.
type StaticAddresses []string

// Lookup returns the list.
func (s StaticAddresses) Lookup(context.Context) ([]string, error) { return s, nil }

// Former is what the Bootstrapper needs from the store.
type Former interface {
	// Bootstrap forms a new cluster of exactly these servers.
	Bootstrap(servers []command.Server) error
	// Leader returns the leader's ID and Raft address, empty if unknown.
	Leader() (id, addr string)
	// HasState reports whether this node already belongs to a cluster.
	HasState() (bool, error)
}

// BootConfig configures a Bootstrapper.
type BootConfig struct {
	// Expect is -bootstrap-expect: how many voters form the cluster.
	Expect int
	// Timeout is -bootstrap-expect-timeout.
	Timeout time.Duration
	// Interval is the pause between rounds (jittered up to twice as long).
	Interval time.Duration
	Self     Self
}

// Bootstrapper forms a cluster from -bootstrap-expect and a list of
// addresses, or joins the cluster those addresses already belong to.
//
// Each round it first tries to join through every target: joining an
// existing cluster always wins over forming one. A voter then notifies the
// bootstrap set: the Expect smallest targets of the (identical) lists every
// node was given. It forms the cluster only when every member of that set
// answered, none has state or a leader, all report the same Expect and the
// same set, and it is itself one of them. Every member then bootstraps the
// same configuration, so one cluster forms, and any other node can only
// join it: a list longer than Expect can never produce two clusters, and
// mismatched -bootstrap-expect values or lists are refused with a reason.
type Bootstrapper struct {
	cfg      BootConfig
	provider AddressProvider
	store    Former
	client   *Client
	http     *http.Client
	logger   *slog.Logger

	mu      sync.Mutex
	phase   string
	lastErr string
	seen    []string
	set     []string
	formed  bool
}

// NewBootstrapper returns a Bootstrapper; Run does the work.
func NewBootstrapper(cfg BootConfig, p AddressProvider, store Former, client *Client, hc *http.Client, logger *slog.Logger) *Bootstrapper {
	if cfg.Interval <= 0 {
		cfg.Interval = 100 * time.Millisecond
	}
	return &Bootstrapper{cfg: cfg, provider: p, store: store, client: client, http: hc,
		logger: logger.With("component", "bootstrap"), phase: "starting"}
}

// NotifyState reports this node's expect value and bootstrap set to peers;
// install it with Service.SetNotifyState.
func (b *Bootstrapper) NotifyState() (int, []string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cfg.Expect, slices.Clone(b.set), b.formed
}

// Stats describes progress for /status.
func (b *Bootstrapper) Stats() map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	return map[string]any{
		"phase": b.phase, "expect": b.cfg.Expect, "last_error": b.lastErr,
		"last_addresses": b.seen, "bootstrap_set": b.set, "timeout": b.cfg.Timeout.String(),
	}
}

func (b *Bootstrapper) setPhase(phase string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if msg != "" && msg != b.lastErr {
		b.logger.Warn("bootstrap: "+phase, "error", msg)
	} else if phase != b.phase {
		b.logger.Info("bootstrap: " + phase)
	}
	b.phase, b.lastErr = phase, msg
}

// Run works until this node is in a cluster with a known leader, ctx ends,
// or the timeout passes (ErrBootTimeout).
func (b *Bootstrapper) Run(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	for {
		if _, leader := b.store.Leader(); leader != "" {
			b.setPhase("joined", nil)
			return nil
		}
		if err := b.round(ctx); errors.Is(err, errJoined) {
			b.setPhase("joined", nil)
			return nil
		}
		wait := b.cfg.Interval + rand.N(b.cfg.Interval)
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				b.mu.Lock()
				last := b.lastErr
				b.mu.Unlock()
				return command.BootTimeout(b.cfg.Timeout, last)
			}
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// errJoined ends Run: this node joined a cluster.
var errJoined = errors.New("joined")

func (b *Bootstrapper) round(ctx context.Context) error {
	targets, err := b.provider.Lookup(ctx)
	if err != nil {
		b.setPhase("resolving", fmt.Errorf("look up addresses: %w", err))
		return nil
	}
	targets = dedup(targets)
	b.mu.Lock()
	b.seen = targets
	b.mu.Unlock()

	// Joining an existing cluster always wins.
	j := &Joiner{Client: b.client, HTTP: b.http, Self: b.cfg.Self, Attempts: 1, Logger: b.logger}
	for _, t := range targets {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := j.try(rctx, t)
		cancel()
		if err == nil {
			return errJoined
		}
	}
	b.mu.Lock()
	formed := b.formed
	b.mu.Unlock()
	if !b.cfg.Self.Voter || formed {
		b.setPhase("joining", nil)
		return nil
	}
	if len(targets) < b.cfg.Expect {
		b.setPhase(fmt.Sprintf("waiting: %d of %d addresses known", len(targets), b.cfg.Expect), nil)
		return nil
	}
	set := slices.Clone(targets)
	slices.Sort(set)
	set = set[:b.cfg.Expect]
	b.mu.Lock()
	b.set = set
	b.mu.Unlock()

	servers, err := b.notifySet(ctx, set)
	if err != nil {
		b.setPhase("waiting for the bootstrap set", err)
		return nil
	}
	if servers == nil {
		b.setPhase("waiting to be joined: this node is not in the bootstrap set", nil)
		return nil
	}
	b.setPhase("bootstrapping", nil)
	if err := b.store.Bootstrap(servers); err != nil {
		b.setPhase("bootstrapping", err)
		return nil
	}
	b.mu.Lock()
	b.formed = true
	b.mu.Unlock()
	return nil
}

// notifySet notifies every member of set (in parallel) and returns the
// configuration to bootstrap, nil if this node is not a member, or an error
// saying why the cluster cannot be formed yet.
func (b *Bootstrapper) notifySet(ctx context.Context, set []string) ([]command.Server, error) {
	type answer struct {
		target string
		resp   *response
		err    error
	}
	answers := make([]answer, len(set))
	var wg sync.WaitGroup
	for i, t := range set {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			addr, err := ResolveTarget(rctx, b.http, t)
			if err != nil {
				answers[i] = answer{target: t, err: err}
				return
			}
			r, err := b.client.notify(rctx, addr, &request{ID: b.cfg.Self.ID, Addr: b.cfg.Self.Addr, Voter: true,
				Expect: b.cfg.Expect, Set: set})
			answers[i] = answer{target: t, resp: r, err: err}
		}()
	}
	wg.Wait()
	var servers []command.Server
	self := false
	ids := map[string]bool{}
	for _, a := range answers {
		switch {
		case a.err != nil:
			return nil, fmt.Errorf("%s has not answered: %w", a.target, a.err)
		case a.resp.Leader != "" || (a.resp.HasState && !a.resp.Formed):
			return nil, fmt.Errorf("%s already belongs to a cluster: waiting to join it", a.target)
		case a.resp.Expect != 0 && len(a.resp.Set) == 0:
			return nil, fmt.Errorf("%s has not looked up its addresses yet", a.target)
		case a.resp.Expect != b.cfg.Expect:
			return nil, fmt.Errorf("-bootstrap-expect mismatch: %s (node %s) has %d, this node has %d; refusing to bootstrap",
				a.target, a.resp.ID, a.resp.Expect, b.cfg.Expect)
		case !slices.Equal(a.resp.Set, set):
			return nil, fmt.Errorf("join list mismatch: %s (node %s) would form the cluster from [%s], this node from [%s]; give every node the same -join list",
				a.target, a.resp.ID, strings.Join(a.resp.Set, ","), strings.Join(set, ","))
		case ids[a.resp.ID]:
			return nil, fmt.Errorf("node ID %s answers at two addresses of the bootstrap set", a.resp.ID)
		}
		ids[a.resp.ID] = true
		self = self || a.resp.ID == b.cfg.Self.ID
		servers = append(servers, command.Server{ID: a.resp.ID, Addr: a.resp.Addr, Voter: true})
	}
	if !self {
		return nil, nil
	}
	return servers, nil
}

func dedup(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		s = strings.TrimSpace(s)
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
