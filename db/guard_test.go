package db

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rqlited/rqlited/command"
)

func openWith(tb testing.TB, cfg Config) *DB {
	tb.Helper()
	if cfg.Path == "" {
		cfg.Path = filepath.Join(tb.TempDir(), "db.sqlite")
	}
	d, err := Open(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close() })
	return d
}

// applyAll runs each SQL text as its own request on the write path and on
// the query path (writer and read pool), and returns the error texts.
func applyAll(t *testing.T, d *DB, mode Mode, q string) (write, strong, read string) {
	t.Helper()
	res, err := d.Apply(Env{}, mode, stmts(q))
	if err != nil {
		t.Fatalf("%q on the write path: %v", q, err)
	}
	write = res[0].Error
	res, err = d.Apply(Env{}, ModeQuery, stmts(q))
	if err != nil {
		t.Fatalf("%q on the strong query path: %v", q, err)
	}
	strong = res[0].Error
	res, err = d.Query(context.Background(), ModeQuery, stmts(q))
	if err != nil {
		t.Fatalf("%q on the read pool: %v", q, err)
	}
	read = res[0].Error
	return
}

// Statements whose effect depends on files outside the database, or that
// would change how the node stores it, are refused on every path with an
// error that says why, and leave no file behind.
func TestGuardRefuses(t *testing.T) {
	dir := t.TempDir()
	d := openWith(t, Config{Path: filepath.Join(dir, "db.sqlite")})
	mustApply(t, d, ModeExecute, stmts("CREATE TABLE t(v)", "INSERT INTO t VALUES(1)"))
	out := filepath.Join(dir, "out.db")
	for _, c := range []struct{ sql, want string }{
		{"ATTACH '" + out + "' AS x", "ATTACH of"},
		{"ATTACH 'file:" + out + "?mode=rwc' AS x", "ATTACH of"},
		{"ATTACH '/nonexistent-dir/x.db' AS y", "ATTACH of"},
		{"ATTACH '" + out + "' || '' AS x", "ATTACH is refused"},
		{"VACUUM INTO '" + out + "'", "refused"},
		{"VACUUM main INTO '" + out + "'", "refused"},
		{"PRAGMA/**/journal_mode=DELETE", "PRAGMA journal_mode is refused"},
		{"PRAGMA main.locking_mode=EXCLUSIVE", "PRAGMA locking_mode is refused"},
		{"PRAGMA wal_checkpoint(TRUNCATE)", "PRAGMA wal_checkpoint is refused"},
		{"pragma  /* x */ max_page_count = 1", "PRAGMA max_page_count is refused"},
		{"PRAGMA query_only=0", "PRAGMA query_only is refused"},
		{"PRAGMA writable_schema=ON", "PRAGMA writable_schema is refused"},
		{"PRAGMA hard_heap_limit=1", "PRAGMA hard_heap_limit is refused"},
		{"SELECT load_extension('/tmp/x.so')", "load_extension() is refused"},
		{"PRAGMA cache_size=-100000000", "PRAGMA cache_size with that value is refused"},
		{"PRAGMA cache_size = 100000000", "PRAGMA cache_size with that value is refused"},
		{"PRAGMA temp_store=MEMORY", "PRAGMA temp_store with that value is refused"},
		{"PRAGMA main.temp_store = 2", "PRAGMA temp_store with that value is refused"},
	} {
		w, s, r := applyAll(t, d, ModeExecute, c.sql)
		for _, got := range []string{w, s, r} {
			if !strings.Contains(got, c.want) {
				t.Errorf("%q: got %q, want %q", c.sql, got, c.want)
			}
		}
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused statement wrote %s: %v", out, err)
	}
	got := mustQuery(t, d, "PRAGMA journal_mode")
	if got.Values[0][0] != "wal" {
		t.Fatalf("journal mode is now %v", got.Values[0][0])
	}
	// What stays allowed.
	res := mustApply(t, d, ModeExecute, stmts("ATTACH ':memory:' AS m", "CREATE TABLE m.x(v)", "INSERT INTO m.x SELECT v FROM t", "SELECT count(*) FROM m.x"))
	for _, r := range res {
		if r.Error != "" {
			t.Fatalf("ATTACH ':memory:': %+v", res)
		}
	}
	if res := mustApply(t, d, ModeExecute, stmts("VACUUM", "PRAGMA foreign_keys=ON", "PRAGMA user_version=3", "PRAGMA cache_size=-65536", "PRAGMA temp_store=FILE")); res[0].Error != "" || res[1].Error != "" || res[2].Error != "" || res[3].Error != "" || res[4].Error != "" {
		t.Fatalf("VACUUM and harmless PRAGMAs: %+v", res)
	}
}

// The query path never writes, on the writer (level strong) or the read
// pool, and answers with rqlite's error.
func TestQueryPathNeverWrites(t *testing.T) {
	d := mustOpen(t)
	mustApply(t, d, ModeExecute, stmts("CREATE TABLE t(v)", "INSERT INTO t VALUES(1)"))
	for _, q := range []string{
		"INSERT INTO t VALUES(2)",
		"DELETE FROM t RETURNING v",
		"UPDATE t SET v = 5",
		"CREATE TABLE u(v)",
		"CREATE INDEX i ON t(v)",
		"DROP TABLE t",
		"PRAGMA user_version=7",
		"CREATE TEMP VIEW tv AS SELECT 99",
		"WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x",
		"SELECT 1; INSERT INTO t VALUES(3)",
	} {
		res, err := d.Apply(Env{}, ModeQuery, stmts(q))
		if err != nil || res[0].Error != ErrQueryWrite.Error() {
			t.Errorf("%q at level strong: %+v %v", q, res, err)
		}
		res, err = d.Query(context.Background(), ModeQuery, stmts(q))
		if err != nil || res[0].Error != ErrQueryWrite.Error() {
			t.Errorf("%q on the read pool: %+v %v", q, res, err)
		}
	}
	got := mustQuery(t, d, "SELECT count(*), sum(v), (SELECT count(*) FROM sqlite_schema), (SELECT user_version FROM pragma_user_version) FROM t")
	if got.Values[0][0] != int64(1) || got.Values[0][1] != int64(1) || got.Values[0][2] != int64(1) || got.Values[0][3] != int64(0) {
		t.Fatalf("the query path changed the database: %v", got.Values)
	}
	// The writer writes again after a strong query.
	if res := mustApply(t, d, ModeExecute, stmts("INSERT INTO t VALUES(2)")); res[0].Error != "" {
		t.Fatalf("write after a strong query: %+v", res)
	}
}

// What one request leaves on a connection (temp objects, attachments,
// settings of a read connection) is not seen by the next.
func TestNoStateOutlivesARequest(t *testing.T) {
	d := mustOpen(t)
	mustApply(t, d, ModeExecute, stmts("CREATE TABLE t(v)", "INSERT INTO t VALUES(1)"))
	// Writer: temp objects and attachments of one entry are gone by the
	// next, as they would be on a node restored from a snapshot.
	res := mustApply(t, d, ModeExecute, stmts(
		"CREATE TEMP TABLE tt(v)", "INSERT INTO tt VALUES(42)",
		"CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO tt VALUES(new.v); END",
		"CREATE TEMP VIEW t AS SELECT 666 AS v",
		"ATTACH ':memory:' AS m"))
	for _, r := range res {
		if r.Error != "" {
			t.Fatalf("setting up: %+v", res)
		}
	}
	res = mustApply(t, d, ModeRequest, stmts("SELECT * FROM tt", "SELECT v FROM t", "CREATE TABLE m.x(v)"))
	if !strings.Contains(res[0].Error, "no such table") || res[1].Values[0][0] != int64(1) || !strings.Contains(res[2].Error, "unknown database") {
		t.Fatalf("the writer kept a request's temp objects or attachment: %+v", res)
	}
	if !d.writer.AutoCommit() || d.writer.dirty() {
		t.Fatal("writer left dirty")
	}
	// A foreign-keys setting is kept (rqlite users rely on it).
	mustApply(t, d, ModeExecute, stmts("PRAGMA foreign_keys=ON"))
	mustApply(t, d, ModeExecute, stmts("CREATE TEMP TABLE again(v)"))
	if got := mustApply(t, d, ModeQuery, stmts("PRAGMA foreign_keys")); got[0].Values[0][0] != int64(1) {
		t.Fatalf("foreign_keys lost on reset: %+v", got)
	}
	// Read pool: a poisoned connection is never reused.
	for _, q := range []string{"ATTACH ':memory:' AS m", "PRAGMA case_sensitive_like=1", "PRAGMA reverse_unordered_selects=1"} {
		if res, _ := d.Query(context.Background(), ModeQuery, stmts(q)); res[0].Error != "" {
			t.Fatalf("%q on the read pool: %+v", q, res)
		}
		got, err := d.Query(context.Background(), ModeQuery, stmts("SELECT count(*) FROM pragma_database_list WHERE name NOT IN ('main', 'temp')", "SELECT 'a' LIKE 'A'"))
		if err != nil || got[0].Values[0][0] != int64(0) || got[1].Values[0][0] != int64(1) {
			t.Fatalf("after %q a later read saw %+v %v", q, got, err)
		}
	}
}

const unbounded = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c"

// A statement from the log that would run for ever is stopped after the
// step limit, with an error naming it; the node goes on.
func TestStepLimit(t *testing.T) {
	d := openWith(t, Config{MaxSteps: 1_000_000})
	mustApply(t, d, ModeExecute, stmts("CREATE TABLE t(v)"))
	for _, mode := range []Mode{ModeExecute, ModeQuery, ModeRequest} {
		res, err := d.Apply(Env{}, mode, stmts("INSERT INTO t VALUES(1)", unbounded, "INSERT INTO t VALUES(2)"))
		if err != nil || !strings.Contains(res[1].Error, "-db-max-steps") {
			t.Fatalf("mode %d: %+v %v", mode, res, err)
		}
	}
	res, err := d.Apply(Env{}, ModeExecute, stmts("INSERT INTO t "+unbounded))
	if err != nil || !strings.Contains(res[0].Error, "-db-max-steps") {
		t.Fatalf("unbounded insert: %+v %v", res, err)
	}
	// Two rows each from the execute and request modes; the query mode
	// refuses the inserts.
	if got := mustQuery(t, d, "SELECT count(*) FROM t"); got.Values[0][0] != int64(4) {
		t.Fatalf("rows after stopped statements: %v", got.Values)
	}
	// Reads on the pool are bounded too (and by their context).
	res, err = d.Query(context.Background(), ModeQuery, stmts(unbounded))
	if err != nil || !strings.Contains(res[0].Error, "-db-max-steps") {
		t.Fatalf("unbounded read: %+v %v", res, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	res, err = openWith(t, Config{}).Query(ctx, ModeQuery, stmts(unbounded))
	if err == nil && (len(res) == 0 || res[0].Error == "") {
		t.Fatalf("unbounded read with a timeout: %+v", res)
	}
}

// The step limit stops a statement at the same point on every replica,
// whether it was parsed afresh or taken from the statement cache and
// whatever ran on the connection before.
func TestStepLimitDeterministic(t *testing.T) {
	const limit = 200_000
	q := "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < ?) SELECT count(*) FROM c"
	stopped := func(d *DB, n int64) bool {
		res, err := d.Apply(Env{}, ModeExecute, &command.Request{Statements: []command.Statement{{SQL: q, Parameters: []command.Parameter{{Value: n}}}}})
		if err != nil {
			t.Fatal(err)
		}
		return strings.Contains(res[0].Error, "-db-max-steps")
	}
	fresh := openWith(t, Config{MaxSteps: limit})
	lo, hi := int64(1), int64(limit)
	if !stopped(fresh, hi) {
		t.Fatalf("%d rows not stopped by %d steps", hi, limit)
	}
	for lo+1 < hi {
		mid := (lo + hi) / 2
		if stopped(openWith(t, Config{MaxSteps: limit}), mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	// A connection with a long history: other statements, and this one
	// cached after runs of other lengths.
	used := openWith(t, Config{MaxSteps: limit})
	mustApply(t, used, ModeExecute, stmts("CREATE TABLE t(v)", "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 500) INSERT INTO t SELECT x FROM c"))
	for _, n := range []int64{7, 333, hi / 3, lo} {
		if stopped(used, n) {
			t.Fatalf("%d rows stopped on a used connection", n)
		}
	}
	if !stopped(used, hi) || stopped(used, lo) {
		t.Fatalf("the limit moved on a used connection: %d stops on a fresh one", hi)
	}
}

// Interrupt stops a statement in progress; Apply reports ErrClosed, not a
// result, so the entry is applied again after a restart.
func TestInterruptStopsApply(t *testing.T) {
	d := mustOpen(t) // no step limit
	done := make(chan error, 1)
	go func() {
		_, err := d.Apply(Env{}, ModeExecute, stmts(unbounded))
		done <- err
	}()
	// Wait until the statement runs, then stop it.
	deadline := time.Now().Add(10 * time.Second)
	w := d.writer
	for {
		select {
		case err := <-done:
			t.Fatalf("unbounded statement ended by itself: %v", err)
		default:
		}
		if w.ticks() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("statement never started")
		}
		time.Sleep(time.Millisecond)
	}
	d.Interrupt()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("interrupted Apply returned %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Interrupt did not stop the statement")
	}
}

// The writer's settings that change what statements do are reported as
// they differ from a new connection's, and set again on another DB.
func TestSettingsRoundTrip(t *testing.T) {
	d := mustOpen(t)
	if ss, err := d.Settings(); err != nil || len(ss) != 0 {
		t.Fatalf("fresh settings: %v %v", ss, err)
	}
	mustApply(t, d, ModeExecute, stmts("PRAGMA foreign_keys=ON", "PRAGMA recursive_triggers=1", "PRAGMA analysis_limit=77"))
	ss, err := d.Settings()
	if err != nil || len(ss) != 3 {
		t.Fatalf("settings: %v %v", ss, err)
	}
	e := mustOpen(t)
	if err := e.ApplySettings(ss); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.Settings(); !reflect.DeepEqual(got, ss) {
		t.Fatalf("applied %v, read back %v", ss, got)
	}
	if err := e.ApplySettings([]Setting{{Name: "journal_mode", Value: 1}}); err == nil {
		t.Fatal("a setting outside the list was applied")
	}
	// case_sensitive_like cannot be read back, so the writer refuses it.
	res := mustApply(t, d, ModeExecute, stmts("PRAGMA case_sensitive_like=1"))
	if !strings.Contains(res[0].Error, "case_sensitive_like is refused") {
		t.Fatalf("case_sensitive_like on the writer: %+v", res)
	}
}

// What a request can learn of the writer's history (last_insert_rowid(),
// changes(), total_changes() before its own writes) is the same on a
// connection with a long history and on a new one, as on a node that
// restored a snapshot.
func TestNoHistoryLeaksIntoARequest(t *testing.T) {
	q := stmts("SELECT last_insert_rowid(), changes(), total_changes()",
		"INSERT INTO t VALUES(1), (2)", "SELECT last_insert_rowid(), changes(), total_changes()",
		"UPDATE t SET v = v WHERE 0", "SELECT changes(), total_changes()")
	run := func(d *DB) [][]any {
		var out [][]any
		for _, r := range mustApply(t, d, ModeRequest, q) {
			out = append(out, r.Values...)
		}
		return out
	}
	// The same data, different histories.
	used := mustOpen(t)
	mustApply(t, used, ModeExecute, stmts("CREATE TABLE t(v)", "CREATE TABLE u(v)", "INSERT INTO t VALUES(1), (2), (3)", "DELETE FROM t"))
	mustApply(t, used, ModeExecute, stmts("INSERT INTO u VALUES(9), (10)"))
	mustApply(t, used, ModeExecute, stmts("DELETE FROM u"))
	fresh := mustOpen(t)
	mustApply(t, fresh, ModeExecute, stmts("CREATE TABLE t(v)", "CREATE TABLE u(v)"))
	got, want := run(used), run(fresh)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("history leaked into a request: used %v, fresh %v", got, want)
	}
	if want[0][0] != int64(0) || want[0][1] != int64(0) || want[0][2] != int64(0) || want[1][1] != int64(2) || want[1][2] != int64(2) || want[2][0] != int64(0) {
		t.Fatalf("counts: %v", want)
	}
}
