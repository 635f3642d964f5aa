package db

/*
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

// SQLite is compiled into the binary by mattn/go-sqlite3. As in clock.go,
// the few functions used here are declared weak so that cgo's standalone
// link of this package succeeds; in the binary they are the real ones.
typedef struct sqlite3 sqlite3;
typedef struct sqlite3_stmt sqlite3_stmt;
extern int sqlite3_set_authorizer(sqlite3 *, int (*)(void *, int, const char *, const char *, const char *, const char *), void *) __attribute__((weak));
extern void sqlite3_progress_handler(sqlite3 *, int, int (*)(void *), void *) __attribute__((weak));
extern sqlite3_stmt *sqlite3_next_stmt(sqlite3 *, sqlite3_stmt *) __attribute__((weak));
extern int sqlite3_stmt_busy(sqlite3_stmt *) __attribute__((weak));
extern int sqlite3_stmt_status(sqlite3_stmt *, int, int) __attribute__((weak));
extern const char *sqlite3_db_name(sqlite3 *, int) __attribute__((weak));
extern const char *sqlite3_db_filename(sqlite3 *, const char *) __attribute__((weak));
typedef struct sqlite3_context sqlite3_context;
typedef struct sqlite3_value sqlite3_value;
extern int sqlite3_create_function(sqlite3 *, const char *, int, int, void *,
	void (*)(sqlite3_context *, int, sqlite3_value **), void (*)(sqlite3_context *, int, sqlite3_value **),
	void (*)(sqlite3_context *)) __attribute__((weak));
extern void *sqlite3_user_data(sqlite3_context *) __attribute__((weak));
extern void sqlite3_result_int64(sqlite3_context *, int64_t) __attribute__((weak));
extern int64_t sqlite3_changes64(sqlite3 *) __attribute__((weak));
extern int64_t sqlite3_total_changes64(sqlite3 *) __attribute__((weak));
extern int64_t sqlite3_last_insert_rowid(sqlite3 *) __attribute__((weak));
extern void *sqlite3_update_hook(sqlite3 *, void (*)(void *, int, const char *, const char *, int64_t), void *) __attribute__((weak));

// Authorizer action codes and results (sqlite3.h; part of SQLite's ABI).
enum {
	RQ_OK = 0, RQ_DENY = 1,
	RQ_CREATE_INDEX = 1, RQ_CREATE_TABLE = 2, RQ_CREATE_TEMP_INDEX = 3, RQ_CREATE_TEMP_TABLE = 4,
	RQ_CREATE_TEMP_TRIGGER = 5, RQ_CREATE_TEMP_VIEW = 6, RQ_CREATE_TRIGGER = 7, RQ_CREATE_VIEW = 8,
	RQ_DELETE = 9, RQ_DROP_INDEX = 10, RQ_DROP_TABLE = 11, RQ_DROP_TEMP_INDEX = 12,
	RQ_DROP_TEMP_TABLE = 13, RQ_DROP_TEMP_TRIGGER = 14, RQ_DROP_TEMP_VIEW = 15, RQ_DROP_TRIGGER = 16,
	RQ_DROP_VIEW = 17, RQ_INSERT = 18, RQ_PRAGMA = 19, RQ_READ = 20, RQ_SELECT = 21,
	RQ_TRANSACTION = 22, RQ_UPDATE = 23, RQ_ATTACH = 24, RQ_DETACH = 25, RQ_ALTER_TABLE = 26,
	RQ_REINDEX = 27, RQ_ANALYZE = 28, RQ_CREATE_VTABLE = 29, RQ_DROP_VTABLE = 30, RQ_FUNCTION = 31,
	RQ_STMTSTATUS_VM_STEP = 4,
};

// Why the guard refused or stopped the last statement.
enum {
	RQ_WHY_NONE = 0,
	RQ_WHY_ATTACH,      // ATTACH of a file (or of a name computed at run time)
	RQ_WHY_PRAGMA,      // a PRAGMA that would break replication or the node
	RQ_WHY_FUNCTION,    // load_extension()
	RQ_WHY_STEPS,       // the statement ran past the step limit
	RQ_WHY_CLOSING,     // the database is closing
	RQ_WHY_MEMORY,      // a PRAGMA that would let memory grow with the data
};

// Progress callbacks come every RQ_PROGRESS_OPS virtual-machine steps.
#define RQ_PROGRESS_OPS 1000

// rq_shared is one per DB: a flag every connection's guard reads.
typedef struct rq_shared {
	volatile int closing;
} rq_shared;

// rq_guard is one per connection. Only the goroutine that uses the
// connection touches it, except closing in rq_shared.
typedef struct rq_guard {
	rq_shared *shared;
	int reader;        // a pooled read connection: any setting PRAGMA marks it dirty
	int readonly;      // the query path (read connections always): writes are refused
	int internal;      // our own statements run unchecked
	int dirty;         // state that must not outlive the request (temp objects, attachments, settings)
	int why;           // RQ_WHY_* of the last refusal or stop
	char detail[48];   // e.g. the PRAGMA's name
	int64_t max_calls; // progress callbacks allowed per statement; 0: no limit
	int64_t calls;     // progress callbacks counted for the current statement
	volatile int64_t ticks; // progress callbacks ever (tests watch it)
	sqlite3 *db;
	int64_t total_at_start; // sqlite3_total_changes64 when the request began
	int inserted;           // a row was inserted since the request began
} rq_guard;

static void rq_refuse(rq_guard *g, int why, const char *detail) {
	g->why = why;
	g->detail[0] = 0;
	if (detail) {
		strncpy(g->detail, detail, sizeof g->detail - 1);
		g->detail[sizeof g->detail - 1] = 0;
	}
}

static int rq_in(const char *s, const char *const *list) {
	if (!s) return 0;
	for (; *list; list++) if (strcasecmp(s, *list) == 0) return 1;
	return 0;
}

// PRAGMAs refused whenever they carry a value: they change how the database
// is journaled, synced, locked, checkpointed or sized underneath
// replication, make the schema writable, or set process-wide limits that
// every connection shares. wal_checkpoint is refused in every form.
// writable_schema is refused although rqlite accepts it: a connection keeps
// the schema it had before sqlite_schema was edited by hand, a new one
// reads the edited one, so a node restarted or restored from a snapshot
// would answer later entries differently (or not at all) from the others.
static const char *const rq_bad_pragmas[] = {
	"journal_mode", "wal_autocheckpoint", "synchronous", "query_only", "locking_mode",
	"max_page_count", "writable_schema", "schema_version", "hard_heap_limit", "soft_heap_limit",
	"temp_store_directory", "data_store_directory", "mmap_size", "cell_size_check", 0,
};

// PRAGMAs that take an argument yet change nothing on the connection.
static const char *const rq_read_pragmas[] = {
	"table_info", "table_xinfo", "table_list", "index_info", "index_xinfo", "index_list",
	"foreign_key_list", "foreign_key_check", "integrity_check", "quick_check", 0,
};

// rq_memory_pragma reports whether PRAGMA name=arg would let one
// connection's memory grow with the data it reads or sorts: a page cache
// over 1 GiB (negative values are KiB, positive ones pages, taken as 4 KiB),
// or temporary tables and sort spills kept in memory.
static int rq_memory_pragma(const char *name, const char *arg) {
	if (strcasecmp(name, "cache_size") == 0) {
		char *end = 0;
		long long v = strtoll(arg, &end, 10);
		if (end == arg) return 0; // not a number: SQLite reports it
		if (v < 0) return v < -(1LL << 20);
		return v > (1LL << 18);
	}
	if (strcasecmp(name, "temp_store") == 0) {
		return strcmp(arg, "2") == 0 || strcasecmp(arg, "memory") == 0;
	}
	return 0;
}


static int rq_authorize(void *p, int op, const char *a1, const char *a2, const char *dbname, const char *trigger) {
	rq_guard *g = p;
	if (g->internal) return RQ_OK;
	switch (op) {
	case RQ_ATTACH:
		// a1 is the file name when it is a literal, NULL when computed.
		if (a1 && (strcmp(a1, ":memory:") == 0 || a1[0] == 0)) {
			g->dirty = 1;
			return RQ_OK;
		}
		rq_refuse(g, RQ_WHY_ATTACH, a1);
		return RQ_DENY;
	case RQ_DETACH:
		g->dirty = 1;
		return RQ_OK;
	case RQ_PRAGMA:
		if (strcasecmp(a1, "wal_checkpoint") == 0 || (a2 && rq_in(a1, rq_bad_pragmas))) {
			rq_refuse(g, RQ_WHY_PRAGMA, a1);
			return RQ_DENY;
		}
		if (a2 && rq_memory_pragma(a1, a2)) {
			rq_refuse(g, RQ_WHY_MEMORY, a1);
			return RQ_DENY;
		}
		if (a2 && g->reader && !rq_in(a1, rq_read_pragmas)) g->dirty = 1;
		// case_sensitive_like changes LIKE but cannot be read back, so a
		// snapshot could not carry it to a restored node.
		if (a2 && !g->reader && strcasecmp(a1, "case_sensitive_like") == 0) {
			rq_refuse(g, RQ_WHY_PRAGMA, a1);
			return RQ_DENY;
		}
		return RQ_OK;
	case RQ_FUNCTION:
		if (a2 && strcasecmp(a2, "load_extension") == 0) {
			rq_refuse(g, RQ_WHY_FUNCTION, a2);
			return RQ_DENY;
		}
		return RQ_OK;
	case RQ_CREATE_TEMP_INDEX: case RQ_CREATE_TEMP_TABLE: case RQ_CREATE_TEMP_TRIGGER: case RQ_CREATE_TEMP_VIEW:
		g->dirty = 1;
		break;
	case RQ_CREATE_VTABLE:
		if (dbname && strcasecmp(dbname, "temp") == 0) g->dirty = 1;
		break;
	}
	// Writes on the query path are not refused here but by query_only when
	// they run (mapped to rqlite's error in Go): a virtual table module
	// (R*Tree, Geopoly) prepares the writes to its own tables the first
	// time a connection reads it, and refusing those would fail the read.
	return RQ_OK;
}

// rq_any_busy reports whether a statement of db is running. The progress
// handler is also called while SQLite parses; parsing is not counted,
// because whether a statement is parsed again or taken from the
// statement cache differs between replicas.
static int rq_any_busy(sqlite3 *db) {
	sqlite3_stmt *s = 0;
	while ((s = sqlite3_next_stmt(db, s)) != 0) {
		if (sqlite3_stmt_busy(s)) return 1;
	}
	return 0;
}

typedef struct rq_progress_arg {
	rq_guard *g;
	sqlite3 *db;
} rq_progress_arg;

static int rq_progress(void *p) {
	rq_progress_arg *a = p;
	rq_guard *g = a->g;
	g->ticks++;
	if (g->shared->closing) {
		g->why = RQ_WHY_CLOSING;
		return 1;
	}
	if (g->max_calls > 0 && !g->internal && rq_any_busy(a->db) && ++g->calls > g->max_calls) {
		g->why = RQ_WHY_STEPS;
		return 1;
	}
	return 0;
}

// rq_begin_statement resets the step count before a statement runs. SQLite
// calls the progress handler when a statement's cumulative step count
// crosses a multiple of RQ_PROGRESS_OPS, and that count survives resets of
// a cached statement; zeroing it on every statement of the connection makes
// the callbacks fall at the same steps on every replica.
static void rq_begin_statement(rq_guard *g, sqlite3 *db) {
	g->calls = 0;
	g->why = RQ_WHY_NONE;
	if (g->max_calls <= 0) return;
	sqlite3_stmt *s = 0;
	while ((s = sqlite3_next_stmt(db, s)) != 0) sqlite3_stmt_status(s, RQ_STMTSTATUS_VM_STEP, 1);
}

// changes(), total_changes() and last_insert_rowid() on the writer answer
// from the current request only. SQLite's own versions carry values over
// from earlier log entries and from the connection's whole life, which a
// node that restored a snapshot or restarted does not share with the
// others.
static void rq_changes(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
	rq_guard *g = sqlite3_user_data(ctx);
	// No row changed in this request: either no INSERT, UPDATE or DELETE
	// ran yet (SQLite would report an earlier entry's count) or the last
	// one changed none.
	if (sqlite3_total_changes64(g->db) == g->total_at_start) {
		sqlite3_result_int64(ctx, 0);
		return;
	}
	sqlite3_result_int64(ctx, sqlite3_changes64(g->db));
}

static void rq_total_changes(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
	rq_guard *g = sqlite3_user_data(ctx);
	sqlite3_result_int64(ctx, sqlite3_total_changes64(g->db) - g->total_at_start);
}

// last_insert_rowid() likewise: 0 until the request inserts a row.
static void rq_last_insert_rowid(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
	rq_guard *g = sqlite3_user_data(ctx);
	sqlite3_result_int64(ctx, g->inserted ? sqlite3_last_insert_rowid(g->db) : 0);
}

static void rq_update_hook(void *p, int op, const char *dbname, const char *table, int64_t rowid) {
	if (op == RQ_INSERT) ((rq_guard *)p)->inserted = 1;
}

// rq_begin_request makes what a request can learn of the connection's
// history the same on every replica: changes(), total_changes() and
// last_insert_rowid() count from here.
static void rq_begin_request(rq_guard *g) {
	g->total_at_start = sqlite3_total_changes64(g->db);
	g->inserted = 0;
}

static int rq_install_writer_functions(sqlite3 *db, rq_guard *g) {
	if (sqlite3_create_function == 0 || sqlite3_update_hook == 0) return -1;
	int rc = sqlite3_create_function(db, "changes", 0, 1, g, rq_changes, 0, 0);
	if (rc == 0) rc = sqlite3_create_function(db, "total_changes", 0, 1, g, rq_total_changes, 0, 0);
	if (rc == 0) rc = sqlite3_create_function(db, "last_insert_rowid", 0, 1, g, rq_last_insert_rowid, 0, 0);
	if (rc == 0) sqlite3_update_hook(db, rq_update_hook, g);
	return rc;
}

static rq_progress_arg *rq_install(sqlite3 *db, rq_guard *g) {
	if (sqlite3_set_authorizer == 0 || sqlite3_progress_handler == 0) return 0;
	rq_progress_arg *a = calloc(1, sizeof *a);
	if (!a) return 0;
	a->g = g;
	a->db = db;
	g->db = db;
	if (sqlite3_set_authorizer(db, rq_authorize, g) != 0) {
		free(a);
		return 0;
	}
	sqlite3_progress_handler(db, RQ_PROGRESS_OPS, rq_progress, a);
	return a;
}

static int64_t rq_ticks(rq_guard *g) { return g->ticks; }

static int rq_has_attached(sqlite3 *db) { return sqlite3_db_name(db, 2) != 0; }

static const char *rq_main_file(sqlite3 *db) { return sqlite3_db_filename(db, "main"); }
*/
import "C"

import (
	"errors"
	"fmt"
	"reflect"
	"unsafe"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// progressOps is C's RQ_PROGRESS_OPS: the granularity of the step limit.
const progressOps = C.RQ_PROGRESS_OPS

// Reasons the guard refused or stopped a statement.
const (
	whyNone     = C.RQ_WHY_NONE
	whyAttach   = C.RQ_WHY_ATTACH
	whyPragma   = C.RQ_WHY_PRAGMA
	whyFunction = C.RQ_WHY_FUNCTION
	whySteps    = C.RQ_WHY_STEPS
	whyClosing  = C.RQ_WHY_CLOSING
	whyMemory   = C.RQ_WHY_MEMORY
)

// ErrQueryWrite is the error of a write statement on the query path, in
// rqlite's words.
var ErrQueryWrite = errors.New("attempt to change database via query operation")

// shared is the state all connections of one DB read: the closing flag.
type shared struct{ p *C.rq_shared }

func newShared() shared { return shared{p: (*C.rq_shared)(C.calloc(1, C.sizeof_rq_shared))} }

func (s shared) setClosing(v bool) {
	var x C.int
	if v {
		x = 1
	}
	s.p.closing = x // an aligned int; the C side reads it through volatile
}

func (s shared) free() { C.free(unsafe.Pointer(s.p)) }

// conn is a SQLite connection with the guard installed: an authorizer
// that refuses what would make replicas differ or stop a node, and a
// progress handler that bounds the work of one statement.
type conn struct {
	*sqlite3.SQLiteConn
	db    *C.sqlite3
	g     *C.rq_guard
	arg   *C.rq_progress_arg
	steps int64 // the step limit the guard was given
	// maxResult bounds the estimated memory of one statement's result
	// rows (0: no bound).
	maxResult int64
}

// handle returns the sqlite3* of c. go-sqlite3 keeps it in an unexported
// field; guard checks the result against the connection's file name.
func handle(c *sqlite3.SQLiteConn) (*C.sqlite3, error) {
	f := reflect.ValueOf(c).Elem().FieldByName("db")
	if !f.IsValid() || f.Kind() != reflect.Pointer {
		return nil, errors.New("go-sqlite3 connection has no database handle field")
	}
	return (*C.sqlite3)(f.UnsafePointer()), nil
}

// guard installs the guard on c. maxSteps bounds the virtual-machine steps
// of one statement (0: no bound); reader marks a pooled read connection.
func guard(c *sqlite3.SQLiteConn, sh shared, maxSteps int64, reader bool) (*conn, error) {
	h, err := handle(c)
	if err != nil {
		return nil, err
	}
	if want := c.GetFilename("main"); h == nil || C.GoString(C.rq_main_file(h)) != want {
		return nil, fmt.Errorf("go-sqlite3 database handle does not match the connection to %q", want)
	}
	g := (*C.rq_guard)(C.calloc(1, C.sizeof_rq_guard))
	g.shared = sh.p
	if reader {
		g.reader = 1
		g.readonly = 1
	}
	if maxSteps > 0 {
		g.max_calls = C.int64_t((maxSteps + progressOps - 1) / progressOps)
	}
	arg := C.rq_install(h, g)
	if arg == nil {
		C.free(unsafe.Pointer(g))
		return nil, errors.New("install SQLite authorizer and progress handler")
	}
	if !reader && C.rq_install_writer_functions(h, g) != 0 {
		C.free(unsafe.Pointer(arg))
		C.free(unsafe.Pointer(g))
		return nil, errors.New("install the writer's changes() and total_changes()")
	}
	return &conn{SQLiteConn: c, db: h, g: g, arg: arg, steps: maxSteps}, nil
}

// Close closes the connection and frees the guard.
func (c *conn) Close() error {
	err := c.SQLiteConn.Close()
	C.free(unsafe.Pointer(c.arg))
	C.free(unsafe.Pointer(c.g))
	return err
}

// beginRequest readies the writer for one log entry (see rq_begin_request).
func (c *conn) beginRequest() { C.rq_begin_request(c.g) }

// beginStatement readies the guard for one statement.
func (c *conn) beginStatement() { C.rq_begin_statement(c.g, c.db) }

// setReadOnly makes the guard refuse writes (the query path on the writer).
func (c *conn) setReadOnly(v bool) {
	c.g.readonly = 0
	if v {
		c.g.readonly = 1
	}
}

// internal runs fn with the guard off (no authorizer, no step limit), for
// the node's own statements.
func (c *conn) internal(fn func() error) error {
	c.g.internal = 1
	defer func() { c.g.internal = 0 }()
	return fn()
}

// dirty reports whether the connection holds state that must not outlive
// a request: an attached database, temp objects or, on a read connection,
// a changed setting.
func (c *conn) dirty() bool { return c.g.dirty != 0 || C.rq_has_attached(c.db) != 0 }

func (c *conn) clearDirty() { c.g.dirty = 0 }

// ticks counts the progress callbacks the connection has had: it grows
// while a statement runs.
func (c *conn) ticks() int64 { return int64(C.rq_ticks(c.g)) }

// why returns the reason of the last refusal or stop, and its detail.
func (c *conn) why() (int, string) { return int(c.g.why), C.GoString(&c.g.detail[0]) }

// explain turns an error of a statement the guard refused or stopped into
// one that says why; other errors are returned as they are.
func (c *conn) explain(err error) error {
	why, detail := c.why()
	switch why {
	case whyAttach:
		if detail == "" {
			return errors.New("ATTACH is refused: the file name must be the literal ':memory:' (a file outside the database is not replicated, so the nodes would differ)")
		}
		return fmt.Errorf("ATTACH of %q is refused: files outside the database are not replicated, so the nodes would differ (ATTACH ':memory:' is allowed); VACUUM INTO is refused for the same reason", detail)
	case whyPragma:
		return fmt.Errorf("PRAGMA %s is refused: it would change how the node stores or replicates the database", detail)
	case whyMemory:
		return fmt.Errorf("PRAGMA %s with that value is refused: it would let the node's memory grow with the data (cache_size up to 1 GiB, temp_store FILE or DEFAULT)", detail)
	case whyFunction:
		return fmt.Errorf("%s() is refused: load extensions with -extensions-path", detail)
	case whySteps:
		return fmt.Errorf("statement stopped after %d SQLite steps, the limit set by -db-max-steps: add a bound (LIMIT, a WHERE on the recursion) or raise the limit", c.steps)
	case whyClosing:
		return ErrClosed
	}
	return err
}
