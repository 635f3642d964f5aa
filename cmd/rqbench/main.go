// Command rqbench measures rqlited over its HTTP API and prints throughput,
// latency and the server's peak memory next to a ceiling measured in the
// same run: the same work done directly on SQLite through database/sql, with
// the server's durability (WAL, synchronous=OFF, and an fsync'd log with
// group commit standing in for Raft's log).
//
// It has two modes:
//
//   - Attached (the default): drive a node that is already running at -addr,
//     sampling its memory through /proc/-pid/status (the pid is asked of the
//     node's /status when -pid is not given):
//
//     go run ./cmd/rqbench -addr 127.0.0.1:4001 -pid 1234 -duration 5s
//
//   - Launching (-rqlited BIN): start real rqlited processes on loopback
//     ports itself, run the same single-node scenarios against one of them,
//     and then the three-node cluster and cluster formation suites (-suites).
//     `make bench` runs this mode. The memory suite (peak RSS of fresh
//     nodes for 60 MiB writes, memory.go) runs only when named:
//     -suites memory.
//
// DOC/PERFORMANCE.md records its output.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

// options are the settings of a run.
type options struct {
	addr       string
	pid        int
	dur        time.Duration
	scenarios  map[string]bool
	ceiling    bool
	ceilingDir string
	json       bool
	queryForm  string
}

func main() {
	addr := flag.String("addr", "127.0.0.1:4001", "HTTP address (host:port) of the running rqlited node to drive")
	pid := flag.Int("pid", 0, "pid of the node, to sample its peak RSS from /proc/PID/status (0: ask the node's /status)")
	dur := flag.Duration("duration", 5*time.Second, "duration of each load scenario")
	scen := flag.String("scenarios", "all", "comma-separated scenarios to run: "+strings.Join(scenarioNames, ", ")+" (batch-1000 is batch-1000-c1 and batch-1000-c4), or all")
	ceiling := flag.Bool("ceiling", true, "also measure the SQLite ceiling of each scenario in the same run")
	ceilingDir := flag.String("ceiling-dir", "", "directory for the ceiling's SQLite database and log (default: a fresh temporary directory, removed at the end)")
	jsonOut := flag.Bool("json", false, "also print the results as one JSON document")
	queryForm := flag.String("query-form", "post", "how point queries are sent: post (POST /db/query with the id as a bound parameter) or get (GET /db/query?q= with the id inline)")
	bin := flag.String("rqlited", "", "launching mode: start rqlited processes from this binary instead of driving -addr")
	suitesFlag := flag.String("suites", "single,ceiling,cluster,formation", "launching mode: suites to run (single, ceiling, cluster, formation, memory; memory is not in the default: 25-40 s of 60 MiB writes on fresh nodes)")
	reps := flag.Int("formation-reps", 5, "launching mode: formation runs per mode (the median is reported)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of rqbench itself (the client) to this file")
	only := flag.String("only", "", "run only this scenario (insert, query, batch, or a scenario name) for the whole duration, without the ceiling: a profiling aid")
	clientKind := flag.String("client", "raw", "HTTP client of the load generator: raw (hand-built HTTP/1.1 on kept-alive connections, a few µs per request) or nethttp (Go's net/http client, 40-60 µs per request)")
	flag.Parse()
	switch *clientKind {
	case "raw":
	case "nethttp":
		rawClient = false
	default:
		fail(fmt.Errorf("-client must be raw or nethttp, not %q", *clientKind))
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fail(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fail(err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	o := &options{addr: *addr, pid: *pid, dur: *dur, ceiling: *ceiling, ceilingDir: *ceilingDir, json: *jsonOut, queryForm: *queryForm}
	if o.queryForm != "post" && o.queryForm != "get" {
		fail(fmt.Errorf("-query-form must be post or get, not %q", o.queryForm))
	}
	var err error
	if o.scenarios, err = parseScenarios(*scen); err != nil {
		fail(err)
	}
	if *only != "" {
		name := map[string]string{"insert": "insert-c16", "query": "query-weak-c16", "batch": "batch-1000"}[*only]
		if name == "" {
			name = *only
		}
		if o.scenarios, err = parseScenarios(name); err != nil {
			fail(err)
		}
		o.ceiling = false
	}

	if *bin == "" {
		waitReady(ctx, "http://"+o.addr)
		if o.pid == 0 {
			o.pid = askPID("http://" + o.addr)
		}
		fmt.Printf("rqbench: node %s (pid %d), %s scenarios, %s\n", o.addr, o.pid, o.dur, time.Now().UTC().Format(time.RFC3339))
		runSingle(ctx, o, "http://"+o.addr)
		return
	}

	// Launching mode.
	abs, err := filepath.Abs(*bin)
	if err != nil {
		fail(err)
	}
	if _, err := os.Stat(abs); err != nil {
		fail(fmt.Errorf("%s: %w (run make build first)", abs, err))
	}
	tmp, err := os.MkdirTemp("", "rqbench-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(tmp)
	b := &bench{bin: abs, dir: tmp, dur: *dur, reps: *reps}
	defer b.stopAll()
	stopOnFail = func() { b.stopAll(); os.RemoveAll(tmp) }
	suites := map[string]bool{}
	for _, s := range strings.Split(*suitesFlag, ",") {
		suites[strings.TrimSpace(s)] = true
	}
	if !suites["ceiling"] {
		o.ceiling = false
	}
	fmt.Printf("rqbench: %s, %s scenarios, %s\n", abs, o.dur, time.Now().UTC().Format(time.RFC3339))
	if suites["single"] {
		n := b.start()
		n.waitReady(ctx)
		o.pid = n.cmd.Process.Pid
		o.addr = n.http
		fmt.Printf("\n## single node (one rqlited process: %s, pid %d)\n", n.http, o.pid)
		runSingle(ctx, o, n.base)
		n.stop()
	}
	if *only != "" {
		return
	}
	if suites["cluster"] {
		b.cluster(ctx)
	}
	if suites["formation"] {
		b.formation(ctx)
	}
	if suites["memory"] {
		b.memory(ctx)
	}
}

// stopOnFail, in launching mode, stops the processes started so far:
// fail exits without running deferred calls, and would leave them running.
var stopOnFail func()

func fail(err error) {
	fmt.Fprintln(os.Stderr, "rqbench:", err)
	if stopOnFail != nil {
		stopOnFail()
	}
	os.Exit(1)
}
