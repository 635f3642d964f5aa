//go:build system

package system_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestStepdownAndShutdownTransfer(t *testing.T) {
	c := newBootstrapCluster(t, 3, "-raft-cluster-remove-shutdown")
	c.startAll()
	leader := c.waitOneCluster(t, 20*time.Second)
	f := c.followers(leader)

	// POST /leader with a target, sent to a follower (forwarded).
	s, b := f[0].Do("POST", "/leader?wait", "application/json", []byte(fmt.Sprintf(`{"id":%q}`, f[1].nodeID())))
	if s != 200 {
		t.Fatalf("stepdown: %d %s", s, b)
	}
	if got := c.waitOneCluster(t, 10*time.Second); got != f[1] {
		t.Fatalf("leader after targeted stepdown: %s, want %s", got.nodeID(), f[1].nodeID())
	}

	// SIGTERM of the leader hands leadership over and (with
	// -raft-cluster-remove-shutdown) takes the node out of the cluster.
	leader = f[1]
	leader.Stop()
	rest := c.followers(leader)
	newLeader := Cluster(rest).waitOneCluster(t, 10*time.Second)
	waitFor(t, 10*time.Second, "stopped node removed", func() bool {
		_, b := newLeader.Do("GET", "/nodes?ver=2", "", nil)
		return strings.Count(b, `"id":`) == 2 && !strings.Contains(b, leader.nodeID())
	})
	// With two voters left, writes still succeed.
	if s, b := newLeader.Execute("", `["CREATE TABLE t (x)"]`); s != 200 || strings.Contains(b, "error") {
		t.Fatalf("write after shrink: %d %s", s, b)
	}
}

func TestReapAndRemoveShutdown(t *testing.T) {
	c := newBootstrapCluster(t, 3, "-raft-reap-node-timeout", "1s", "-raft-remove-shutdown")
	c.startAll()
	leader := c.waitOneCluster(t, 20*time.Second)
	f := c.followers(leader)
	f[0].Kill()
	waitFor(t, 20*time.Second, "unreachable node reaped", func() bool {
		_, b := leader.Do("GET", "/nodes?ver=2", "", nil)
		return strings.Count(b, `"id":`) == 2 && !strings.Contains(b, f[0].nodeID())
	})
	// A node removed while running stops by itself with -raft-remove-shutdown.
	s, b := leader.Do("DELETE", "/remove", "application/json", []byte(fmt.Sprintf(`{"id":%q}`, f[1].nodeID())))
	if s != 200 {
		t.Fatalf("remove: %d %s", s, b)
	}
	select {
	case <-f[1].done:
	case <-time.After(20 * time.Second):
		t.Fatalf("removed node kept running:\n%s", f[1].out.String())
	}
	if !strings.Contains(f[1].out.String(), "removed from the cluster") {
		t.Fatalf("removed node's log does not say why it stopped:\n%s", f[1].out.String())
	}
}

func TestNodeWithStateRefusesOtherCluster(t *testing.T) {
	matrix(t, "S22", "join", "documented refusal: a node whose -join points at another cluster is not joined (cluster ID check), says why")
	a := startNode(t, "-node-id", "a")
	b := startNode(t, "-node-id", "b")
	waitFor(t, 10*time.Second, "cluster IDs", func() bool { return a.clusterID() != "" && b.clusterID() != "" })
	if a.clusterID() == b.clusterID() {
		t.Fatal("two separate clusters have the same ID")
	}
	b.Stop()
	b.Args = append(b.Args, "-join", a.RaftAddr, "-join-attempts", "1")
	b.Restart()
	waitFor(t, 10*time.Second, "refusal logged", func() bool {
		return strings.Contains(b.out.String(), "belongs to a different cluster")
	})
	if _, body := a.Do("GET", "/nodes?ver=2", "", nil); strings.Count(body, `"id":`) != 1 {
		t.Fatalf("the other cluster's node was added: %s", body)
	}
}
