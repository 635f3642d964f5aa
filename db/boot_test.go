package db

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// makeFile writes a SQLite database of several pages at path, in the
// given journal mode, and closes it (a WAL database is checkpointed).
func makeFile(t *testing.T, path, journal string) []byte {
	t.Helper()
	c, err := (&sqlite3.SQLiteDriver{}).Open("file:" + path + "?_journal=" + journal)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.(*sqlite3.SQLiteConn).Exec(`CREATE TABLE t(v BLOB);
		WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 200) INSERT INTO t SELECT randomblob(500) FROM c;`, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCheckFile: whole databases pass (in either journal mode); anything
// cut short or not SQLite fails with ErrNotSQLite.
func TestCheckFile(t *testing.T) {
	dir := t.TempDir()
	good := makeFile(t, filepath.Join(dir, "good.db"), "DELETE")
	wal := makeFile(t, filepath.Join(dir, "wal.db"), "WAL")
	if wal[18] != 2 {
		t.Fatalf("the WAL file's header says version %d, want 2", wal[18])
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		body []byte
		ok   bool
	}{
		{"whole", good, true},
		{"WAL mode", wal, true},
		{"empty", nil, false},
		{"garbage", []byte("this is not a database at all, not even close........................................................"), false},
		{"header only", good[:100], false},
		{"first page only", good[:4096], false},
		{"half", good[:len(good)/2], false},
		{"cut mid-page", good[:len(good)-1], false},
		{"bad page size", append(append([]byte{}, good[:16]...), append([]byte{0x03, 0x00}, good[18:]...)...), false},
	} {
		err := CheckFile(write(tc.name+".db", tc.body))
		if tc.ok && err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if !tc.ok && !errors.Is(err, ErrNotSQLite) {
			t.Errorf("%s: got %v, want ErrNotSQLite", tc.name, err)
		}
	}
}
