//go:build system

package system_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Cluster is a set of nodes started by a test.
type Cluster []*Node

// status returns a dot-path value of /status.
// It returns nil if the node does not answer (it may be starting or dead).
func (n *Node) status(key string) any {
	status, b, err := n.try("GET", "/status?key="+key, "", nil)
	var v any
	if err != nil || status != 200 || json.Unmarshal([]byte(b), &v) != nil {
		return nil
	}
	return v
}

// leaderID returns the ID of the leader this node knows, "" if none.
func (n *Node) leaderID() string {
	v, _ := n.status("store.leader.node_id").(string)
	return v
}

func (n *Node) clusterID() string {
	v, _ := n.status("cluster.cluster_id").(string)
	return v
}

// waitFor polls cond until it is true or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitOneCluster waits until every node reports the same leader and the
// same non-empty cluster ID, and returns the leader node.
func (c Cluster) waitOneCluster(t testing.TB, timeout time.Duration) *Node {
	t.Helper()
	var leader *Node
	waitFor(t, timeout, "one cluster with one leader", func() bool {
		lid, cid := c[0].leaderID(), c[0].clusterID()
		if lid == "" || cid == "" {
			return false
		}
		for _, n := range c[1:] {
			if n.leaderID() != lid || n.clusterID() != cid {
				return false
			}
		}
		for _, n := range c {
			if n.nodeID() == lid {
				leader = n
			}
		}
		return leader != nil
	})
	return leader
}

func (n *Node) nodeID() string {
	for i, a := range n.Args {
		if a == "-node-id" && i+1 < len(n.Args) {
			return n.Args[i+1]
		}
	}
	return n.RaftAddr
}

// followers returns the nodes other than leader.
func (c Cluster) followers(leader *Node) []*Node {
	var out []*Node
	for _, n := range c {
		if n != leader {
			out = append(out, n)
		}
	}
	return out
}

// raftAddrs returns the nodes' Raft addresses as a -join value.
func (c Cluster) raftAddrs() string {
	var a []string
	for _, n := range c {
		a = append(a, n.RaftAddr)
	}
	return strings.Join(a, ",")
}

// newBootstrapCluster prepares n nodes that will form a cluster with
// -bootstrap-expect n and a join list of all of them; extra args are added
// to every node.
func newBootstrapCluster(t testing.TB, n int, extra ...string) Cluster {
	var c Cluster
	for i := 0; i < n; i++ {
		c = append(c, newNode(t, ""))
	}
	join := c.raftAddrs()
	for i, nd := range c {
		nd.Args = append([]string{"-node-id", fmt.Sprintf("node%d", i+1), "-bootstrap-expect", fmt.Sprint(n), "-join", join}, extra...)
	}
	return c
}

// startAll starts every node at (nearly) the same instant.
func (c Cluster) startAll() {
	for _, n := range c {
		n.Start()
	}
}

// count returns COUNT(*) of table t on node n at level.
func (n *Node) count(table, level string) int64 {
	n.t.Helper()
	c := queryInts(n.t, n, "SELECT COUNT(*) FROM "+table, level)
	if len(c) != 1 {
		n.t.Fatalf("count on %s: %d rows", n.HTTPAddr, len(c))
	}
	return c[0]
}
