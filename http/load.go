package http

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rqlited/rqlited/command"
)

// dumpWrapper lines are those of a .dump that rqlited supplies itself when
// it runs a dump as one transaction.
var dumpWrapper = map[string]bool{"BEGIN TRANSACTION;": true, "BEGIN;": true, "COMMIT;": true, "END;": true}

// sqliteMagic opens every SQLite database file.
const sqliteMagic = "SQLite format 3\x00"

// maxLogLoad bounds a SQLite file loaded with /db/load. Such a load is one
// Raft log entry holding the whole file: the leader builds it in memory
// (once, from a mapping of the checked file), hashicorp/raft and the log
// store hold it while it is committed, and every follower receives it in
// one AppendEntries call, which the Raft transport gives 10 s, and holds
// it again to apply it. Beyond 1 GiB that is several GiB of memory per node
// and more than a 1 Gbit/s link carries in 10 s (the follower would never
// get it, and the cluster would retry it for ever). A larger file goes in
// with /boot, on a single-node cluster that others then join.
const maxLogLoad = 1 << 30

// fileLoader is the part of the store that loads a SQLite file of any size
// through the log, reading it from a stream (store.Store.LoadFrom).
type fileLoader interface {
	// LoadFrom copies r to a file, checks it, calls before with its size,
	// then replaces the database with it through the log.
	LoadFrom(ctx context.Context, r io.Reader, before func(size int64) error) (uint64, error)
}

var (
	// errLoadTooLarge is a SQLite file over maxLogLoad.
	errLoadTooLarge = errors.New("SQLite file too large for a load through the Raft log")
	// errNoBudget is a load that found no room in the body budget.
	errNoBudget = errors.New("no room in the body budget")
)

// handleLoad serves /db/load. A body that starts with the SQLite header is a
// database file: it is streamed to disk, checked, and loaded through the
// log so every node loads it (at most maxLogLoad bytes, whatever
// -http-max-body says). Any other body is SQL text (a .dump), read whole
// under -http-max-body like other bodies and run as one transaction.
func (s *Service) handleLoad(w http.ResponseWriter, r *http.Request, p *params) {
	start := time.Now()
	if p.body != nil {
		// Read already: a request that waited for a leader and is served
		// here after all (forward).
		s.loadBody(w, r, p, start)
		return
	}
	body := s.newBodyReader(w, r.Body)
	head := make([]byte, len(sqliteMagic))
	k, err := io.ReadFull(body, head)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		readError(w, err)
		return
	}
	head = head[:k]
	if string(head) != sqliteMagic {
		s.loadDump(w, r, p, start, head)
		return
	}
	s.loadFile(w, r, p, start, io.MultiReader(bytes.NewReader(head), body))
}

// loadDump reads the rest of a SQL-text body as any other body is read
// (readBody: -http-max-body, the body budget, the minimum rate) and runs it.
func (s *Service) loadDump(w http.ResponseWriter, r *http.Request, p *params, start time.Time, head []byte) {
	if r.ContentLength > s.cfg.MaxBodyBytes {
		w.Header().Set("Connection", "close")
		http.Error(w, fmt.Sprintf("request body too large: the limit is %d bytes", s.cfg.MaxBodyBytes), http.StatusRequestEntityTooLarge)
		return
	}
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(head), r.Body), r.Body}
	b, held, ok := s.readBody(w, r)
	http.NewResponseController(w).SetReadDeadline(time.Time{})
	if !ok {
		return
	}
	defer s.budget.release(held)
	p.body = b
	s.loadBody(w, r, p, start)
}

// loadFile loads a SQLite file from src. The leader streams it to the
// store; a follower (or a store that cannot stream) reads it whole, so the
// request can be forwarded to the leader with its body.
func (s *Service) loadFile(w http.ResponseWriter, r *http.Request, p *params, start time.Time, src io.Reader) {
	limit := s.logLoadMax
	if limit == 0 {
		limit = maxLogLoad
	}
	if r.ContentLength > limit {
		if b, ok := s.store.(booter); ok && s.singleNodeLeader() {
			// Nothing to replicate to: load it as /boot does, streamed,
			// with no limit and flat memory (as rqlite, which boots a
			// single node's loads too).
			s.loadByBoot(w, r, p, start, b, src)
			return
		}
		s.loadError(w, r, p, errLoadTooLarge, false)
		return
	}
	capped := &capReader{r: src, max: limit}
	ld, ok := s.store.(fileLoader)
	if ok && s.leaderHere() {
		var held int64
		defer func() { s.budget.release(held) }()
		idx, err := ld.LoadFrom(r.Context(), capped, func(n int64) error {
			var err error
			held, err = s.holdBudget(r.Context(), n)
			return err
		})
		http.NewResponseController(w).SetReadDeadline(time.Time{})
		if err == nil {
			s.writeResults(w, p, start, nil, idx, false)
			return
		}
		if !errors.Is(err, command.ErrNotLeader) || capped.n > 0 {
			s.loadError(w, r, p, err, capped.n > 0)
			return
		}
		// Leadership moved before the file was read: forward it.
	}
	held, err := s.holdBudget(r.Context(), r.ContentLength)
	if err != nil {
		s.loadError(w, r, p, err, false)
		return
	}
	defer s.budget.release(held)
	b, err := io.ReadAll(capped)
	http.NewResponseController(w).SetReadDeadline(time.Time{})
	if err != nil {
		s.loadError(w, r, p, err, true)
		return
	}
	p.body = b
	s.loadBody(w, r, p, start)
}

// singleNodeLeader says whether this node leads a cluster of one node.
func (s *Service) singleNodeLeader() bool {
	servers, err := s.store.Servers()
	return err == nil && len(servers) == 1 && s.leaderHere()
}

// loadByBoot loads a SQLite file larger than maxLogLoad into a single-node
// cluster through the store's boot (a snapshot at a new index), answering
// as a load does.
func (s *Service) loadByBoot(w http.ResponseWriter, r *http.Request, p *params, start time.Time, b booter, src io.Reader) {
	s.logger.Info("large load on a single-node cluster: installed as a boot", "content_length", r.ContentLength)
	capped := &capReader{r: src, max: 1<<63 - 2}
	_, err := b.Boot(r.Context(), capped)
	http.NewResponseController(w).SetReadDeadline(time.Time{})
	var rerr bodyReadError
	switch {
	case err == nil:
		s.writeResults(w, p, start, nil, 0, false)
	case errors.As(err, &rerr):
		readError(w, rerr.err)
	case errors.Is(err, command.ErrNotSQLite):
		http.Error(w, strings.TrimPrefix(err.Error(), "boot: "), http.StatusBadRequest)
	default:
		s.loadError(w, r, p, err, capped.n > 0)
	}
}

// loadError answers a load that failed. read says whether the body was
// read from at all: a refusal before reading closes the connection, as
// net/http would otherwise drain the body first.
func (s *Service) loadError(w http.ResponseWriter, r *http.Request, p *params, err error, read bool) {
	if !read {
		w.Header().Set("Connection", "close") // the body is left unread
	}
	var rerr bodyReadError
	switch {
	case errors.Is(err, errLoadTooLarge):
		w.Header().Set("Connection", "close")
		limit := s.logLoadMax
		if limit == 0 {
			limit = maxLogLoad
		}
		http.Error(w, fmt.Sprintf("%s: the limit is %d bytes on a cluster of more than one node; load a larger file into a single-node cluster (/db/load or /boot), then join the others",
			errLoadTooLarge, limit), http.StatusRequestEntityTooLarge)
	case errors.As(err, &rerr):
		readError(w, rerr.err)
	case errors.Is(err, errNoBudget):
		used, size := s.budget.inUse()
		w.Header().Set("Retry-After", strconv.Itoa(budgetRetryAfter))
		http.Error(w, fmt.Sprintf("server busy: request bodies being read or served hold %d of the %d bytes this node takes at once: retry later",
			used, size), http.StatusServiceUnavailable)
	case errors.Is(err, command.ErrNotLeader) && read:
		http.Error(w, "leadership changed while the load was in progress: retry", http.StatusServiceUnavailable)
	default:
		s.writeStoreError(w, r, p, err)
	}
}

// loadBody serves a load whose body is in p.body.
func (s *Service) loadBody(w http.ResponseWriter, r *http.Request, p *params, start time.Time) {
	body := p.body
	if len(body) >= len(sqliteMagic) && string(body[:len(sqliteMagic)]) == sqliteMagic {
		idx, err := s.store.Load(r.Context(), body)
		if err != nil {
			s.writeStoreError(w, r, p, err)
			return
		}
		s.writeResults(w, p, start, nil, idx, false)
		return
	}
	var sql strings.Builder
	for _, line := range strings.SplitAfter(string(body), "\n") {
		if dumpWrapper[strings.ToUpper(strings.TrimSpace(line))] {
			continue
		}
		sql.WriteString(line)
	}
	if strings.TrimSpace(sql.String()) == "" {
		http.Error(w, "load body is neither a SQLite database nor SQL text", http.StatusBadRequest)
		return
	}
	// rqlite runs the dump as one statement string and answers with
	// SQLite's counters after its last statement: the rowid and row count
	// of the dump's last INSERT. They are read in the same transaction.
	req := &command.Request{Statements: []command.Statement{{SQL: sql.String()}, {SQL: dumpCounters}}, Transaction: true}
	res, idx, err := s.store.Request(r.Context(), req, command.QueryOptions{Level: command.Strong})
	if err != nil {
		s.writeDBError(w, r, p, err)
		return
	}
	s.writeResults(w, p, start, dumpResult(res), idx, false)
}

// dumpCounters reads what rqlite reports for a dump.
const dumpCounters = "SELECT last_insert_rowid(), changes()"

// dumpResult turns the results of a dump and dumpCounters into rqlite's
// one result for a dump: its error, or the counters.
func dumpResult(res []command.Result) []command.Result {
	if len(res) == 0 {
		return res
	}
	out := command.Result{Error: res[0].Error, Time: res[0].Time}
	if out.Error == "" && len(res) > 1 {
		if res[1].Error != "" {
			out.Error = res[1].Error
		} else if len(res[1].Values) == 1 && len(res[1].Values[0]) == 2 {
			out.LastInsertID, _ = res[1].Values[0][0].(int64)
			out.RowsAffected, _ = res[1].Values[0][1].(int64)
		}
	}
	return []command.Result{out}
}

// leaderHere reports whether this node is the leader.
func (s *Service) leaderHere() bool {
	_, addr := s.store.Leader()
	return addr != "" && addr == s.store.Addr()
}

// holdBudget takes room in the body budget for a body of n bytes held in
// memory (unknown length, n < 0: the whole budget), waiting at most
// bodyBudgetWait. A body larger than the budget takes all of it, so it runs
// alone. It returns what it holds, to be released.
func (s *Service) holdBudget(ctx context.Context, n int64) (int64, error) {
	_, size := s.budget.inUse()
	if n < 0 || n > size {
		n = size
	}
	if n <= smallBody {
		return 0, nil
	}
	wait := s.budgetWait
	if wait == 0 {
		wait = bodyBudgetWait
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := s.budget.acquire(ctx, n); err != nil {
		return 0, fmt.Errorf("%w: %w", errNoBudget, err)
	}
	return n, nil
}

// capReader fails with errLoadTooLarge once more than max bytes are read.
type capReader struct {
	r   io.Reader
	max int64
	n   int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.n > c.max {
		return 0, errLoadTooLarge
	}
	if rem := c.max + 1 - c.n; int64(len(p)) > rem {
		p = p[:rem]
	}
	k, err := c.r.Read(p)
	c.n += int64(k)
	if c.n > c.max {
		return k, errLoadTooLarge
	}
	return k, err
}

// readError answers a body that could not be read (cut off, too slow).
func readError(w http.ResponseWriter, err error) {
	w.Header().Set("Connection", "close")
	http.Error(w, "error reading request body: "+err.Error(), http.StatusBadRequest)
}

// bodyReadError is an error reading a streamed request body.
type bodyReadError struct{ err error }

func (e bodyReadError) Error() string { return "read request body: " + e.err.Error() }
func (e bodyReadError) Unwrap() error { return e.err }

// bodyIdleLimit bounds how long a streamed body may send nothing (a
// variable for tests).
var bodyIdleLimit = bodyGrace

// bodyReader reads a body that a handler streams (bodyStreamed) under the
// rules readBody applies to other bodies: it must keep an average of
// bodyMinRate after a grace of bodyGrace, and it may not stall for longer
// than bodyIdleLimit even after sending fast. It sets the connection's read
// deadline before each read, and lifts it at the end of the body, so that
// the server's check for a vanished client does not cancel a long load.
type bodyReader struct {
	r     io.Reader
	rc    *http.ResponseController
	start time.Time
	n     int64
	done  bool
}

func (s *Service) newBodyReader(w http.ResponseWriter, r io.Reader) *bodyReader {
	return &bodyReader{r: r, rc: http.NewResponseController(w), start: time.Now()}
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	now := time.Now()
	due := b.start.Add(bodyGrace + time.Duration(float64(b.n+int64(len(p)))/bodyMinRate*float64(time.Second)))
	if idle := now.Add(bodyIdleLimit); idle.Before(due) {
		due = idle
	}
	b.rc.SetReadDeadline(due) //nolint:errcheck // unsupported only for writers that cannot time out anyway
	k, err := b.r.Read(p)
	b.n += int64(k)
	switch {
	case errors.Is(err, io.EOF):
		b.done = true
		b.rc.SetReadDeadline(time.Time{}) //nolint:errcheck // as above
	case err != nil:
		err = bodyReadError{err}
	}
	return k, err
}
