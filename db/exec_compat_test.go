package db

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/rqlited/rqlited/command"
)

// TestWithCounters: a WITH clause that reads reports no stale counters on
// the write path; one that writes reports its own.
func TestWithCounters(t *testing.T) {
	d := mustOpen(t)
	res := mustApply(t, d, ModeExecute, stmts("CREATE TABLE t (v)", "INSERT INTO t VALUES(1)",
		"WITH x AS (SELECT 1) SELECT * FROM x",
		"WITH x(v) AS (SELECT 5) INSERT INTO t SELECT v FROM x"))
	want := []command.Result{{}, {LastInsertID: 1, RowsAffected: 1}, {}, {LastInsertID: 2, RowsAffected: 1}}
	if !reflect.DeepEqual(res, want) {
		t.Fatalf("got %+v, want %+v", res, want)
	}
}

// TestQueryTimeoutText: a read stopped by its deadline (db_timeout) fails
// with rqlite's "query timeout".
func TestQueryTimeoutText(t *testing.T) {
	d := mustOpen(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	res, err := d.Query(ctx, ModeQuery, stmts(
		"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 100000000) SELECT count(*) FROM c"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Error != "query timeout" {
		t.Fatalf("got %+v, want the error \"query timeout\"", res)
	}
	// The connection serves the next read.
	if r := mustQuery(t, d, "SELECT 1"); r.Error != "" || len(r.Values) != 1 {
		t.Fatalf("next read: %+v", r)
	}
}

// TestColumnTables: the table of each result column, "" for expressions,
// nil for a statement that does not prepare; without column metadata in
// SQLite, ErrNoColumnMetadata.
func TestColumnTables(t *testing.T) {
	d := mustOpen(t)
	mustApply(t, d, ModeExecute, stmts("CREATE TABLE a (id INTEGER PRIMARY KEY, x)", "CREATE TABLE b (id INTEGER PRIMARY KEY, y)"))
	req := stmts("SELECT a.id, b.y, 1+1 FROM a JOIN b ON a.id = b.id", "SELECT * FROM nowhere", "SELECT x AS renamed FROM a")
	got, err := d.ColumnTables(context.Background(), req, []int{3, 1, 1})
	if errors.Is(err, ErrNoColumnMetadata) {
		if compileOption(t, d, "ENABLE_COLUMN_METADATA") {
			t.Fatal("SQLite has column metadata but ColumnTables says it has not")
		}
		t.Skip("built without go-sqlite3's sqlite_column_metadata tag")
	}
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"a", "b", ""}, nil, {"a"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func compileOption(t *testing.T, d *DB, opt string) bool {
	t.Helper()
	r := mustQuery(t, d, "PRAGMA compile_options")
	for _, row := range r.Values {
		if s, _ := row[0].(string); s == opt {
			return true
		}
	}
	return false
}
