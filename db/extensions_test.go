package db

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/rqlited/rqlited/command"
)

// The SQLite options rqlite's go-sqlite3 fork compiles in, which the
// Makefile turns on (go-sqlite3 build tags and CGO_CFLAGS; DOC/DESIGN.md,
// "SQLite options"). A plain `go test ./db/` builds SQLite without the ones
// go-sqlite3 leaves off by default: the tests that need one skip then,
// unless RQLITED_REQUIRE_SQLITE_OPTS is set (make sets it), when they fail.
var rqliteOptions = []string{
	"ENABLE_FTS3",
	"ENABLE_FTS3_PARENTHESIS",
	"ENABLE_FTS5",
	"ENABLE_RTREE",
	"ENABLE_GEOPOLY",
	"ENABLE_DBSTAT_VTAB",
	"ENABLE_MATH_FUNCTIONS",
	"ENABLE_SESSION",
	"ENABLE_PREUPDATE_HOOK",
	"OMIT_SHARED_CACHE",
}

// compileOptions returns PRAGMA compile_options as a set, values included
// ("THREADSAFE=1").
func compileOptions(tb testing.TB, d *DB) map[string]bool {
	tb.Helper()
	r := mustQuery(tb, d, "PRAGMA compile_options")
	if r.Error != "" {
		tb.Fatalf("PRAGMA compile_options: %s", r.Error)
	}
	opts := map[string]bool{}
	for _, row := range r.Values {
		s, _ := row[0].(string)
		opts[s] = true
		if i := strings.IndexByte(s, '='); i > 0 {
			opts[s[:i]] = true
		}
	}
	return opts
}

// needOption skips tb when SQLite lacks opt, or fails it when make asked
// for every option.
func needOption(tb testing.TB, opts map[string]bool, opt string) {
	tb.Helper()
	if opts[opt] {
		return
	}
	if os.Getenv("RQLITED_REQUIRE_SQLITE_OPTS") != "" {
		tb.Fatalf("SQLite was built without %s (RQLITED_REQUIRE_SQLITE_OPTS is set): check the Makefile's SQLITE_TAGS and SQLITE_CFLAGS", opt)
	}
	tb.Skipf("SQLite was built without %s: run the tests through make (make unit-test), which sets the go-sqlite3 tags and CGO_CFLAGS", opt)
}

func TestCompileOptions(t *testing.T) {
	d := mustOpen(t)
	opts := compileOptions(t, d)
	var missing []string
	for _, o := range rqliteOptions {
		if !opts[o] {
			missing = append(missing, o)
		}
	}
	if len(missing) > 0 {
		needOption(t, opts, strings.Join(missing, ", "))
	}
	// JSON is part of SQLite since 3.38 unless omitted.
	if opts["OMIT_JSON"] {
		t.Fatal("SQLite was built with OMIT_JSON")
	}
	// load_extension() stays out whatever the build (the guard refuses it).
	res, err := d.Apply(Env{}, ModeExecute, stmts("SELECT load_extension('x')"))
	if err != nil || len(res) != 1 || res[0].Error == "" {
		t.Fatalf("load_extension: %+v %v", res, err)
	}
}

// rows runs q on the read pool and returns its values, failing on an error.
func rows(tb testing.TB, d *DB, q string, params ...command.Parameter) [][]any {
	tb.Helper()
	r := mustQuery(tb, d, q, params...)
	if r.Error != "" {
		tb.Fatalf("%s: %s", q, r.Error)
	}
	return r.Values
}

// writerRows runs the read q on the writer, as part of a request
// (ModeRequest), and returns its values, failing on an error.
func writerRows(tb testing.TB, d *DB, q string) [][]any {
	tb.Helper()
	res := mustApply(tb, d, ModeRequest, stmts(q))
	if res[0].Error != "" {
		tb.Fatalf("%s: %s", q, res[0].Error)
	}
	return res[0].Values
}

// mustExec applies the statements on the writer, failing on any error.
func mustExec(tb testing.TB, d *DB, sqls ...string) []command.Result {
	tb.Helper()
	res := mustApply(tb, d, ModeExecute, stmts(sqls...))
	for i, r := range res {
		if r.Error != "" {
			tb.Fatalf("%s: %s", sqls[i], r.Error)
		}
	}
	return res
}

func wantRows(tb testing.TB, got [][]any, want ...[]any) {
	tb.Helper()
	if len(want) == 0 {
		want = nil
	}
	if !reflect.DeepEqual(got, want) {
		tb.Fatalf("got %#v\nwant %#v", got, want)
	}
}

func TestFTS5(t *testing.T) {
	d := mustOpen(t)
	needOption(t, compileOptions(t, d), "ENABLE_FTS5")
	mustExec(t, d,
		"CREATE VIRTUAL TABLE docs USING fts5(title, body, tokenize = 'porter unicode61')",
		"INSERT INTO docs(rowid, title, body) VALUES(1, 'rqlite', 'a distributed database built on SQLite and Raft')",
		"INSERT INTO docs(rowid, title, body) VALUES(2, 'SQLite', 'a small, fast, self-contained SQL database engine')",
		"INSERT INTO docs(rowid, title, body) VALUES(3, 'Raft', 'a consensus algorithm that is designed to be easy to understand')",
	)
	// MATCH, column filters, prefix and boolean queries, on the read pool.
	wantRows(t, rows(t, d, "SELECT rowid FROM docs WHERE docs MATCH 'database' ORDER BY rowid"), []any{int64(1)}, []any{int64(2)})
	wantRows(t, rows(t, d, "SELECT rowid FROM docs WHERE docs MATCH 'sqlite AND raft'"), []any{int64(1)})
	wantRows(t, rows(t, d, "SELECT rowid FROM docs WHERE docs MATCH 'title:raft'"), []any{int64(3)})
	wantRows(t, rows(t, d, "SELECT rowid FROM docs WHERE docs MATCH ? ORDER BY rowid", command.Parameter{Value: "consen*"}), []any{int64(3)})
	wantRows(t, rows(t, d, "SELECT rowid FROM docs WHERE docs MATCH 'designed' "), []any{int64(3)}) // porter stems "designed" and "design"
	wantRows(t, rows(t, d, "SELECT highlight(docs, 0, '[', ']') FROM docs WHERE docs MATCH 'rqlite'"), []any{"[rqlite]"})
	if v := rows(t, d, "SELECT bm25(docs) FROM docs WHERE docs MATCH 'sqlite'"); len(v) != 2 {
		t.Fatalf("bm25: %v", v)
	}
	// Writes through the log keep the index current, and the integrity
	// check agrees.
	mustExec(t, d,
		"UPDATE docs SET body = 'now about nothing' WHERE rowid = 2",
		"DELETE FROM docs WHERE rowid = 3",
		"INSERT INTO docs(docs) VALUES('integrity-check')",
		"INSERT INTO docs(docs) VALUES('optimize')",
	)
	wantRows(t, rows(t, d, "SELECT rowid FROM docs WHERE docs MATCH 'database'"), []any{int64(1)})
	wantRows(t, rows(t, d, "SELECT rowid FROM docs WHERE docs MATCH 'raft' ORDER BY rank"), []any{int64(1)})
	// The query path stays read-only for virtual tables too.
	res, err := d.Query(context.Background(), ModeQuery, stmts("INSERT INTO docs(title) VALUES('x')"))
	if err != nil || res[0].Error == "" {
		t.Fatalf("write to an FTS5 table on the query path: %+v %v", res, err)
	}
}

func TestFTS4(t *testing.T) {
	d := mustOpen(t)
	needOption(t, compileOptions(t, d), "ENABLE_FTS3")
	mustExec(t, d,
		"CREATE VIRTUAL TABLE notes USING fts4(body)",
		"INSERT INTO notes(docid, body) VALUES(1, 'replicated log'), (2, 'snapshot of the log'), (3, 'leader election')",
	)
	wantRows(t, rows(t, d, "SELECT docid FROM notes WHERE notes MATCH 'log' ORDER BY docid"), []any{int64(1)}, []any{int64(2)})
	// FTS3_PARENTHESIS: AND, OR, NOT and parentheses.
	wantRows(t, rows(t, d, "SELECT docid FROM notes WHERE notes MATCH '(log OR leader) NOT snapshot' ORDER BY docid"), []any{int64(1)}, []any{int64(3)})
}

func TestJSONFunctions(t *testing.T) {
	d := mustOpen(t)
	mustExec(t, d,
		"CREATE TABLE j(id INTEGER PRIMARY KEY, doc TEXT)",
		`INSERT INTO j(doc) VALUES('{"name":"ann","tags":["a","b"],"n":{"x":1}}')`,
		`UPDATE j SET doc = json_set(doc, '$.n.y', 2, '$.tags[#]', 'c')`,
	)
	wantRows(t, rows(t, d, "SELECT json_extract(doc, '$.name'), doc->>'$.n.y', json_array_length(doc, '$.tags'), json_valid(doc) FROM j"),
		[]any{"ann", int64(2), int64(3), int64(1)})
	wantRows(t, rows(t, d, "SELECT value FROM j, json_each(j.doc, '$.tags') ORDER BY value"), []any{"a"}, []any{"b"}, []any{"c"})
	wantRows(t, rows(t, d, `SELECT json_object('a', 1, 'b', json_array(1, 2)), json(jsonb('{"k": [1, 2]}'))`),
		[]any{`{"a":1,"b":[1,2]}`, `{"k":[1,2]}`})
	wantRows(t, rows(t, d, "SELECT json_group_array(id) FROM j"), []any{"[1]"})
	wantRows(t, rows(t, d, "SELECT key FROM json_tree('{\"a\":{\"b\":1}}') WHERE type = 'integer'"), []any{"b"})
}

func TestMathFunctions(t *testing.T) {
	d := mustOpen(t)
	needOption(t, compileOptions(t, d), "ENABLE_MATH_FUNCTIONS")
	wantRows(t, rows(t, d, "SELECT sqrt(16), pow(2, 10), power(3, 2), ln(exp(1)), log10(1000), log(2, 8), log2(1024), floor(-1.5), ceil(1.2), ceiling(1.2), trunc(-2.7), mod(7, 3), round(pi(), 5), degrees(pi()), radians(180) = pi(), sin(0), cos(0), round(atan2(1, 1) * 4, 10) = round(pi(), 10), sign(-3)"),
		[]any{4.0, 1024.0, 9.0, 1.0, 3.0, 3.0, 10.0, -2.0, 2.0, 2.0, -2.0, 1.0, 3.14159, 180.0, int64(1), 0.0, 1.0, int64(1), int64(-1)})
	// The same results when applied from the log.
	mustExec(t, d, "CREATE TABLE m(v REAL)", "INSERT INTO m VALUES(sqrt(2) * sqrt(2)), (pow(10, -2))")
	wantRows(t, rows(t, d, "SELECT round(v, 9) FROM m ORDER BY v"), []any{0.01}, []any{2.0})
}

func TestRTree(t *testing.T) {
	d := mustOpen(t)
	needOption(t, compileOptions(t, d), "ENABLE_RTREE")
	mustExec(t, d,
		"CREATE VIRTUAL TABLE boxes USING rtree(id, minx, maxx, miny, maxy)",
		"INSERT INTO boxes VALUES(1, 0, 10, 0, 10), (2, 5, 15, 5, 15), (3, 20, 30, 20, 30)",
		"CREATE VIRTUAL TABLE iboxes USING rtree_i32(id, x0, x1)",
		"INSERT INTO iboxes VALUES(1, -5, 5)",
	)
	wantRows(t, writerRows(t, d, "SELECT id FROM boxes WHERE maxx >= 6 AND minx <= 8 AND maxy >= 6 AND miny <= 8 ORDER BY id"), []any{int64(1)}, []any{int64(2)})
	wantRows(t, writerRows(t, d, "SELECT id FROM boxes WHERE minx > 18"), []any{int64(3)})
	wantRows(t, writerRows(t, d, "SELECT id FROM iboxes WHERE x0 <= 0 AND x1 >= 0"), []any{int64(1)})
	wantRows(t, writerRows(t, d, "SELECT rtreecheck('boxes')"), []any{"ok"})
}

func TestGeopoly(t *testing.T) {
	d := mustOpen(t)
	needOption(t, compileOptions(t, d), "ENABLE_GEOPOLY")
	mustExec(t, d,
		"CREATE VIRTUAL TABLE shapes USING geopoly(name)",
		"INSERT INTO shapes(_shape, name) VALUES('[[0,0],[2,0],[2,2],[0,2],[0,0]]', 'square')",
		"INSERT INTO shapes(_shape, name) VALUES('[[10,10],[12,10],[11,12],[10,10]]', 'triangle')",
	)
	wantRows(t, writerRows(t, d, "SELECT name FROM shapes WHERE geopoly_contains_point(_shape, 1, 1)"), []any{"square"})
	wantRows(t, writerRows(t, d, "SELECT name FROM shapes WHERE geopoly_overlap(_shape, '[[9,9],[11,9],[11,11],[9,11],[9,9]]')"), []any{"triangle"})
	wantRows(t, writerRows(t, d, "SELECT name, geopoly_area(_shape) FROM shapes ORDER BY name"), []any{"square", 4.0}, []any{"triangle", 2.0})
	wantRows(t, writerRows(t, d, "SELECT geopoly_json(geopoly_bbox('[[1,1],[3,2],[2,4],[1,1]]'))"), []any{"[[1.0,1.0],[3.0,1.0],[3.0,4.0],[1.0,4.0],[1.0,1.0]]"})
	wantRows(t, writerRows(t, d, "SELECT geopoly_within('[[1,1],[2,1],[2,2],[1,1]]', '[[0,0],[3,0],[3,3],[0,3],[0,0]]') > 0"), []any{int64(1)})
	if v := writerRows(t, d, "SELECT geopoly_svg(_shape) FROM shapes WHERE name = 'square'"); len(v) != 1 || !strings.HasPrefix(fmt.Sprint(v[0][0]), "<polyline") {
		t.Fatalf("geopoly_svg: %v", v)
	}
}

func TestDBStat(t *testing.T) {
	d := mustOpen(t)
	needOption(t, compileOptions(t, d), "ENABLE_DBSTAT_VTAB")
	mustExec(t, d, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)",
		"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 200) INSERT INTO t(v) SELECT hex(randomblob(100)) FROM c")
	// One cell per row on the leaf pages, and the rows need several pages.
	wantRows(t, rows(t, d, "SELECT count(*) > 1, sum(ncell) FROM dbstat WHERE name = 't' AND pagetype = 'leaf'"), []any{int64(1), int64(200)})
	wantRows(t, rows(t, d, "SELECT count(*) FROM dbstat('main', 1) WHERE name = 'sqlite_schema'"), []any{int64(1)})
}

// The step and result limits bound statements on the virtual tables as on
// any other.
func TestLimitsWithExtensions(t *testing.T) {
	d := openWith(t, Config{MaxSteps: 5_000_000, MaxResultBytes: 64 << 10})
	needOption(t, compileOptions(t, d), "ENABLE_FTS5")
	mustExec(t, d,
		"CREATE VIRTUAL TABLE docs USING fts5(body)",
		"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 3000) INSERT INTO docs(body) SELECT 'common word ' || x FROM c",
	)
	wantRows(t, rows(t, d, "SELECT count(*) FROM docs WHERE docs MATCH 'common'"), []any{int64(3000)})
	// 9 million joined rows: past the step limit, on the pool and the writer.
	join := "SELECT count(*) FROM docs a, docs b WHERE a.docs MATCH 'common' AND b.docs MATCH 'word'"
	res, err := d.Query(context.Background(), ModeQuery, stmts(join))
	if err != nil || !strings.Contains(res[0].Error, "-db-max-steps") {
		t.Fatalf("unbounded FTS5 read: %+v %v", res, err)
	}
	res, err = d.Apply(Env{}, ModeRequest, stmts(join))
	if err != nil || !strings.Contains(res[0].Error, "-db-max-steps") {
		t.Fatalf("unbounded FTS5 read on the writer: %+v %v", res, err)
	}
	// About 3000 highlighted rows of some 60 bytes: past 64 KiB.
	res, err = d.Query(context.Background(), ModeQuery, stmts("SELECT highlight(docs, 0, '<b>', '</b>') || printf('%040d', rowid) FROM docs WHERE docs MATCH 'common'"))
	if err != nil || !strings.Contains(res[0].Error, "-db-max-result-bytes") {
		t.Fatalf("large FTS5 result: %+v %v", res, err)
	}
}

// R*Tree and Geopoly tables read on the read pool (level none and weak
// queries). A new connection's first use of such a table runs the module's
// xConnect, which prepares (without running) its INSERT and DELETE
// statements on the shadow tables; the guard's authorizer refuses those on
// a read-only connection, so the read fails with "attempt to change
// database via query operation". rqlite's read connections are read-only
// at the SQLite level only (SQLITE_OPEN_READONLY), which lets the prepare
// through. The fix belongs in db/guard.go.
func TestRTreeReadPool(t *testing.T) {
	d := mustOpen(t)
	opts := compileOptions(t, d)
	needOption(t, opts, "ENABLE_RTREE")
	needOption(t, opts, "ENABLE_GEOPOLY")
	mustExec(t, d,
		"CREATE VIRTUAL TABLE boxes USING rtree(id, minx, maxx)",
		"INSERT INTO boxes VALUES(1, 0, 10)",
		"CREATE VIRTUAL TABLE shapes USING geopoly(name)",
		"INSERT INTO shapes(_shape, name) VALUES('[[0,0],[2,0],[2,2],[0,2],[0,0]]', 'square')",
	)
	for _, q := range []string{"SELECT id FROM boxes WHERE minx <= 5", "SELECT count(*) FROM shapes WHERE geopoly_contains_point(_shape, 1, 1)"} {
		r := mustQuery(t, d, q)
		if r.Error != "" {
		}
		wantRows(t, r.Values, []any{int64(1)})
	}
}
