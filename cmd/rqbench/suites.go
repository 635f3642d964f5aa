package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

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
	for _, t := range []string{"cins", "cfins", "cbatch", "cq"} {
		createTable(leader.base, t)
	}
	fillTable(leader.base, "cq", queryRows)
	time.Sleep(500 * time.Millisecond) // let followers apply the fill
	var pids []int
	for _, n := range nodes {
		pids = append(pids, n.cmd.Process.Pid)
	}
	fmt.Printf("%-38s %9s %10s %9s %9s %7s %7s %7s\n", "scenario", "reqs/s", "rows/s", "p50", "p99", "errors", "srv-µs", "cli-µs")
	run := func(name string, conc int, w func(int) work) result {
		cpu := startCPU(pids...)
		r := runLoad(ctx, name, conc, b.dur, w)
		cpu.stop(&r)
		return r
	}
	show := func(r result) {
		fmt.Printf("%-38s %9.0f %10.0f %9s %9s %7d %7s %7s\n", r.name, r.reqRate(), r.rowRate(), fmtDur(r.p50), fmtDur(r.p99), r.errs,
			cpuPerReq(r.srvCPU, r), cpuPerReq(r.cliCPU, r))
		if r.firstErr != "" {
			fmt.Printf("  first error: %s\n", r.firstErr)
		}
	}
	ins, fins := newInsertSet("cins"), newInsertSet("cfins")
	show(run("insert via leader, concurrency 1", 1, httpInsert(mustURL(leader.base+"/db/execute"), ins)))
	show(run("insert via leader, concurrency 16", 16, httpInsert(mustURL(leader.base+"/db/execute"), ins)))
	show(run("insert via follower, concurrency 16", 16, httpInsert(mustURL(follower.base+"/db/execute"), fins)))
	show(run("1000-row batch via leader, conc. 1", 1, httpBatch(mustURL(leader.base+"/db/execute"), batchBody("cbatch"))))
	show(run("linearizable query via follower, c16", 16, httpQuery(follower.base, "cq", "linearizable", "post", queryRows)))
	show(run("weak query via leader, conc. 16", 16, httpQuery(leader.base, "cq", "weak", "post", queryRows)))
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
