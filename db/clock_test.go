package db

import (
	"database/sql"
	"path/filepath"
	"testing"
	"time"
)

func TestClockVFS(t *testing.T) {
	if err := registerClockVFS(); err != nil {
		t.Fatal(err)
	}
	d, err := sql.Open("sqlite3", "file:"+filepath.Join(t.TempDir(), "x.db")+"?vfs="+clockVFSName)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	setFixedTime(time.Date(2001, 2, 3, 4, 5, 6, 7e6, time.UTC))
	defer setFixedTime(time.Time{})
	var s string
	if err := d.QueryRow("SELECT strftime('%Y-%m-%d %H:%M:%f','now')").Scan(&s); err != nil {
		t.Fatal(err)
	}
	if s != "2001-02-03 04:05:06.007" {
		t.Fatalf("got %q", s)
	}
}
