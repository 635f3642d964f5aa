package db

/*
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// A minimal declaration of SQLite's public, ABI-stable VFS object. Only the
// fields we read or replace are typed; the rest are opaque pointers.
typedef struct rq_vfs rq_vfs;
struct rq_vfs {
	int iVersion;
	int szOsFile;
	int mxPathname;
	rq_vfs *pNext;
	const char *zName;
	void *pAppData;
	void *xOpen, *xDelete, *xAccess, *xFullPathname;
	void *xDlOpen, *xDlError, *xDlSym, *xDlClose;
	void *xRandomness, *xSleep;
	int (*xCurrentTime)(rq_vfs *, double *);
	void *xGetLastError;
	int (*xCurrentTimeInt64)(rq_vfs *, int64_t *);
	void *xSetSystemCall, *xGetSystemCall, *xNextSystemCall;
};

// The SQLite library is compiled into the binary by mattn/go-sqlite3. The
// symbols are declared weak so that cgo's standalone link of this package
// succeeds; in the final binary they resolve to the real functions.
extern rq_vfs *sqlite3_vfs_find(const char *) __attribute__((weak));
extern int sqlite3_vfs_register(rq_vfs *, int) __attribute__((weak));
extern int sqlite3_vfs_unregister(rq_vfs *) __attribute__((weak));

// One clock VFS per database: a copy of the default VFS (its pAppData
// included, which the unix VFS needs to pick its locking methods) followed
// by this database's own time slot. SQLite hands the VFS pointer back to
// every method, so the clock methods find their slot by casting it.
typedef struct rq_clock_vfs {
	rq_vfs vfs; // must come first
	rq_vfs *base;
	// Milliseconds since the Unix epoch to report as "now", or 0 for the
	// real clock. Only the database's writer connection uses this VFS; the
	// goroutine applying the log sets it while other goroutines may read
	// the clock through the same VFS (snapshots, resets), hence atomics.
	int64_t fixed_ms;
} rq_clock_vfs;

// Julian day number of the Unix epoch, in milliseconds.
#define RQ_UNIX_EPOCH_JD_MS 210866760000000LL

static int rq_current_time_int64(rq_vfs *v, int64_t *out) {
	rq_clock_vfs *c = (rq_clock_vfs *)v;
	int64_t fixed = __atomic_load_n(&c->fixed_ms, __ATOMIC_SEQ_CST);
	if (fixed != 0) {
		*out = fixed + RQ_UNIX_EPOCH_JD_MS;
		return 0;
	}
	return c->base->xCurrentTimeInt64(c->base, out);
}

static int rq_current_time(rq_vfs *v, double *out) {
	int64_t ms = 0;
	int rc = rq_current_time_int64(v, &ms);
	*out = (double)ms / 86400000.0;
	return rc;
}

static rq_clock_vfs *rq_clock_new(void) {
	return (rq_clock_vfs *)calloc(1, sizeof(rq_clock_vfs));
}

// rq_clock_register fills c from the default VFS, names it and registers it.
static int rq_clock_register(rq_clock_vfs *c, const char *name) {
	if (sqlite3_vfs_find == 0 || sqlite3_vfs_register == 0 || sqlite3_vfs_unregister == 0) return -1;
	rq_vfs *base = sqlite3_vfs_find(0);
	if (base == 0 || base->iVersion < 2 || base->xCurrentTimeInt64 == 0) return -2;
	memcpy(&c->vfs, base, sizeof(rq_vfs));
	c->vfs.pNext = 0;
	c->vfs.zName = name;
	c->vfs.iVersion = base->iVersion < 3 ? base->iVersion : 3;
	c->vfs.xCurrentTime = rq_current_time;
	c->vfs.xCurrentTimeInt64 = rq_current_time_int64;
	c->base = base;
	__atomic_store_n(&c->fixed_ms, 0, __ATOMIC_SEQ_CST);
	return sqlite3_vfs_register(&c->vfs, 0);
}

static int rq_clock_unregister(rq_clock_vfs *c) { return sqlite3_vfs_unregister(&c->vfs); }

static void rq_clock_set(rq_clock_vfs *c, int64_t ms) { __atomic_store_n(&c->fixed_ms, ms, __ATOMIC_SEQ_CST); }
*/
import "C"

import (
	"fmt"
	"sync"
	"time"

	_ "github.com/mattn/go-sqlite3" // links SQLite into the binary
)

// clockVFS is the SQLite VFS of one DB's writer connection. It is the
// platform's default VFS in every respect but one: while the replicated log
// is applied, "now" is the leader's clock reading carried in the log entry,
// so date('now'), CURRENT_TIMESTAMP (also in DEFAULT clauses and triggers)
// and every other time function give the same answer on every replica.
//
// Each DB has its own, registered under its own name ("rqclock-<n>") with
// its own time slot, so DBs open in one process (several stores in a test)
// never see each other's fixed time.
type clockVFS struct {
	c     *C.rq_clock_vfs
	name  string
	cname *C.char
}

// clockPool keeps the VFS objects of closed DBs for reuse. They are never
// freed: go-sqlite3 closes connections with sqlite3_close_v2, which leaves
// a connection with an unfinalised statement open (a "zombie") until that
// statement is finalised, and such a connection may still call its VFS. A
// pooled VFS stays valid memory with valid methods, so that late call is
// harmless; the pool bounds the memory by the most DBs open at once.
var clockPool struct {
	mu   sync.Mutex
	free []*clockVFS
	n    int
}

// newClockVFS returns a registered clock VFS with the real clock.
func newClockVFS() (*clockVFS, error) {
	clockPool.mu.Lock()
	defer clockPool.mu.Unlock()
	var v *clockVFS
	if n := len(clockPool.free); n > 0 {
		v = clockPool.free[n-1]
		clockPool.free = clockPool.free[:n-1]
	} else {
		c := C.rq_clock_new()
		if c == nil {
			return nil, fmt.Errorf("register SQLite clock VFS: out of memory")
		}
		clockPool.n++
		name := fmt.Sprintf("rqclock-%d", clockPool.n)
		v = &clockVFS{c: c, name: name, cname: C.CString(name)}
	}
	// SQLite must be initialised before its VFS list is read; go-sqlite3
	// calls sqlite3_initialize from its init, so the default VFS exists.
	if rc := C.rq_clock_register(v.c, v.cname); rc != 0 {
		clockPool.free = append(clockPool.free, v)
		return nil, fmt.Errorf("register SQLite clock VFS: code %d", int(rc))
	}
	return v, nil
}

// set makes the clock read t; the zero time restores the real clock.
func (v *clockVFS) set(t time.Time) {
	if t.IsZero() {
		C.rq_clock_set(v.c, 0)
		return
	}
	C.rq_clock_set(v.c, C.int64_t(t.UnixMilli()))
}

// release unregisters the VFS, so no new connection can open with it, and
// keeps it for reuse. The DB's connections must be closed first.
func (v *clockVFS) release() {
	v.set(time.Time{})
	clockPool.mu.Lock()
	defer clockPool.mu.Unlock()
	C.rq_clock_unregister(v.c)
	clockPool.free = append(clockPool.free, v)
}
