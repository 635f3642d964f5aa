package db

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rqlited/rqlited/command"
)

func mustOpen(tb testing.TB) *DB {
	tb.Helper()
	d, err := Open(Config{Path: filepath.Join(tb.TempDir(), "db.sqlite")})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close() })
	return d
}

func stmts(sqls ...string) *command.Request {
	r := &command.Request{}
	for _, s := range sqls {
		r.Statements = append(r.Statements, command.Statement{SQL: s})
	}
	return r
}

func mustApply(tb testing.TB, d *DB, mode Mode, req *command.Request) []command.Result {
	tb.Helper()
	res, err := d.Apply(Env{}, mode, req)
	if err != nil {
		tb.Fatal(err)
	}
	for i := range res {
		res[i].Time = 0
	}
	return res
}

func mustQuery(tb testing.TB, d *DB, q string, params ...command.Parameter) command.Result {
	tb.Helper()
	res, err := d.Query(context.Background(), ModeQuery, &command.Request{Statements: []command.Statement{{SQL: q, Parameters: params}}})
	if err != nil {
		tb.Fatal(err)
	}
	res[0].Time = 0
	return res[0]
}

func TestExecuteAndQuery(t *testing.T) {
	d := mustOpen(t)
	got := mustApply(t, d, ModeExecute, &command.Request{Statements: []command.Statement{
		{SQL: "CREATE TABLE foo (id INTEGER NOT NULL PRIMARY KEY, name TEXT, age INTEGER, b BLOB, r REAL, ok BOOLEAN)"},
		{SQL: "INSERT INTO foo(name, age) VALUES(?, ?)", Parameters: []command.Parameter{{Value: "fiona"}, {Value: int64(20)}}},
		{SQL: "INSERT INTO foo(name, age, b, r, ok) VALUES(:name, :age, :b, :r, :ok)", Parameters: []command.Parameter{
			{Name: "name", Value: "sinead"}, {Name: "age", Value: int64(30)}, {Name: "b", Value: []byte{0xde, 0xad}},
			{Name: "r", Value: 1.5}, {Name: "ok", Value: true}}},
		{SQL: "INSERT INTO bar VALUES(1)"},
		{SQL: "INSERT INTO foo(name) VALUES('x')"},
	}})
	want := []command.Result{
		{},
		{LastInsertID: 1, RowsAffected: 1},
		{LastInsertID: 2, RowsAffected: 1},
		{Error: "no such table: bar"},
		{LastInsertID: 3, RowsAffected: 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("execute:\n got %+v\nwant %+v", got, want)
	}
	r := mustQuery(t, d, "SELECT id, name, age, b, r, ok, age*2 AS twice, NULL AS n FROM foo WHERE id < ? ORDER BY id", command.Parameter{Value: int64(3)})
	wantR := command.Result{
		IsQuery: true,
		Columns: []string{"id", "name", "age", "b", "r", "ok", "twice", "n"},
		Types:   []string{"integer", "text", "integer", "blob", "real", "boolean", "integer", ""},
		Values: [][]any{
			{int64(1), "fiona", int64(20), nil, nil, nil, int64(40), nil},
			{int64(2), "sinead", int64(30), []byte{0xde, 0xad}, 1.5, true, int64(60), nil},
		},
	}
	if !reflect.DeepEqual(r, wantR) {
		t.Fatalf("query:\n got %#v\nwant %#v", r, wantR)
	}
	empty := mustQuery(t, d, "SELECT id, name FROM foo WHERE id > 100")
	if empty.Values != nil || len(empty.Columns) != 2 {
		t.Fatalf("empty result: %+v", empty)
	}
}

func TestTransaction(t *testing.T) {
	d := mustOpen(t)
	mustApply(t, d, ModeExecute, stmts("CREATE TABLE t (v INTEGER UNIQUE)"))
	req := stmts("INSERT INTO t VALUES(1)", "INSERT INTO t VALUES(1)", "INSERT INTO t VALUES(2)")
	req.Transaction = true
	res := mustApply(t, d, ModeExecute, req)
	if len(res) != 2 || res[1].Error == "" {
		t.Fatalf("transaction results: %+v", res)
	}
	if n := mustQuery(t, d, "SELECT COUNT(*) FROM t").Values[0][0]; n != int64(0) {
		t.Fatalf("transaction not rolled back: %v rows", n)
	}
	// Without a transaction, later statements still run.
	res = mustApply(t, d, ModeExecute, stmts("INSERT INTO t VALUES(1)", "INSERT INTO t VALUES(1)", "INSERT INTO t VALUES(2)"))
	if len(res) != 3 || res[1].Error == "" || res[2].Error != "" {
		t.Fatalf("results: %+v", res)
	}
	if n := mustQuery(t, d, "SELECT COUNT(*) FROM t").Values[0][0]; n != int64(2) {
		t.Fatalf("got %v rows, want 2", n)
	}
}

func TestOpenTransactionRolledBack(t *testing.T) {
	d := mustOpen(t)
	mustApply(t, d, ModeExecute, stmts("CREATE TABLE t (v)"))
	res := mustApply(t, d, ModeExecute, stmts("BEGIN", "INSERT INTO t VALUES(1)"))
	if res[1].Error != errOpenTx {
		t.Fatalf("results: %+v", res)
	}
	if n := mustQuery(t, d, "SELECT COUNT(*) FROM t").Values[0][0]; n != int64(0) {
		t.Fatalf("open transaction was kept: %v rows", n)
	}
	res = mustApply(t, d, ModeExecute, stmts("BEGIN", "INSERT INTO t VALUES(1)", "COMMIT"))
	if res[2].Error != "" {
		t.Fatalf("BEGIN/COMMIT in one request: %+v", res)
	}
}

func TestRequestModeAndReturning(t *testing.T) {
	d := mustOpen(t)
	res := mustApply(t, d, ModeRequest, stmts("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)",
		"INSERT INTO t(v) VALUES('a') RETURNING id, v", "SELECT COUNT(*) FROM t", "nonsense"))
	if res[1].Columns == nil || res[1].Values[0][1] != "a" {
		t.Fatalf("returning: %+v", res[1])
	}
	if !res[2].IsQuery || res[2].Values[0][0] != int64(1) {
		t.Fatalf("select in request: %+v", res[2])
	}
	if !strings.Contains(res[3].Error, "syntax error") {
		t.Fatalf("nonsense: %+v", res[3])
	}
	// Reads on the read pool cannot write.
	r, err := d.Query(context.Background(), ModeRequest, stmts("INSERT INTO t(v) VALUES('b')"))
	if err != nil || r[0].Error != ErrQueryWrite.Error() {
		t.Fatalf("write on read connection: %+v %v", r, err)
	}
}

func TestDeterminism(t *testing.T) {
	at := time.Date(2020, 5, 6, 7, 8, 9, 0, time.UTC)
	run := func() [][]any {
		d := mustOpen(t)
		req := stmts(
			"CREATE TABLE t (a, b, c, d DEFAULT CURRENT_TIMESTAMP, e)",
			"INSERT INTO t(a, b, c, e) VALUES(random(), hex(randomblob(9)), datetime('now'), unixepoch())")
		if _, err := d.Apply(Env{Time: at, Seed: 42}, ModeExecute, req); err != nil {
			t.Fatal(err)
		}
		return mustQuery(t, d, "SELECT * FROM t").Values
	}
	a, b := run(), run()
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("two replicas differ:\n%v\n%v", a, b)
	}
	if a[0][2] != "2020-05-06 07:08:09" || a[0][3] != "2020-05-06 07:08:09" || a[0][4] != at.Unix() {
		t.Fatalf("time not fixed: %v", a[0])
	}
	// Outside Apply the real clock is back.
	d := mustOpen(t)
	if y := mustQuery(t, d, "SELECT strftime('%Y','now')").Values[0][0]; y == "2020" {
		t.Fatal("fixed time leaked into reads")
	}
}

func TestPragmas(t *testing.T) {
	for _, q := range []string{"PRAGMA journal_mode=DELETE", "pragma synchronous = 0", "PRAGMA main.wal_checkpoint(TRUNCATE)",
		"PRAGMA wal_autocheckpoint=10", "PRAGMA query_only=1", "SELECT 1; PRAGMA journal_mode = memory"} {
		if err := CheckPragmas(stmts(q)); !errors.Is(err, ErrDisallowedPragma) {
			t.Errorf("%q: err = %v", q, err)
		}
	}
	for _, q := range []string{"PRAGMA journal_mode", "PRAGMA foreign_keys=ON", "SELECT 'pragma synchronous=0'x", "PRAGMA table_info(foo)"} {
		if err := CheckPragmas(stmts(q)); err != nil && q != "SELECT 'pragma synchronous=0'x" {
			t.Errorf("%q: err = %v", q, err)
		}
	}
}

func TestBackupDumpReplace(t *testing.T) {
	d := mustOpen(t)
	mustApply(t, d, ModeExecute, &command.Request{Statements: []command.Statement{
		{SQL: "CREATE TABLE foo (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, at DATETIME, b BLOB, r REAL)"},
		{SQL: "CREATE INDEX foo_name ON foo(name)"},
		{SQL: "INSERT INTO foo(name, at, b, r) VALUES(?, ?, ?, ?)", Parameters: []command.Parameter{
			{Value: "it's"}, {Value: "2024-01-02 03:04:05"}, {Value: []byte{1, 2, 255}}, {Value: 2.0}}},
	}})
	var buf bytes.Buffer
	if err := d.Dump(context.Background(), &buf, nil); err != nil {
		t.Fatal(err)
	}
	want := `PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE foo (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, at DATETIME, b BLOB, r REAL);
INSERT INTO "foo" VALUES(1,'it''s','2024-01-02 03:04:05',X'0102FF',2.0);
DELETE FROM sqlite_sequence;
INSERT INTO "sqlite_sequence" VALUES('foo',1);
CREATE INDEX foo_name ON foo(name);
COMMIT;
`
	if buf.String() != want {
		t.Fatalf("dump:\n%s\nwant:\n%s", buf.String(), want)
	}

	// Binary backup, then replace a second database with it.
	bk := filepath.Join(t.TempDir(), "backup.db")
	if err := d.BackupTo(context.Background(), bk, false); err != nil {
		t.Fatal(err)
	}
	d2 := mustOpen(t)
	if err := d2.Replace(bk); err != nil {
		t.Fatal(err)
	}
	if r := mustQuery(t, d2, "SELECT name FROM foo"); r.Values[0][0] != "it's" {
		t.Fatalf("after replace: %+v", r)
	}
	// Garbage is refused and the database is untouched.
	junk := filepath.Join(t.TempDir(), "junk")
	os.WriteFile(junk, []byte("not a database at all, just text"), 0o600)
	if err := d2.Replace(junk); !errors.Is(err, ErrNotSQLite) {
		t.Fatalf("replace with junk: %v", err)
	}
	if r := mustQuery(t, d2, "SELECT COUNT(*) FROM foo"); r.Values[0][0] != int64(1) {
		t.Fatalf("after failed replace: %+v", r)
	}
	// A vacuumed backup and a snapshot produce valid files too.
	for _, f := range []func(string) error{
		func(p string) error { return d.BackupTo(context.Background(), p, true) },
		func(p string) error {
			snap, err := d.BeginSnapshot()
			if err != nil {
				return err
			}
			defer snap.Close()
			return snap.WriteTo(p)
		},
	} {
		p := filepath.Join(t.TempDir(), "copy.db")
		if err := f(p); err != nil {
			t.Fatal(err)
		}
		if err := checkSQLiteFile(p); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCountersNotStale(t *testing.T) {
	d := mustOpen(t)
	res := mustApply(t, d, ModeExecute, stmts("CREATE TABLE t (v)", "INSERT INTO t VALUES(1)",
		"CREATE TABLE u (v)", "SELECT 1", " /* c */ -- x\n update t SET v = 2"))
	want := []command.Result{{}, {LastInsertID: 1, RowsAffected: 1}, {}, {}, {LastInsertID: 1, RowsAffected: 1}}
	if !reflect.DeepEqual(res, want) {
		t.Fatalf("got %+v", res)
	}
}

// A request without ?transaction runs grouped in one SQLite transaction;
// its results must be exactly those of running each statement alone.
func TestGroupedMatchesAutocommit(t *testing.T) {
	req := stmts("CREATE TABLE t (v INTEGER UNIQUE, w)", "INSERT INTO t VALUES(1, 'a')", "INSERT INTO t VALUES(1, 'dup')",
		"UPDATE t SET w = 'b' WHERE v = 1", "INSERT INTO nope VALUES(1)", "INSERT INTO t VALUES(2, 'c') RETURNING v",
		"SELECT COUNT(*) FROM t", "DELETE FROM t WHERE v = 2")
	grouped := mustApply(t, mustOpen(t), ModeExecute, req)
	// The same request in autocommit mode, statement by statement.
	d := mustOpen(t)
	d.writer.beginRequest()
	each := runEach(context.Background(), d.writer, ModeExecute, req)
	for i := range each {
		each[i].Time = 0
	}
	if !reflect.DeepEqual(grouped, each) {
		t.Fatalf("grouped:\n%+v\none by one:\n%+v", grouped, each)
	}
	// Transaction control in a request disables grouping, and still works.
	res := mustApply(t, d, ModeExecute, stmts("BEGIN", "INSERT INTO t VALUES(9, 'x')", "COMMIT"))
	if res[2].Error != "" {
		t.Fatalf("explicit transaction: %+v", res)
	}
	if groupable(stmts("SELECT 1; BEGIN", "SELECT 2")) || !groupable(stmts("INSERT INTO t VALUES(1, 'x');", "SELECT 2")) {
		t.Fatal("groupable misjudges multi-statement strings")
	}
}

// TestEnvironmentErrorStopsApply: whether SQLite failed because of this
// node's storage is decided by checking the storage, not from the error.
// A full database (made here with the node's own max_page_count, which
// clients cannot set) on healthy storage is a statement error, the same on
// every replica; the same error with the database file gone is
// ErrEnvironment, so the FSM can stop the node instead of diverging.
func TestEnvironmentErrorStopsApply(t *testing.T) {
	d := mustOpen(t)
	mustApply(t, d, ModeExecute, stmts("CREATE TABLE big(b BLOB)"))
	if _, err := d.Apply(Env{}, ModeExecute, stmts("INSERT INTO nosuch VALUES(1)")); err != nil {
		t.Fatalf("a statement error came back as %v", err)
	}
	if err := d.execRaw("PRAGMA max_page_count = 8"); err != nil {
		t.Fatal(err)
	}
	res, err := d.Apply(Env{}, ModeExecute, stmts("INSERT INTO big VALUES(zeroblob(1000000))"))
	if err != nil || !strings.Contains(res[0].Error, "full") {
		t.Fatalf("a full database on healthy storage gave %+v %v, want a statement error", res, err)
	}
	// Also inside a multi-statement request (run in one transaction).
	res, err = d.Apply(Env{}, ModeExecute, stmts("INSERT INTO big VALUES(1)", "INSERT INTO big VALUES(zeroblob(1000000))"))
	if err != nil || res[0].Error != "" || !strings.Contains(res[1].Error, "full") {
		t.Fatalf("a full database in a grouped request gave %+v %v", res, err)
	}
	if err := os.Rename(d.Path(), d.Path()+".gone"); err != nil {
		t.Fatal(err)
	}
	_, err = d.Apply(Env{}, ModeExecute, stmts("INSERT INTO big VALUES(zeroblob(1000000))"))
	if !errors.Is(err, ErrEnvironment) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a full database whose file is gone gave %v, want ErrEnvironment", err)
	}
	if err := CheckPragmas(stmts("PRAGMA max_page_count = 8")); !errors.Is(err, ErrDisallowedPragma) {
		t.Fatalf("max_page_count from a client: %v", err)
	}
}

func TestProbeDir(t *testing.T) {
	if err := probeDir(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if err := probeDir(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("a missing directory passed the probe")
	}
}

// A snapshot holds the database as it was at BeginSnapshot, while writes
// go on, and a Replace waits for it to end.
func TestSnapshotPinsState(t *testing.T) {
	d := mustOpen(t)
	mustApply(t, d, ModeExecute, stmts("CREATE TABLE t (v)", "INSERT INTO t VALUES(1)", "INSERT INTO t VALUES(2)"))
	snap, err := d.BeginSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Writes are not blocked by the open snapshot.
	for i := range 200 {
		mustApply(t, d, ModeExecute, stmts(fmt.Sprintf("INSERT INTO t VALUES(%d)", i+10)))
	}
	p := filepath.Join(t.TempDir(), "snap.db")
	if err := snap.WriteTo(p); err != nil {
		t.Fatal(err)
	}
	replaced := make(chan error, 1)
	go func() { replaced <- d.Replace(p) }()
	select {
	case err := <-replaced:
		t.Fatalf("Replace did not wait for the open snapshot: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	if err := snap.Close(); err != nil {
		t.Fatal(err)
	}
	snap.Close() // twice is fine
	if err := <-replaced; err != nil {
		t.Fatal(err)
	}
	if r := mustQuery(t, d, "SELECT COUNT(*) FROM t"); r.Values[0][0] != int64(2) {
		t.Fatalf("snapshot holds %v rows, want the 2 from before it began", r.Values[0][0])
	}
}

// Grouping keeps autocommit's results and data where a statement's failure
// keeps part of its work (the FAIL conflict resolution) and where
// constraints are checked at commit (deferred foreign keys).
func TestGroupedMatchesAutocommitEdgeCases(t *testing.T) {
	open := func(fk bool) *DB {
		d, err := Open(Config{Path: filepath.Join(t.TempDir(), "db.sqlite"), ForeignKeys: fk})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	for name, tc := range map[string]struct {
		fk    bool
		setup []string
		req   []string
		check string
	}{
		"fail keeps earlier rows": {false,
			[]string{"CREATE TABLE f (v UNIQUE ON CONFLICT FAIL)", "CREATE TABLE g (v UNIQUE)",
				"CREATE TABLE h (v)", "CREATE TRIGGER th AFTER INSERT ON h WHEN new.v = 3 BEGIN SELECT RAISE(FAIL, 'three'); END"},
			[]string{"INSERT INTO f VALUES(1),(2),(1)", "INSERT OR FAIL INTO g VALUES(5),(6),(5)", "INSERT INTO h VALUES(1),(2),(3)", "INSERT INTO f VALUES(9)"},
			"SELECT (SELECT group_concat(v) FROM f), (SELECT group_concat(v) FROM g), (SELECT group_concat(v) FROM h)"},
		"deferred foreign key": {true,
			[]string{"CREATE TABLE p (id INTEGER PRIMARY KEY)", "CREATE TABLE c (pid REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED)"},
			[]string{"INSERT INTO c VALUES(42)", "INSERT INTO p VALUES(42)"},
			"SELECT (SELECT count(*) FROM c), (SELECT count(*) FROM p)"},
	} {
		t.Run(name, func(t *testing.T) {
			grouped, alone := open(tc.fk), open(tc.fk)
			mustApply(t, grouped, ModeExecute, stmts(tc.setup...))
			mustApply(t, alone, ModeExecute, stmts(tc.setup...))
			g := mustApply(t, grouped, ModeExecute, stmts(tc.req...))
			var a []command.Result
			for _, q := range tc.req {
				a = append(a, mustApply(t, alone, ModeExecute, stmts(q))...)
			}
			if !reflect.DeepEqual(g, a) {
				t.Fatalf("results grouped:\n%+v\nalone:\n%+v", g, a)
			}
			if rg, ra := mustQuery(t, grouped, tc.check), mustQuery(t, alone, tc.check); !reflect.DeepEqual(rg, ra) {
				t.Fatalf("data grouped %v, alone %v", rg.Values, ra.Values)
			}
		})
	}
}
