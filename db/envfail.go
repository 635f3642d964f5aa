package db

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/mattn/go-sqlite3"
)

// ErrEnvironment is returned by Apply when this node's storage failed
// (the disk is full, an I/O error, the file is damaged, gone or read-only).
// Other replicas applied the same entry without it, so a node that carried
// on would hold different data: the caller must stop applying (see store's
// fatal handling).
var ErrEnvironment = errors.New("SQLite could not apply a write because this node's storage failed")

// minFreeBytes is the free space below which a failed write is put down to
// a full disk rather than to the statement.
const minFreeBytes = 64 << 20

// envSlot records what applying one entry met: the first error of a kind
// the node's storage can cause, and whether the DB was closing.
type envSlot struct {
	err     error
	closing bool
}

type envKey struct{}

func withEnvSlot(ctx context.Context) (context.Context, *envSlot) {
	s := &envSlot{}
	return context.WithValue(ctx, envKey{}, s), s
}

// mayBeEnvironment reports whether err is of a kind that a failure of the
// node's storage can cause. It does not say the storage failed: a
// statement can cause all of these (a damaged FTS index, a write on the
// query path), identically on every replica. Apply checks the storage to
// decide. Out-of-memory is left out: a statement causes it alike
// everywhere.
func mayBeEnvironment(err error) bool {
	var se sqlite3.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code {
	case sqlite3.ErrFull, sqlite3.ErrIoErr, sqlite3.ErrCantOpen, sqlite3.ErrCorrupt,
		sqlite3.ErrNotADB, sqlite3.ErrReadonly, sqlite3.ErrProtocol:
		return true
	}
	return false
}

// errText returns the text of a statement error for its result: the
// guard's reason when it refused or stopped the statement, rqlite's text
// for a write on the query path. It notes in ctx's slot an error that may
// come from the node's storage, and a stop because the DB is closing.
func errText(ctx context.Context, c *conn, err error) string {
	var se sqlite3.Error
	if why, _ := c.why(); why != whyNone {
		err = c.explain(err)
	} else if errors.As(err, &se) && se.Code == sqlite3.ErrReadonly && c.g.readonly != 0 {
		// query_only stopped a write on the query path.
		return ErrQueryWrite.Error()
	}
	if s, ok := ctx.Value(envKey{}).(*envSlot); ok {
		if errors.Is(err, ErrClosed) {
			s.closing = true
		} else if s.err == nil && mayBeEnvironment(err) {
			s.err = err
		}
	}
	return err.Error()
}

// probeStorage checks this node's own storage: the database file is where
// it was and SQLite reads it and takes its write lock, a file written and
// synced next to it and in the temporary directory reads back, and the
// disk has room. An error means the storage failed.
func (d *DB) probeStorage() error {
	if _, err := os.Stat(d.cfg.Path); err != nil {
		return fmt.Errorf("database file: %w", err)
	}
	err := d.writer.internal(func() error {
		if _, err := d.writer.Exec("SELECT count(*) FROM sqlite_schema", nil); err != nil {
			return fmt.Errorf("read the schema: %w", err)
		}
		if _, err := d.writer.Exec("BEGIN IMMEDIATE", nil); err != nil {
			return fmt.Errorf("take the write lock: %w", err)
		}
		if _, err := d.writer.Exec("ROLLBACK", nil); err != nil {
			return fmt.Errorf("release the write lock: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	dir := filepath.Dir(d.cfg.Path)
	if err := probeDir(dir); err != nil {
		return err
	}
	if err := probeDir(sqliteTempDir()); err != nil {
		return err
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return fmt.Errorf("free space of %s: %w", dir, err)
	}
	if free := st.Bavail * uint64(st.Bsize); free < minFreeBytes {
		return fmt.Errorf("%s has %d bytes free, less than %d", dir, free, minFreeBytes)
	}
	return nil
}

// probeDir writes, syncs and reads back a small file in dir.
func probeDir(dir string) error {
	f, err := os.CreateTemp(dir, ".rqlited-probe-*")
	if err != nil {
		return fmt.Errorf("write in %s: %w", dir, err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	want := make([]byte, 64<<10)
	for i := range want {
		want[i] = byte(i)
	}
	if _, err := f.Write(want); err != nil {
		return fmt.Errorf("write in %s: %w", dir, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync in %s: %w", dir, err)
	}
	got := make([]byte, len(want))
	if _, err := f.ReadAt(got, 0); err != nil {
		return fmt.Errorf("read back in %s: %w", dir, err)
	}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Errorf("read back in %s: data differs", dir)
		}
	}
	return nil
}

// sqliteTempDir is where SQLite's unix VFS puts temporary files.
func sqliteTempDir() string {
	for _, v := range []string{os.Getenv("SQLITE_TMPDIR"), os.Getenv("TMPDIR")} {
		if v != "" {
			return v
		}
	}
	for _, d := range []string{"/var/tmp", "/usr/tmp", "/tmp"} {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			return d
		}
	}
	return "."
}

// resetWriter clears what a request left on the writer that later entries
// must not see, because a node restarted from a snapshot would not have
// it: attached databases and temp objects. The connection's settings
// (PRAGMA foreign_keys and the like) are kept. If clearing fails, the
// writer is opened afresh.
func (d *DB) resetWriter() {
	w := d.writer
	err := w.internal(func() error {
		var names []string
		if err := eachRow(w, "SELECT name FROM pragma_database_list WHERE seq >= 2", func(v []any) {
			names = append(names, v[0].(string))
		}); err != nil {
			return err
		}
		for _, n := range names {
			if _, err := w.Exec("DETACH "+quoteIdent(n), nil); err != nil {
				return err
			}
		}
		var drops []string
		// Triggers and views first: they may refer to the tables.
		if err := eachRow(w, `SELECT type, name FROM temp.sqlite_schema WHERE type IN ('trigger','view','table')
			ORDER BY CASE type WHEN 'trigger' THEN 0 WHEN 'view' THEN 1 ELSE 2 END`, func(v []any) {
			drops = append(drops, "DROP "+v[0].(string)+" IF EXISTS temp."+quoteIdent(v[1].(string)))
		}); err != nil {
			return err
		}
		for _, q := range drops {
			if _, err := w.Exec(q, nil); err != nil {
				return err
			}
		}
		return nil
	})
	w.clearDirty()
	if err == nil && !w.dirty() {
		return
	}
	nw, oerr := d.openWriter()
	if oerr != nil {
		// Keep the old one: the next write will show what is wrong.
		return
	}
	w.Close()
	d.writer = nw
}

// eachRow runs q on c and calls fn with the values of each row.
func eachRow(c *conn, q string, fn func([]any)) error {
	rows, err := c.Query(q, nil)
	if err != nil {
		return err
	}
	defer rows.Close()
	dest := make([]driver.Value, len(rows.Columns()))
	for {
		if err := rows.Next(dest); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		v := make([]any, len(dest))
		for i := range dest {
			if b, ok := dest[i].([]byte); ok {
				v[i] = string(b)
			} else {
				v[i] = dest[i]
			}
		}
		fn(v)
	}
}
