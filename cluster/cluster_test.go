package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rqlited/rqlited/command"
	"github.com/rqlited/rqlited/mux"
)

// memManager is an in-memory Manager, with members and a leader, for the
// service's tests of calls between nodes (fakeManager is the func-field one).
type memManager struct {
	mu       sync.Mutex
	id, addr string
	leader   string
	members  map[string]string
	state    bool
	// asker is the last read-index call's asking node and term.
	asker string
}

var _ Manager = (*memManager)(nil)

func (f *memManager) ID() string   { return f.id }
func (f *memManager) Addr() string { return f.addr }
func (f *memManager) Leader() (string, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return "", f.leader
}
func (f *memManager) ClusterID() string       { return "cid" }
func (f *memManager) HasState() (bool, error) { return f.state, nil }
func (f *memManager) Join(id, addr string, voter bool, cid string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.leader != f.addr {
		return command.ErrNotLeader
	}
	if cid != "" && cid != "cid" {
		return command.ErrClusterMismatch
	}
	f.members[id] = addr
	return nil
}
func (f *memManager) Remove(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.members[id]; !ok {
		return command.ErrNodeNotFound
	}
	delete(f.members, id)
	return nil
}
func (f *memManager) Stepdown(string) error { return nil }
func (f *memManager) ReadIndex(_ context.Context, id string, term uint64) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.leader != f.addr {
		return 0, command.ErrNotLeader
	}
	f.asker = fmt.Sprintf("%s@%d", id, term)
	return 42, nil
}

type testNode struct {
	mgr *memManager
	svc *Service
	mux *mux.Mux
	cl  *Client
}

func startService(t *testing.T, id string) *testNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := mux.New(ln, logger)
	layer := m.Layer(mux.HeaderCluster)
	m.Serve()
	mgr := &memManager{id: id, addr: ln.Addr().String(), members: map[string]string{}}
	svc := NewService(layer, mgr, ServiceConfig{APIURL: "http://api-" + id, Version: "v9"}, logger)
	svc.Start()
	t.Cleanup(func() { svc.Close(); m.Close() })
	return &testNode{mgr: mgr, svc: svc, mux: m, cl: NewClient(layer, 2*time.Second)}
}

func TestJoinFollowsLeader(t *testing.T) {
	leader, follower := startService(t, "L"), startService(t, "F")
	leader.mgr.leader = leader.mgr.addr
	follower.mgr.leader = leader.mgr.addr
	ctx := context.Background()
	if err := follower.cl.Join(ctx, follower.mgr.addr, "n3", "h3:4002", true, ""); err != nil {
		t.Fatal(err)
	}
	if leader.mgr.members["n3"] != "h3:4002" {
		t.Fatalf("join did not reach the leader: %v", leader.mgr.members)
	}
	if err := follower.cl.Join(ctx, follower.mgr.addr, "n4", "h4:4002", true, "other"); !errors.Is(err, command.ErrClusterMismatch) {
		t.Fatalf("mismatched cluster: %v", err)
	}
	if err := follower.cl.Remove(ctx, follower.mgr.addr, "nope"); !errors.Is(err, command.ErrNodeNotFound) {
		t.Fatalf("remove unknown: %v", err)
	}
	url, ver, err := follower.cl.NodeMeta(ctx, leader.mgr.addr)
	if err != nil || url != "http://api-L" || ver != "v9" {
		t.Fatalf("meta: %q %q %v", url, ver, err)
	}
	// A read index asked of the follower comes from the leader.
	if idx, err := follower.cl.ReadIndex(ctx, follower.mgr.addr, "F", 7); err != nil || idx != 42 {
		t.Fatalf("read index via follower: %d, %v", idx, err)
	}
	leader.mgr.mu.Lock()
	asker := leader.mgr.asker
	leader.mgr.mu.Unlock()
	if asker != "F@7" {
		t.Fatalf("the leader saw the asker as %q, want F@7 (the asking node's ID and term)", asker)
	}
	// No leader anywhere: the error says so instead of looping.
	leader.mgr.leader, follower.mgr.leader = "", ""
	if _, err := follower.cl.ReadIndex(ctx, follower.mgr.addr, "B", 7); !errors.Is(err, command.ErrNotLeader) {
		t.Fatalf("read index with no leader: %v", err)
	}
	if err := follower.cl.Join(ctx, follower.mgr.addr, "n5", "h5:4002", true, ""); !errors.Is(err, command.ErrNotLeader) {
		t.Fatalf("join with no leader: %v", err)
	}
}

func TestNotifyReportsState(t *testing.T) {
	n := startService(t, "A")
	n.svc.SetNotifyState(func() (int, []string, bool) { return 3, []string{"a", "b", "c"}, false })
	r, err := n.cl.notify(context.Background(), n.mgr.addr, &request{ID: "x", Addr: "y", Expect: 3})
	if err != nil || r.ID != "A" || r.Expect != 3 || strings.Join(r.Set, ",") != "a,b,c" || r.HasState {
		t.Fatalf("notify: %+v %v", r, err)
	}
}

func TestFrameLimits(t *testing.T) {
	var b bytes.Buffer
	b.Write([]byte{0xff, 0xff, 0xff, 0xff})
	if err := readFrame(&b, &request{}); !errors.Is(err, errNotCluster) {
		t.Fatalf("huge frame: %v", err)
	}
	if err := readFrame(strings.NewReader("HTTP/1.1 400 Bad Request\r\n"), &request{}); !errors.Is(err, errNotCluster) {
		t.Fatalf("HTTP answer: %v", err)
	}
}

func FuzzReadFrame(f *testing.F) {
	var b bytes.Buffer
	writeFrame(&b, &request{Type: typeJoin, ID: "n1", Addr: "h:1", Voter: true, Set: []string{"a"}})
	f.Add(b.Bytes())
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Fuzz(func(t *testing.T, data []byte) {
		var req request
		if err := readFrame(bytes.NewReader(data), &req); err != nil {
			return
		}
		var out bytes.Buffer
		if err := writeFrame(&out, &req); err != nil {
			t.Fatal(err)
		}
	})
}

// permsAuth allows user "u" (password "p") the permissions listed.
type permsAuth map[string]bool

func (a permsAuth) Allowed(user, pass string, ok bool, perm string) bool {
	return ok && user == "u" && pass == "p" && a[perm]
}

func TestCallsNeedPermissions(t *testing.T) {
	n := startService(t, "L")
	n.mgr.leader = n.mgr.addr
	n.svc.cfg.Auth = permsAuth{"join-read-only": true, "leader-ops": true}
	ctx := context.Background()
	// No credentials: join refused with ErrUnauthorized; meta is open.
	if err := n.cl.Join(ctx, n.mgr.addr, "n2", "h2:4002", true, ""); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("anonymous join: %v", err)
	}
	if _, _, err := n.cl.NodeMeta(ctx, n.mgr.addr); err != nil {
		t.Fatalf("meta without credentials: %v", err)
	}
	n.cl.SetCredentials(func() (string, string, bool) { return "u", "p", true })
	// join-read-only admits a read replica but not a voter.
	if err := n.cl.Join(ctx, n.mgr.addr, "n2", "h2:4002", true, ""); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("voter join with join-read-only: %v", err)
	}
	if err := n.cl.Join(ctx, n.mgr.addr, "r1", "r1:4002", false, ""); err != nil {
		t.Fatalf("read-replica join with join-read-only: %v", err)
	}
	if err := n.cl.Remove(ctx, n.mgr.addr, "r1"); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("remove without the remove permission: %v", err)
	}
	if err := n.cl.Stepdown(ctx, n.mgr.addr, ""); err != nil {
		t.Fatalf("stepdown with leader-ops: %v", err)
	}
	// read-index needs join or query; this user has neither.
	if _, err := n.cl.ReadIndex(ctx, n.mgr.addr, "A", 7); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("read-index without join or query: %v", err)
	}
	if _, err := n.cl.notify(ctx, n.mgr.addr, &request{ID: "x", Addr: "y", Expect: 3}); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("notify without join: %v", err)
	}
	n.svc.cfg.Auth = permsAuth{"join-read-replica": true}
	if err := n.cl.Join(ctx, n.mgr.addr, "r3", "r3:4002", false, ""); err != nil {
		t.Fatalf("read-replica join with join-read-replica: %v", err)
	}
	n.svc.cfg.Auth = permsAuth{"remove": true, "join": true}
	if err := n.cl.Remove(ctx, n.mgr.addr, "r3"); err != nil {
		t.Fatalf("remove with the remove permission: %v", err)
	}
	if err := n.cl.Join(ctx, n.mgr.addr, "n5", "h5:4002", true, ""); err != nil {
		t.Fatalf("voter join with join: %v", err)
	}
	n.cl.SetCredentials(func() (string, string, bool) { return "u", "wrong", true })
	if err := n.cl.Join(ctx, n.mgr.addr, "r2", "r2:4002", false, ""); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("join with a wrong password: %v", err)
	}
}
