// Command rqbench measures rqlited: it starts real rqlited processes on
// loopback ports, drives them over HTTP, and prints throughput, latency and
// peak memory next to a ceiling measured in the same run (the same work done
// directly on SQLite through database/sql, with an fsync'd log standing in
// for Raft's). `make bench` runs it; DOC/PERFORMANCE.md records its output.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	bin := flag.String("rqlited", "bin/rqlited", "rqlited binary to run")
	dur := flag.Duration("duration", 5*time.Second, "duration of each load scenario")
	suitesFlag := flag.String("suites", "single,ceiling,cluster,formation", "suites to run: single, ceiling, cluster, formation")
	reps := flag.Int("formation-reps", 5, "formation runs per mode (the median is reported)")
	only := flag.String("only", "", "run only this single-node scenario (insert, query or batch) at concurrency 16: a profiling aid")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
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
	b := &bench{bin: abs, dir: tmp, dur: *dur, reps: *reps, only: *only}
	defer b.stopAll()

	suites := map[string]bool{}
	for _, s := range strings.Split(*suitesFlag, ",") {
		suites[strings.TrimSpace(s)] = true
	}
	fmt.Printf("rqbench: %s, %d-second scenarios, %s\n", abs, int(dur.Seconds()), time.Now().UTC().Format(time.RFC3339))
	var single []result
	if suites["single"] {
		single = b.singleNode(ctx)
	}
	if suites["ceiling"] {
		b.ceiling(ctx, single)
	}
	if suites["cluster"] {
		b.cluster(ctx)
	}
	if suites["formation"] {
		b.formation(ctx)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "rqbench:", err)
	os.Exit(1)
}
