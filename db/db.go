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

// Config configures a DB.
type Config struct {
	// Path is the SQLite database file. It is created if missing.
	Path string
	// ForeignKeys enables foreign key enforcement (-fk).
	ForeignKeys bool
	// MaxReadConns bounds the read-only connection pool; 0 means no bound.
	MaxReadConns int
}

// Validate reports whether the configuration can be used.
func (c Config) Validate() error {
	if c.Path == "" {
		return errors.New("db: path is required")
	}
	if c.MaxReadConns < 0 {
		return fmt.Errorf("db: max read connections %d must not be negative", c.MaxReadConns)
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
	writer *sqlite3.SQLiteConn
	rand   *detRand
	// readers is the idle read-only pool; sem bounds how many exist.
	readers chan *sqlite3.SQLiteConn
	sem     chan struct{}
}

// Open opens (creating if needed) the database file named in cfg.
func Open(cfg Config) (*DB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := registerClockVFS(); err != nil {
		return nil, err
	}
	d := &DB{cfg: cfg, rand: &detRand{}}
	if err := d.openConns(); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *DB) writerDSN() string {
	return fmt.Sprintf("file:%s?_journal=WAL&_sync=0&_fk=%t&_busy_timeout=5000&_stmt_cache_size=128&vfs=%s",
		d.cfg.Path, d.cfg.ForeignKeys, clockVFSName)
}

func (d *DB) readerDSN() string {
	// Readers share the OS page cache; a small private cache each keeps
	// memory flat when many of them are open.
	return fmt.Sprintf("file:%s?mode=ro&_fk=%t&_busy_timeout=5000&_stmt_cache_size=32&_cache_size=-512",
		d.cfg.Path, d.cfg.ForeignKeys)
}

// openConns opens the writer and prepares an empty reader pool.
func (d *DB) openConns() error {
	drv := &sqlite3.SQLiteDriver{ConnectHook: d.rand.register}
	c, err := drv.Open(d.writerDSN())
	if err != nil {
		return fmt.Errorf("open %s: %w", d.cfg.Path, err)
	}
	d.writer = c.(*sqlite3.SQLiteConn)
	n := d.cfg.MaxReadConns
	if n == 0 {
		n = 1 << 16
	}
	d.readers = make(chan *sqlite3.SQLiteConn, min(n, 64))
	d.sem = make(chan struct{}, n)
	return nil
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

// Close closes every connection. It waits for reads in progress.
func (d *DB) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	return d.closeConns()
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
func (d *DB) reader(ctx context.Context) (*sqlite3.SQLiteConn, error) {
	select {
	case c := <-d.readers:
		return c, nil
	default:
	}
	select {
	case c := <-d.readers:
		return c, nil
	case d.sem <- struct{}{}:
		c, err := (&sqlite3.SQLiteDriver{}).Open(d.readerDSN())
		if err != nil {
			<-d.sem
			return nil, fmt.Errorf("open read connection: %w", err)
		}
		return c.(*sqlite3.SQLiteConn), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (d *DB) putReader(c *sqlite3.SQLiteConn) {
	select {
	case d.readers <- c:
	default:
		c.Close()
		<-d.sem
	}
}

// withReader runs fn on a pooled read-only connection.
func (d *DB) withReader(ctx context.Context, fn func(*sqlite3.SQLiteConn) error) error {
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

// execRaw runs SQL with no parameters on the writer.
func (d *DB) execRaw(q string) error {
	_, err := d.writer.Exec(q, nil)
	return err
}

// Version returns the SQLite library version.
func Version() string {
	v, _, _ := sqlite3.Version()
	return v
}

var _ driver.Conn = (*sqlite3.SQLiteConn)(nil)
