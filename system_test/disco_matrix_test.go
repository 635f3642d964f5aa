//go:build system

package system_test

// TestDiscoMatrix: the scenarios of discovery-landscape.md section 2 (and
// the code risks) not covered by the other system tests, each run in the
// discovery modes where it can arise. Subtests are named
// TestDiscoMatrix/<scenario>/<mode>; every passing one records its cell of
// the discovery matrix (matrix_test.go, make discovery-matrix).
//
// Every node sits behind a gate: a TCP forwarder on the node's advertised
// Raft address (-raft-adv-addr) that can let everything through, swallow
// every connection (a port blocked by a firewall that drops packets) or
// refuse only Raft connections while the cluster service still answers
// (to hold a freshly bootstrapped cluster before its first election).

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rqlited/rqlited/internal/dnstest"
)

func TestDiscoMatrix(t *testing.T) {
	env := &matrixEnv{parent: t}
	for _, sc := range []struct {
		id    string
		modes []string
		run   func(t *testing.T, mc *mcluster)
	}{
		{"S1", allModes, testRemovedOnShutdownRestarts},
		{"S2", allModes, func(t *testing.T, mc *mcluster) { testAllNewAddresses(t, mc, true) }},
		{"S3", allModes, func(t *testing.T, mc *mcluster) { testAllNewAddresses(t, mc, false) }},
		{"S4", allModes, testRestartNewAddress},
		{"S5", allModes, testWipedSameID},
		{"S7", []string{"dns", "dns-srv"}, testIPv6Answers},
		{"S9", allModes, testRaftPortBlocked},
		{"S10", []string{"dns", "dns-srv"}, testExpectMismatch},
		{"S11", []string{"join"}, testJoinWithoutExpect},
		{"S12", []string{"join", "dns", "dns-srv"}, testExpectOneNewcomer},
		{"S13", []string{"join", "dns", "dns-srv"}, testNewPairOldServer},
		{"S15+S18", allModes, testRestartAll},
		{"S19", []string{"dns-srv"}, testSRVTargetsLate},
		{"S20", []string{"dns", "dns-srv"}, testNotInAnswer},
		{"S21", allModes, testRebootRerunsDiscovery},
		{"S23", []string{"join"}, testOneWayJoinGraph},
		{"S25", []string{"dns", "dns-srv"}, testFirstLookupFails},
		{"(b)", []string{"consul-kv", "etcd-kv"}, testDeposedLeaderKey},
		{"(d)", []string{"dns", "dns-srv"}, testAnswerLongerThanExpect},
		{"K1", []string{"join", "dns", "dns-srv"}, testKilledAfterBootstrap},
	} {
		t.Run(sc.id, func(t *testing.T) {
			for _, mode := range sc.modes {
				t.Run(mode, func(t *testing.T) { sc.run(t, newMC(t, env, mode)) })
			}
		})
	}
	t.Run("refusals", testDiscoRefusals)
}

// S21: a node killed and restarted with the same arguments re-runs
// discovery; that must never refuse it.
func testRebootRerunsDiscovery(t *testing.T, mc *mcluster) {
	c, leader := mc.formed(3)
	f := c.followers(leader)[0]
	f.Kill()
	f.Start()
	leader = c.waitOneCluster(t, 30*time.Second)
	leader.Execute("", `["INSERT INTO t VALUES(2)"]`)
	waitData(t, f, 2)
	if strings.Contains(f.out.String(), "level=ERROR") {
		t.Fatalf("restarted node logged an error:\n%s", f.out.String())
	}
	matrix(t, "S21", mc.mode, "one cluster: the restarted node is back and replicates, nothing refused")
}

// S1: with -raft-cluster-remove-shutdown a node removes itself on
// SIGTERM; restarted with the same arguments, it must be a member again.
func testRemovedOnShutdownRestarts(t *testing.T, mc *mcluster) {
	c, leader := mc.formed(3, "-raft-cluster-remove-shutdown")
	f := c.followers(leader)[0]
	f.Stop()
	waitFor(t, 20*time.Second, "node removed on SIGTERM", func() bool { return len(members(leader)) == 2 })
	f.Start()
	waitFor(t, 30*time.Second, "restarted node is a member again", func() bool { return len(members(leader)) == 3 })
	leader = c.waitOneCluster(t, 30*time.Second)
	leader.Execute("", `["INSERT INTO t VALUES(2)"]`)
	waitData(t, f, 2)
	matrix(t, "S1", mc.mode, "one cluster: removed on SIGTERM, re-added on restart")
}

// S4: a node restarts with its data at a new address.
func testRestartNewAddress(t *testing.T, mc *mcluster) {
	c, leader := mc.formed(3)
	f := c.followers(leader)[0]
	f.Kill()
	mc.moveGate(f)
	mc.setArgs(f, 3, mc.advs(c...))
	mc.publish(c...)
	f.Start()
	waitFor(t, 30*time.Second, "leader lists the new address", func() bool {
		return slices.Contains(members(leader), f.nodeID()+"@"+mc.adv(f))
	})
	leader = c.waitOneCluster(t, 30*time.Second)
	leader.Execute("", `["INSERT INTO t VALUES(2)"]`)
	waitData(t, f, 2)
	matrix(t, "S4", mc.mode, "one cluster: the leader replaces the old address")
}

// S2 (graceful) and S3 (killed): every node comes back with its data at a
// new address.
func testAllNewAddresses(t *testing.T, mc *mcluster, graceful bool) {
	id := "S3"
	if graceful {
		id = "S2"
	}
	c, _ := mc.formed(3)
	for _, n := range c {
		if graceful {
			n.Stop()
		} else {
			n.Kill()
		}
	}
	for _, n := range c {
		mc.moveGate(n)
	}
	for _, n := range c {
		mc.setArgs(n, 3, mc.advs(c...))
	}
	mc.publish(c...)
	restartAll(c)
	leader := c.waitOneCluster(t, 30*time.Second)
	if s, b := leader.Execute("", `["INSERT INTO t VALUES(2)"]`); s != 200 || strings.Contains(b, "error") {
		t.Fatalf("write: %d %s", s, b)
	}
	// The configuration now holds every new address.
	waitFor(t, 30*time.Second, "configuration lists the new addresses", func() bool {
		got := members(leader)
		for _, n := range c {
			if !slices.Contains(got, n.nodeID()+"@"+mc.adv(n)) {
				return false
			}
		}
		return len(got) == len(c)
	})
	for _, n := range c {
		waitData(t, n, 2)
	}
	how := "the -join list"
	switch {
	case isKV(mc.mode):
		how = "the store's member list"
	case mc.mode != "join":
		how = "DNS"
	}
	matrix(t, id, mc.mode, "one cluster at the new addresses, with its data: members are found through "+how+" while there is no leader, and the new leader records their addresses")
}

// S5: a node's data directory is wiped and it restarts with the same ID
// and address into its live cluster.
func testWipedSameID(t *testing.T, mc *mcluster) {
	c, leader := mc.formed(3)
	f := c.followers(leader)[0]
	f.Kill()
	f.Dir = t.TempDir()
	f.Start()
	c.waitOneCluster(t, 30*time.Second)
	waitData(t, f, 1)
	if got := members(leader); len(got) != 3 {
		t.Fatalf("members after the wiped node rejoined: %v", got)
	}
	matrix(t, "S5", mc.mode, "one cluster: rejoins with the same ID and gets the data")
}

// S7: DNS answers with IPv6 addresses.
func testIPv6Answers(t *testing.T, mc *mcluster) {
	if l, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Skip("no IPv6 loopback")
	} else {
		l.Close()
	}
	var c Cluster
	if mc.mode == "dns" {
		// One address per name, one port for all: one node (expect 1).
		n := newNode(t, "")
		g := startGate(t, "[::1]:0", n.RaftAddr)
		_, port, _ := net.SplitHostPort(g.Addr)
		mc.dns.SetA(mc.name, "::1")
		n.Args = []string{"-node-id", "node1", "-raft-adv-addr", g.Addr, "-disco-mode", "dns", "-bootstrap-expect", "1",
			"-disco-config", fmt.Sprintf(`{"name":%q,"resolver":%q,"port":%s}`, mc.name, mc.dns.Addr, port)}
		c = Cluster{n}
	} else {
		var recs []dnstest.SRV
		for i := 0; i < 3; i++ {
			n := newNode(t, "")
			g := startGate(t, "[::1]:0", n.RaftAddr)
			_, p, _ := net.SplitHostPort(g.Addr)
			port, _ := strconv.Atoi(p)
			target := fmt.Sprintf("v6n%d.%s", i, mc.name)
			mc.dns.SetA(target, "::1")
			recs = append(recs, dnstest.SRV{Priority: 1, Weight: 1, Port: uint16(port), Target: target})
			n.Args = []string{"-node-id", fmt.Sprintf("node%d", i+1), "-raft-adv-addr", g.Addr, "-disco-mode", "dns-srv", "-bootstrap-expect", "3",
				"-disco-config", fmt.Sprintf(`{"name":%q,"service":"raft","resolver":%q}`, mc.name, mc.dns.Addr)}
			c = append(c, n)
		}
		mc.dns.SetSRV("_raft._tcp."+mc.name, recs...)
	}
	c.startAll()
	leader := c.waitOneCluster(t, 30*time.Second)
	if a, _ := leader.status("store.leader.addr").(string); !strings.HasPrefix(a, "[::1]:") {
		t.Fatalf("leader address %q, want [::1]:port", a)
	}
	matrix(t, "S7", mc.mode, "one cluster on [::1] addresses")
}

// S9: a fresh node's Raft port is blocked (connections are swallowed).
// It must never bootstrap a cluster of its own.
func testRaftPortBlocked(t *testing.T, mc *mcluster) {
	if isKV(mc.mode) {
		// The first node forms the cluster by design; a fresh node with its
		// port blocked arrives later and must join it, never form its own.
		c := mc.form(3)
		blocked := c[2]
		mc.Gates[blocked].set(gateBlackhole)
		first := Cluster{c[0], c[1]}
		first.startAll()
		leader := first.waitOneCluster(t, 30*time.Second)
		blocked.Start()
		waitFor(t, 30*time.Second, "blocked node added by the leader", func() bool { return len(members(leader)) == 3 })
		waitFor(t, 10*time.Second, "blocked node's discovery done", func() bool {
			p, _ := blocked.status("disco.phase").(string)
			return p == "joined"
		})
		if blocked.clusterID() != "" || blocked.leaderID() != "" {
			t.Fatalf("blocked node formed or found a cluster: id %q leader %q", blocked.clusterID(), blocked.leaderID())
		}
		mc.Gates[blocked].set(gateOpen)
		leader = c.waitOneCluster(t, 30*time.Second)
		leader.Execute("", `["CREATE TABLE t (x)"]`)
		matrix(t, "S9", mc.mode, "no second cluster: the leader adds the blocked node, which catches up once its port opens")
		return
	}
	c := mc.form(3, "-bootstrap-expect-timeout", "60s")
	blocked := c[2]
	mc.Gates[blocked].set(gateBlackhole)
	c.startAll()
	for _, n := range c {
		waitFor(t, 30*time.Second, n.nodeID()+" reports the blocked member", func() bool {
			return strings.Contains(bootStatus(n, "last_error"), mc.adv(blocked)+" has not answered")
		})
	}
	for _, n := range c {
		if n.leaderID() != "" || n.clusterID() != "" {
			t.Fatalf("%s formed a cluster while a member was unreachable", n.nodeID())
		}
	}
	mc.Gates[blocked].set(gateOpen)
	c.waitOneCluster(t, 30*time.Second)
	matrix(t, "S9", mc.mode, `no cluster while a member's Raft port is blocked (waits: "has not answered"); one cluster once it opens`)
}

// S10: one node has another -bootstrap-expect.
func testExpectMismatch(t *testing.T, mc *mcluster) {
	c := mc.form(3)
	mc.setArgs(c[2], 2, mc.advs(c...))
	c.startAll()
	waitFor(t, 30*time.Second, "mismatch reported", func() bool {
		return strings.Contains(bootStatus(c[0], "last_error"), "-bootstrap-expect mismatch")
	})
	for _, n := range c[:2] {
		if n.leaderID() != "" {
			t.Fatalf("%s has a leader despite the mismatch", n.nodeID())
		}
	}
	matrix(t, "S10", mc.mode, "refused with a reason (-bootstrap-expect mismatch in /status), no cluster")
}

// S11: nodes that only -join each other (no -bootstrap-expect) never form
// two clusters: none bootstraps, each exits with an error.
func testJoinWithoutExpect(t *testing.T, mc *mcluster) {
	c := mc.form(3)
	for _, n := range c {
		var others []string
		for _, o := range c {
			if o != n {
				others = append(others, mc.adv(o))
			}
		}
		n.Args = []string{"-node-id", n.nodeID(), "-raft-adv-addr", mc.adv(n), "-join", strings.Join(others, ","),
			"-join-attempts", "3", "-join-interval", "100ms"}
	}
	c.startAll()
	for _, n := range c {
		select {
		case <-n.done:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s still running", n.nodeID())
		}
		if code := n.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(n.out.String(), "failed to join cluster") {
			t.Fatalf("%s: exit %d\n%s", n.nodeID(), code, n.out.String())
		}
	}
	matrix(t, "S11", "join", `clear error: no node bootstraps; each exits 1 ("failed to join cluster")`)
}

// S12: a fresh node with -bootstrap-expect 1 whose addresses include a
// live cluster joins it.
func testExpectOneNewcomer(t *testing.T, mc *mcluster) {
	c, leader := mc.formed(3)
	cid := leader.clusterID()
	n4 := mc.member("node4")
	all := append(Cluster{}, append(c, n4)...)
	mc.setArgs(n4, 1, mc.advs(all...))
	mc.publish(all...)
	n4.Start()
	all.waitOneCluster(t, 30*time.Second)
	if n4.clusterID() != cid {
		t.Fatalf("newcomer in cluster %s, want %s", n4.clusterID(), cid)
	}
	waitData(t, n4, 1)
	matrix(t, "S12", mc.mode, "one cluster: the expect=1 node joins the live cluster (joining always wins)")
}

// S13: the cluster lost two servers; two new ones (fresh, new addresses)
// start with the one old server, all with expect 3.
func testNewPairOldServer(t *testing.T, mc *mcluster) {
	c, leader := mc.formed(3)
	cid := leader.clusterID()
	for _, n := range c {
		n.Kill()
	}
	old := c[0]
	a, b := mc.member("new2"), mc.member("new3")
	set := Cluster{old, a, b}
	for _, n := range (Cluster{a, b}) {
		mc.setArgs(n, 3, mc.advs(set...))
	}
	mc.publish(set...)
	old.Start()
	a.Start()
	b.Start()
	for _, n := range (Cluster{a, b}) {
		waitFor(t, 30*time.Second, n.nodeID()+" waits for the old server's cluster", func() bool {
			return strings.Contains(bootStatus(n, "last_error"), "already belongs to a cluster")
		})
	}
	for _, n := range set {
		if n.leaderID() != "" {
			t.Fatalf("%s has a leader: the new pair formed a cluster", n.nodeID())
		}
	}
	if a.clusterID() != "" || b.clusterID() != "" || old.clusterID() != cid {
		t.Fatalf("cluster IDs: old %q (was %q), new %q %q", old.clusterID(), cid, a.clusterID(), b.clusterID())
	}
	if strings.Contains(old.out.String(), "bootstrap") {
		t.Fatalf("the old server bootstrapped again:\n%s", old.out.String())
	}
	matrix(t, "S13", mc.mode, `refused: the new pair waits to join the old server's cluster ("already belongs to a cluster"); no new cluster, no rollback`)
}

// S15 and S18: every node stopped (SIGTERM), then all restarted; every
// node killed, then all restarted.
func testRestartAll(t *testing.T, mc *mcluster) {
	c, leader := mc.formed(3)
	cid := leader.clusterID()
	for _, n := range c {
		n.Stop()
	}
	restartAll(c)
	leader = c.waitOneCluster(t, 30*time.Second)
	if leader.clusterID() != cid || leader.count("t", "linearizable") != 1 {
		t.Fatalf("after a graceful restart of all: cluster %s (was %s)", leader.clusterID(), cid)
	}
	if s, b := leader.Execute("", `["INSERT INTO t VALUES(2)"]`); s != 200 || strings.Contains(b, "error") {
		t.Fatalf("write: %d %s", s, b)
	}
	matrix(t, "S15", mc.mode, "one cluster with its data after SIGTERM of every node and a restart")
	for _, n := range c {
		n.Kill()
	}
	restartAll(c)
	leader = c.waitOneCluster(t, 30*time.Second)
	if leader.clusterID() != cid || leader.count("t", "linearizable") != 2 {
		t.Fatalf("after kill -9 of all: cluster %s (was %s)", leader.clusterID(), cid)
	}
	matrix(t, "S18", mc.mode, "one cluster with its data after kill -9 of every node and a quick restart")
}

// S19: SRV records whose targets do not resolve yet.
func testSRVTargetsLate(t *testing.T, mc *mcluster) {
	c := mc.form(3)
	// Only the first target resolves.
	for _, n := range c[1:] {
		_, p, _ := net.SplitHostPort(mc.adv(n))
		mc.dns.SetA("p" + p + "." + mc.name) // known name, no address
	}
	c.startAll()
	waitFor(t, 30*time.Second, "waiting with 1 of 3", func() bool {
		return strings.Contains(bootStatus(c[0], "phase"), "1 of 3")
	})
	for _, n := range c {
		if n.leaderID() != "" || n.clusterID() != "" {
			t.Fatalf("%s formed a cluster from a partial answer", n.nodeID())
		}
	}
	mc.publish(c...)
	c.waitOneCluster(t, 30*time.Second)
	matrix(t, "S19", mc.mode, "waits (1 of 3 addresses known), never forms from a partial answer; one cluster once all resolve")
}

// S20: a node whose own address is not in the answer.
func testNotInAnswer(t *testing.T, mc *mcluster) {
	c := mc.form(3)
	n4 := mc.member("node4")
	mc.setArgs(n4, 3, nil)
	all := append(Cluster{}, append(c, n4)...)
	all.startAll()
	all.waitOneCluster(t, 30*time.Second)
	if s, b := n4.Execute("", `["CREATE TABLE t (x)"]`); s != 200 || strings.Contains(b, "error") {
		t.Fatalf("write through node4: %d %s", s, b)
	}
	matrix(t, "S20", mc.mode, "no error: the unlisted node waits, then joins the cluster the listed ones form")
}

// S23: a one-way join graph. A node known to only one member joins; and
// nodes given different lists are refused with a reason.
func testOneWayJoinGraph(t *testing.T, mc *mcluster) {
	c, leader := mc.formed(3)
	f := c.followers(leader)[0]
	n4 := mc.member("node4")
	n4.Args = []string{"-node-id", "node4", "-raft-adv-addr", mc.adv(n4), "-join", mc.adv(f)}
	n4.Start()
	append(c, n4).waitOneCluster(t, 30*time.Second)

	// Three fresh nodes, expect 3, each listing a different set.
	d := Cluster{mc.member("x1"), mc.member("x2"), mc.member("x3")}
	stranger := mc.member("x4") // never started
	mc.setArgs(d[0], 3, mc.advs(d[0], d[1], d[2]))
	mc.setArgs(d[1], 3, mc.advs(d[0], d[1], d[2]))
	mc.setArgs(d[2], 3, mc.advs(d[1], d[2], stranger))
	d.startAll()
	waitFor(t, 30*time.Second, "list mismatch reported", func() bool {
		return strings.Contains(bootStatus(d[0], "last_error"), "join list mismatch") ||
			strings.Contains(bootStatus(d[1], "last_error"), "join list mismatch")
	})
	for _, n := range d {
		if n.leaderID() != "" {
			t.Fatalf("%s formed a cluster from disagreeing lists", n.nodeID())
		}
	}
	matrix(t, "S23", "join", `one cluster when a node is known to one member only; disagreeing lists refused with a reason ("join list mismatch")`)
}

// S25: the first DNS lookups fail (SERVFAIL).
func testFirstLookupFails(t *testing.T, mc *mcluster) {
	c := mc.form(3)
	mc.dns.SetServfail(true)
	c.startAll()
	waitFor(t, 30*time.Second, "resolving phase with the error", func() bool {
		return bootStatus(c[0], "phase") == "resolving" && bootStatus(c[0], "last_error") != ""
	})
	mc.dns.SetServfail(false)
	c.waitOneCluster(t, 30*time.Second)
	matrix(t, "S25", mc.mode, "waits (phase resolving, the error in /status), one cluster as soon as DNS answers")
}

// (d) in DNS modes: five addresses, -bootstrap-expect 3.
func testAnswerLongerThanExpect(t *testing.T, mc *mcluster) {
	c := mc.form(5)
	for _, n := range c {
		mc.setArgs(n, 3, nil)
	}
	c.startAll()
	leader := c.waitOneCluster(t, 60*time.Second)
	waitFor(t, 30*time.Second, "five members", func() bool { return len(members(leader)) == 5 })
	matrix(t, "(d)", mc.mode, "one cluster of five, never two")
}

// (b): a leader paused long enough to be deposed, resumed while it can
// still reach the store, never takes the leader key back.
func testDeposedLeaderKey(t *testing.T, mc *mcluster) {
	srv := mc.env.kv(t, mc.mode)
	holder := kvHolder(t, mc.mode, srv, mc.name)
	c, leader := mc.formed(3)
	waitFor(t, 20*time.Second, "key names the leader", func() bool { return holder() == leader.nodeID() })
	leader.cmd.Process.Signal(syscall.SIGSTOP)
	paused := time.Now()
	t.Cleanup(func() { leader.cmd.Process.Signal(syscall.SIGCONT) })
	rest := Cluster(c.followers(leader))
	newLeader := rest.waitOneCluster(t, 20*time.Second)
	waitFor(t, 20*time.Second, "new leader takes the key", func() bool { return holder() == newLeader.nodeID() })
	// Keep it paused past its 2 s reporting interval, so that it reports
	// (and would overwrite) as soon as it runs again.
	time.Sleep(time.Until(paused.Add(2500 * time.Millisecond)))
	leader.cmd.Process.Signal(syscall.SIGCONT)
	end := time.Now().Add(3 * time.Second)
	for time.Now().Before(end) {
		if h := holder(); h != newLeader.nodeID() {
			t.Fatalf("leader key names %q after the old leader resumed, want %s", h, newLeader.nodeID())
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.waitOneCluster(t, 20*time.Second)
	matrix(t, "(b)", mc.mode, "the resumed deposed leader never overwrites the key (compare-and-set, term check)")
}

// kvHolder returns a function reading the ID in the leader key.
func kvHolder(t *testing.T, mode string, srv *kvServer, key string) func() string {
	t.Helper()
	parse := func(b []byte) string {
		var r struct{ ID string }
		json.Unmarshal(b, &r)
		return r.ID
	}
	if mode == "etcd-kv" {
		cli := srv.EtcdClient(EtcdOptions{}, "", "")
		return func() string {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			r, err := cli.Get(ctx, "/"+key+"/leader")
			if err != nil || len(r.Kvs) == 0 {
				return ""
			}
			return parse(r.Kvs[0].Value)
		}
	}
	cli := srv.ConsulClient("")
	return func() string {
		p, _, err := cli.KV().Get(key+"/leader", nil)
		if err != nil || p == nil {
			return ""
		}
		return parse(p.Value)
	}
}

// K1: a bootstrap-expect member is killed after bootstrapping, before any
// leader exists (Raft connections are refused meanwhile, so no election
// can finish), then restarted.
func testKilledAfterBootstrap(t *testing.T, mc *mcluster) {
	hold := func(c Cluster) {
		for _, n := range c {
			mc.Gates[n].set(gateNoRaft)
		}
		c.startAll()
		for _, n := range c {
			waitFor(t, 30*time.Second, n.nodeID()+" bootstrapped", func() bool {
				return bootStatus(n, "phase") == "joining" // after a successful bootstrap
			})
		}
		for _, n := range c {
			if n.leaderID() != "" {
				t.Fatalf("%s has a leader although Raft is blocked", n.nodeID())
			}
		}
	}
	release := func(c Cluster) {
		for _, n := range c {
			mc.Gates[n].set(gateOpen)
		}
	}
	// One member killed and restarted; the others bootstrapped too.
	c := mc.form(3)
	hold(c)
	c[0].Kill()
	c[0].Start()
	release(c)
	leader := c.waitOneCluster(t, 30*time.Second)
	if s, b := leader.Execute("", `["CREATE TABLE t (x)"]`); s != 200 || strings.Contains(b, "error") {
		t.Fatalf("write: %d %s", s, b)
	}
	// Only one member had bootstrapped: all are killed, the other two lose
	// their state (as if they had died before bootstrapping), all restart.
	d := mc.form(3)
	hold(d)
	for _, n := range d {
		n.Kill()
	}
	d[1].Dir, d[2].Dir = t.TempDir(), t.TempDir()
	restartAll(d)
	release(d)
	leader = d.waitOneCluster(t, 30*time.Second)
	if s, b := leader.Execute("", `["CREATE TABLE t (x)"]`); s != 200 || strings.Contains(b, "error") {
		t.Fatalf("write: %d %s", s, b)
	}
	matrix(t, "K1", mc.mode, "one cluster, whether the others had bootstrapped or not")
}

// Refusals at start, per mode, for the scenarios the other tests cover
// only in some modes.
func testDiscoRefusals(t *testing.T) {
	dir := t.TempDir()
	ports := func() []string { return []string{"-raft-addr", freePort(t), "-http-addr", freePort(t)} }
	for _, tc := range []struct {
		scenario, mode, outcome string
		args                    []string
		code                    int
		want                    string
	}{
		{"S6", "consul-kv", "warning at start (rqlite accepts it): would publish a loopback address", append(ports(), "-disco-mode", "consul-kv", "-bootstrap-expect-timeout", "2s",
			"-disco-config", fmt.Sprintf(`{"address":%q}`, freePort(t)), t.TempDir()), 3, "would publish 127.0.0.1:"},
		{"S8", "dns-srv", "clear error (exit 1): quoted twice", []string{"-disco-mode", "dns-srv", "-bootstrap-expect", "3", "-disco-config", `'{"name":"x"}'`, dir}, 1, "quoted twice"},
		{"S8", "consul-kv", "clear error (exit 1): quoted twice", append(ports(), "-disco-mode", "consul-kv", "-disco-allow-loopback", "-disco-config", `'{"address":"x:8500"}'`, dir), 1, "quoted twice"},
		{"S8", "etcd-kv", "clear error (exit 1): quoted twice", append(ports(), "-disco-mode", "etcd-kv", "-disco-allow-loopback", "-disco-config", `'{"endpoints":["http://x:2379"]}'`, dir), 1, "quoted twice"},
		{"S10", "consul-kv", "refused at start (exit 1): -bootstrap-expect not allowed with a KV mode", []string{"-disco-mode", "consul-kv", "-bootstrap-expect", "3", dir}, 1, "-bootstrap-expect cannot be used with -disco-mode consul-kv"},
		{"S11", "dns-srv", "refused at start (exit 1): DNS modes need -bootstrap-expect", []string{"-disco-mode", "dns-srv", dir}, 1, "-disco-mode dns-srv needs -bootstrap-expect"},
		{"S17", "dns-srv", "refused at start (exit 1): DNS modes need -bootstrap-expect", []string{"-disco-mode", "dns-srv", dir}, 1, "-disco-mode dns-srv needs -bootstrap-expect"},
		{"S16", "dns-srv", "clear error (exit 1): unknown config key named", append(ports(), "-disco-mode", "dns-srv", "-bootstrap-expect", "3", "-disco-config", `{"name":"x","srvice":"raft"}`, dir), 1, `unknown field "srvice"`},
		{"(c)", "consul-kv", "exit 3 at -bootstrap-expect-timeout (boot timeout, last problem named)", append(ports(), "-disco-mode", "consul-kv", "-disco-allow-loopback", "-bootstrap-expect-timeout", "2s",
			"-disco-config", fmt.Sprintf(`{"address":%q}`, freePort(t)), t.TempDir()), 3, "boot timeout"},
	} {
		t.Run(tc.scenario+"/"+tc.mode, func(t *testing.T) {
			code, out := runBinary(t, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Fatalf("%v: exit %d, want %d with %q; output:\n%s", tc.args, code, tc.code, tc.want, out)
			}
			matrix(t, tc.scenario, tc.mode, tc.outcome)
		})
	}
}
