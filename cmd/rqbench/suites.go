package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// fill inserts n rows into table through the node, in batches.
func fill(base, table string, n int) {
	for done := 0; done < n; done += 1000 {
		var sb strings.Builder
		sb.WriteString("[")
		for i := 0; i < 1000 && done+i < n; i++ {
			if i > 0 {
				sb.WriteString(",")
			}
			fmt.Fprintf(&sb, `["INSERT INTO %s(v, s) VALUES(?, ?)", %d, "fill"]`, table, done+i)
		}
		sb.WriteString("]")
		mustPost(base, "/db/execute", sb.String())
	}
}

func createTables(base string, names ...string) {
	for _, t := range names {
		mustPost(base, "/db/execute", fmt.Sprintf(`["CREATE TABLE IF NOT EXISTS %s (id INTEGER PRIMARY KEY, v INTEGER, s TEXT)"]`, t))
	}
}

// singleNode runs the single-node scenarios and returns their results.
func (b *bench) singleNode(ctx context.Context) []result {
	fmt.Println("\n## single node (one rqlited process)")
	n := b.start()
	n.waitReady(ctx)
	defer n.stop()
	base := n.base
	createTables(base, "ins1", "ins16", "batch", "queued", "q")
	fill(base, "q", 10000)
	header()
	var out []result
	add := func(r result) {
		r.print()
		out = append(out, r)
	}
	if b.only != "" {
		// Profiling aid: one scenario, run for the whole duration.
		add(run(ctx, b.only, 16, b.dur, map[string]func(*rand.Rand) request{
			"insert": insertReq(base, "ins16"), "query": pointQueryReq(base, "q", "weak", 10000),
			"batch": batchReq(base, "batch", 1000)}[b.only]))
		fmt.Printf("node %s, pid %d\n", base, n.cmd.Process.Pid)
		return out
	}
	add(run(ctx, "insert, concurrency 1", 1, b.dur, insertReq(base, "ins1")))
	add(run(ctx, "insert, concurrency 16", 16, b.dur, insertReq(base, "ins16")))
	add(run(ctx, "1000-row batch, concurrency 1", 1, b.dur, batchReq(base, "batch", 1000)))
	add(run(ctx, "1000-row batch, concurrency 4", 4, b.dur, batchReq(base, "batch", 1000)))
	queued := run(ctx, "queued insert, concurrency 16", 16, b.dur, func(r *rand.Rand) request {
		q := insertReq(base, "queued")(r)
		q.url += "?queue"
		return q
	})
	add(queued)
	add(run(ctx, "point query weak, concurrency 16", 16, b.dur, pointQueryReq(base, "q", "weak", 10000)))
	add(run(ctx, "point query linearizable, conc. 16", 16, b.dur, pointQueryReq(base, "q", "linearizable", 10000)))
	// Every acknowledged queued write is applied once the queue drains.
	mustPost(base, "/db/execute?queue&wait", `["SELECT 1"]`)
	fmt.Printf("peak RSS of the node: %.1f MB\n", peakRSSMB(n.cmd.Process.Pid))
	return out
}

// cluster runs the three-node scenarios.
func (b *bench) cluster(ctx context.Context) {
	fmt.Println("\n## three-node cluster (-bootstrap-expect 3, three processes on this host)")
	nodes := b.startBootstrap(ctx, 3)
	defer func() {
		for _, n := range nodes {
			n.stop()
		}
	}()
	leader, follower := b.roles(nodes)
	createTables(leader.base, "cins", "cfins", "cbatch", "cq")
	fill(leader.base, "cq", 10000)
	time.Sleep(500 * time.Millisecond) // let followers apply the fill
	header()
	run(ctx, "insert via leader, concurrency 1", 1, b.dur, insertReq(leader.base, "cins")).print()
	run(ctx, "insert via leader, concurrency 16", 16, b.dur, insertReq(leader.base, "cins")).print()
	run(ctx, "insert via follower, concurrency 16", 16, b.dur, insertReq(follower.base, "cfins")).print()
	run(ctx, "1000-row batch via leader, conc. 1", 1, b.dur, batchReq(leader.base, "cbatch", 1000)).print()
	run(ctx, "linearizable query via follower, c16", 16, b.dur, pointQueryReq(follower.base, "cq", "linearizable", 10000)).print()
	run(ctx, "weak query via leader, conc. 16", 16, b.dur, pointQueryReq(leader.base, "cq", "weak", 10000)).print()
}

// startBootstrap starts n nodes with -bootstrap-expect n at once and waits
// for them all to be ready.
func (b *bench) startBootstrap(ctx context.Context, n int) []*node {
	addrs := make([]string, n)
	https := make([]string, n)
	for i := range addrs {
		addrs[i], https[i] = freeAddr(), freeAddr()
	}
	var nodes []*node
	for i := range addrs {
		nd := b.startAt(https[i], addrs[i], "-node-id", fmt.Sprintf("n%d", i+1), "-bootstrap-expect", fmt.Sprint(n),
			"-join", strings.Join(addrs, ","))
		nodes = append(nodes, nd)
	}
	for _, nd := range nodes {
		nd.waitReady(ctx)
	}
	return nodes
}

// startAt is start with fixed addresses.
func (b *bench) startAt(httpAddr, raftAddr string, args ...string) *node {
	return b.exec(httpAddr, raftAddr, b.newDir(), args...)
}

// roles returns the leader and one follower.
func (b *bench) roles(nodes []*node) (leader, follower *node) {
	for _, n := range nodes {
		if isLeader(n) {
			leader = n
		} else if follower == nil {
			follower = n
		}
	}
	if leader == nil || follower == nil {
		fail(fmt.Errorf("no leader/follower pair among %d nodes", len(nodes)))
	}
	return leader, follower
}

func median(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[len(ds)/2]
}
