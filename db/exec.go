package db

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"

	"github.com/rqlited/rqlited/command"
)

// Mode tells how the statements of a request are run.
type Mode int

const (
	// ModeExecute treats every statement as a write: results carry
	// last_insert_id and rows_affected (or rows, for RETURNING).
	ModeExecute Mode = iota
	// ModeQuery treats every statement as a read: results carry rows.
	ModeQuery
	// ModeRequest decides per statement: read-only statements return rows,
	// the others are run as writes.
	ModeRequest
)

// Env fixes the inputs that would otherwise differ between replicas while a
// replicated command runs.
type Env struct {
	// Time is SQLite's "now"; the zero value means the real clock.
	Time time.Time
	// Seed seeds random() and randomblob().
	Seed uint64
}

// errOpenTx is reported when a request leaves a transaction open.
const errOpenTx = "transaction left open by the request was rolled back: use ?transaction, or BEGIN and COMMIT in the same request"

// Apply runs req on the writer connection. It must not be called
// concurrently with itself, Snapshot or Replace: the Raft FSM is its only
// caller. Statement errors are reported in the results; the returned error is
// for failures of the database itself (ErrEnvironment) or ErrClosed when
// Interrupt stopped it, in which case nothing of req was kept.
func (d *DB) Apply(env Env, mode Mode, req *command.Request) ([]command.Result, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return nil, ErrClosed
	}
	if !env.Time.IsZero() {
		d.clock.set(env.Time)
		defer d.clock.set(time.Time{})
	}
	d.rand.seed(env.Seed)
	defer d.rand.unseed()

	w := d.writer
	w.beginRequest()
	if mode == ModeQuery {
		// The query path never writes: the guard refuses writes it can
		// see when statements are prepared, and query_only stops the
		// rest (a PRAGMA that writes, for one) when they run.
		if err := d.execRaw("PRAGMA query_only=1"); err != nil {
			return nil, err
		}
		w.setReadOnly(true)
		defer func() {
			w.setReadOnly(false)
			d.execRaw("PRAGMA query_only=0") //nolint:errcheck // a failure shows on the next write
		}()
	}
	ctx, failed := withEnvSlot(context.Background())
	results := runRequest(ctx, w, mode, req)
	if !w.AutoCommit() {
		rerr := d.execRaw("ROLLBACK")
		if failed.err == nil && !failed.closing {
			if rerr != nil {
				return nil, rerr
			}
			if len(results) > 0 {
				results[len(results)-1] = command.Result{Error: errOpenTx}
			}
		}
	}
	if failed.closing {
		return nil, ErrClosed
	}
	if w.dirty() {
		d.resetWriter()
	}
	if failed.err != nil {
		// SQLite failed in a way that can come from this node's storage.
		// Whether it did is decided by checking the storage, never from
		// the statement's error: a statement error is the same on every
		// replica and stays a result.
		if perr := d.probeStorage(); perr != nil {
			return nil, errors.Join(ErrEnvironment, perr, failed.err)
		}
	}
	return results, nil
}

// Query runs the read-only statements of req on a pooled read-only
// connection. mode is ModeQuery or ModeRequest; either way a statement that
// would write fails with ErrQueryWrite's text.
func (d *DB) Query(ctx context.Context, mode Mode, req *command.Request) ([]command.Result, error) {
	var results []command.Result
	err := d.withReader(ctx, func(c *conn) error {
		results = runRequest(ctx, c, mode, req)
		if !c.AutoCommit() {
			_, err := c.Exec("ROLLBACK", nil)
			return err
		}
		return nil
	})
	return results, err
}

func runRequest(ctx context.Context, c *conn, mode Mode, req *command.Request) []command.Result {
	if !req.Transaction && len(req.Statements) > 1 && mode != ModeQuery && c.AutoCommit() && groupable(req) {
		if res, ok := runGrouped(ctx, c, mode, req); ok {
			return res
		}
	}
	return runEach(ctx, c, mode, req)
}

// groupable reports whether every statement of req may run inside an
// enclosing transaction: none controls transactions or does anything that
// cannot happen in one.
func groupable(req *command.Request) bool {
	for i := range req.Statements {
		q := req.Statements[i].SQL
		// One statement per string: a second one could be anything.
		if i := strings.IndexByte(q, ';'); i >= 0 && strings.Trim(q[i:], "; \t\r\n") != "" {
			return false
		}
		switch firstKeyword(q) {
		case "INSERT", "UPDATE", "DELETE", "REPLACE", "SELECT", "VALUES", "CREATE", "DROP", "ALTER":
		default:
			return false
		}
	}
	return true
}

// runGrouped runs the statements of a request without ?transaction inside
// one SQLite transaction, which commits once instead of once per statement.
// Inside a transaction SQLite treats a failing statement as it does in
// autocommit mode: it undoes the statement (or, with the FAIL conflict
// resolution, keeps what the statement did before failing), and the
// transaction goes on. (Savepoints around each statement, as before
// 2026-11-23, undid FAIL's partial work too, unlike autocommit.) If SQLite
// itself ends the transaction (ROLLBACK conflict resolution, RAISE(ROLLBACK),
// an I/O error) or the commit fails, nothing of it is kept and ok is false,
// so the caller runs the request again statement by statement.
func runGrouped(ctx context.Context, c *conn, mode Mode, req *command.Request) ([]command.Result, bool) {
	if deferredChecks(c) {
		// Deferred foreign keys are checked at COMMIT: a later statement
		// of the request could repair what an earlier one broke, which
		// autocommit would have refused.
		return nil, false
	}
	if _, err := c.Exec("BEGIN", nil); err != nil {
		return nil, false
	}
	results := make([]command.Result, 0, len(req.Statements))
	for i := range req.Statements {
		r := runStatement(ctx, c, mode, &req.Statements[i])
		if c.AutoCommit() {
			return nil, false // SQLite rolled the whole transaction back
		}
		results = append(results, r)
	}
	if _, err := c.Exec("COMMIT", nil); err != nil {
		c.Exec("ROLLBACK", nil) //nolint:errcheck
		return nil, false
	}
	return results, true
}

// deferredChecks reports whether constraints may be checked only at
// commit on c: foreign keys are on (by -fk or a PRAGMA). Grouping is left
// out then, whether or not the schema declares deferred keys.
func deferredChecks(c *conn) bool {
	rows, err := c.Query("PRAGMA foreign_keys", nil)
	if err != nil {
		return true
	}
	defer rows.Close()
	v := make([]driver.Value, 1)
	if err := rows.Next(v); err != nil {
		return true
	}
	on, _ := v[0].(int64)
	return on != 0
}

func runEach(ctx context.Context, c *conn, mode Mode, req *command.Request) []command.Result {
	results := make([]command.Result, 0, len(req.Statements))
	if req.Transaction {
		if _, err := c.Exec("BEGIN", nil); err != nil {
			return append(results, command.Result{Error: errText(ctx, c, err)})
		}
	}
	for i := range req.Statements {
		r := runStatement(ctx, c, mode, &req.Statements[i])
		results = append(results, r)
		if r.Error != "" && req.Transaction {
			if !c.AutoCommit() {
				c.Exec("ROLLBACK", nil) //nolint:errcheck // the statement error is what the client needs
			}
			return results
		}
	}
	if req.Transaction && !c.AutoCommit() {
		if _, err := c.Exec("COMMIT", nil); err != nil {
			c.Exec("ROLLBACK", nil) //nolint:errcheck
			results = append(results[:0], command.Result{Error: errText(ctx, c, err)})
		}
	}
	return results
}

func runStatement(ctx context.Context, c *conn, mode Mode, st *command.Statement) command.Result {
	start := time.Now()
	c.beginStatement()
	args := namedValues(st.Parameters)
	rows := mode == ModeQuery
	switch mode {
	case ModeExecute:
		rows = hasReturning(st.SQL)
	case ModeRequest:
		ro, err := isReadOnly(c, st.SQL)
		if err != nil {
			return command.Result{Error: errText(ctx, c, err), Time: since(start)}
		}
		rows = ro || hasReturning(st.SQL)
	}
	var r command.Result
	if rows {
		r = queryRows(ctx, c, st.SQL, args)
	} else {
		res, err := c.ExecContext(ctx, st.SQL, args)
		if err != nil {
			r.Error = stmtErrText(ctx, c, err)
		} else if mayChangeRows(c, st.SQL) {
			// SQLite's counters keep the values of the last INSERT, UPDATE
			// or DELETE; after DDL or a SELECT they would be stale.
			r.LastInsertID, _ = res.LastInsertId()
			r.RowsAffected, _ = res.RowsAffected()
		}
	}
	r.Time = since(start)
	return r
}

func since(t time.Time) float64 { return time.Since(t).Seconds() }

// isReadOnly reports whether SQLite considers the first statement of q
// read-only.
func isReadOnly(c *conn, q string) (bool, error) {
	s, err := c.Prepare(q)
	if err != nil {
		return false, err
	}
	defer s.Close()
	return s.(*sqlite3.SQLiteStmt).Readonly(), nil
}

// mayChangeRows reports whether q is a statement that can insert, update
// or delete rows, judged by its first keyword; a WITH clause can start
// either a read (WITH x AS (...) SELECT ...) or a write, which SQLite
// tells apart.
func mayChangeRows(c *conn, q string) bool {
	switch firstKeyword(q) {
	case "INSERT", "UPDATE", "DELETE", "REPLACE":
		return true
	case "WITH":
		ro, err := isReadOnly(c, q)
		return err != nil || !ro
	}
	return false
}

// ErrQueryTimeout's text is rqlite's for a statement interrupted by
// db_timeout.
var ErrQueryTimeout = errors.New("query timeout")

// stmtErrText is errText, with rqlite's text for a statement stopped by
// its db_timeout deadline.
func stmtErrText(ctx context.Context, c *conn, err error) string {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		errText(ctx, c, err)
		return ErrQueryTimeout.Error()
	}
	return errText(ctx, c, err)
}

// firstKeyword returns the first word of q in upper case, after white
// space and comments.
func firstKeyword(q string) string {
	for {
		q = strings.TrimLeft(q, " \t\r\n;")
		switch {
		case strings.HasPrefix(q, "--"):
			i := strings.IndexByte(q, '\n')
			if i < 0 {
				return ""
			}
			q = q[i:]
			continue
		case strings.HasPrefix(q, "/*"):
			i := strings.Index(q, "*/")
			if i < 0 {
				return ""
			}
			q = q[i+2:]
			continue
		}
		break
	}
	end := 0
	for end < len(q) && (q[end] >= 'a' && q[end] <= 'z' || q[end] >= 'A' && q[end] <= 'Z') {
		end++
	}
	return strings.ToUpper(q[:end])
}

// hasReturning reports whether q may contain a RETURNING clause, whose rows
// the client expects to see. A false positive only costs the query path.
func hasReturning(q string) bool {
	for i := 0; i+9 <= len(q); i++ {
		if (q[i] == 'r' || q[i] == 'R') && strings.EqualFold(q[i:i+9], "returning") {
			return true
		}
	}
	return false
}

func namedValues(ps []command.Parameter) []driver.NamedValue {
	if len(ps) == 0 {
		return nil
	}
	nv := make([]driver.NamedValue, len(ps))
	for i, p := range ps {
		nv[i] = driver.NamedValue{Name: p.Name, Ordinal: i + 1, Value: p.Value}
	}
	return nv
}

func queryRows(ctx context.Context, c *conn, q string, args []driver.NamedValue) command.Result {
	r := command.Result{IsQuery: true}
	rs, err := c.QueryContext(ctx, q, args)
	if err != nil {
		return command.Result{Error: stmtErrText(ctx, c, err)}
	}
	defer rs.Close()
	r.Columns = rs.Columns()
	var decl []string
	if sr, ok := rs.(*sqlite3.SQLiteRows); ok {
		decl = sr.DeclTypes()
	}
	r.Types = make([]string, len(r.Columns))
	copy(r.Types, decl)
	var size int64
	dest := make([]driver.Value, len(r.Columns))
	for {
		if err := rs.Next(dest); err != nil {
			if !errors.Is(err, io.EOF) {
				return command.Result{Error: stmtErrText(ctx, c, err)}
			}
			break
		}
		size += rowOverhead
		row := make([]any, len(dest))
		for i, v := range dest {
			row[i] = v
			switch v := v.(type) {
			case time.Time:
				row[i] = v.Format(time.RFC3339Nano)
				size += valueOverhead + 32
			case string:
				size += valueOverhead + int64(len(v))
			case []byte:
				size += valueOverhead + int64(len(v))
			default:
				size += valueOverhead
			}
		}
		if c.maxResult > 0 && size > c.maxResult {
			// The count depends only on the rows, so a result stopped
			// on one replica (a strong query, RETURNING) is stopped on all.
			return command.Result{Error: fmt.Sprintf("query result is larger than %d bytes, the limit set by -db-max-result-bytes: "+
				"ask for fewer rows (LIMIT, a narrower WHERE) or raise the limit", c.maxResult)}
		}
		r.Values = append(r.Values, row)
	}
	inferTypes(r.Types, r.Values)
	return r
}

// The memory a result row and a value cost in Go beyond their data, for
// the result size limit: a row is a slice header in the result plus its
// allocation's rounding; a value is an interface slot plus its boxed
// number or string/slice header (measured: 10^7 rows of (integer, 'row')
// took about 100 bytes each, and these give 107).
const (
	rowOverhead   = 40
	valueOverhead = 32
)

// inferTypes fills in the type of expression columns, which have no declared
// type, from the first non-NULL value in the column.
func inferTypes(types []string, rows [][]any) {
	for i := range types {
		if types[i] != "" {
			continue
		}
		for _, row := range rows {
			if t := valueType(row[i]); t != "" {
				types[i] = t
				break
			}
		}
	}
}

func valueType(v any) string {
	switch v.(type) {
	case int64:
		return "integer"
	case float64:
		return "real"
	case bool:
		return "boolean"
	case []byte:
		return "blob"
	case string:
		return "text"
	}
	return ""
}

// ReadOnly reports whether every statement of req is read-only, as judged
// by SQLite when it prepares them on a read connection.
func (d *DB) ReadOnly(ctx context.Context, req *command.Request) (bool, error) {
	ro := true
	err := d.withReader(ctx, func(c *conn) error {
		for i := range req.Statements {
			c.beginStatement()
			ok, err := isReadOnly(c, req.Statements[i].SQL)
			if err != nil {
				// Let the statement fail where it runs, with its own error.
				continue
			}
			if !ok {
				ro = false
				return nil
			}
		}
		return nil
	})
	return ro, err
}

// columnTabler is what go-sqlite3's statements offer when it is built with
// the sqlite_column_metadata tag (SQLite's SQLITE_ENABLE_COLUMN_METADATA).
type columnTabler interface {
	ColumnTableName(n int) string
}

// ErrNoColumnMetadata is returned by ColumnTables when SQLite was built
// without column metadata.
var ErrNoColumnMetadata = errors.New("SQLite was built without column metadata (go-sqlite3 tag sqlite_column_metadata)")

// ColumnTables returns, for each statement of req, the table each of its
// first ncols[i] result columns comes from ("" for an expression), as
// SQLite sees it when it prepares the statement on a read connection; nil
// for a statement with no columns or that does not prepare there. It
// serves rqlite's ?qualify_columns.
func (d *DB) ColumnTables(ctx context.Context, req *command.Request, ncols []int) ([][]string, error) {
	out := make([][]string, len(req.Statements))
	err := d.withReader(ctx, func(c *conn) error {
		for i := range req.Statements {
			if i >= len(ncols) || ncols[i] == 0 {
				continue
			}
			c.beginStatement()
			t, err := columnTables(c, req.Statements[i].SQL, ncols[i])
			if errors.Is(err, ErrNoColumnMetadata) {
				return err
			}
			out[i] = t
		}
		return nil
	})
	return out, err
}

func columnTables(c *conn, q string, n int) ([]string, error) {
	st, err := c.Prepare(q)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	ct, ok := st.(columnTabler)
	if !ok {
		return nil, ErrNoColumnMetadata
	}
	t := make([]string, n)
	for i := range t {
		t[i] = ct.ColumnTableName(i)
	}
	return t, nil
}
