package db

/*
#include <stdint.h>
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

static rq_vfs rq_clock_vfs;
static rq_vfs *rq_base_vfs;
// Milliseconds since the Unix epoch to report as "now", or 0 for the real clock.
// Only the single writer connection uses this VFS, and only the goroutine that
// applies the replicated log sets it, so a plain variable is enough.
static volatile int64_t rq_fixed_unix_ms;

// Julian day number of the Unix epoch, in milliseconds.
#define RQ_UNIX_EPOCH_JD_MS 210866760000000LL

static int rq_current_time_int64(rq_vfs *v, int64_t *out) {
	int64_t fixed = rq_fixed_unix_ms;
	if (fixed != 0) {
		*out = fixed + RQ_UNIX_EPOCH_JD_MS;
		return 0;
	}
	return rq_base_vfs->xCurrentTimeInt64(rq_base_vfs, out);
}

static int rq_current_time(rq_vfs *v, double *out) {
	int64_t ms = 0;
	int rc = rq_current_time_int64(v, &ms);
	*out = (double)ms / 86400000.0;
	return rc;
}

static int rq_register_clock_vfs(const char *name) {
	if (sqlite3_vfs_find == 0 || sqlite3_vfs_register == 0) return -1;
	rq_base_vfs = sqlite3_vfs_find(0);
	if (rq_base_vfs == 0 || rq_base_vfs->iVersion < 2 || rq_base_vfs->xCurrentTimeInt64 == 0) return -2;
	memcpy(&rq_clock_vfs, rq_base_vfs, sizeof(rq_vfs));
	rq_clock_vfs.pNext = 0;
	rq_clock_vfs.zName = name;
	rq_clock_vfs.iVersion = rq_base_vfs->iVersion < 3 ? rq_base_vfs->iVersion : 3;
	rq_clock_vfs.xCurrentTime = rq_current_time;
	rq_clock_vfs.xCurrentTimeInt64 = rq_current_time_int64;
	return sqlite3_vfs_register(&rq_clock_vfs, 0);
}

static void rq_set_fixed_time(int64_t ms) { rq_fixed_unix_ms = ms; }
*/
import "C"

import (
	"fmt"
	"sync"
	"time"

	_ "github.com/mattn/go-sqlite3" // links SQLite into the binary
)

// clockVFSName is the SQLite VFS used by the writer connection. It is the
// platform's default VFS in every respect but one: while the replicated log is
// applied, "now" is the leader's clock reading carried in the log entry, so
// date('now'), CURRENT_TIMESTAMP (also in DEFAULT clauses and triggers) and
// every other time function give the same answer on every replica.
const clockVFSName = "rqlited-clock"

var (
	clockOnce sync.Once
	clockErr  error
	cName     = C.CString(clockVFSName) // lives for the life of the process
)

func registerClockVFS() error {
	clockOnce.Do(func() {
		// SQLite must be initialised before its VFS list is read; opening
		// any connection does that, and go-sqlite3 calls sqlite3_initialize
		// from its init, so the default VFS exists by now.
		if rc := C.rq_register_clock_vfs(cName); rc != 0 {
			clockErr = fmt.Errorf("register SQLite clock VFS: code %d", int(rc))
		}
	})
	return clockErr
}

// setFixedTime makes the writer connection's clock read t; the zero time
// restores the real clock.
func setFixedTime(t time.Time) {
	if t.IsZero() {
		C.rq_set_fixed_time(0)
		return
	}
	C.rq_set_fixed_time(C.int64_t(t.UnixMilli()))
}
