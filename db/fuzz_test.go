package db

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Heads of statements that have stopped nodes, written outside the
// database or poisoned readers; the fuzzer mutates what follows them.
var hostileHeads = []string{
	"",
	"ATTACH ",
	"PRAGMA/**/",
	"VACUUM INTO ",
	"CREATE TEMP VIEW t AS ",
	"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) ",
	"SELECT load_extension(",
	"INSERT INTO t ",
}

// FuzzHostileSQL runs generated SQL through the write path, the strong
// query path and the read pool of one database and checks that nothing
// stops it (no ErrEnvironment on healthy storage), the query paths change
// nothing, and no file appears outside the database's own.
func FuzzHostileSQL(f *testing.F) {
	for _, s := range []struct {
		head uint8
		tail string
	}{
		{1, "'/nonexistent-dir/x.db' AS y"}, {1, "'/etc/hostname' AS y"}, {1, "'fuzz-out.db' AS y"},
		{1, "':memory:' AS m; CREATE TABLE m.x(v)"}, {2, "journal_mode=DELETE"}, {2, "max_page_count=1"},
		{2, "locking_mode=EXCLUSIVE"}, {2, "wal_checkpoint(TRUNCATE)"}, {2, "hard_heap_limit=1"},
		{3, "'fuzz-out.db'"}, {4, "SELECT 'attacker'"}, {5, "SELECT count(*) FROM c"},
		{6, "'x')"}, {7, "VALUES(1) RETURNING *"}, {0, "PRAGMA user_version=5"},
		{0, "DELETE FROM t RETURNING *"}, {0, "CREATE TABLE IF NOT EXISTS u(v)"},
		{0, "PRAGMA writable_schema=1; UPDATE sqlite_schema SET sql='x'"},
	} {
		f.Add(s.head, s.tail)
	}
	dir := f.TempDir()
	d, err := Open(Config{Path: filepath.Join(dir, "db.sqlite"), MaxSteps: 1_000_000, MaxResultBytes: 1 << 20, MaxReadConns: 4})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { d.Close() })
	if _, err := d.Apply(Env{}, ModeExecute, stmts("CREATE TABLE t(v)", "INSERT INTO t VALUES(1)")); err != nil {
		f.Fatal(err)
	}
	// A relative file name would land in the working directory: make it
	// one of the test's own, which must stay empty.
	cwd := f.TempDir()
	f.Chdir(cwd)
	f.Fuzz(func(t *testing.T, head uint8, tail string) {
		q := hostileHeads[int(head)%len(hostileHeads)] + tail
		if _, err := d.Apply(Env{}, ModeExecute, stmts(q)); err != nil {
			t.Fatalf("%q on the write path: %v", q, err)
		}
		sum := fingerprint(t, d)
		if _, err := d.Apply(Env{}, ModeQuery, stmts(q)); err != nil {
			t.Fatalf("%q on the strong query path: %v", q, err)
		}
		if _, err := d.Query(context.Background(), ModeQuery, stmts(q)); err != nil {
			t.Fatalf("%q on the read pool: %v", q, err)
		}
		if got := fingerprint(t, d); got != sum {
			t.Fatalf("%q on the query path changed the database", q)
		}
		for _, n := range names(t, dir) {
			if n != "db.sqlite" && n != "db.sqlite-wal" && n != "db.sqlite-shm" {
				t.Fatalf("%q left %s in the data directory", q, n)
			}
		}
		if now := names(t, cwd); len(now) != 0 {
			t.Fatalf("%q wrote in the working directory: %v", q, now)
		}
	})
}

func names(tb testing.TB, dir string) []string {
	es, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var n []string
	for _, e := range es {
		n = append(n, e.Name())
	}
	return n
}

// fingerprint hashes the database and its WAL: any committed write
// changes one of them.
func fingerprint(tb testing.TB, d *DB) [32]byte {
	h := sha256.New()
	for _, p := range []string{d.Path(), d.Path() + "-wal"} {
		b, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			tb.Fatal(err)
		}
		h.Write(b)
	}
	return [32]byte(h.Sum(nil))
}
