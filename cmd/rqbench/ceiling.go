package main

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/mattn/go-sqlite3"
)

// groupLog is an append-only file whose writers share fsyncs, as Raft's
// log batches concurrent entries into one disk commit.
type groupLog struct {
	mu      sync.Mutex
	f       *os.File
	pending []chan error
	kick    chan struct{}
}

func newGroupLog(path string) *groupLog {
	f, err := os.Create(path)
	if err != nil {
		fail(err)
	}
	g := &groupLog{f: f, kick: make(chan struct{}, 1)}
	go g.loop()
	return g
}

func (g *groupLog) append(b []byte) error {
	ch := make(chan error, 1)
	g.mu.Lock()
	_, err := g.f.Write(b)
	g.pending = append(g.pending, ch)
	g.mu.Unlock()
	if err != nil {
		return err
	}
	select {
	case g.kick <- struct{}{}:
	default:
	}
	return <-ch
}

func (g *groupLog) loop() {
	for range g.kick {
		g.mu.Lock()
		waiting := g.pending
		g.pending = nil
		g.mu.Unlock()
		if len(waiting) == 0 {
			continue
		}
		err := g.f.Sync()
		for _, ch := range waiting {
			ch <- err
		}
	}
}

// ceiling does the single-node work directly on SQLite: WAL mode,
// synchronous=OFF, one writer connection, and every write request first
// appended and fsync'd to a log (group commit), which is the durability
// rqlited gives. It prints each figure with rqlited's ratio to it.
func (b *bench) ceiling(ctx context.Context, server []result) {
	fmt.Println("\n## ceiling: the same work through database/sql on SQLite, with an fsync'd log")
	dir := filepath.Join(b.dir, "ceiling")
	os.MkdirAll(dir, 0o755)
	w, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "db.sqlite")+"?_journal=WAL&_sync=0")
	if err != nil {
		fail(err)
	}
	defer w.Close()
	w.SetMaxOpenConns(1)
	r, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "db.sqlite")+"?mode=ro")
	if err != nil {
		fail(err)
	}
	defer r.Close()
	r.SetMaxOpenConns(16)
	for _, t := range []string{"ins", "batch", "q"} {
		if _, err := w.Exec(fmt.Sprintf("CREATE TABLE %s (id INTEGER PRIMARY KEY, v INTEGER, s TEXT)", t)); err != nil {
			fail(err)
		}
	}
	tx, _ := w.Begin()
	for i := 0; i < 10000; i++ {
		tx.Exec("INSERT INTO q(v, s) VALUES(?, ?)", i, "fill")
	}
	tx.Commit()
	log := newGroupLog(filepath.Join(dir, "log"))
	entry := make([]byte, 64)

	insert := func(rng *rand.Rand) (int64, error) {
		if err := log.append(entry); err != nil {
			return 0, err
		}
		_, err := w.Exec("INSERT INTO ins(v, s) VALUES(?, ?)", rng.Int64(), "row")
		return 1, err
	}
	batch := func(*rand.Rand) (int64, error) {
		if err := log.append(make([]byte, 64*1000)); err != nil {
			return 0, err
		}
		for i := 0; i < 1000; i++ {
			if _, err := w.Exec("INSERT INTO batch(v, s) VALUES(?, ?)", i, "batch row"); err != nil {
				return 0, err
			}
		}
		return 1000, nil
	}
	query := func(rng *rand.Rand) (int64, error) {
		var id, v int64
		var s string
		return 1, r.QueryRow("SELECT * FROM q WHERE id = ?", 1+rng.IntN(10000)).Scan(&id, &v, &s)
	}
	fmt.Printf("%-34s %10s %10s %9s %9s %7s %12s\n", "scenario", "reqs/s", "rows/s", "p50", "p99", "errors", "rqlited/ceil")
	for _, sc := range []struct {
		name   string
		conc   int
		f      func(*rand.Rand) (int64, error)
		server string
	}{
		{"insert, concurrency 1", 1, insert, "insert, concurrency 1"},
		{"insert, concurrency 16", 16, insert, "insert, concurrency 16"},
		{"1000-row batch, concurrency 1", 1, batch, "1000-row batch, concurrency 1"},
		{"point query, concurrency 16", 16, query, "point query weak, concurrency 16"},
	} {
		res := runLocal(ctx, sc.name, sc.conc, b.dur, sc.f)
		ratio := ""
		for _, s := range server {
			if s.name == sc.server && res.rowRate() > 0 {
				ratio = fmt.Sprintf("%.2f", s.rowRate()/res.rowRate())
			}
		}
		fmt.Printf("%-34s %10.0f %10.0f %9s %9s %7d %12s\n", res.name, res.reqRate(), res.rowRate(),
			res.p50.Round(time.Microsecond), res.p99.Round(time.Microsecond), res.errs, ratio)
	}
}

// runLocal drives f with conc workers for d and returns the figures. A call
// that fails because the run ended is not counted.
func runLocal(ctx context.Context, name string, conc int, d time.Duration, f func(*rand.Rand) (int64, error)) result {
	var reqs, rows, errs atomic.Int64
	lat := make([][]time.Duration, conc)
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			for ctx.Err() == nil {
				t0 := time.Now()
				n, err := f(rng)
				if err != nil && ctx.Err() != nil {
					break // cut off by the end of the run
				}
				lat[i] = append(lat[i], time.Since(t0))
				reqs.Add(1)
				if err != nil {
					errs.Add(1)
				} else {
					rows.Add(n)
				}
			}
		}()
	}
	wg.Wait()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	res := result{name: name, reqs: reqs.Load(), rows: rows.Load(), errs: errs.Load(), elapsed: time.Since(start)}
	if len(all) > 0 {
		res.p50, res.p99 = all[len(all)/2], all[len(all)*99/100]
	}
	return res
}
