package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rqlited/rqlited/command"
)

// pipeClient returns a Client whose every dial reaches, over an in-memory
// pipe, the service answering for the Manager that services gives for the
// dialled address (or fails to dial if it gives nil).
func pipeClient(t *testing.T, auth Authorizer, services func(addr string) Manager) *Client {
	t.Helper()
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // after the client's Close, which ends every pipe
	d := &fakeDialer{DialFn: func(addr string, _ time.Duration) (net.Conn, error) {
		mgr := services(addr)
		if mgr == nil {
			return nil, fmt.Errorf("dial %s: connection refused", addr)
		}
		svc := NewService(nil, mgr, ServiceConfig{Auth: auth}, quietLogger())
		a, b := net.Pipe()
		wg.Add(1)
		go func() {
			defer wg.Done()
			svc.serve(b)
		}()
		return a, nil
	}}
	cl := NewClient(d, 2*time.Second)
	t.Cleanup(func() { cl.Close() })
	return cl
}

// clusterCalls are the calls the service passes on to its Manager, each
// with the Manager call it must make.
var clusterCalls = []struct {
	name string
	run  func(context.Context, *Client) error
	want string
}{
	{"join", func(ctx context.Context, cl *Client) error {
		return cl.Join(ctx, "leader:1", "n2", "h2:1", false, "cid")
	}, "join n2 h2:1 false cid"},
	{"remove", func(ctx context.Context, cl *Client) error { return cl.Remove(ctx, "leader:1", "n3") }, "remove n3"},
	{"stepdown", func(ctx context.Context, cl *Client) error { return cl.Stepdown(ctx, "leader:1", "n4") }, "stepdown n4"},
	{"read-index", func(ctx context.Context, cl *Client) error {
		idx, err := cl.ReadIndex(ctx, "leader:1", "n5", 9)
		if err == nil && idx != 7 {
			return fmt.Errorf("read index %d, want the Manager's 7", idx)
		}
		return err
	}, "read-index n5 9"},
}

// recordingManager is a fakeManager that records each call into got and
// answers it with err.
func recordingManager(mu *sync.Mutex, got *[]string, err error) *fakeManager {
	rec := func(s string) error {
		mu.Lock()
		defer mu.Unlock()
		*got = append(*got, s)
		return err
	}
	return &fakeManager{
		IDFn:        func() string { return "L" },
		AddrFn:      func() string { return "leader:1" },
		ClusterIDFn: func() string { return "cid" },
		JoinFn: func(id, addr string, voter bool, cid string) error {
			return rec(fmt.Sprintf("join %s %s %t %s", id, addr, voter, cid))
		},
		RemoveFn:   func(id string) error { return rec("remove " + id) },
		StepdownFn: func(id string) error { return rec("stepdown " + id) },
		ReadIndexFn: func(_ context.Context, id string, term uint64) (uint64, error) {
			return 7, rec(fmt.Sprintf("read-index %s %d", id, term))
		},
	}
}

// TestServiceAnswersManagerFailures: whatever the Manager answers to a
// join, remove, stepdown or read-index, the caller gets an error that
// errors.Is classifies as the Manager's (not leader, cluster mismatch,
// node not found) or that carries its text, and the Manager was asked
// exactly once with the caller's arguments.
func TestServiceAnswersManagerFailures(t *testing.T) {
	boom := errors.New("raft: log store failed")
	failures := []struct {
		name     string
		err      error
		wantIs   error  // nil: no sentinel may match
		wantText string // in the caller's error
	}{
		{"ok", nil, nil, ""},
		{"not leader", fmt.Errorf("store: %w", command.ErrNotLeader), command.ErrNotLeader, ""},
		{"cluster mismatch", fmt.Errorf("%w: node is in cluster xyz", command.ErrClusterMismatch), command.ErrClusterMismatch, "cluster xyz"},
		{"not found", fmt.Errorf("%w: n9", command.ErrNodeNotFound), command.ErrNodeNotFound, "n9"},
		{"other", boom, nil, boom.Error()},
	}
	sentinels := []error{command.ErrNotLeader, command.ErrClusterMismatch, command.ErrNodeNotFound, ErrUnauthorized}
	for _, c := range clusterCalls {
		for _, f := range failures {
			t.Run(c.name+"/"+f.name, func(t *testing.T) {
				var mu sync.Mutex
				var got []string
				mgr := recordingManager(&mu, &got, f.err)
				cl := pipeClient(t, nil, func(string) Manager { return mgr })
				err := c.run(context.Background(), cl)
				mu.Lock()
				calls := slices.Clone(got)
				mu.Unlock()
				if !slices.Equal(calls, []string{c.want}) {
					t.Fatalf("Manager calls %q, want [%q]", calls, c.want)
				}
				switch {
				case f.err == nil:
					if err != nil {
						t.Fatalf("got %v, want success", err)
					}
				case err == nil:
					t.Fatalf("the Manager's %v was lost", f.err)
				case !strings.Contains(err.Error(), f.wantText):
					t.Fatalf("got %q, want it to say %q", err, f.wantText)
				}
				for _, s := range sentinels {
					if errors.Is(err, s) != (s == f.wantIs && f.wantIs != nil) {
						t.Fatalf("got %v: errors.Is(%v) = %t", err, s, errors.Is(err, s))
					}
				}
			})
		}
	}
}

// TestServiceRefusesBeforeManager: a call whose credentials lack the
// permission never reaches the Manager, and the Authorizer is asked for
// the permissions that call needs, in order.
func TestServiceRefusesBeforeManager(t *testing.T) {
	wantPerms := map[string][]string{
		"join":       {"join", "join-read-only", "join-read-replica"}, // a read replica's join
		"remove":     {"remove"},
		"stepdown":   {"leader-ops"},
		"read-index": {"join", "query"},
	}
	for _, c := range clusterCalls {
		t.Run(c.name, func(t *testing.T) {
			var mu sync.Mutex
			var got, perms []string
			mgr := recordingManager(&mu, &got, nil)
			auth := &fakeAuthorizer{AllowedFn: func(user, pass string, ok bool, perm string) bool {
				mu.Lock()
				defer mu.Unlock()
				if user != "u" || pass != "p" || !ok {
					t.Errorf("Authorizer got %q %q %t, want the client's credentials", user, pass, ok)
				}
				perms = append(perms, perm)
				return false
			}}
			cl := pipeClient(t, auth, func(string) Manager { return mgr })
			cl.SetCredentials(func() (string, string, bool) { return "u", "p", true })
			err := c.run(context.Background(), cl)
			if !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("got %v, want ErrUnauthorized", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != 0 {
				t.Fatalf("a refused call reached the Manager: %q", got)
			}
			if !slices.Equal(perms, wantPerms[c.name]) {
				t.Fatalf("Authorizer asked for %q, want %q", perms, wantPerms[c.name])
			}
		})
	}
}

// TestBootstrapperRound: what one round does with what the Former and the
// AddressProvider say, when no join target accepts.
func TestBootstrapperRound(t *testing.T) {
	lookupErr := errors.New("dns: no such host")
	cases := []struct {
		name      string
		expect    int
		voter     bool
		lookup    func(context.Context) ([]string, error)
		wantPhase string
		wantErr   string
	}{
		{"lookup fails", 1, true, func(context.Context) ([]string, error) { return nil, lookupErr },
			"resolving", lookupErr.Error()},
		{"too few addresses", 3, true, func(context.Context) ([]string, error) { return []string{"", " "}, nil },
			"waiting: 0 of 3 addresses known", ""},
		{"read replica", 1, false, func(context.Context) ([]string, error) { return nil, nil },
			"joining", ""},
		{"unreachable set", 2, true, func(context.Context) ([]string, error) { return []string{"b:1", "a:1", "a:1"}, nil },
			"waiting for the bootstrap set", "has not answered"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			former := &fakeFormer{BootstrapFn: func([]command.Server) error {
				t.Error("Bootstrap called")
				return nil
			}}
			var dialled []string
			var mu sync.Mutex
			client := NewClient(&fakeDialer{DialFn: func(addr string, _ time.Duration) (net.Conn, error) {
				mu.Lock()
				dialled = append(dialled, addr)
				mu.Unlock()
				return nil, errors.New("connection refused")
			}}, time.Second)
			defer client.Close()
			b := NewBootstrapper(BootConfig{Expect: c.expect, Timeout: time.Minute, Self: Self{ID: "self", Addr: "self:1", Voter: c.voter}},
				&fakeAddressProvider{LookupFn: c.lookup}, former, client, nil, quietLogger())
			if err := b.round(context.Background()); err != nil {
				t.Fatalf("round: %v", err)
			}
			st := b.Stats()
			if st["phase"] != c.wantPhase || !strings.Contains(st["last_error"].(string), c.wantErr) {
				t.Fatalf("phase %q, last error %q; want %q, %q", st["phase"], st["last_error"], c.wantPhase, c.wantErr)
			}
			targets, _ := c.lookup(context.Background())
			if seen := st["last_addresses"].([]string); !slices.Equal(seen, dedup(targets)) {
				t.Fatalf("last addresses %q, want %q", seen, dedup(targets))
			}
			// Each distinct target is tried for a join; a voter with
			// enough of them then notifies each member of the set.
			mu.Lock()
			defer mu.Unlock()
			want := len(dedup(targets))
			if c.name == "unreachable set" {
				want += c.expect
			}
			if len(dialled) != want {
				t.Fatalf("dialled %q, want %d dials", dialled, want)
			}
		})
	}
}

// TestBootstrapperRunStops: Run returns at once when the Former knows a
// leader, without looking up addresses, and with ErrBootTimeout carrying
// the last problem when nothing works before the timeout.
func TestBootstrapperRunStops(t *testing.T) {
	client := NewClient(&fakeDialer{}, time.Second)
	defer client.Close()
	lookups := 0
	b := NewBootstrapper(BootConfig{Expect: 1, Timeout: time.Minute},
		&fakeAddressProvider{LookupFn: func(context.Context) ([]string, error) { lookups++; return nil, nil }},
		&fakeFormer{LeaderFn: func() (string, string) { return "L", "l:1" }}, client, nil, quietLogger())
	if err := b.Run(context.Background()); err != nil || lookups != 0 || b.Stats()["phase"] != "joined" {
		t.Fatalf("with a leader: %v, %d lookups, phase %v", err, lookups, b.Stats()["phase"])
	}
	b = NewBootstrapper(BootConfig{Expect: 1, Timeout: 200 * time.Millisecond, Interval: 10 * time.Millisecond},
		&fakeAddressProvider{LookupFn: func(context.Context) ([]string, error) { return nil, errors.New("dns down") }},
		&fakeFormer{}, client, nil, quietLogger())
	err := b.Run(context.Background())
	if !errors.Is(err, ErrBootTimeout) || !strings.Contains(err.Error(), "dns down") {
		t.Fatalf("got %v, want ErrBootTimeout naming the last problem", err)
	}
}

// TestPeerFinderRound: a round learns only members of this node's cluster
// other than itself, skips addresses that cannot be dialled, and does
// nothing without a cluster ID or when the lookup fails.
func TestPeerFinderRound(t *testing.T) {
	nodes := map[string]*fakeManager{
		"self:1":  {IDFn: func() string { return "self" }, AddrFn: func() string { return "self:1" }, ClusterIDFn: func() string { return "cid" }},
		"peer:1":  {IDFn: func() string { return "peer" }, AddrFn: func() string { return "peer:9" }, ClusterIDFn: func() string { return "cid" }},
		"other:1": {IDFn: func() string { return "other" }, AddrFn: func() string { return "other:1" }, ClusterIDFn: func() string { return "xyz" }},
	}
	all := []string{"self:1", "peer:1", "other:1", "gone:1"}
	cases := []struct {
		name   string
		cid    string
		lookup func(context.Context) ([]string, error)
		want   []string
	}{
		{"members only", "cid", func(context.Context) ([]string, error) { return all, nil }, []string{"peer peer:9"}},
		{"other cluster", "xyz", func(context.Context) ([]string, error) { return all, nil }, []string{"other other:1"}},
		{"no cluster ID", "", func(context.Context) ([]string, error) {
			t.Error("looked up addresses without a cluster ID")
			return all, nil
		}, nil},
		{"lookup fails", "cid", func(context.Context) ([]string, error) { return nil, errors.New("dns down") }, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl := pipeClient(t, nil, func(addr string) Manager {
				if m, ok := nodes[addr]; ok {
					return m
				}
				return nil
			})
			var learned []string
			book := &fakePeerBook{
				ClusterIDFn: func() string { return c.cid },
				LearnPeerFn: func(id, addr string) bool { learned = append(learned, id+" "+addr); return true },
			}
			p := &PeerFinder{Book: book, Client: cl, Addresses: &fakeAddressProvider{LookupFn: c.lookup}, Self: "self", Logger: quietLogger()}
			p.round(context.Background(), time.Second)
			if !slices.Equal(learned, c.want) {
				t.Fatalf("learned %q, want %q", learned, c.want)
			}
		})
	}
}
