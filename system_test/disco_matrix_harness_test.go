//go:build system

package system_test

// Harness of TestDiscoMatrix (disco_matrix_test.go): gates in front of
// the nodes' Raft ports, clusters in any discovery mode, shared helpers.

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rqlited/rqlited/internal/dnstest"
)

type gateMode int32

const (
	gateOpen      gateMode = iota
	gateBlackhole          // accept and never answer, like a firewall that drops packets
	gateNoRaft             // forward the cluster service, close Raft connections
)

// gate forwards connections from Addr to a node's Raft port.
type gate struct {
	Addr   string
	target string
	ln     net.Listener
	mode   atomic.Int32
	mu     sync.Mutex
	conns  map[net.Conn]bool
	closed bool
}

func startGate(t testing.TB, addr, target string) *gate {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]bool{}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go g.handle(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		g.mu.Lock()
		g.closed = true
		g.mu.Unlock()
		g.cut()
	})
	return g
}

// set changes the mode and cuts every open connection, so that the new
// mode applies to all traffic from now on.
func (g *gate) set(m gateMode) {
	g.mode.Store(int32(m))
	g.cut()
}

func (g *gate) cut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for c := range g.conns {
		c.Close()
	}
}

func (g *gate) track(c net.Conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		c.Close()
		return false
	}
	g.conns[c] = true
	return true
}

func (g *gate) untrack(c net.Conn) {
	g.mu.Lock()
	delete(g.conns, c)
	g.mu.Unlock()
	c.Close()
}

func (g *gate) handle(c net.Conn) {
	if !g.track(c) {
		return
	}
	defer g.untrack(c)
	mode := gateMode(g.mode.Load())
	if mode == gateBlackhole {
		io.Copy(io.Discard, c)
		return
	}
	var first [1]byte
	if _, err := io.ReadFull(c, first[:]); err != nil {
		return
	}
	if mode == gateNoRaft && first[0] == 1 { // 1: Raft, 2: cluster service (DOC/CLUSTERING.md)
		return
	}
	up, err := net.DialTimeout("tcp", g.target, 2*time.Second)
	if err != nil || !g.track(up) {
		return
	}
	defer g.untrack(up)
	if _, err := up.Write(first[:]); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
}

// matrixEnv holds what the subtests share: the KV stores, started on first
// use and stopped when TestDiscoMatrix ends.
type matrixEnv struct {
	parent       *testing.T
	mu           sync.Mutex
	etcd, consul *kvServer
}

func (e *matrixEnv) kv(t *testing.T, mode string) *kvServer {
	t.Helper()
	bin := map[string]string{"etcd-kv": "etcd", "consul-kv": "consul"}[mode]
	toolPath(t, bin) // skips (or fails under make) when the server is not built
	e.mu.Lock()
	defer e.mu.Unlock()
	if mode == "etcd-kv" {
		if e.etcd == nil {
			e.etcd = startEtcd(e.parent)
		}
		return e.etcd
	}
	if e.consul == nil {
		e.consul = startConsul(e.parent)
	}
	return e.consul
}

func isKV(mode string) bool { return mode == "etcd-kv" || mode == "consul-kv" }

// mcluster is a set of gated nodes discovering each other in one mode.
type mcluster struct {
	t       *testing.T
	env     *matrixEnv
	mode    string
	dns     *dnstest.Server
	name    string // DNS name, or KV key
	kvAddr  string
	dnsIPs  []string // dns mode: one loopback IP per gate, sharing dnsPort
	dnsPort string
	nextIP  int
	Nodes   Cluster
	Gates   map[*Node]*gate
	// reserved: ports chosen for nodes and gates of mc
	reserved map[string]bool
}

var allModes = []string{"join", "dns", "dns-srv", "consul-kv", "etcd-kv"}

func newMC(t *testing.T, env *matrixEnv, mode string) *mcluster {
	t.Helper()
	mc := &mcluster{t: t, env: env, mode: mode, name: "rqlite.test", Gates: map[*Node]*gate{}, reserved: map[string]bool{}}
	switch {
	case isKV(mode):
		mc.name = randomKey()
		mc.kvAddr = env.kv(t, mode).Addr
	case mode == "dns" || mode == "dns-srv":
		mc.dns = dnstest.Start(t)
		if mode == "dns" {
			for i := 2; i < 14; i++ {
				mc.dnsIPs = append(mc.dnsIPs, fmt.Sprintf("127.0.0.%d", i))
			}
			mc.dnsPort = sharedPort(t, mc.dnsIPs...)
		}
	}
	return mc
}

// member prepares (does not start) a node with a fresh gate and data
// directory. Its arguments are set by setArgs.
func (mc *mcluster) member(id string) *Node {
	mc.t.Helper()
	n := newNode(mc.t, "")
	mc.reserved[n.HTTPAddr], mc.reserved[n.RaftAddr] = true, true
	mc.Gates[n] = startGate(mc.t, mc.gateAddr(), n.RaftAddr)
	n.Args = []string{"-node-id", id}
	return n
}

// gateAddr returns the address for a new gate. On 127.0.0.1 it is a port
// that is free and not one of the ports chosen (but not bound yet) for
// the nodes of mc.
func (mc *mcluster) gateAddr() string {
	mc.t.Helper()
	if mc.mode == "dns" {
		mc.nextIP++
		return net.JoinHostPort(mc.dnsIPs[mc.nextIP-1], mc.dnsPort)
	}
	for i := 0; i < 50; i++ {
		if a := freePort(mc.t); !mc.reserved[a] {
			mc.reserved[a] = true
			return a
		}
	}
	mc.t.Fatal("no free port for a gate")
	return ""
}

// moveGate gives n a new advertised address (a new gate); the old gate
// stops answering.
func (mc *mcluster) moveGate(n *Node) {
	mc.t.Helper()
	old := mc.Gates[n]
	old.set(gateBlackhole)
	old.ln.Close()
	mc.Gates[n] = startGate(mc.t, mc.gateAddr(), n.RaftAddr)
}

func (mc *mcluster) adv(n *Node) string { return mc.Gates[n].Addr }

func (mc *mcluster) advs(ns ...*Node) []string {
	var out []string
	for _, n := range ns {
		out = append(out, mc.adv(n))
	}
	return out
}

// setArgs gives n the arguments of this mode: -bootstrap-expect expect
// (ignored in KV modes) and, in join mode, the join list. Previous mode
// arguments are replaced; -node-id and extra are kept/added.
func (mc *mcluster) setArgs(n *Node, expect int, join []string, extra ...string) {
	id := n.nodeID()
	args := []string{"-node-id", id, "-raft-adv-addr", mc.adv(n)}
	switch mc.mode {
	case "join":
		args = append(args, "-bootstrap-expect", strconv.Itoa(expect), "-join", strings.Join(join, ","), "-bootstrap-expect-timeout", "60s")
	case "dns":
		cfg := fmt.Sprintf(`{"name":%q,"resolver":%q,"port":%s}`, mc.name, mc.dns.Addr, mc.dnsPort)
		args = append(args, "-disco-mode", "dns", "-disco-config", cfg, "-bootstrap-expect", strconv.Itoa(expect), "-bootstrap-expect-timeout", "60s")
	case "dns-srv":
		cfg := fmt.Sprintf(`{"name":%q,"service":"raft","resolver":%q}`, mc.name, mc.dns.Addr)
		args = append(args, "-disco-mode", "dns-srv", "-disco-config", cfg, "-bootstrap-expect", strconv.Itoa(expect), "-bootstrap-expect-timeout", "60s")
	default:
		m := kvModes[0]
		if mc.mode == "consul-kv" {
			m = kvModes[1]
		}
		args = append(args, kvArgs(m, mc.kvAddr, mc.name, "-bootstrap-expect-timeout", "60s")...)
	}
	n.Args = append(args, extra...)
}

// publish makes DNS answer with the advertised addresses of ns.
func (mc *mcluster) publish(ns ...*Node) {
	switch mc.mode {
	case "dns":
		var ips []string
		for _, n := range ns {
			h, _, _ := net.SplitHostPort(mc.adv(n))
			ips = append(ips, h)
		}
		mc.dns.SetA(mc.name, ips...)
	case "dns-srv":
		var recs []dnstest.SRV
		for _, n := range ns {
			_, p, _ := net.SplitHostPort(mc.adv(n))
			port, _ := strconv.Atoi(p)
			target := fmt.Sprintf("p%d.%s", port, mc.name)
			mc.dns.SetA(target, "127.0.0.1")
			recs = append(recs, dnstest.SRV{Priority: 10, Weight: 10, Port: uint16(port), Target: target})
		}
		mc.dns.SetSRV("_raft._tcp."+mc.name, recs...)
	}
}

// form prepares n members node1..nodeN with identical arguments (expect
// n), publishes them in DNS, and returns them unstarted.
func (mc *mcluster) form(n int, extra ...string) Cluster {
	mc.t.Helper()
	var c Cluster
	for i := 0; i < n; i++ {
		c = append(c, mc.member(fmt.Sprintf("node%d", i+1)))
	}
	for _, nd := range c {
		mc.setArgs(nd, n, mc.advs(c...), extra...)
	}
	mc.publish(c...)
	mc.Nodes = append(mc.Nodes, c...)
	return c
}

// formed starts n members, waits for one cluster and writes one row to
// table t; it returns the nodes and the leader.
func (mc *mcluster) formed(n int, extra ...string) (Cluster, *Node) {
	mc.t.Helper()
	c := mc.form(n, extra...)
	c.startAll()
	leader := c.waitOneCluster(mc.t, 30*time.Second)
	if s, b := leader.Execute("", `["CREATE TABLE t (x)", "INSERT INTO t VALUES(1)"]`); s != 200 || strings.Contains(b, "error") {
		mc.t.Fatalf("write: %d %s", s, b)
	}
	return c, leader
}

// members returns the IDs of /nodes on n.
func members(n *Node) []string {
	status, b, err := n.try("GET", "/nodes?ver=2&nonvoters&timeout=1s", "", nil)
	if err != nil {
		return nil
	}
	var v struct {
		Nodes []struct {
			ID   string `json:"id"`
			Addr string `json:"addr"`
		} `json:"nodes"`
	}
	if status != 200 || json.Unmarshal([]byte(b), &v) != nil {
		return nil
	}
	var out []string
	for _, x := range v.Nodes {
		out = append(out, x.ID+"@"+x.Addr)
	}
	slices.Sort(out)
	return out
}

// waitData waits until n serves want rows of t locally.
func waitData(t testing.TB, n *Node, want int) {
	t.Helper()
	waitFor(t, 20*time.Second, fmt.Sprintf("%d rows on %s", want, n.nodeID()), func() bool {
		s, b := n.Query("SELECT COUNT(*) FROM t", "&level=none")
		return s == 200 && strings.Contains(b, fmt.Sprintf(`"values":[[%d]]`, want))
	})
}

// bootStatus returns a key of the bootstrap status ("" if none).
func bootStatus(n *Node, key string) string {
	v, _ := n.status("bootstrap." + key).(string)
	return v
}

// restartAll starts every (stopped) node of c again.
func restartAll(c Cluster) {
	for _, n := range c {
		n.Start()
	}
}
