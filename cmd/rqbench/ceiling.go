package main

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"

	_ "github.com/mattn/go-sqlite3"
)

// groupLog is an append-only file whose writers share fsyncs, as Raft's
// log batches concurrent entries into one disk commit: a writer appends its
// bytes and waits for the next f.Sync() that starts after its append.
type groupLog struct {
	mu      sync.Mutex
	f       *os.File
	pending []chan error
	kick    chan struct{}
	done    chan struct{}
}

func newGroupLog(path string) *groupLog {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		fail(err)
	}
	g := &groupLog{f: f, kick: make(chan struct{}, 1), done: make(chan struct{})}
	go g.loop()
	return g
}

// append writes b and returns once it is on disk.
func (g *groupLog) append(b []byte) error {
	ch := make(chan error, 1)
	g.mu.Lock()
	_, err := g.f.Write(b)
	if err == nil {
		g.pending = append(g.pending, ch)
	}
	g.mu.Unlock()
	if err != nil {
		return err
	}
	select {
	case g.kick <- struct{}{}:
	default:
	}
	return <-ch
}

// loop syncs whatever has been appended since the last sync, and wakes its
// writers: the writers that append during a sync share the next one.
func (g *groupLog) loop() {
	defer close(g.done)
	for range g.kick {
		g.mu.Lock()
		waiting := g.pending
		g.pending = nil
		g.mu.Unlock()
		if len(waiting) == 0 {
			continue
		}
		err := g.f.Sync()
		for _, ch := range waiting {
			ch <- err
		}
	}
}

func (g *groupLog) close() {
	close(g.kick)
	<-g.done
	g.f.Close()
}

// ceilingDB does each scenario's work directly on SQLite through
// database/sql, with the server's settings (WAL, synchronous=OFF, one writer
// connection, a statement cache; read-only reader connections), every write
// request first appended to a group-committed, fsync'd log as Raft does.
type ceilingDB struct {
	dir, dbPath, logPath string
	removeDir            bool
	w, r                 *sql.DB
	log                  *groupLog
	tables               map[string]bool
}

func openCeiling(dir string) *ceilingDB {
	c := &ceilingDB{tables: map[string]bool{}}
	if dir == "" {
		d, err := os.MkdirTemp("", "rqbench-ceiling-")
		if err != nil {
			fail(err)
		}
		dir, c.removeDir = d, true
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		fail(err)
	}
	c.dir = dir
	c.dbPath = filepath.Join(dir, "ceiling.db")
	c.logPath = filepath.Join(dir, "ceiling.log")
	c.removeFiles()
	var err error
	if c.w, err = sql.Open("sqlite3", "file:"+c.dbPath+"?_journal=WAL&_sync=0&_busy_timeout=5000&_stmt_cache_size=128"); err != nil {
		fail(err)
	}
	c.w.SetMaxOpenConns(1)
	c.w.SetMaxIdleConns(1)
	c.w.SetConnMaxLifetime(0)
	if err := c.w.Ping(); err != nil {
		fail(fmt.Errorf("ceiling database %s: %w", c.dbPath, err))
	}
	if c.r, err = sql.Open("sqlite3", "file:"+c.dbPath+"?mode=ro&_busy_timeout=5000&_stmt_cache_size=32&_cache_size=-512"); err != nil {
		fail(err)
	}
	c.r.SetMaxOpenConns(maxConc)
	c.r.SetMaxIdleConns(maxConc)
	c.log = newGroupLog(c.logPath)
	return c
}

func (c *ceilingDB) removeFiles() {
	for _, p := range []string{c.dbPath, c.dbPath + "-wal", c.dbPath + "-shm", c.logPath} {
		os.Remove(p)
	}
}

func (c *ceilingDB) close() {
	c.log.close()
	c.r.Close()
	c.w.Close()
	if c.removeDir {
		os.RemoveAll(c.dir)
	} else {
		c.removeFiles()
	}
}

func (c *ceilingDB) create(table string) {
	if c.tables[table] {
		return
	}
	if _, err := c.w.Exec(fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (id INTEGER PRIMARY KEY, v INTEGER, s TEXT)", table)); err != nil {
		fail(err)
	}
	c.tables[table] = true
}

func (c *ceilingDB) prepare(db *sql.DB, q string) *sql.Stmt {
	s, err := db.Prepare(q)
	if err != nil {
		fail(err)
	}
	return s
}

// insert: log the request, then one autocommit INSERT, as the server does
// for a single-statement request.
func (c *ceilingDB) insert(set *insertSet) func(int) work {
	c.create(set.table)
	stmt := c.prepare(c.w, "INSERT INTO "+set.table+"(v, s) VALUES(?, ?)")
	return func(i int) work {
		k := i * 61
		return func() (int64, error) {
			k++
			j := k % len(set.bodies)
			if err := c.log.append(set.bodies[j]); err != nil {
				return 0, err
			}
			if _, err := stmt.Exec(set.vals[j], "row"); err != nil {
				return 0, err
			}
			return 1, nil
		}
	}
}

// batch: log the 1000-statement request, then its statements either each
// in autocommit mode or all in one transaction.
func (c *ceilingDB) batch(body []byte, oneTx bool) func(int) work {
	table := "ceiling_batch"
	c.create(table)
	stmt := c.prepare(c.w, "INSERT INTO "+table+"(v, s) VALUES(?, ?)")
	return func(int) work {
		return func() (int64, error) {
			if err := c.log.append(body); err != nil {
				return 0, err
			}
			if !oneTx {
				for i := 0; i < batchSize; i++ {
					if _, err := stmt.Exec(i, "batch row"); err != nil {
						return 0, err
					}
				}
				return batchSize, nil
			}
			tx, err := c.w.Begin()
			if err != nil {
				return 0, err
			}
			ts := tx.Stmt(stmt)
			for i := 0; i < batchSize; i++ {
				if _, err := ts.Exec(i, "batch row"); err != nil {
					tx.Rollback()
					return 0, err
				}
			}
			return batchSize, tx.Commit()
		}
	}
}

// query: point queries for random ids over a table of n rows, through the
// read-only pool.
func (c *ceilingDB) query(n int) func(int) work {
	table := "ceiling_q"
	c.create(table)
	var have int
	if err := c.w.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&have); err != nil {
		fail(err)
	}
	if have < n {
		tx, err := c.w.Begin()
		if err != nil {
			fail(err)
		}
		for i := have; i < n; i++ {
			if _, err := tx.Exec("INSERT INTO "+table+"(v, s) VALUES(?, ?)", i, "fill"); err != nil {
				fail(err)
			}
		}
		if err := tx.Commit(); err != nil {
			fail(err)
		}
	}
	stmt := c.prepare(c.r, "SELECT * FROM "+table+" WHERE id=?")
	return func(i int) work {
		r := rand.New(rand.NewPCG(uint64(i), 99))
		return func() (int64, error) {
			var id, v int64
			var s string
			if err := stmt.QueryRow(1+r.IntN(n)).Scan(&id, &v, &s); err != nil {
				return 0, err
			}
			return 1, nil
		}
	}
}
