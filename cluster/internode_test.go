package cluster

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/rqlited/rqlited/internal/conntest"
	"github.com/rqlited/rqlited/mux"
)

// recordingPeer answers every cluster call with a bare response and
// records the credentials each call carried.
type recordingPeer struct {
	mu    sync.Mutex
	creds map[string]string // call type -> "user:password"
}

func startRecordingPeer(t *testing.T) (addr string, peer *recordingPeer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := mux.New(ln, quietLogger())
	layer := m.Layer(mux.HeaderCluster)
	m.Serve()
	peer = &recordingPeer{creds: map[string]string{}}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := layer.Accept()
			if err != nil {
				return
			}
			var req request
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if readFrame(c, &req) == nil {
				peer.mu.Lock()
				peer.creds[req.Type] = req.Username + ":" + req.Password
				peer.mu.Unlock()
				writeFrame(c, &response{ID: "peer", Addr: ln.Addr().String(), APIURL: "http://peer", Leader: ln.Addr().String()})
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { m.Close(); wg.Wait() })
	return ln.Addr().String(), peer
}

// TestCredentialsOnlyWhereAuthorised: the -join-as credentials go with
// join, notify, remove, stepdown and read-index, which the receiver
// authorises, and never with meta, which anyone may answer.
func TestCredentialsOnlyWhereAuthorised(t *testing.T) {
	addr, peer := startRecordingPeer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := mux.New(ln, quietLogger())
	defer m.Close()
	cl := NewClient(m.Layer(mux.HeaderCluster), 2*time.Second)
	defer cl.Close()
	cl.SetCredentials(func() (string, string, bool) { return "joiner", "secret", true })
	ctx := context.Background()
	cl.NodeMeta(ctx, addr)
	cl.Identify(ctx, addr)
	cl.MemberAPIURL(ctx, "peer", addr)
	cl.Join(ctx, addr, "n2", "h2:1", true, "")
	cl.notify(ctx, addr, &request{ID: "n2", Addr: "h2:1"})
	cl.Remove(ctx, addr, "n3")
	cl.Stepdown(ctx, addr, "")
	cl.ReadIndex(ctx, addr, "n2", 1)
	peer.mu.Lock()
	defer peer.mu.Unlock()
	if got := peer.creds[typeMeta]; got != ":" {
		t.Errorf("meta carried credentials %q", got)
	}
	for _, typ := range []string{typeJoin, typeNotify, typeRemove, typeStepdown, typeReadIndex} {
		if got := peer.creds[typ]; got != "joiner:secret" {
			t.Errorf("%s carried %q, want the -join-as credentials", typ, got)
		}
	}
}

func TestMemberAPIURLChecksTheAnswerer(t *testing.T) {
	n := startService(t, "L")
	ctx := context.Background()
	url, err := n.cl.MemberAPIURL(ctx, "L", n.mgr.addr)
	if err != nil || url != "http://api-L" {
		t.Fatalf("member L: %q %v", url, err)
	}
	if url, err := n.cl.MemberAPIURL(ctx, "X", n.mgr.addr); !errors.Is(err, ErrNotThatNode) || url != "" {
		t.Fatalf("a node answering as L where X is expected: %q %v, want ErrNotThatNode", url, err)
	}
}

// TestServiceClosesStalledConnections: a connection whose request stalls
// part-way is closed within Timeout, the first request's or a later one's;
// one idle between calls within IdleTimeout.
func TestServiceClosesStalledConnections(t *testing.T) {
	n := startService(t, "L")
	n.svc.cfg.Timeout, n.svc.cfg.IdleTimeout = 300*time.Millisecond, 1500*time.Millisecond
	const slack = 2 * time.Second
	layer := n.mux.Layer(mux.HeaderCluster)
	dial := func(t *testing.T) net.Conn {
		t.Helper()
		c, err := layer.Dial(n.mgr.addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	call := func(t *testing.T, c net.Conn) {
		t.Helper()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if err := writeFrame(c, &request{Type: typeMeta}); err != nil {
			t.Fatal(err)
		}
		var resp response
		if err := readFrame(c, &resp); err != nil || resp.ID != "L" {
			t.Fatalf("meta: %+v %v", resp, err)
		}
		c.SetDeadline(time.Time{})
	}
	t.Run("header byte only", func(t *testing.T) {
		conntest.ClosedWithin(t, dial(t), n.svc.cfg.Timeout+slack)
	})
	t.Run("one byte of the first request", func(t *testing.T) {
		c := dial(t)
		c.Write([]byte{0})
		conntest.ClosedWithin(t, c, n.svc.cfg.Timeout+slack)
	})
	t.Run("one byte of a later request", func(t *testing.T) {
		c := dial(t)
		call(t, c)
		c.Write([]byte{0})
		if took := conntest.ClosedWithin(t, c, n.svc.cfg.IdleTimeout+slack); took >= n.svc.cfg.IdleTimeout {
			t.Fatalf("a stalled request was held %v, the idle bound, not Timeout (%v)", took, n.svc.cfg.Timeout)
		}
	})
	t.Run("idle after a call", func(t *testing.T) {
		c := dial(t)
		call(t, c)
		if took := conntest.ClosedWithin(t, c, n.svc.cfg.IdleTimeout+slack); took < n.svc.cfg.IdleTimeout/2 {
			t.Fatalf("an idle connection was closed after %v, before IdleTimeout %v", took, n.svc.cfg.IdleTimeout)
		}
	})
	t.Run("calls on a kept connection", func(t *testing.T) {
		c := dial(t)
		for i := 0; i < 3; i++ {
			call(t, c)
			time.Sleep(2 * n.svc.cfg.Timeout) // a pause between calls: longer than Timeout, shorter than IdleTimeout
		}
	})
}

// countingDialer counts dials and remembers the connections.
type countingDialer struct {
	Dialer
	mu    sync.Mutex
	conns []net.Conn
}

func (d *countingDialer) Dial(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := d.Dialer.Dial(addr, timeout)
	if err == nil {
		d.mu.Lock()
		d.conns = append(d.conns, c)
		d.mu.Unlock()
	}
	return c, err
}

func (d *countingDialer) dials() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.conns)
}

// TestClientDropsIdleConnections: a kept-alive connection is reused between
// close calls, and closed instead of reused once it has waited longer than
// the client's bound (kept below the service's idle bound).
func TestClientDropsIdleConnections(t *testing.T) {
	if clientMaxIdle >= DefaultIdleTimeout {
		t.Fatalf("the client keeps connections %v, not less than the service's %v", clientMaxIdle, DefaultIdleTimeout)
	}
	n := startService(t, "L")
	n.mgr.leader = n.mgr.addr
	d := &countingDialer{Dialer: n.mux.Layer(mux.HeaderCluster)}
	cl := NewClient(d, 2*time.Second)
	defer cl.Close()
	cl.maxIdle = 200 * time.Millisecond
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := cl.ReadIndex(ctx, n.mgr.addr, "F", 1); err != nil {
			t.Fatal(err)
		}
	}
	if got := d.dials(); got != 1 {
		t.Fatalf("3 read-index calls in a row dialed %d times, want 1 (kept alive)", got)
	}
	time.Sleep(2 * cl.maxIdle) // the pause under test
	if _, err := cl.ReadIndex(ctx, n.mgr.addr, "F", 1); err != nil {
		t.Fatal(err)
	}
	if got := d.dials(); got != 2 {
		t.Fatalf("a call after the connection idled past the bound dialed %d times in all, want 2", got)
	}
	// The expired connection was closed by the client.
	d.mu.Lock()
	old := d.conns[0]
	d.mu.Unlock()
	if _, err := old.Write([]byte{0}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("the expired connection is still open (write: %v)", err)
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestMemberOnlyCalls: with a member check, remove, stepdown and
// read-index calls, and the hops they follow to a leader, go only to
// members, so a peer posing as leader is never sent the credentials.
func TestMemberOnlyCalls(t *testing.T) {
	evil, peer := startRecordingPeer(t)
	n := startService(t, "F")
	n.mgr.leader = evil // the follower was told evil leads
	n.cl.SetCredentials(func() (string, string, bool) { return "joiner", "secret", true })
	n.cl.SetMemberCheck(func(addr string) bool { return addr == n.mgr.addr })
	ctx := context.Background()
	if _, err := n.cl.ReadIndex(ctx, evil, "F", 1); !errors.Is(err, ErrNotMember) {
		t.Fatalf("read-index to a non-member: %v, want ErrNotMember", err)
	}
	// Through a member that names the non-member as leader.
	if _, err := n.cl.ReadIndex(ctx, n.mgr.addr, "F", 1); !errors.Is(err, ErrNotMember) {
		t.Fatalf("read-index redirected to a non-member: %v, want ErrNotMember", err)
	}
	if err := n.cl.Remove(ctx, evil, "x"); !errors.Is(err, ErrNotMember) {
		t.Fatalf("remove to a non-member: %v, want ErrNotMember", err)
	}
	if err := n.cl.Stepdown(ctx, evil, ""); !errors.Is(err, ErrNotMember) {
		t.Fatalf("stepdown to a non-member: %v, want ErrNotMember", err)
	}
	peer.mu.Lock()
	defer peer.mu.Unlock()
	if len(peer.creds) != 0 {
		t.Fatalf("the non-member got calls: %v", peer.creds)
	}
}
