//go:build system

package system_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// kvMode describes one key-value discovery mode for the shared tests.
type kvMode struct {
	name   string
	start  func(testing.TB) *kvServer
	health string
	config func(addr string) string
}

var kvModes = []kvMode{
	{"etcd-kv", startEtcd, "/health", func(a string) string { return fmt.Sprintf(`{"endpoints":["http://%s"]}`, a) }},
	{"consul-kv", startConsul, "/v1/status/leader", func(a string) string { return fmt.Sprintf(`{"address":%q}`, a) }},
}

func kvArgs(m kvMode, addr, key string, extra ...string) []string {
	return append([]string{"-disco-mode", m.name, "-disco-key", key, "-disco-config", m.config(addr),
		"-disco-allow-loopback", "-bootstrap-expect-timeout", "30s"}, extra...)
}

func randomKey() string { return fmt.Sprintf("rqlited-test-%d", rand.Int64()) }

func TestDiscoKV(t *testing.T) {
	for _, m := range kvModes {
		t.Run(m.name, func(t *testing.T) {
			srv := m.start(t)
			reps := 10
			matrix(t, "S14", m.name, "one cluster with a leader, every one of 10 starts")
			matrix(t, "S12", m.name, "one cluster: a new node joins the live cluster through the key, never claims it")
			if testing.Short() {
				reps = 3
			}
			// Three nodes started at the same instant, with identical arguments:
			// exactly one cluster, every time.
			var last Cluster
			var key string
			for rep := 0; rep < reps; rep++ {
				key = randomKey()
				var c Cluster
				for i := 0; i < 3; i++ {
					c = append(c, newNode(t, "", kvArgs(m, srv.Addr, key)...))
				}
				start := time.Now()
				c.startAll()
				c.waitOneCluster(t, 20*time.Second)
				if s, b := c[1].Execute("", `["CREATE TABLE t (x)", "INSERT INTO t VALUES(1)"]`); s != 200 || strings.Contains(b, "error") {
					t.Fatalf("write: %d %s", s, b)
				}
				t.Logf("rep %d formed in %v", rep, time.Since(start))
				if rep < reps-1 {
					for _, n := range c {
						n.Kill()
					}
				}
				last = c
			}
			c := last
			leader := c.waitOneCluster(t, 10*time.Second)
			// The leader reports the key as it last read it, which may be
			// just before its own write: poll.
			waitFor(t, 10*time.Second, "the leader holds the leader key", func() bool {
				h, _ := leader.status("disco.leader_key.holder").(string)
				return h == leader.nodeID()
			})

			// Kill the leader: the new leader rewrites the key and a new node
			// joins through it.
			leader.Kill()
			survivors := Cluster(c.followers(leader))
			newLeader := survivors.waitOneCluster(t, 20*time.Second)
			waitFor(t, 20*time.Second, "new leader rewrote the key", func() bool {
				h, _ := newLeader.status("disco.leader_key.holder").(string)
				return h == newLeader.nodeID()
			})
			late := newNode(t, "", kvArgs(m, srv.Addr, key)...)
			late.Start()
			append(survivors, late).waitOneCluster(t, 20*time.Second)
			if n := late.count("t", "linearizable"); n != 1 {
				t.Fatalf("late joiner sees %d rows", n)
			}

			// A second cluster on another key of the same store stays separate.
			other := Cluster{newNode(t, "", kvArgs(m, srv.Addr, randomKey())...)}
			other.startAll()
			otherLeader := other.waitOneCluster(t, 20*time.Second)
			if otherLeader.clusterID() == newLeader.clusterID() {
				t.Fatal("a cluster on another -disco-key joined the first one")
			}

			// The store goes down after formation: the cluster keeps serving,
			// and the leader registers again when the store returns.
			srv.Stop()
			if s, b := newLeader.Execute("", `["INSERT INTO t VALUES(2)"]`); s != 200 || strings.Contains(b, "error") {
				t.Fatalf("write during store outage: %d %s", s, b)
			}
			srv.Restart(m.health)
			waitFor(t, 30*time.Second, "leader registers after the outage", func() bool {
				p, _ := newLeader.status("disco.phase").(string)
				return p == "leader"
			})
		})
	}
}

func TestDiscoKVStoreDownAtBoot(t *testing.T) {
	for _, m := range kvModes {
		t.Run(m.name, func(t *testing.T) {
			srv := m.start(t)
			srv.Stop()
			matrix(t, "S25", m.name, "waits for the store (phase and error in /status), one cluster once it answers")
			key := randomKey()
			var c Cluster
			for i := 0; i < 3; i++ {
				c = append(c, newNode(t, "", kvArgs(m, srv.Addr, key)...))
			}
			c.startAll()
			waitFor(t, 20*time.Second, "status explains the wait", func() bool {
				p, _ := c[0].status("disco.phase").(string)
				e, _ := c[0].status("disco.last_error").(string)
				return p == "waiting for the key-value store" && e != ""
			})
			srv.Restart(m.health)
			c.waitOneCluster(t, 30*time.Second)
		})
	}
}

func TestDiscoKVStaleKeyFromDeadCluster(t *testing.T) {
	for _, m := range kvModes {
		t.Run(m.name, func(t *testing.T) {
			srv := m.start(t)
			key := randomKey()
			matrix(t, "(a)", m.name, "one new cluster: the dead cluster's key expires or is released and is taken over")
			old := Cluster{newNode(t, "", kvArgs(m, srv.Addr, key)...)}
			old.startAll()
			oldLeader := old.waitOneCluster(t, 20*time.Second)
			oldID := oldLeader.clusterID()
			oldLeader.Kill() // the whole cluster is gone; its key lingers until its lease or session runs out
			var c Cluster
			for i := 0; i < 3; i++ {
				c = append(c, newNode(t, "", kvArgs(m, srv.Addr, key, "-bootstrap-expect-timeout", "60s")...))
			}
			c.startAll()
			leader := c.waitOneCluster(t, 60*time.Second)
			if leader.clusterID() == oldID {
				t.Fatal("new nodes joined the dead cluster's identity")
			}
		})
	}
}

func TestDiscoKVBadInput(t *testing.T) {
	matrix(t, "S6", "etcd-kv", "warning at start (rqlite accepts it): would publish localhost")
	matrix(t, "S10", "etcd-kv", "refused at start (exit 1): -bootstrap-expect not allowed with a KV mode")
	matrix(t, "S16", "etcd-kv", "clear error (exit 1): bad -disco-config named")
	matrix(t, "S16", "consul-kv", "clear error (exit 1): a scheme in the address, with a hint")
	matrix(t, "(c)", "etcd-kv", "exit 3 at -bootstrap-expect-timeout (boot timeout)")
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-disco-mode", "consul-kv", "-disco-config", `{"address":"http://consul:8500"}`, "-raft-adv-addr", "10.0.0.1:4002", "-http-adv-addr", "10.0.0.1:4001", dir}, "must be host:port: put the scheme in"},
		{[]string{"-disco-mode", "etcd-kv", "-bootstrap-expect", "3", dir}, "-bootstrap-expect cannot be used with -disco-mode etcd-kv"},
		{[]string{"-disco-mode", "etcd-kv", "-disco-config", `{"endpoints":"x"}`, "-disco-allow-loopback", "-raft-addr", freePort(t), "-http-addr", freePort(t), dir}, "-disco-config"},
	} {
		code, out := runBinary(t, tc.args...)
		if code != 1 || !strings.Contains(out, tc.want) {
			t.Errorf("%v: exit %d, want 1 with %q; output:\n%s", tc.args, code, tc.want, out)
		}
	}
	// A loopback advertised address in a KV mode works on one host (every
	// single-host test and laptop does this), so rqlite accepts it: a
	// warning naming it, then the node runs (here, with no etcd to reach,
	// until the boot deadline).
	code, out := runBinary(t, "-disco-mode", "etcd-kv", "-raft-addr", freePort(t), "-http-addr", freePort(t),
		"-disco-config", fmt.Sprintf(`{"endpoints":["http://%s"]}`, freePort(t)), "-bootstrap-expect-timeout", "2s", t.TempDir())
	if code != 3 || !strings.Contains(out, "would publish 127.0.0.1:") {
		t.Errorf("loopback advertised address in etcd-kv mode: exit %d, want 3 after a warning; output:\n%s", code, out)
	}
	// The store never answers: the boot deadline applies, with its own exit status.
	code, out = runBinary(t, "-disco-mode", "etcd-kv", "-disco-config", fmt.Sprintf(`{"endpoints":["http://%s"]}`, freePort(t)),
		"-disco-allow-loopback", "-bootstrap-expect-timeout", "2s", "-raft-addr", freePort(t), "-http-addr", freePort(t), t.TempDir())
	if code != 3 || !strings.Contains(out, "boot timeout") {
		t.Errorf("unreachable etcd: exit %d\n%s", code, out)
	}
}
