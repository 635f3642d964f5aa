package disco

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"
)

// memKV is an in-memory KV for unit tests of the service's decisions; the
// system tests run the same code against real etcd and Consul.
type memKV struct {
	mu      sync.Mutex
	rec     *Record
	version uint64
	held    bool
	writes  int
	members map[string]Record
}

func (m *memKV) PutMember(_ context.Context, r Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.members == nil {
		m.members = map[string]Record{}
	}
	m.members[r.ID] = r
	return nil
}

func (m *memKV) Members(context.Context) ([]Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Record
	for _, r := range m.members {
		out = append(out, r)
	}
	return out, nil
}

var _ KV = (*memKV)(nil)

func (m *memKV) Get(context.Context) (Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var r *Record
	if m.rec != nil {
		c := *m.rec
		r = &c
	}
	return Entry{Record: r, Version: m.version, Held: m.held}, nil
}

func (m *memKV) put(r Record) {
	m.rec, m.held = &r, true
	m.version++
	m.writes++
}

func (m *memKV) Create(_ context.Context, r Record) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rec != nil {
		return false, nil
	}
	m.put(r)
	return true, nil
}

func (m *memKV) Replace(_ context.Context, r Record, v uint64) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v != m.version {
		return false, nil
	}
	m.put(r)
	return true, nil
}

func (m *memKV) Watch(ctx context.Context, _ uint64) error { <-ctx.Done(); return ctx.Err() }
func (m *memKV) Close() error                              { return nil }

type memNode struct {
	id, addr, cluster string
	term              uint64
	leader            bool
	bootstraps        int
}

func (n *memNode) ID() string        { return n.id }
func (n *memNode) Addr() string      { return n.addr }
func (n *memNode) IsLeader() bool    { return n.leader }
func (n *memNode) Term() uint64      { return n.term }
func (n *memNode) ClusterID() string { return n.cluster }
func (n *memNode) Leader() (string, string) {
	if n.leader {
		return n.id, n.addr
	}
	return "", ""
}
func (n *memNode) BootstrapSelf() error { n.bootstraps++; n.leader = true; return nil }

func newTestService(kv KV, n Node) *Service {
	return NewService(Config{Mode: ModeEtcdKV, Key: "k", Voter: true, Timeout: time.Second}, kv, n,
		func(context.Context, string) error { return nil }, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func TestDeposedLeaderDoesNotOverwrite(t *testing.T) {
	kv := &memKV{}
	kv.put(Record{ID: "new", Addr: "b:4002", ClusterID: "c1", Term: 7})
	old := &memNode{id: "old", addr: "a:4002", cluster: "c1", term: 5, leader: true}
	s := newTestService(kv, old)
	if err := s.report(); err != nil {
		t.Fatal(err)
	}
	if kv.rec.ID != "new" || kv.writes != 1 {
		t.Fatalf("deposed leader overwrote the key: %+v", kv.rec)
	}
	if s.Stats()["phase"] != "deposed" {
		t.Fatalf("phase: %v", s.Stats()["phase"])
	}
	// A newer term takes the key over.
	newer := &memNode{id: "newest", addr: "c:4002", cluster: "c1", term: 9, leader: true}
	if err := newTestService(kv, newer).report(); err != nil {
		t.Fatal(err)
	}
	if kv.rec.ID != "newest" || kv.rec.Term != 9 {
		t.Fatalf("newer leader did not take the key: %+v", kv.rec)
	}
	// Another live cluster's key is never overwritten.
	other := &memNode{id: "x", addr: "d:4002", cluster: "c2", term: 99, leader: true}
	if err := newTestService(kv, other).report(); err == nil || kv.rec.ClusterID != "c1" {
		t.Fatalf("another cluster's key overwritten: %+v %v", kv.rec, err)
	}
	// A key nothing holds (its cluster died) is taken over.
	kv.held = false
	if err := newTestService(kv, other).report(); err != nil || kv.rec.ClusterID != "c2" {
		t.Fatalf("stale key not taken over: %+v %v", kv.rec, err)
	}
}

// A claim whose answer was lost (the store committed it, the client timed
// out) leaves a key that names this node; Register must still bootstrap.
func TestRegisterAfterLostClaimAnswer(t *testing.T) {
	kv := &memKV{}
	kv.put(Record{ID: "me", Addr: "a:4002"})
	n := &memNode{id: "me", addr: "a:4002"}
	if err := newTestService(kv, n).Register(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n.bootstraps == 0 {
		t.Fatal("the node named by the key never bootstrapped")
	}
}

// blockingHandler is a slog.Handler whose Handle blocks until release is
// closed, like a write to a stderr pipe that nobody drains. It reports each
// call on entered.
type blockingHandler struct {
	entered chan<- string
	release <-chan struct{}
}

func (h blockingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h blockingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h blockingHandler) WithGroup(string) slog.Handler            { return h }
func (h blockingHandler) Handle(_ context.Context, r slog.Record) error {
	h.entered <- r.Message
	<-h.release
	return nil
}

// A log write that blocks must not block Stats (/status, /readyz): the
// service must not hold its lock while logging.
func TestStatsNotBlockedByLogWrite(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{{"warning", errors.New("etcd unreachable")}, {"info", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			entered := make(chan string, 1)
			release := make(chan struct{})
			s := NewService(Config{Mode: ModeEtcdKV, Key: "k", Voter: true, Timeout: time.Second}, &memKV{},
				&memNode{id: "n1"}, func(context.Context, string) error { return nil },
				slog.New(blockingHandler{entered: entered, release: release}))
			logged := make(chan struct{})
			go func() {
				defer close(logged)
				s.setPhase("reporting leadership", tc.err)
			}()
			// Unblock the log write however the test ends, so no goroutine
			// is left behind.
			defer func() { close(release); <-logged }()
			select {
			case msg := <-entered:
				if msg != "discovery: reporting leadership" {
					t.Fatalf("logged %q", msg)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("setPhase did not log the phase change")
			}
			stats := make(chan map[string]any, 1)
			go func() { stats <- s.Stats() }()
			select {
			case m := <-stats:
				if m["phase"] != "reporting leadership" {
					t.Fatalf("phase: %v", m["phase"])
				}
				want := ""
				if tc.err != nil {
					want = tc.err.Error()
				}
				if m["last_error"] != want {
					t.Fatalf("last_error: %v, want %q", m["last_error"], want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Stats blocked while a log write was blocked: the lock is held across logging")
			}
		})
	}
}

// The warning for a lasting error is logged once per interval, not on each
// retry.
func TestSetPhaseWarningRateLimited(t *testing.T) {
	entered := make(chan string, 10)
	release := make(chan struct{})
	close(release)
	s := NewService(Config{Mode: ModeEtcdKV, Key: "k"}, &memKV{}, &memNode{id: "n1"},
		func(context.Context, string) error { return nil }, slog.New(blockingHandler{entered: entered, release: release}))
	err := errors.New("etcd unreachable")
	s.setPhase("reporting leadership", err)
	s.setPhase("reporting leadership", err)
	s.setPhase("reporting leadership", errors.New("other"))
	if n := len(entered); n != 2 {
		t.Fatalf("%d warnings logged, want 2 (one per distinct error)", n)
	}
	s.mu.Lock()
	s.lastErrLog = time.Now().Add(-31 * time.Second)
	s.mu.Unlock()
	s.setPhase("reporting leadership", errors.New("other"))
	if n := len(entered); n != 3 {
		t.Fatalf("%d warnings logged, want 3 (repeated after the interval)", n)
	}
}

// Each node records its own current address in the member list, where a
// node that finds no leader looks for the others (Lookup).
func TestPublishAndLookupMembers(t *testing.T) {
	kv := &memKV{}
	for _, n := range []*memNode{{id: "n1", addr: "10.0.0.1:4002"}, {id: "n2", addr: "10.0.0.2:4002"}} {
		newTestService(kv, n).Publish(context.Background())
	}
	// n1 comes back at a new address: its entry is replaced, not added.
	s := newTestService(kv, &memNode{id: "n1", addr: "10.0.9.1:4002"})
	s.Publish(context.Background())
	got, err := s.Lookup(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := []string{"10.0.0.2:4002", "10.0.9.1:4002"}; !slices.Equal(got, want) {
		t.Fatalf("Lookup = %v, want %v", got, want)
	}
}
