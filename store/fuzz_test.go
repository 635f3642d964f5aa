package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rqlited/rqlited/command"
	"github.com/rqlited/rqlited/db"
)

// FuzzHostileSQLNode sends generated SQL to a real single-node store (Raft,
// its log and SQLite on disk) as an execute, a strong query and a local
// query, and checks that the node never stops (Fatal is never called, the
// store keeps answering), the query paths never change the database, and
// nothing is written outside the data directory. db.FuzzHostileSQL
// explores the SQL faster; this one goes through the log.
func FuzzHostileSQLNode(f *testing.F) {
	for _, s := range []string{
		"ATTACH '/nonexistent-dir/x.db' AS y", "ATTACH 'out.db' AS y; CREATE TABLE y.t(v)", "ATTACH ':memory:' AS m",
		"PRAGMA/**/max_page_count=1", "PRAGMA/**/journal_mode=DELETE", "PRAGMA wal_checkpoint(TRUNCATE)",
		"VACUUM INTO 'out.db'", "CREATE TEMP VIEW t AS SELECT 'x'", "INSERT INTO t VALUES(total_changes())",
		"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c",
		"DELETE FROM t RETURNING *", "PRAGMA user_version=5", "PRAGMA foreign_keys=ON",
	} {
		f.Add(s)
	}
	dir := f.TempDir()
	var fatal atomic.Value
	n := mustOpenStore(f, dir, func(c *Config) {
		c.MaxSteps = 1_000_000
		c.MaxResultBytes = 1 << 20
		c.Fatal = func(err error) { fatal.Store(err) }
	})
	mustExec(f, n.Store, "CREATE TABLE t(v)")
	cwd := f.TempDir()
	f.Chdir(cwd)
	dbPath := filepath.Join(dir, "db.sqlite")
	f.Fuzz(func(t *testing.T, q string) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		r := &command.Request{Statements: []command.Statement{{SQL: q}}}
		// rqlite's own refusal of the plain PRAGMA forms is a request error.
		if _, _, err := n.Execute(ctx, r); err != nil && !errors.Is(err, db.ErrDisallowedPragma) {
			t.Fatalf("%q: execute: %v", q, err)
		}
		before := fileState(t, dbPath)
		for _, l := range []command.Level{command.Strong, command.None} {
			if _, _, err := n.Query(ctx, r, command.QueryOptions{Level: l}); err != nil && !errors.Is(err, db.ErrDisallowedPragma) {
				t.Fatalf("%q: query at level %v: %v", q, l, err)
			}
		}
		if after := fileState(t, dbPath); after != before {
			t.Fatalf("%q: a query changed the database: %v -> %v", q, before, after)
		}
		if err, _ := fatal.Load().(error); err != nil {
			t.Fatalf("%q stopped the node: %v", q, err)
		}
		if es, _ := os.ReadDir(cwd); len(es) != 0 {
			t.Fatalf("%q wrote %s in the working directory", q, es[0].Name())
		}
	})
}

// fileState is the size and modification time of the database and its
// WAL: a committed write changes the WAL, a checkpoint the database.
func fileState(tb testing.TB, p string) [4]int64 {
	var s [4]int64
	for i, name := range []string{p, p + "-wal"} {
		fi, err := os.Stat(name)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			tb.Fatal(err)
		}
		s[2*i], s[2*i+1] = fi.Size(), fi.ModTime().UnixNano()
	}
	return s
}
