package http

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/rqlited/rqlited/command"
)

// writeStoreError answers for an error from the store: request-level errors
// rqlite reports inside a 200 JSON body, a missing leader as 503, anything
// else as 500 with the error text.
func (s *Service) writeStoreError(w http.ResponseWriter, r *http.Request, p *params, err error) {
	switch {
	case errors.Is(err, command.ErrNotLeader):
		s.forward(w, r, p)
	case errors.Is(err, command.ErrNodeNotFound):
		http.Error(w, err.Error(), http.StatusNotFound)
	case errors.Is(err, command.ErrDisallowedPragma):
		writeJSON(w, p, http.StatusOK, appendResponse(nil, &response{err: command.ErrDisallowedPragma.Error()}, resultFormat{}))
	case errors.Is(err, command.ErrStaleRead):
		writeJSON(w, p, http.StatusOK, appendResponse(nil, &response{err: command.ErrStaleRead.Error()}, resultFormat{}))
	case errors.Is(err, command.ErrNotSQLite):
		http.Error(w, command.ErrNotSQLite.Error(), http.StatusBadRequest)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, command.ErrTimeout),
		errors.Is(err, command.ErrLeadershipLost):
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	default:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

// writeDBError answers for an error from the store on /db/execute,
// /db/query and /db/request as rqlite does: a request this node cannot
// serve as a follower goes to the leader; any other error (the store
// closing, leadership lost while a write was in flight, a timeout) is
// reported in a 200 JSON body, {"results":[],"error":"..."}.
func (s *Service) writeDBError(w http.ResponseWriter, r *http.Request, p *params, err error) {
	switch {
	case errors.Is(err, command.ErrNotLeader):
		s.forward(w, r, p)
		return
	case errors.Is(err, command.ErrLeadershipLost):
		// rqlite passes on hashicorp/raft's text (ours says more in logs
		// and queued writes).
		err = errLeadershipLostRaft
	}
	writeJSON(w, p, http.StatusOK, appendResponse(nil, &response{err: err.Error()}, resultFormat{}))
}

// errLeadershipLostRaft is hashicorp/raft's ErrLeadershipLost text, which
// rqlite reports for a write whose leader lost leadership before it
// committed (it may or may not be applied).
var errLeadershipLostRaft = errors.New("leadership lost while committing log")

// qualify prefixes each result column that comes from a table with the
// table's name (rqlite's ?qualify_columns). Columns stay as they are if
// SQLite cannot say (an expression, or a build without column metadata).
func (s *Service) qualify(ctx context.Context, req *command.Request, res []command.Result) {
	ncols := make([]int, len(req.Statements))
	found := false
	for i := range res {
		if i < len(ncols) && res[i].IsQuery && len(res[i].Columns) > 0 {
			ncols[i], found = len(res[i].Columns), true
		}
	}
	if !found {
		return
	}
	tables, err := s.store.ColumnTables(ctx, req, ncols)
	if err != nil {
		s.logger.Debug("qualify_columns: column tables unknown", "error", err)
		return
	}
	for i, t := range tables {
		if i >= len(res) || t == nil {
			continue
		}
		// A copy: the driver may share the column names with later
		// queries of the same statement.
		cols := append([]string(nil), res[i].Columns...)
		for j, name := range t {
			if name != "" && j < len(cols) {
				cols[j] = name + "." + cols[j]
			}
		}
		res[i].Columns = cols
	}
}

// isTextPlain reports whether a Content-Type is text/plain, with or without
// parameters, in any case (as mime.ParseMediaType would see it, without
// its allocations).
func isTextPlain(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "text/plain")
}

// statements reads and parses the body of an execute, query or request
// call. A text/plain body is one SQL string.
func (s *Service) statements(w http.ResponseWriter, r *http.Request, p *params) ([]command.Statement, bool) {
	body := p.body
	if isTextPlain(r.Header.Get("Content-Type")) {
		sql := strings.TrimSpace(string(body))
		if sql == "" {
			http.Error(w, errNoStatements.Error(), http.StatusBadRequest)
			return nil, false
		}
		return []command.Statement{{SQL: sql}}, true
	}
	stmts, err := parseStatements(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil, false
	}
	return stmts, true
}

func (s *Service) writeResults(w http.ResponseWriter, p *params, start time.Time, res []command.Result, idx uint64, request bool) {
	resp := response{results: res}
	if p.timings {
		resp.time = time.Since(start).Seconds()
	}
	if p.raftIndex {
		resp.raftIndex = idx
	}
	writeJSON(w, p, http.StatusOK, appendResponse(make([]byte, 0, 256), &resp, p.format(request)))
}

func (s *Service) handleExecute(w http.ResponseWriter, r *http.Request, p *params) {
	start := time.Now()
	stmts, ok := s.statements(w, r, p)
	if !ok {
		return
	}
	if p.queue {
		s.queueWrite(w, r, p, stmts)
		return
	}
	res, idx, err := s.store.Execute(r.Context(), &command.Request{Statements: stmts, Transaction: p.transaction})
	if err != nil {
		s.writeDBError(w, r, p, err)
		return
	}
	s.writeResults(w, p, start, res, idx, false)
}

func (s *Service) queueWrite(w http.ResponseWriter, r *http.Request, p *params, stmts []command.Statement) {
	if !p.noLeader {
		if _, addr := s.store.Leader(); addr != s.store.Addr() {
			s.writeStoreError(w, r, p, command.ErrNotLeader)
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), p.timeout)
	defer cancel()
	seq, done, err := s.queue.Write(ctx, stmts)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	if p.wait {
		select {
		case err := <-done:
			if err != nil {
				s.writeStoreError(w, r, p, err)
				return
			}
		case <-ctx.Done():
			http.Error(w, "queue wait timeout", http.StatusRequestTimeout)
			return
		}
	}
	writeJSON(w, p, http.StatusOK, appendResponse(nil, &response{seq: seq}, resultFormat{}))
}

func (s *Service) handleQuery(w http.ResponseWriter, r *http.Request, p *params) {
	start := time.Now()
	var stmts []command.Statement
	if r.Method == http.MethodGet {
		q := p.v.Get("q")
		if q == "" {
			http.Error(w, "query parameter not set", http.StatusBadRequest)
			return
		}
		stmts = []command.Statement{{SQL: q}}
	} else {
		var ok bool
		if stmts, ok = s.statements(w, r, p); !ok {
			return
		}
	}
	req := &command.Request{Statements: stmts, Transaction: p.transaction}
	res, idx, err := s.store.Query(r.Context(), req, p.queryOptions())
	if err != nil {
		s.writeDBError(w, r, p, err)
		return
	}
	if p.qualifyColumns {
		s.qualify(r.Context(), req, res)
	}
	s.writeResults(w, p, start, res, idx, false)
}

func (s *Service) handleRequest(w http.ResponseWriter, r *http.Request, p *params) {
	start := time.Now()
	stmts, ok := s.statements(w, r, p)
	if !ok {
		return
	}
	req := &command.Request{Statements: stmts, Transaction: p.transaction}
	res, idx, err := s.store.Request(r.Context(), req, p.queryOptions())
	if err != nil {
		s.writeDBError(w, r, p, err)
		return
	}
	if p.qualifyColumns {
		s.qualify(r.Context(), req, res)
	}
	s.writeResults(w, p, start, res, idx, true)
}

// lazyWriter sends the response headers on the first write, so an error
// that happens before any data can still be answered with its own status.
type lazyWriter struct {
	w           http.ResponseWriter
	contentType string
	n           int64
}

func (l *lazyWriter) Write(b []byte) (int, error) {
	if l.n == 0 && len(b) > 0 {
		l.w.Header().Set("Content-Type", l.contentType)
		l.w.WriteHeader(http.StatusOK)
	}
	n, err := l.w.Write(b)
	l.n += int64(n)
	return n, err
}

func (s *Service) handleBackup(w http.ResponseWriter, r *http.Request, p *params) {
	opts := command.BackupOptions{Vacuum: p.vacuum, NoLeader: p.noLeader}
	ct := "application/octet-stream"
	switch p.v.Get("fmt") {
	case "", "binary", "delete":
	case "sql":
		opts.Format = command.BackupSQL
		ct = "application/sql"
		if t := p.v.Get("tables"); t != "" {
			opts.Tables = strings.Split(t, ",")
		}
	default:
		http.Error(w, "invalid backup format: use fmt=binary or fmt=sql", http.StatusBadRequest)
		return
	}
	lw := &lazyWriter{w: w, contentType: ct}
	var out io.Writer = lw
	var gz *gzip.Writer
	if p.compress {
		lw.contentType = "application/gzip"
		gz = gzip.NewWriter(lw)
		out = gz
	}
	err := s.store.Backup(r.Context(), out, opts)
	if err == nil && gz != nil {
		err = gz.Close()
	}
	if err != nil {
		if lw.n == 0 {
			s.writeStoreError(w, r, p, err)
			return
		}
		// Part of the backup is already on the wire: cut the connection so
		// the client cannot mistake a truncated copy for a whole one.
		s.logger.Warn("backup failed mid-stream", "error", err)
		panic(http.ErrAbortHandler)
	}
}

func (s *Service) handleSnapshot(w http.ResponseWriter, r *http.Request, p *params) {
	err := s.store.Snapshot(p.trailingLogs)
	switch {
	case err == nil:
		w.WriteHeader(http.StatusOK)
	case errors.Is(err, command.ErrNothingNew):
		w.WriteHeader(http.StatusNoContent)
	default:
		s.writeStoreError(w, r, p, err)
	}
}

// indent re-renders compact JSON the way json.MarshalIndent(v, "", "    ")
// would have.
func indent(b []byte) []byte {
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "    "); err != nil {
		return b
	}
	return out.Bytes()
}
