package db

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestClockVFS(t *testing.T) {
	v, err := newClockVFS()
	if err != nil {
		t.Fatal(err)
	}
	d, err := sql.Open("sqlite3", "file:"+filepath.Join(t.TempDir(), "x.db")+"?vfs="+v.name)
	if err != nil {
		t.Fatal(err)
	}
	defer v.release()
	defer d.Close()
	v.set(time.Date(2001, 2, 3, 4, 5, 6, 7e6, time.UTC))
	var s string
	if err := d.QueryRow("SELECT strftime('%Y-%m-%d %H:%M:%f','now')").Scan(&s); err != nil {
		t.Fatal(err)
	}
	if s != "2001-02-03 04:05:06.007" {
		t.Fatalf("got %q", s)
	}
	v.set(time.Time{})
	if err := d.QueryRow("SELECT strftime('%Y','now')").Scan(&s); err != nil {
		t.Fatal(err)
	}
	if s == "2001" {
		t.Fatal("clock still fixed after set(zero)")
	}
}

// clockSample is what one request on the writer sees of the clock and of
// random() under an Env.
type clockSample struct {
	now, def string
	rnd      int64
}

// sampleClock applies, in one request, an insert that takes a
// CURRENT_TIMESTAMP default and random(), and reads datetime('now').
func sampleClock(tb testing.TB, d *DB, env Env) clockSample {
	tb.Helper()
	res, err := d.Apply(env, ModeRequest, stmts(
		"INSERT INTO t(r) VALUES(random()) RETURNING d, r",
		"SELECT datetime('now')"))
	if err != nil {
		tb.Error(err)
		return clockSample{}
	}
	for _, r := range res {
		if r.Error != "" {
			tb.Error(r.Error)
			return clockSample{}
		}
	}
	return clockSample{
		def: fmt.Sprint(res[0].Values[0][0]),
		rnd: res[0].Values[0][1].(int64),
		now: fmt.Sprint(res[1].Values[0][0]),
	}
}

// TestClockPerDB: two DBs open in one process, each applying under its own
// fixed time and seed at the same moment, each sees only its own, in
// datetime('now'), a CURRENT_TIMESTAMP default and random().
func TestClockPerDB(t *testing.T) {
	envs := []Env{
		{Time: time.Date(2001, 1, 1, 1, 1, 1, 0, time.UTC), Seed: 1},
		{Time: time.Date(2032, 12, 31, 23, 59, 58, 0, time.UTC), Seed: 2},
	}
	dbs := []*DB{mustOpen(t), mustOpen(t)}
	if dbs[0].clock.name == dbs[1].clock.name {
		t.Fatalf("two DBs share the clock VFS %q", dbs[0].clock.name)
	}
	want := make([]clockSample, len(dbs))
	for i, d := range dbs {
		mustExec(t, d, "CREATE TABLE t (d DEFAULT CURRENT_TIMESTAMP, r)")
		ts := envs[i].Time.Format(time.DateTime)
		want[i] = sampleClock(t, d, envs[i])
		if want[i].now != ts || want[i].def != ts {
			t.Fatalf("db %d alone: got %+v, want time %s", i, want[i], ts)
		}
	}
	if want[0].rnd == want[1].rnd {
		t.Fatalf("seeds 1 and 2 gave the same random() %d", want[0].rnd)
	}

	// Each DB's time set at once: one DB's time fixed while the other
	// applies under the real clock, then under its own.
	dbs[0].clock.set(envs[0].Time)
	if got := sampleClock(t, dbs[1], Env{Seed: envs[1].Seed}); got.now == want[0].now || got.def == want[0].def {
		t.Fatalf("db 1 under the real clock saw db 0's fixed time: %+v", got)
	}
	if got := sampleClock(t, dbs[1], envs[1]); got != want[1] {
		t.Fatalf("db 1 with db 0's clock fixed: got %+v, want %+v", got, want[1])
	}
	dbs[0].clock.set(time.Time{})

	// Both at once from two goroutines, many times over.
	const rounds = 200
	var wg sync.WaitGroup
	for i, d := range dbs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < rounds; n++ {
				if got := sampleClock(t, d, envs[i]); got != want[i] {
					t.Errorf("db %d round %d: got %+v, want %+v", i, n, got, want[i])
					return
				}
			}
		}()
	}
	wg.Wait()

	// Outside Apply both clocks are real again.
	for i, d := range dbs {
		if y := mustQuery(t, d, "SELECT strftime('%Y','now')").Values[0][0]; y == envs[0].Time.Format("2006") || y == envs[1].Time.Format("2006") {
			t.Fatalf("db %d: fixed time leaked into reads: %v", i, y)
		}
	}
}

// TestClockVFSReleased: Close unregisters a DB's VFS, a later DB reuses it
// with the real clock, and a Replace keeps the DB on its own VFS.
func TestClockVFSReleased(t *testing.T) {
	d, err := Open(Config{Path: filepath.Join(t.TempDir(), "a.sqlite")})
	if err != nil {
		t.Fatal(err)
	}
	v := d.clock
	v.set(time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC))
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := sql.Open("sqlite3", "file:"+filepath.Join(t.TempDir(), "x.db")+"?vfs="+v.name)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Ping(); err == nil {
		t.Fatalf("VFS %s still registered after Close", v.name)
	}
	e := mustOpen(t)
	if e.clock != v {
		t.Fatalf("released VFS %s not reused (got %s)", v.name, e.clock.name)
	}
	mustExec(t, e, "CREATE TABLE t (d DEFAULT CURRENT_TIMESTAMP, r)")
	if got := sampleClock(t, e, Env{}); got.now[:4] == "2001" {
		t.Fatalf("reused VFS kept the old DB's fixed time: %+v", got)
	}
	at := time.Date(2010, 10, 10, 10, 10, 10, 0, time.UTC)
	w := sampleClock(t, e, Env{Time: at})
	bk := filepath.Join(t.TempDir(), "bk.sqlite")
	if err := e.BackupTo(t.Context(), bk, false); err != nil {
		t.Fatal(err)
	}
	if err := e.Replace(bk); err != nil {
		t.Fatal(err)
	}
	if got := sampleClock(t, e, Env{Time: at}); got.now != w.now || got.def != w.def {
		t.Fatalf("after Replace: got %+v, want time %s", got, w.now)
	}
	if e.clock != v {
		t.Fatal("Replace changed the DB's clock VFS")
	}
}
