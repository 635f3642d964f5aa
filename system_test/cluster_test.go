//go:build system

package system_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestJoinBothAddressForms(t *testing.T) {
	matrix(t, "S21", "join", "one cluster: a node restarted with the same -join is back, with one entry")
	n1 := startNode(t, "-node-id", "n1")
	n2 := newNode(t, "", "-node-id", "n2", "-join", n1.RaftAddr, "-join-interval", "100ms")
	n2.Start()
	n3 := newNode(t, "", "-node-id", "n3", "-join", "http://"+n1.HTTPAddr, "-join-interval", "100ms")
	n3.Start()
	c := Cluster{n1, n2, n3}
	leader := c.waitOneCluster(t, 20*time.Second)
	if leader != n1 {
		t.Fatalf("leader is %s, want n1", leader.nodeID())
	}
	s, b := n1.Do("GET", "/nodes?ver=2", "", nil)
	var nodes struct{ Nodes []map[string]any }
	if err := json.Unmarshal([]byte(b), &nodes); err != nil || s != 200 || len(nodes.Nodes) != 3 {
		t.Fatalf("nodes: %d %s (%v)", s, b, err)
	}
	for _, nd := range nodes.Nodes {
		if nd["reachable"] != true || !strings.HasPrefix(nd["api_addr"].(string), "http://127.0.0.1:") {
			t.Fatalf("node entry: %v", nd)
		}
	}

	// A write sent to a follower is forwarded, and says who served it.
	resp, body, err := n3.send(http.DefaultClient, "", "", "POST", "/db/execute", "application/json", []byte(`["CREATE TABLE t (x)", "INSERT INTO t VALUES(1)"]`))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || body != `{"results":[{},{"last_insert_id":1,"rows_affected":1}]}` || resp.Header.Get("X-RQLITE-SERVED-BY") != n1.RaftAddr {
		t.Fatalf("forwarded write: %d %s served-by=%q", resp.StatusCode, body, resp.Header.Get("X-RQLITE-SERVED-BY"))
	}
	// Linearizable and weak reads through a follower see it at once.
	for _, level := range []string{"linearizable", "weak", "strong"} {
		if c := n2.count("t", level); c != 1 {
			t.Fatalf("%s read through follower: %d", level, c)
		}
	}
	// A follower serves linearizable reads itself after a read-index call
	// to the leader: every write acknowledged by the leader is visible in
	// the very next linearizable read on the follower.
	before, _ := n2.status("store.follower_reads.served_locally").(float64)
	byAsker, _ := n1.status("store.read_confirmations.asker").(float64)
	byRound, _ := n1.status("store.read_confirmations.heartbeat_round").(float64)
	if s, b := n1.Execute("", `["CREATE TABLE lr (x)"]`); s != 200 || strings.Contains(b, "error") {
		t.Fatalf("create lr: %d %s", s, b)
	}
	for i := 1; i <= 39; i++ {
		if s, b := n1.Execute("", fmt.Sprintf(`["INSERT INTO lr VALUES(%d)"]`, i)); s != 200 || strings.Contains(b, "error") {
			t.Fatalf("write %d: %d %s", i, s, b)
		}
		s, b := n2.Query("SELECT MAX(x) FROM lr", "&level=linearizable")
		if s != 200 || !strings.Contains(b, fmt.Sprintf(`"values":[[%d]]`, i)) {
			t.Fatalf("linearizable read on the follower after write %d: %d %s", i, s, b)
		}
	}
	if after, _ := n2.status("store.follower_reads.served_locally").(float64); after < before+39 {
		t.Fatalf("follower served %v of 39 linearizable reads locally (status %v)", after-before, n2.status("store.follower_reads"))
	}
	// With three voters, the leader and the asking follower are a
	// majority: the follower's term confirms each read index, and no
	// heartbeat round is needed.
	nowAsker, _ := n1.status("store.read_confirmations.asker").(float64)
	nowRound, _ := n1.status("store.read_confirmations.heartbeat_round").(float64)
	if nowAsker < byAsker+39 || nowRound != byRound {
		t.Fatalf("leader confirmed %v read indexes by the asker's term (want >= 39) and %v by heartbeat rounds (want 0): %v",
			nowAsker-byAsker, nowRound-byRound, n1.status("store.read_confirmations"))
	}
	// level=none is served locally and converges.
	waitFor(t, 10*time.Second, "replication to n3", func() bool {
		s, b := n3.Query("SELECT COUNT(*) FROM t", "&level=none")
		return s == 200 && strings.Contains(b, `"values":[[1]]`)
	})

	// ?redirect answers 301 with the leader's URL.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, _, err = n2.send(noRedirect, "", "", "GET", "/db/query?q=SELECT+1&redirect", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 301 || resp.Header.Get("Location") != "http://"+n1.HTTPAddr+"/db/query?q=SELECT+1&redirect" {
		t.Fatalf("redirect: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	// Joining is idempotent: restarting n2 with the same arguments keeps
	// one entry for it.
	n2.Stop()
	n2.Restart()
	c.waitOneCluster(t, 20*time.Second)
	s, b = n1.Do("GET", "/nodes?ver=2", "", nil)
	var after struct{ Nodes []map[string]any }
	if err := json.Unmarshal([]byte(b), &after); err != nil || s != 200 || len(after.Nodes) != 3 {
		t.Fatalf("after rejoin: %d %s (%v)", s, b, err)
	}
}

func TestBootstrapExpectOneClusterRepeated(t *testing.T) {
	matrix(t, "S14", "join", "one cluster with a leader, every one of 20 starts")
	reps := 20
	if testing.Short() {
		reps = 5
	}
	for rep := 0; rep < reps; rep++ {
		c := newBootstrapCluster(t, 3)
		c.startAll()
		leader := c.waitOneCluster(t, 20*time.Second)
		s, b := c[2].Execute("", `["CREATE TABLE t (x)"]`)
		mustJSON(t, s, b, `{"results":[{}]}`)
		_ = leader
		for _, n := range c {
			n.Kill()
		}
	}
}

func TestBootstrapLateJoinerAndReadReplica(t *testing.T) {
	c := newBootstrapCluster(t, 3)
	c.startAll()
	leader := c.waitOneCluster(t, 20*time.Second)
	leader.Execute("", `["CREATE TABLE t (x)", "INSERT INTO t VALUES(1)"]`)

	// A fourth node with the same kind of arguments joins the cluster.
	join := c.raftAddrs()
	n4 := newNode(t, "", "-node-id", "node4", "-bootstrap-expect", "3", "-join", join)
	n4.Start()
	// A read replica joins too.
	rr := newNode(t, "", "-node-id", "replica", "-raft-non-voter", "-join", join)
	rr.Start()
	all := append(Cluster{}, append(c, n4, rr)...)
	all.waitOneCluster(t, 20*time.Second)
	waitFor(t, 10*time.Second, "replica has the data", func() bool {
		s, b := rr.Query("SELECT COUNT(*) FROM t", "&level=auto")
		return s == 200 && strings.Contains(b, `"values":[[1]]`)
	})
	s, b := leader.Do("GET", "/nodes?nonvoters&ver=2", "", nil)
	if s != 200 || !strings.Contains(b, `"id":"replica"`) || !strings.Contains(b, `"id":"node4"`) {
		t.Fatalf("nodes: %s", b)
	}
	if s, b := leader.Do("GET", "/nodes?ver=2", "", nil); strings.Contains(b, `"id":"replica"`) || s != 200 {
		t.Fatalf("non-voter listed without ?nonvoters: %s", b)
	}
	// Writes through the replica are forwarded.
	if s, b := rr.Execute("", `["INSERT INTO t VALUES(2)"]`); s != 200 || !strings.Contains(b, `"rows_affected":1`) {
		t.Fatalf("write via replica: %d %s", s, b)
	}
	// With four voters, a voting follower and the leader are no majority,
	// and a read replica does not vote: their linearizable reads need the
	// leader's heartbeat round, and still see the write.
	byAsker, _ := leader.status("store.read_confirmations.asker").(float64)
	byRound, _ := leader.status("store.read_confirmations.heartbeat_round").(float64)
	for _, n := range (Cluster{n4, rr}) {
		if c := n.count("t", "linearizable"); c != 2 {
			t.Fatalf("linearizable read on %s after the write: %d rows", n.nodeID(), c)
		}
	}
	nowAsker, _ := leader.status("store.read_confirmations.asker").(float64)
	nowRound, _ := leader.status("store.read_confirmations.heartbeat_round").(float64)
	if nowAsker != byAsker || nowRound < byRound+2 {
		t.Fatalf("with four voters the leader confirmed %v read indexes by the asker's term (want 0) and %v by heartbeat rounds (want >= 2): %v",
			nowAsker-byAsker, nowRound-byRound, leader.status("store.read_confirmations"))
	}
	// The read replica never becomes leader, even when the leader goes.
	leader.Kill()
	rest := Cluster{}
	for _, n := range all {
		if n != leader {
			rest = append(rest, n)
		}
	}
	newLeader := rest.waitOneCluster(t, 20*time.Second)
	if newLeader == rr {
		t.Fatal("read replica became leader")
	}
	if c := rr.count("t", "linearizable"); c != 2 {
		t.Fatalf("after failover: %d rows", c)
	}
}

func TestKillLeaderUnderLoad(t *testing.T) {
	c := newBootstrapCluster(t, 3)
	c.startAll()
	leader := c.waitOneCluster(t, 20*time.Second)
	leader.Execute("", `["CREATE TABLE t (id INTEGER PRIMARY KEY)"]`)
	var acked sync.Map
	var next atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				target := c[i%len(c)]
				if target == leader && i > 0 {
					target = c.followers(leader)[i%2]
				}
				if id := next.Add(1); insertAcked(client, target, id) {
					acked.Store(id, true)
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond) // let writes flow before the failure
	killedAt := time.Now()
	leader.Kill()
	survivors := Cluster(c.followers(leader))
	newLeader := survivors.waitOneCluster(t, 20*time.Second)
	t.Logf("new leader %s after %v", newLeader.nodeID(), time.Since(killedAt))
	time.Sleep(500 * time.Millisecond) // and writes after it
	close(stop)
	wg.Wait()
	n := 0
	acked.Range(func(k, _ any) bool { n++; return true })
	if n == 0 {
		t.Fatal("no write acknowledged")
	}
	for _, s := range survivors {
		got := map[int64]bool{}
		for _, id := range queryInts(t, s, "SELECT id FROM t", "none") {
			got[id] = true
		}
		waitFor(t, 10*time.Second, "survivor converges", func() bool {
			got = map[int64]bool{}
			for _, id := range queryInts(t, s, "SELECT id FROM t", "none") {
				got[id] = true
			}
			missing := 0
			acked.Range(func(k, _ any) bool {
				if !got[k.(int64)] {
					missing++
				}
				return true
			})
			return missing == 0
		})
	}
	t.Logf("%d writes acknowledged, all present on both survivors", n)
}

func TestRemoveAndRestartAll(t *testing.T) {
	matrix(t, "S15", "join", "one cluster, same cluster ID and data, after SIGTERM of all members and a restart")
	c := newBootstrapCluster(t, 3)
	c.startAll()
	leader := c.waitOneCluster(t, 20*time.Second)
	leader.Execute("", `["CREATE TABLE t (x)", "INSERT INTO t VALUES(1)"]`)
	f := c.followers(leader)

	// Remove through a follower (forwarded to the leader).
	s, b := f[0].Do("DELETE", "/remove", "application/json", []byte(`{"id":"nope"}`))
	if s != 404 {
		t.Fatalf("remove unknown: %d %s", s, b)
	}
	s, b = f[0].Do("DELETE", "/remove", "application/json", []byte(`{"id":"x","extra":1}`))
	if s != 400 {
		t.Fatalf("remove with extra key: %d %s", s, b)
	}
	s, b = f[0].Do("DELETE", "/remove", "application/json", []byte(fmt.Sprintf(`{"id":%q}`, f[1].nodeID())))
	if s != 200 {
		t.Fatalf("remove: %d %s", s, b)
	}
	waitFor(t, 10*time.Second, "two members", func() bool {
		_, b := leader.Do("GET", "/nodes?ver=2&nonvoters", "", nil)
		return strings.Count(b, `"id":`) == 2
	})
	f[1].Kill()

	// Restart the remaining two together: same data, same cluster.
	remaining := Cluster{leader, f[0]}
	cid := leader.clusterID()
	for _, n := range remaining {
		n.Stop()
	}
	for _, n := range remaining {
		n.Start()
	}
	newLeader := remaining.waitOneCluster(t, 20*time.Second)
	if got := newLeader.clusterID(); got != cid {
		t.Fatalf("cluster ID changed across restart: %s -> %s", cid, got)
	}
	for _, n := range remaining {
		if c := n.count("t", "linearizable"); c != 1 {
			t.Fatalf("after restart: %d rows via %s", c, n.nodeID())
		}
	}
}

func TestSameIDNewAddress(t *testing.T) {
	matrix(t, "S4", "join", "one cluster: the leader replaces the old address")
	c := newBootstrapCluster(t, 3)
	c.startAll()
	leader := c.waitOneCluster(t, 20*time.Second)
	leader.Execute("", `["CREATE TABLE t (x)", "INSERT INTO t VALUES(1)"]`)
	f := c.followers(leader)[0]
	f.Stop()
	// Same data directory and ID, new Raft and HTTP addresses.
	f.RaftAddr, f.HTTPAddr = freePort(t), freePort(t)
	f.Start()
	c.waitOneCluster(t, 30*time.Second)
	waitFor(t, 20*time.Second, "leader lists the new address", func() bool {
		_, b := leader.Do("GET", "/nodes?ver=2", "", nil)
		return strings.Contains(b, f.RaftAddr) && strings.Count(b, `"id":`) == 3
	})
	leader.Execute("", `["INSERT INTO t VALUES(2)"]`)
	waitFor(t, 10*time.Second, "moved node replicates", func() bool {
		s, b := f.Query("SELECT COUNT(*) FROM t", "&level=none")
		return s == 200 && strings.Contains(b, `"values":[[2]]`)
	})
}

func TestBootstrapExpectMismatchRefused(t *testing.T) {
	matrix(t, "S10", "join", "refused with a reason (-bootstrap-expect mismatch), exit 3 at the deadline")
	c := newBootstrapCluster(t, 3, "-bootstrap-expect-timeout", "4s")
	// The third node disagrees about the cluster size.
	for i, a := range c[2].Args {
		if a == "-bootstrap-expect" {
			c[2].Args[i+1] = "2"
		}
	}
	c.startAll()
	waitFor(t, 10*time.Second, "mismatch reported in /status", func() bool {
		v, _ := c[0].status("bootstrap.last_error").(string)
		return strings.Contains(v, "-bootstrap-expect mismatch")
	})
	for _, n := range c {
		select {
		case <-n.done:
		case <-time.After(20 * time.Second):
			t.Fatal("node did not give up at -bootstrap-expect-timeout")
		}
		code := -1
		if n.exitErr != nil {
			code = n.cmd.ProcessState.ExitCode()
		}
		if code != 3 || !strings.Contains(n.out.String(), "boot timeout") {
			t.Fatalf("node %s: exit %d, output:\n%s", n.nodeID(), code, n.out.String())
		}
	}
}

func TestClusterBadInput(t *testing.T) {
	matrix(t, "S16", "join", "clear error (exit 1): a bad -join entry is named")
	matrix(t, "S17", "join", "clear error (exit 1, failed to join cluster): a node with -join never bootstraps alone")
	matrix(t, "S24", "join", "waits while its own name does not resolve, exit 3 at the deadline naming it")
	dir := t.TempDir()
	self := freePort(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-raft-addr", self, "-http-addr", freePort(t), "-join", self, dir}, "cannot join itself"},
		{[]string{"-raft-addr", freePort(t), "-http-addr", freePort(t), "-raft-non-voter", t.TempDir()}, "cannot form a cluster on its own"},
		{[]string{"-raft-non-voter", "-bootstrap-expect", "3", "-join", "a:1,b:1,c:1", dir}, "-bootstrap-expect cannot be used with -raft-non-voter"},
		{[]string{"-join", "a:1,garbage", dir}, `-join address "garbage" must be host:port`},
		{[]string{"-bootstrap-expect", "3", dir}, "-bootstrap-expect needs -join"},
		{[]string{"-raft-addr", freePort(t), "-http-addr", freePort(t), "-join", freePort(t), "-join-attempts", "2", "-join-interval", "50ms", t.TempDir()}, "failed to join cluster"},
	} {
		code, out := runBinary(t, tc.args...)
		if code != 1 || !strings.Contains(out, tc.want) {
			t.Errorf("%v: exit %d, want 1 with %q; output:\n%s", tc.args, code, tc.want, out)
		}
	}
	// Fewer -join addresses than -bootstrap-expect can still work (the
	// other nodes' lists may name the rest), so rqlite accepts it: a
	// warning, then the node waits and gives up at the boot deadline.
	code, out := runBinary(t, "-raft-addr", freePort(t), "-http-addr", freePort(t), "-bootstrap-expect", "3",
		"-join", "a.invalid:1,b.invalid:1", "-bootstrap-expect-timeout", "2s", t.TempDir())
	if code != 3 || !strings.Contains(out, "-bootstrap-expect 3 with 2 addresses in -join") {
		t.Errorf("fewer -join addresses than -bootstrap-expect: exit %d\n%s", code, out)
	}
	// An advertised address that never resolves: the node waits, says why,
	// and gives up at the boot deadline.
	code, out = runBinary(t, "-raft-addr", freePort(t), "-http-addr", freePort(t), "-raft-adv-addr", "no-such-host.invalid:4002",
		"-bootstrap-expect", "3", "-join", "a.invalid:4002,b.invalid:4002,c.invalid:4002", "-bootstrap-expect-timeout", "2s", t.TempDir())
	if code != 3 || !strings.Contains(out, "does not resolve") {
		t.Errorf("unresolvable advertised address: exit %d\n%s", code, out)
	}
	// An HTTP port given where a Raft address belongs is named as such.
	n := startNode(t)
	code, out = runBinary(t, "-raft-addr", freePort(t), "-http-addr", freePort(t), "-join", n.HTTPAddr, t.TempDir())
	if code != 1 || !strings.Contains(out, "speaks HTTP") {
		t.Errorf("join to an HTTP port: exit %d\n%s", code, out)
	}
}

func TestJoinListLongerThanExpect(t *testing.T) {
	matrix(t, "(d)", "join", "one cluster of five, never two")
	// Five addresses, -bootstrap-expect 3, all five started at once: one
	// cluster of five, never two.
	var c Cluster
	for i := 0; i < 5; i++ {
		c = append(c, newNode(t, ""))
	}
	join := c.raftAddrs()
	for i, n := range c {
		n.Args = []string{"-node-id", fmt.Sprintf("node%d", i+1), "-bootstrap-expect", "3", "-join", join}
	}
	c.startAll()
	leader := c.waitOneCluster(t, 60*time.Second)
	waitFor(t, 30*time.Second, "five members", func() bool {
		_, b := leader.Do("GET", "/nodes?ver=2", "", nil)
		return strings.Count(b, `"id":`) == 5
	})
}

func TestFreshnessOnFollower(t *testing.T) {
	c := newBootstrapCluster(t, 3)
	c.startAll()
	leader := c.waitOneCluster(t, 20*time.Second)
	leader.Execute("", `["CREATE TABLE t (x)"]`)
	f := c.followers(leader)[0]
	waitFor(t, 10*time.Second, "table on follower", func() bool {
		s, b := f.Query("SELECT COUNT(*) FROM t", "&level=none")
		return s == 200 && !strings.Contains(b, "error")
	})
	// A bound no follower can meet: stale read.
	s, b := f.Query("SELECT COUNT(*) FROM t", "&level=none&freshness=1ns")
	mustJSON(t, s, b, `{"results":[],"error":"stale read"}`)
	// A generous bound is met.
	s, b = f.Query("SELECT COUNT(*) FROM t", "&level=none&freshness=10s&freshness_strict")
	mustJSON(t, s, b, `{"results":[{"columns":["COUNT(*)"],"types":["integer"],"values":[[0]]}]}`)
	// On the leader freshness does not apply.
	s, b = leader.Query("SELECT COUNT(*) FROM t", "&level=none&freshness=1ns")
	mustJSON(t, s, b, `{"results":[{"columns":["COUNT(*)"],"types":["integer"],"values":[[0]]}]}`)
}

// Nodes that bind all interfaces and advertise a specific address: the
// leader must be known by its advertised address, or followers could not
// forward to it (found by the Docker tests).
func TestBindAllInterfacesAdvertised(t *testing.T) {
	n1 := newNode(t, "")
	_, p1, _ := splitHostPort(n1.RaftAddr)
	n1.Args = []string{"-node-id", "n1", "-raft-addr", "0.0.0.0:" + p1, "-raft-adv-addr", n1.RaftAddr}
	n1.Start()
	n1.WaitReady(20 * time.Second)
	n2 := newNode(t, "", "-node-id", "n2", "-join", n1.RaftAddr)
	n2.Start()
	c := Cluster{n1, n2}
	c.waitOneCluster(t, 20*time.Second)
	if v, _ := n2.status("store.leader.addr").(string); v != n1.RaftAddr {
		t.Fatalf("follower knows the leader as %q, want %q", v, n1.RaftAddr)
	}
	if s, b := n2.Execute("", `["CREATE TABLE t (x)"]`); s != 200 || strings.Contains(b, "error") {
		t.Fatalf("forwarded write: %d %s", s, b)
	}
}
