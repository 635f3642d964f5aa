package disco

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/rqlited/rqlited/command"
)

// ErrBootTimeout is command.ErrBootTimeout, returned by Register when no
// cluster was formed or joined before the deadline.
var ErrBootTimeout = command.ErrBootTimeout

// Record is the value of the leader key. The first three fields are
// rqlite's, so rqlite tooling reading the key keeps working; ClusterID and
// Term are ours.
type Record struct {
	ID        string `json:"id"`
	APIAddr   string `json:"api_addr"`
	Addr      string `json:"addr"`
	ClusterID string `json:"cluster_id,omitempty"`
	Term      uint64 `json:"term,omitempty"`
}

// Entry is the leader key as read from the store.
type Entry struct {
	// Record is nil when the key does not exist.
	Record *Record
	// Version is the store's modification index of the key (Consul
	// ModifyIndex, etcd ModRevision), for compare-and-set and watches.
	Version uint64
	// Held is true while a live session (Consul) or lease (etcd) holds the
	// key. A key that is not held belongs to a cluster that is gone.
	Held bool
}

// KV is a leader-key store: Consul or etcd. Writes bind the key to the
// client's own session or lease, so the key disappears (or is released)
// when this process stops renewing it.
type KV interface {
	// Get reads the key.
	Get(ctx context.Context) (Entry, error)
	// Create writes the key only if it does not exist.
	Create(ctx context.Context, r Record) (bool, error)
	// Replace writes the key only if its version is still version.
	Replace(ctx context.Context, r Record, version uint64) (bool, error)
	// Watch returns when the key's version moves past version, or ctx ends.
	Watch(ctx context.Context, version uint64) error
	// PutMember records a node's current address under the members
	// prefix next to the leader key (one entry per node ID, no lease).
	PutMember(ctx context.Context, r Record) error
	// Members lists the member entries.
	Members(ctx context.Context) ([]Record, error)
	// Close releases the session or lease and the connection.
	Close() error
}

// Node is what the service needs from the store.
type Node interface {
	ID() string
	Addr() string
	IsLeader() bool
	// Term is the current Raft term.
	Term() uint64
	ClusterID() string
	// Leader returns the leader's ID and Raft address, empty if unknown.
	Leader() (id, addr string)
	// BootstrapSelf forms a single-node cluster of this node.
	BootstrapSelf() error
}

// Config configures a Service.
type Config struct {
	Mode string
	Key  string
	// Voter is false for read replicas, which never claim the key.
	Voter bool
	// APIURL is this node's HTTP API URL, written into the key.
	APIURL string
	// Timeout bounds Register (-bootstrap-expect-timeout).
	Timeout time.Duration
	// ReportInterval is how often the leader checks the key.
	ReportInterval time.Duration
}

// Service registers this node through a KV store: at boot it joins the
// leader named in the key, or claims the key and forms the cluster; while
// the node leads it keeps the key pointing at itself.
type Service struct {
	cfg    Config
	kv     KV
	node   Node
	join   func(ctx context.Context, addr string) error
	logger *slog.Logger

	mu          sync.Mutex
	phase       string
	lastErr     string
	lastErrLog  time.Time
	lastContact time.Time
	seen        *Record
	seenAt      time.Time
	reports     uint64

	done chan struct{}
	wg   sync.WaitGroup
}

// NewService returns a Service. join asks the cluster at a Raft address
// to add this node.
func NewService(cfg Config, kv KV, node Node, join func(ctx context.Context, addr string) error, logger *slog.Logger) *Service {
	if cfg.ReportInterval <= 0 {
		cfg.ReportInterval = 2 * time.Second
	}
	return &Service{cfg: cfg, kv: kv, node: node, join: join, logger: logger.With("component", "disco", "mode", cfg.Mode),
		phase: "starting", done: make(chan struct{})}
}

// setPhase records the phase and error under s.mu and logs after releasing
// it: a log write can block (a stderr pipe nobody drains), and Stats, which
// /status and /readyz call, takes the same lock.
func (s *Service) setPhase(phase string, err error) {
	var warn, info bool
	var msg string
	s.mu.Lock()
	if err != nil {
		msg = err.Error()
		// Log a problem when it changes, and at most every 30 s while it
		// lasts. lastErrLog is set before logging, so a concurrent caller
		// with the same error does not log it again.
		if msg != s.lastErr || time.Since(s.lastErrLog) > 30*time.Second {
			warn = true
			s.lastErrLog = time.Now()
		}
		s.lastErr = msg
	} else {
		info = phase != s.phase
		s.lastErr = ""
	}
	s.phase = phase
	s.mu.Unlock()
	switch {
	case warn:
		s.logger.Warn("discovery: "+phase, "error", msg)
	case info:
		s.logger.Info("discovery: " + phase)
	}
}

func (s *Service) saw(e Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastContact = time.Now()
	if e.Record == nil || s.seen == nil || *e.Record != *s.seen {
		s.seenAt = time.Now()
	}
	s.seen = e.Record
}

// Stats describes discovery for /status.
func (s *Service) Stats() map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string]any{
		"mode": s.cfg.Mode, "key": s.cfg.Key, "phase": s.phase, "last_error": s.lastErr,
		"report_interval": s.cfg.ReportInterval.String(), "leader_key_writes": s.reports,
	}
	if !s.lastContact.IsZero() {
		m["last_contact"] = s.lastContact
	}
	if s.seen != nil {
		m["leader_key"] = map[string]any{"holder": s.seen.ID, "addr": s.seen.Addr, "api_addr": s.seen.APIAddr,
			"cluster_id": s.seen.ClusterID, "term": s.seen.Term, "age": time.Since(s.seenAt).Round(time.Millisecond).String()}
	}
	return m
}

func (s *Service) record() Record {
	return Record{ID: s.node.ID(), APIAddr: s.cfg.APIURL, Addr: s.node.Addr(), ClusterID: s.node.ClusterID(), Term: s.node.Term()}
}

// Register runs until this node belongs to a cluster with a leader, ctx
// ends, or the timeout passes (ErrBootTimeout).
func (s *Service) Register(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	backoff := 50 * time.Millisecond
	pause := func(d time.Duration) error {
		select {
		case <-ctx.Done():
			return s.ctxErr(ctx)
		case <-time.After(d):
			return nil
		}
	}
	for {
		if _, leader := s.node.Leader(); leader != "" {
			s.setPhase("joined", nil)
			return nil
		}
		if ctx.Err() != nil {
			return s.ctxErr(ctx)
		}
		gctx, gcancel := context.WithTimeout(ctx, 2*time.Second)
		e, err := s.kv.Get(gctx)
		gcancel()
		if err != nil {
			s.setPhase("waiting for the key-value store", err)
			if err := pause(backoff); err != nil {
				return err
			}
			backoff = min(backoff*2, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		s.saw(e)
		switch {
		case e.Record != nil && e.Record.ID == s.node.ID():
			// The key names this node: it claimed it, possibly in a write
			// whose answer was lost (a timeout after etcd or Consul had
			// committed it). Bootstrapping again is harmless, and without
			// it the cluster would wait for this node forever.
			s.setPhase("bootstrapping", nil)
			if err := s.node.BootstrapSelf(); err != nil {
				return fmt.Errorf("bootstrap after claiming the leader key: %w", err)
			}
			if err := pause(20 * time.Millisecond); err != nil {
				return err
			}
		case e.Record != nil && e.Held:
			s.setPhase("joining "+e.Record.Addr, nil)
			jctx, jcancel := context.WithTimeout(ctx, 2*time.Second)
			err := s.join(jctx, e.Record.Addr)
			jcancel()
			if err == nil {
				s.setPhase("joined", nil)
				return nil
			}
			s.setPhase("joining "+e.Record.Addr, err)
			s.watch(ctx, e.Version, time.Second)
		case s.cfg.Voter:
			if e.Record != nil {
				// A key no session or lease holds: its cluster may be gone.
				// Check before taking it over.
				jctx, jcancel := context.WithTimeout(ctx, time.Second)
				err := s.join(jctx, e.Record.Addr)
				jcancel()
				if err == nil {
					s.setPhase("joined", nil)
					return nil
				}
				s.logger.Info("leader key is stale (not held and its node does not answer): claiming it", "holder", e.Record.ID, "addr", e.Record.Addr)
			}
			s.setPhase("claiming", nil)
			var won bool
			cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
			if e.Record == nil {
				won, err = s.kv.Create(cctx, s.record())
			} else {
				won, err = s.kv.Replace(cctx, s.record(), e.Version)
			}
			ccancel()
			if err != nil {
				s.setPhase("claiming", err)
				continue
			}
			if won {
				s.setPhase("bootstrapping", nil)
				if err := s.node.BootstrapSelf(); err != nil {
					return fmt.Errorf("bootstrap after claiming the leader key: %w", err)
				}
				s.mu.Lock()
				s.reports++
				s.mu.Unlock()
			}
		default:
			s.setPhase("waiting for a leader key (read replicas never claim it)", nil)
			s.watch(ctx, e.Version, time.Second)
		}
	}
}

// Rejoin is for a node that restarts with state: it sends a join to the
// leader the key names, so that the leader learns this node's current
// address, or adds it back if it was removed while away (a join of a
// member at its known address is a no-op). It retries until the join
// succeeds, the key names this node, or ctx ends or the timeout passes;
// failures are logged, never fatal: the node's Raft state is enough to
// rejoin when nothing changed.
func (s *Service) Rejoin(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	backoff := 100 * time.Millisecond
	var lastErr error
	for ctx.Err() == nil {
		gctx, gcancel := context.WithTimeout(ctx, 2*time.Second)
		e, err := s.kv.Get(gctx)
		gcancel()
		switch {
		case err != nil:
			lastErr = err
		case e.Record == nil || e.Record.ID == s.node.ID():
			// No key yet, or this node is the leader it names: nothing to
			// tell anyone. A key appears once a leader reports.
			if e.Record != nil {
				return
			}
		default:
			s.saw(e)
			jctx, jcancel := context.WithTimeout(ctx, 2*time.Second)
			lastErr = s.join(jctx, e.Record.Addr)
			jcancel()
			if lastErr == nil {
				s.logger.Info("restarted with state: the leader has this node's address", "leader", e.Record.Addr)
				return
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
	if lastErr != nil && !errors.Is(ctx.Err(), context.Canceled) {
		s.logger.Info("re-join through the leader key did not complete (fine if the cluster already has this node's address)", "error", lastErr)
	}
}

// Publish records this node's current address in the store's member list,
// retrying until it succeeds or ctx ends. The list is how the other nodes
// find this one if every node of the cluster comes back at a new address
// (the leader key only names the old leader's).
func (s *Service) Publish(ctx context.Context) {
	backoff := 200 * time.Millisecond
	logged := false
	for ctx.Err() == nil {
		r := s.record()
		r.Term = 0
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := s.kv.PutMember(pctx, r)
		cancel()
		if err == nil {
			return
		}
		if !logged && ctx.Err() == nil {
			s.logger.Warn("cannot record this node's address in the store's member list; retrying "+
				"(the cluster works without it, but could not find its members again if all of them came back at new addresses)", "error", err)
			logged = true
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// Lookup returns the addresses in the store's member list. It satisfies
// cluster.AddressProvider.
func (s *Service) Lookup(ctx context.Context) ([]string, error) {
	members, err := s.kv.Members(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(members))
	for _, m := range members {
		out = append(out, m.Addr)
	}
	return out, nil
}

func (s *Service) ctxErr(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		s.mu.Lock()
		last := s.lastErr
		s.mu.Unlock()
		return command.BootTimeout(s.cfg.Timeout, last)
	}
	return ctx.Err()
}

// watch waits for the key to change, at most d.
func (s *Service) watch(ctx context.Context, version uint64, d time.Duration) {
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	s.kv.Watch(wctx, version)
}

// Start runs the reporting loop: while this node leads, the key names it,
// with the current cluster ID and term.
func (s *Service) Start() {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		var last time.Time
		wasLeader := false
		for {
			select {
			case <-s.done:
				return
			case <-t.C:
			}
			leader := s.node.IsLeader()
			if !leader || s.node.ClusterID() == "" {
				wasLeader = leader && wasLeader
				continue
			}
			if wasLeader && time.Since(last) < s.cfg.ReportInterval {
				continue
			}
			if err := s.report(); err != nil {
				s.setPhase("reporting leadership", err)
				continue // retried on the next tick
			}
			wasLeader, last = true, time.Now()
		}
	}()
}

// report makes the key name this node, unless a newer leader holds it.
func (s *Service) report() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e, err := s.kv.Get(ctx)
	if err != nil {
		return err
	}
	s.saw(e)
	rec := s.record()
	if e.Record != nil && e.Held && *e.Record == rec {
		s.setPhase("leader", nil)
		return nil
	}
	if e.Record != nil && e.Held && e.Record.ClusterID != "" && e.Record.ClusterID != rec.ClusterID {
		return fmt.Errorf("the leader key %s is held by another live cluster (%s, node %s): give each cluster its own -disco-key",
			s.cfg.Key, e.Record.ClusterID, e.Record.ID)
	}
	if e.Record != nil && e.Held && e.Record.ID != rec.ID && e.Record.Term >= rec.Term {
		// Another node leads in this term or a later one: this node was
		// deposed. (Raft has one leader per term: a deposed leader that
		// has already learnt the new term has the same term as the key.)
		s.setPhase("deposed", nil)
		return nil
	}
	var ok bool
	if e.Record == nil {
		ok, err = s.kv.Create(ctx, rec)
	} else {
		ok, err = s.kv.Replace(ctx, rec, e.Version)
	}
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("leader key changed while it was being written; will retry")
	}
	s.mu.Lock()
	s.reports++
	s.mu.Unlock()
	s.setPhase("leader", nil)
	s.logger.Info("leader key written", "key", s.cfg.Key, "term", rec.Term)
	return nil
}

// Close stops reporting and releases the KV session or lease.
func (s *Service) Close() error {
	select {
	case <-s.done:
		return nil
	default:
	}
	close(s.done)
	s.wg.Wait()
	return s.kv.Close()
}
