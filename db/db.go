// Package db runs SQL against one SQLite database file on disk.
//
// A DB has one writer connection and a pool of read-only connections. The
// writer is meant to be driven by a single goroutine at a time (the Raft FSM);
// readers may be used concurrently with it and with each other (WAL mode).
// While the writer applies a replicated command, SQLite's clock and random()
// are fixed by the command (see Env), so every replica stores the same values.
package db

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"sync"

	sqlite3 "github.com/mattn/go-sqlite3"

	"github.com/rqlited/rqlited/command"
)

// Errors returned by DB methods.
var (
	// ErrClosed is returned by calls on a closed DB.
	ErrClosed = errors.New("database is closed")
	// ErrDisallowedPragma is command.ErrDisallowedPragma.
	ErrDisallowedPragma = command.ErrDisallowedPragma
	// ErrNotSQLite is returned by Replace for data that is not a SQLite file.
	ErrNotSQLite = command.ErrNotSQLite
)

// DefaultMaxSteps is the default bound on the SQLite virtual-machine steps
// of one statement applied from the log: about 7 seconds of one core on
// the 2-core machines of DOC/PERFORMANCE.md (135 million steps a second).
const DefaultMaxSteps = 1_000_000_000

// DefaultMaxResultBytes is the default bound on the memory of one
// statement's result rows.
const DefaultMaxResultBytes = 256 << 20

// Config configures a DB.
type Config struct {
	// Path is the SQLite database file. It is created if missing.
	Path string
	// ForeignKeys enables foreign key enforcement (-fk).
	ForeignKeys bool
	// MaxReadConns bounds the read-only connection pool; 0 means no bound.
	MaxReadConns int
	// MaxSteps bounds the SQLite virtual-machine steps of one statement
	// from a client, applied from the log or read from the pool; 0 means
	// no bound. The count is the same on every replica, so a statement
	// stopped on one is stopped on all. The node's own statements (dumps,
	// backups) are not bounded.
	MaxSteps int64
	// MaxResultBytes bounds the memory the rows of one statement's result
	// may take (estimated from the values: their length plus Go's
	// per-value and per-row overhead); a larger result is an error. 0
	// means no bound.
	MaxResultBytes int64
}

// Validate reports whether the configuration can be used.
func (c Config) Validate() error {
	if c.Path == "" {
		return errors.New("db: path is required")
	}
	if c.MaxReadConns < 0 {
		return fmt.Errorf("db: max read connections %d must not be negative", c.MaxReadConns)
	}
	if c.MaxSteps < 0 {
		return fmt.Errorf("db: max steps %d must not be negative (0 for no limit)", c.MaxSteps)
	}
	if c.MaxResultBytes < 0 {
		return fmt.Errorf("db: max result bytes %d must not be negative (0 for no limit)", c.MaxResultBytes)
	}
	return nil
}

// DB is an open SQLite database.
type DB struct {
	cfg Config

	// mu guards the connections themselves: readers hold it shared while they
	// use a connection; Replace and Close hold it exclusively.
	mu     sync.RWMutex
	closed bool
	writer *conn
	rand   *detRand
	// clock is the writer's VFS, whose "now" Apply fixes (see clockVFS).
	clock *clockVFS
	// readers is the idle read-only pool; sem bounds how many exist.
	readers chan *conn
	sem     chan struct{}
	// sh carries the closing flag every connection's guard reads; shMu
	// guards freeing it, so Interrupt is safe at any time.
	shMu sync.Mutex
	sh   shared
	// fresh holds a new writer's settings (settingPragmas, in order).
	fresh []Setting
}

// Open opens (creating if needed) the database file named in cfg.
func Open(cfg Config) (*DB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	clock, err := newClockVFS()
	if err != nil {
		return nil, err
	}
	d := &DB{cfg: cfg, rand: &detRand{}, clock: clock, sh: newShared()}
	if err := d.openConns(); err != nil {
		d.sh.free()
		clock.release()
		return nil, err
	}
	return d, nil
}

func (d *DB) writerDSN() string {
	return fmt.Sprintf("file:%s?_journal=WAL&_sync=0&_fk=%t&_busy_timeout=5000&_stmt_cache_size=128&vfs=%s",
		d.cfg.Path, d.cfg.ForeignKeys, d.clock.name)
}

func (d *DB) readerDSN() string {
	// Readers share the OS page cache; a small private cache each keeps
	// memory flat when many of them are open.
	return fmt.Sprintf("file:%s?mode=ro&_query_only=1&_fk=%t&_busy_timeout=5000&_stmt_cache_size=32&_cache_size=-512",
		d.cfg.Path, d.cfg.ForeignKeys)
}

// openConns opens the writer and prepares an empty reader pool.
func (d *DB) openConns() error {
	w, err := d.openWriter()
	if err != nil {
		return err
	}
	d.writer = w
	if d.fresh == nil {
		if d.fresh, err = readSettings(w); err != nil {
			w.Close()
			return err
		}
	}
	n := d.cfg.MaxReadConns
	if n == 0 {
		n = 1 << 16
	}
	d.readers = make(chan *conn, min(n, 64))
	d.sem = make(chan struct{}, n)
	return nil
}

func (d *DB) openWriter() (*conn, error) {
	return d.open(&sqlite3.SQLiteDriver{ConnectHook: d.rand.register}, d.writerDSN(), false)
}

func (d *DB) openReader() (*conn, error) {
	return d.open(&sqlite3.SQLiteDriver{}, d.readerDSN(), true)
}

// open opens a connection and installs the guard on it.
func (d *DB) open(drv *sqlite3.SQLiteDriver, dsn string, reader bool) (*conn, error) {
	c, err := drv.Open(dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", d.cfg.Path, err)
	}
	g, err := guard(c.(*sqlite3.SQLiteConn), d.sh, d.cfg.MaxSteps, reader)
	if err != nil {
		c.Close()
		return nil, err
	}
	g.maxResult = d.cfg.MaxResultBytes
	return g, nil
}

func (d *DB) closeConns() error {
	var errs []error
	close(d.readers)
	for c := range d.readers {
		errs = append(errs, c.Close())
		<-d.sem
	}
	if d.writer != nil {
		errs = append(errs, d.writer.Close())
		d.writer = nil
	}
	return errors.Join(errs...)
}

// Close closes every connection. It stops statements in progress (see
// Interrupt) and waits for them to return.
func (d *DB) Close() error {
	d.Interrupt()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	err := d.closeConns()
	// Only now, with the writer closed, may SQLite forget its VFS.
	d.clock.release()
	d.shMu.Lock()
	d.sh.free()
	d.sh = shared{}
	d.shMu.Unlock()
	return err
}

// Interrupt stops every statement in progress on every connection at its
// next progress check (within about a thousand SQLite steps) and every
// later one: a node that is shutting down must not wait for a statement
// that could run for a long time. Apply then returns ErrClosed instead of
// results, so the entry is applied again when the node restarts. Interrupt
// is for shutting down: the DB is of no further use but to Close. It is
// safe to call at any time, also after Close.
func (d *DB) Interrupt() {
	d.shMu.Lock()
	defer d.shMu.Unlock()
	if d.sh.p != nil {
		d.sh.setClosing(true)
	}
}

// Path returns the database file path.
func (d *DB) Path() string { return d.cfg.Path }

// Size returns the size in bytes of the database file (without its WAL).
func (d *DB) Size() (int64, error) {
	fi, err := os.Stat(d.cfg.Path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// reader borrows a read-only connection; the caller must hold d.mu shared
// and give it back with putReader.
func (d *DB) reader(ctx context.Context) (*conn, error) {
	select {
	case c := <-d.readers:
		return c, nil
	default:
	}
	select {
	case c := <-d.readers:
		return c, nil
	case d.sem <- struct{}{}:
		c, err := d.openReader()
		if err != nil {
			<-d.sem
			return nil, err
		}
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// putReader gives c back to the pool, or closes it if it holds state a
// later request must not see (attached databases, temp objects, changed
// settings) or an open transaction.
func (d *DB) putReader(c *conn) {
	if c.dirty() || !c.AutoCommit() {
		c.Close()
		<-d.sem
		return
	}
	select {
	case d.readers <- c:
	default:
		c.Close()
		<-d.sem
	}
}

// withReader runs fn on a pooled read-only connection.
func (d *DB) withReader(ctx context.Context, fn func(*conn) error) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return ErrClosed
	}
	c, err := d.reader(ctx)
	if err != nil {
		return err
	}
	defer d.putReader(c)
	return fn(c)
}

// execRaw runs the node's own SQL, with no parameters, on the writer.
func (d *DB) execRaw(q string) error {
	return d.writer.internal(func() error {
		_, err := d.writer.Exec(q, nil)
		return err
	})
}

// Version returns the SQLite library version.
func Version() string {
	v, _, _ := sqlite3.Version()
	return v
}

var _ driver.Conn = (*sqlite3.SQLiteConn)(nil)
