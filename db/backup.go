package db

import (
	"bufio"
	"bytes"
	"context"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// sqliteHeader starts every SQLite database file.
var sqliteHeader = []byte("SQLite format 3\x00")

// IsSQLiteFile reports whether b starts with the SQLite file header.
func IsSQLiteFile(b []byte) bool { return bytes.HasPrefix(b, sqliteHeader) }

// backupConn copies the main database of src into a new file at dst with
// SQLite's online backup API, which gives a consistent image.
func backupConn(src *sqlite3.SQLiteConn, dst string) error {
	c, err := (&sqlite3.SQLiteDriver{}).Open("file:" + dst)
	if err != nil {
		return fmt.Errorf("open backup file %s: %w", dst, err)
	}
	dc := c.(*sqlite3.SQLiteConn)
	defer dc.Close()
	b, err := dc.Backup("main", src, "main")
	if err != nil {
		return fmt.Errorf("start backup: %w", err)
	}
	if _, err := b.Step(-1); err != nil {
		b.Close()
		return fmt.Errorf("backup: %w", err)
	}
	if err := b.Finish(); err != nil {
		return fmt.Errorf("finish backup: %w", err)
	}
	// Leave the copy in rollback-journal mode so it is a single file.
	if _, err := dc.Exec("PRAGMA journal_mode=DELETE", nil); err != nil {
		return fmt.Errorf("backup journal mode: %w", err)
	}
	return nil
}

// A Snapshot is a read transaction that pins the database as it was when
// the Snapshot began, so a copy can be written while writes go on.
type Snapshot struct {
	d    *DB
	c    *sqlite3.SQLiteConn
	once sync.Once
}

// BeginSnapshot pins the current state of the database: call it where no
// write is in progress (in the FSM), then WriteTo from any goroutine, then
// Close. Until Close, Replace and Close of d wait, and WAL checkpoints
// cannot pass the pinned state (the WAL grows meanwhile).
func (d *DB) BeginSnapshot() (*Snapshot, error) {
	d.mu.RLock()
	if d.closed {
		d.mu.RUnlock()
		return nil, ErrClosed
	}
	c, err := (&sqlite3.SQLiteDriver{}).Open(d.readerDSN())
	if err != nil {
		d.mu.RUnlock()
		return nil, fmt.Errorf("open snapshot connection: %w", err)
	}
	sc := c.(*sqlite3.SQLiteConn)
	// In WAL mode a read transaction takes its view of the database at its
	// first read, not at BEGIN.
	if _, err := sc.Exec("BEGIN; SELECT count(*) FROM sqlite_schema", nil); err != nil {
		sc.Close()
		d.mu.RUnlock()
		return nil, fmt.Errorf("begin snapshot: %w", err)
	}
	return &Snapshot{d: d, c: sc}, nil
}

// WriteTo writes the pinned database to a new SQLite file at dst.
func (s *Snapshot) WriteTo(dst string) error {
	// The backup API uses the connection's open read transaction.
	return backupConn(s.c, dst)
}

// Close ends the read transaction. It is safe to call more than once.
func (s *Snapshot) Close() error {
	var err error
	s.once.Do(func() {
		s.c.Exec("ROLLBACK", nil) //nolint:errcheck // closing ends it anyway
		err = s.c.Close()
		s.d.mu.RUnlock()
	})
	return err
}

// BackupTo writes a consistent copy of the database to the file dst while
// writes continue. With vacuum, the copy is made by VACUUM INTO and so is
// as small as it can be.
func (d *DB) BackupTo(ctx context.Context, dst string, vacuum bool) error {
	if vacuum {
		// The node's own VACUUM INTO, on a connection of its own: the
		// guard of pooled connections refuses VACUUM INTO from clients.
		d.mu.RLock()
		defer d.mu.RUnlock()
		if d.closed {
			return ErrClosed
		}
		c, err := (&sqlite3.SQLiteDriver{}).Open("file:" + d.cfg.Path + "?mode=ro&_busy_timeout=5000")
		if err != nil {
			return fmt.Errorf("open backup connection: %w", err)
		}
		defer c.Close()
		_, err = c.(*sqlite3.SQLiteConn).ExecContext(ctx, "VACUUM INTO ?", []driver.NamedValue{{Ordinal: 1, Value: dst}})
		return err
	}
	return d.withReader(ctx, func(c *conn) error { return backupConn(c.SQLiteConn, dst) })
}

// Replace swaps the database for the SQLite file at src, which is moved into
// place. The file is checked first; on any error the current database stays.
// It waits for reads in progress and must not run concurrently with Apply.
func (d *DB) Replace(src string) error {
	if err := checkSQLiteFile(src); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	if err := d.closeConns(); err != nil {
		return fmt.Errorf("close before replace: %w", err)
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(d.cfg.Path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := os.Rename(src, d.cfg.Path); err != nil {
		return fmt.Errorf("replace database: %w", err)
	}
	return d.openConns()
}

// checkSQLiteFile verifies that path is a readable, intact SQLite database.
func checkSQLiteFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	hdr := make([]byte, len(sqliteHeader))
	_, err = io.ReadFull(f, hdr)
	f.Close()
	if err != nil || !IsSQLiteFile(hdr) {
		return ErrNotSQLite
	}
	c, err := (&sqlite3.SQLiteDriver{}).Open("file:" + path + "?mode=ro")
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotSQLite, err)
	}
	defer c.Close()
	rows, err := c.(*sqlite3.SQLiteConn).Query("PRAGMA quick_check", nil)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotSQLite, err)
	}
	defer rows.Close()
	dest := make([]driver.Value, 1)
	if err := rows.Next(dest); err != nil {
		return fmt.Errorf("%w: %v", ErrNotSQLite, err)
	}
	if s, _ := dest[0].(string); s != "ok" {
		return fmt.Errorf("%w: quick_check: %v", ErrNotSQLite, dest[0])
	}
	return nil
}

// Dump writes the database as SQL text that recreates it, in the format of
// the sqlite3 shell's .dump. With tables, only those tables (and their
// indexes and triggers) are written.
func (d *DB) Dump(ctx context.Context, w io.Writer, tables []string) error {
	return d.withReader(ctx, func(gc *conn) error {
		// A dump of a large table is one long statement: the node's own,
		// so without the step limit.
		return gc.internal(func() error {
			bw := bufio.NewWriterSize(w, 64<<10)
			if err := dump(ctx, gc.SQLiteConn, bw, tables); err != nil {
				return err
			}
			return bw.Flush()
		})
	})
}

type schemaObject struct{ typ, name, tbl, sql string }

func dump(ctx context.Context, c *sqlite3.SQLiteConn, w *bufio.Writer, only []string) error {
	if _, err := c.Exec("BEGIN", nil); err != nil {
		return err
	}
	defer c.Exec("ROLLBACK", nil) //nolint:errcheck // read-only transaction

	want := func(tbl string) bool {
		if len(only) == 0 {
			return true
		}
		for _, t := range only {
			if t == tbl {
				return true
			}
		}
		return false
	}
	objs, err := schemaObjects(ctx, c)
	if err != nil {
		return err
	}
	w.WriteString("PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n")
	for _, o := range objs {
		if o.typ != "table" || !want(o.name) {
			continue
		}
		switch {
		case o.name == "sqlite_sequence":
			w.WriteString("DELETE FROM sqlite_sequence;\n")
		case strings.HasPrefix(o.name, "sqlite_"):
			continue
		case strings.HasPrefix(strings.ToUpper(o.sql), "CREATE VIRTUAL TABLE"):
			fmt.Fprintf(w, "PRAGMA writable_schema=ON;\nINSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql)VALUES('table',%s,%s,0,%s);\nPRAGMA writable_schema=OFF;\n",
				quoteText(o.name), quoteText(o.name), quoteText(o.sql))
			continue
		default:
			w.WriteString(o.sql + ";\n")
		}
		if err := dumpRows(ctx, c, w, o.name); err != nil {
			return err
		}
	}
	for _, o := range objs {
		if o.typ == "table" || o.sql == "" || !want(o.tbl) {
			continue
		}
		w.WriteString(o.sql + ";\n")
	}
	w.WriteString("COMMIT;\n")
	return nil
}

func schemaObjects(ctx context.Context, c *sqlite3.SQLiteConn) ([]schemaObject, error) {
	rs, err := c.QueryContext(ctx, `SELECT type, name, tbl_name, COALESCE(sql, '') FROM sqlite_schema
		WHERE type IN ('table','index','trigger','view') ORDER BY CASE type WHEN 'table' THEN 0 ELSE 1 END, rowid`, nil)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var objs []schemaObject
	dest := make([]driver.Value, 4)
	for {
		if err := rs.Next(dest); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, err
		}
		objs = append(objs, schemaObject{dest[0].(string), dest[1].(string), dest[2].(string), dest[3].(string)})
	}
}

func dumpRows(ctx context.Context, c *sqlite3.SQLiteConn, w *bufio.Writer, table string) error {
	qt := quoteIdent(table)
	cols, err := columnNames(ctx, c, qt)
	if err != nil {
		return err
	}
	// A unary plus hides the declared type, so the driver returns the stored
	// value as it is (no conversion of DATETIME text into time values).
	sel := make([]string, len(cols))
	for i, col := range cols {
		sel[i] = "+" + quoteIdent(col)
	}
	rs, err := c.QueryContext(ctx, "SELECT "+strings.Join(sel, ",")+" FROM "+qt, nil)
	if err != nil {
		return err
	}
	defer rs.Close()
	dest := make([]driver.Value, len(rs.Columns()))
	for {
		if err := rs.Next(dest); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		w.WriteString("INSERT INTO " + qt + " VALUES(")
		for i, v := range dest {
			if i > 0 {
				w.WriteByte(',')
			}
			w.WriteString(sqlLiteral(v))
		}
		w.WriteString(");\n")
	}
}

func columnNames(ctx context.Context, c *sqlite3.SQLiteConn, qt string) ([]string, error) {
	rs, err := c.QueryContext(ctx, "SELECT * FROM "+qt+" LIMIT 0", nil)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	return rs.Columns(), nil
}

// sqlLiteral renders a value so that SQLite reads back the same value.
func sqlLiteral(v driver.Value) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case int64:
		return strconv.FormatInt(v, 10)
	case bool:
		if v {
			return "1"
		}
		return "0"
	case float64:
		switch {
		case math.IsNaN(v):
			return "NULL"
		case math.IsInf(v, 1):
			return "1e999"
		case math.IsInf(v, -1):
			return "-1e999"
		}
		s := strconv.FormatFloat(v, 'g', -1, 64)
		if !strings.ContainsAny(s, ".eE") {
			s += ".0"
		}
		return s
	case []byte:
		return "X'" + strings.ToUpper(hex.EncodeToString(v)) + "'"
	case string:
		return quoteText(v)
	default:
		return quoteText(fmt.Sprint(v))
	}
}

func quoteText(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
