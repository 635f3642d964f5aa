package http

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rqlited/rqlited/cluster"
	"github.com/rqlited/rqlited/command"
)

// cluster.Client is what main installs; without this method forwarding
// would refuse everything.
var _ memberMeta = (*cluster.Client)(nil)

// fwdStore is a follower's view of the cluster: who leads, and the Raft
// configuration. Only the methods forwarding uses are implemented.
type fwdStore struct {
	Store
	mu       sync.Mutex
	leaderID string
	leader   string
	servers  []command.Server
}

func (f *fwdStore) ID() string   { return "F" }
func (f *fwdStore) Addr() string { return "f:4002" }
func (f *fwdStore) Leader() (string, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leaderID, f.leader
}
func (f *fwdStore) Servers() ([]command.Server, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]command.Server(nil), f.servers...), nil
}
func (f *fwdStore) set(id, addr string, servers ...command.Server) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leaderID, f.leader, f.servers = id, addr, servers
}

// fwdCluster answers meta calls: nodes maps a Raft address to the ID the
// node there answers as and its API URL. It records the addresses asked.
type fwdCluster struct {
	mu    sync.Mutex
	nodes map[string][2]string
	asked []string
}

func (c *fwdCluster) NodeMeta(ctx context.Context, addr string) (string, string, error) {
	return "", "", errors.New("forwarding must not use NodeMeta: it does not say who answered")
}

func (c *fwdCluster) MemberAPIURL(ctx context.Context, id, addr string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.asked = append(c.asked, addr)
	n, ok := c.nodes[addr]
	if !ok {
		return "", fmt.Errorf("nothing answers at %s", addr)
	}
	if n[0] != id {
		return "", fmt.Errorf("%w: %s answers as %q", cluster.ErrNotThatNode, addr, n[0])
	}
	return n[1], nil
}

// recorder is an HTTP API that records the Authorization headers it got.
type recorder struct {
	mu    sync.Mutex
	auths []string
	srv   *httptest.Server
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.auths = append(r.auths, req.Header.Get("Authorization"))
		r.mu.Unlock()
		io.WriteString(w, `{"results":[]}`)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.auths...)
}

// TestForwardOnlyToMembers: a follower forwards a client's request, with
// its Authorization header, only to a leader that is in its Raft
// configuration (ID and address), and only to the API URL that the node at
// that member's address gives when it answers as that member.
func TestForwardOnlyToMembers(t *testing.T) {
	leaderAPI, evilAPI := newRecorder(t), newRecorder(t)
	st := &fwdStore{}
	cl := &fwdCluster{nodes: map[string][2]string{
		"l:4002": {"L", leaderAPI.srv.URL},
		"e:4002": {"E", evilAPI.srv.URL},
		"x:4002": {"X", evilAPI.srv.URL}, // a member's address where another node answers
	}}
	s := &Service{cfg: DefaultConfig(), store: st, cluster: cl, fwd: newForwarder(nil),
		logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	members := []command.Server{{ID: "F", Addr: "f:4002", Voter: true}, {ID: "L", Addr: "l:4002", Voter: true}, {ID: "M", Addr: "x:4002", Voter: true}}

	forward := func(t *testing.T) int {
		t.Helper()
		p, err := parseParams("")
		if err != nil {
			t.Fatal(err)
		}
		p.body = []byte(`["INSERT INTO t VALUES(1)"]`)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		r := httptest.NewRequest("POST", "/db/execute", strings.NewReader(string(p.body))).WithContext(ctx)
		r.SetBasicAuth("app", "app-secret")
		w := httptest.NewRecorder()
		s.forward(w, r, p)
		return w.Code
	}

	t.Run("member leader", func(t *testing.T) {
		st.set("L", "l:4002", members...)
		if code := forward(t); code != 200 {
			t.Fatalf("forward to the member leader: %d", code)
		}
		if got := leaderAPI.got(); len(got) != 1 || !strings.HasPrefix(got[0], "Basic ") {
			t.Fatalf("the leader got Authorization %q, want the client's", got)
		}
	})
	refused := func(t *testing.T, id, addr string) {
		t.Helper()
		st.set(id, addr, members...)
		if code := forward(t); code != http.StatusServiceUnavailable {
			t.Fatalf("leader %s at %s: got %d, want 503", id, addr, code)
		}
		if got := evilAPI.got(); len(got) != 0 {
			t.Fatalf("credentials went to a non-member: %q", got)
		}
	}
	t.Run("leader outside the configuration", func(t *testing.T) {
		refused(t, "E", "e:4002")
		cl.mu.Lock()
		defer cl.mu.Unlock()
		for _, a := range cl.asked {
			if a == "e:4002" {
				t.Fatal("a non-member named as leader was asked for its API URL")
			}
		}
	})
	t.Run("non-member claiming a member's address", func(t *testing.T) {
		refused(t, "E", "l:4002")
	})
	t.Run("another node answers at the member's address", func(t *testing.T) {
		refused(t, "M", "x:4002")
	})
	t.Run("cached leader removed from the configuration", func(t *testing.T) {
		st.set("L", "l:4002", members[0], members[2])
		if code := forward(t); code != http.StatusServiceUnavailable {
			t.Fatalf("leader no longer a member: got %d, want 503", code)
		}
		if got := leaderAPI.got(); len(got) != 1 {
			t.Fatalf("the removed leader got %d requests in all, want 1 (from the first subtest)", len(got))
		}
	})
}
