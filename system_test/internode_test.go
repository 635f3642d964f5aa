//go:build system

package system_test

// The inter-node port without mutual TLS (-node-verify-client): a peer
// that can reach it and poses as the leader must get nothing from a
// follower (no client's credentials, no -join-as password), and
// connections that stall after their first bytes must be closed.

import (
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// Inter-node deadlines rqlited uses (mux.RaftDeadlines, cluster.Service);
// no flag lowers them.
const (
	raftFirstRequest = 10 * time.Second // after the Raft header byte
	raftStall        = 30 * time.Second // inside a Raft request
	clusterRequest   = 10 * time.Second // a cluster call's frame
)

// TestInterNodeStalledConnections: a connection to the inter-node port
// that sends a header byte, or a header and part of a request, and then
// nothing, is closed within the bound, and the node keeps serving.
func TestInterNodeStalledConnections(t *testing.T) {
	n := startNode(t)
	hostileHealthy(t, n)
	cases := []struct {
		name  string
		data  []byte
		bound time.Duration
	}{
		{"Raft header byte only", []byte{1}, raftFirstRequest},
		{"cluster header byte only", []byte{2}, clusterRequest},
		{"cluster header and one byte of a frame", []byte{2, 0}, clusterRequest},
		{"Raft header and one byte of a request", []byte{1, 0}, raftStall},
	}
	const slack = 5 * time.Second
	var wg sync.WaitGroup
	for _, tc := range cases {
		c, err := net.DialTimeout("tcp", n.RaftAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Write(tc.data); err != nil {
				t.Errorf("%s: %v", tc.name, err)
				return
			}
			got, took, closed := hostileClosed(c, tc.bound+slack)
			if !closed {
				t.Errorf("%s: connection still open after %v (bound %v)", tc.name, took, tc.bound)
				return
			}
			t.Logf("%s: closed after %v (bound %v), sent back %q", tc.name, took.Round(10*time.Millisecond), tc.bound, got)
		}()
	}
	wg.Wait()
	hostileHealthy(t, n)
}

// fakePeer is a hostile process that can reach the inter-node port: a
// cluster service that answers every call as node "evil" and records the
// credentials each carried, an HTTP API that records every Authorization
// header, and a Raft transport that tells a follower it leads.
type fakePeer struct {
	ln  net.Listener // its inter-node port
	api *httptest.Server

	mu    sync.Mutex
	calls []string // cluster calls received: "type user:password"
	auths []string // Authorization headers received by its API

	wg sync.WaitGroup
}

func startFakePeer(t *testing.T) *fakePeer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &fakePeer{ln: ln}
	p.api = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.auths = append(p.auths, r.Header.Get("Authorization"))
		p.mu.Unlock()
		io.WriteString(w, `{"results":[{}]}`)
	}))
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.api.Close()
		p.wg.Wait()
	})
	return p
}

// serve answers cluster calls on c as node "evil", whose API is p.api.
func (p *fakePeer) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var h [1]byte
	if _, err := io.ReadFull(c, h[:]); err != nil || h[0] != 2 {
		return
	}
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		b := make([]byte, binary.BigEndian.Uint32(hdr[:])&0xFFFFF)
		if _, err := io.ReadFull(c, b); err != nil {
			return
		}
		var req struct{ Type, Username, Password string }
		json.Unmarshal(b, &req)
		p.mu.Lock()
		p.calls = append(p.calls, req.Type+" "+req.Username+":"+req.Password)
		p.mu.Unlock()
		resp, _ := json.Marshal(map[string]any{"id": "evil", "addr": p.ln.Addr().String(), "api_url": p.api.URL,
			"version": "v9", "index": 1})
		if _, err := c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(resp))), resp...)); err != nil {
			return
		}
	}
}

func (p *fakePeer) received() (calls, auths []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.calls...), append([]string(nil), p.auths...)
}

// raftDialer is the fake peer's Raft stream layer: it only dials, sending
// the Raft header byte as a node does.
type raftDialer struct {
	addr net.Addr
	done chan struct{}
	once sync.Once
}

func (d *raftDialer) Accept() (net.Conn, error) {
	<-d.done
	return nil, net.ErrClosed
}

func (d *raftDialer) Close() error {
	d.once.Do(func() { close(d.done) })
	return nil
}

func (d *raftDialer) Addr() net.Addr { return d.addr }

func (d *raftDialer) Dial(a raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", string(a), timeout)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write([]byte{1}); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// poseAsLeader sends target heartbeats as leader "evil" (at p's address),
// with a term above target's, until stop is closed.
func (p *fakePeer) poseAsLeader(target string, stop <-chan struct{}) {
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: &raftDialer{addr: p.ln.Addr(), done: make(chan struct{})}, MaxPool: 2,
		Timeout: 2 * time.Second, Logger: hclog.NewNullLogger(),
	})
	defer trans.Close()
	term := uint64(1)
	tick := time.NewTicker(30 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		var resp raft.AppendEntriesResponse
		err := trans.AppendEntries("target", raft.ServerAddress(target), &raft.AppendEntriesRequest{
			RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("evil"), Addr: []byte(p.ln.Addr().String())},
			Term:      term,
		}, &resp)
		if err == nil && !resp.Success && resp.Term >= term {
			term = resp.Term + 1
		}
	}
}

// TestInterNodeFakeLeader: a process that reaches a follower's inter-node
// port (no -node-verify-client) and tells it, in Raft, that it leads. The
// follower believes it (Raft without mutual TLS cannot tell), but it must
// not forward clients' requests, with their Authorization headers, to the
// impostor, nor send it the -join-as password: the impostor is not in the
// follower's Raft configuration.
func TestInterNodeFakeLeader(t *testing.T) {
	file := writeAuthFile(t, "", []authUser{
		{Username: "admin", Password: "a", Perms: []string{"all"}},
		{Username: "joiner", Password: "j", Perms: []string{"join", "remove"}},
	})
	n1 := newNode(t, "", "-node-id", "n1", "-auth", file)
	n1.User, n1.Pass = "admin", "a"
	n1.Start()
	n1.WaitReady(20 * time.Second)
	n2 := newNode(t, "", "-node-id", "n2", "-auth", file, "-join", n1.RaftAddr, "-join-as", "joiner")
	n2.User, n2.Pass = "admin", "a"
	n2.Start()
	n2.WaitReady(20 * time.Second)
	waitFor(t, 20*time.Second, "n2 to follow n1", func() bool { return n2.leaderID() == "n1" })
	if strings.Contains(n1.out.String(), "accepts any peer") {
		t.Fatalf("a node whose inter-node port is on loopback warned about it:\n%s", n1.out.String())
	}
	mustDoJSON(t, n1, "POST", "/db/execute", `[["CREATE TABLE t(x)"]]`, `{"results":[{}]}`)
	// Forwarding to the real leader works.
	if got := as(t, n2, "admin", "a", "POST", "/db/execute", "application/json", `[["INSERT INTO t VALUES(1)"]]`); got != 200 {
		t.Fatalf("write through the follower before the attack: %d", got)
	}

	evil := startFakePeer(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		evil.poseAsLeader(n2.RaftAddr, stop)
	}()
	stopped := false
	stopAttack := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer stopAttack()
	waitFor(t, 20*time.Second, "n2 to take the impostor for its leader", func() bool { return n2.leaderID() == "evil" })

	// A write and a linearizable read (read-index, then forwarding) as
	// admin through n2, while n2 takes "evil" for the leader.
	if got := as(t, n2, "admin", "a", "POST", "/db/execute", "application/json", `[["INSERT INTO t VALUES(2)"]]`); got != http.StatusServiceUnavailable {
		t.Errorf("write through the follower of an impostor: %d, want 503", got)
	}
	if got := as(t, n2, "admin", "a", "GET", "/db/query?q=SELECT+COUNT(*)+FROM+t&level=linearizable", "", ""); got != http.StatusServiceUnavailable {
		t.Errorf("linearizable read through the follower of an impostor: %d, want 503", got)
	}
	if got := as(t, n2, "admin", "a", "GET", "/db/query?q=SELECT+COUNT(*)+FROM+t&redirect", "", ""); got == http.StatusMovedPermanently {
		t.Errorf("the follower of an impostor redirected a client to it")
	}
	if leader := n2.leaderID(); leader != "evil" {
		t.Logf("note: n2's leader is %q by now", leader)
	}
	calls, auths := evil.received()
	if len(auths) > 0 {
		t.Errorf("clients' requests reached the impostor's API, with Authorization %q", auths)
	}
	for _, c := range calls {
		if !strings.HasSuffix(c, " :") {
			t.Errorf("the impostor got a cluster call with credentials: %q", c)
		}
	}
	t.Logf("cluster calls the impostor received: %q", calls)
	if !strings.Contains(n2.out.String(), "not in this node's Raft configuration") {
		t.Errorf("n2 did not log why it refused to forward:\n%s", n2.out.String())
	}

	// Once the impostor stops, the cluster has a real leader again and
	// n2 forwards to it.
	stopAttack()
	c := Cluster{n1, n2}
	leader := c.waitOneCluster(t, 30*time.Second)
	follower := n2
	if leader == n2 {
		follower = n1
	}
	waitFor(t, 20*time.Second, "a write through the follower after the attack", func() bool {
		return as(t, follower, "admin", "a", "POST", "/db/execute", "application/json", `[["INSERT INTO t VALUES(3)"]]`) == 200
	})
	if _, auths := evil.received(); len(auths) > 0 {
		t.Errorf("clients' requests reached the impostor's API, with Authorization %q", auths)
	}
}
