//go:build system

package system_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// needFTS5 skips the test when the binary's SQLite lacks FTS5 (a plain
// `go build`), unless RQLITED_REQUIRE_SQLITE_OPTS is set, as make does.
func needFTS5(t *testing.T, n *Node) {
	t.Helper()
	v, err := n.queryValues("SELECT sqlite_compileoption_used('ENABLE_FTS5')", "none")
	if err != nil {
		t.Fatalf("compile options: %v", err)
	}
	if len(v) == 1 && fmt.Sprint(v[0][0]) == "1" {
		return
	}
	if os.Getenv("RQLITED_REQUIRE_SQLITE_OPTS") != "" {
		t.Fatalf("%s was built without FTS5: check the Makefile's SQLITE_TAGS", rqlitedPath)
	}
	t.Skipf("%s was built without FTS5: build it through make (make build, make system-test)", rqlitedPath)
}

// An FTS5 table is replicated, queried with MATCH on every node, carried by
// a snapshot, and works on a node restored from that snapshot; the other
// options rqlite compiles in answer on every node.
func TestSQLiteOptionsCluster(t *testing.T) {
	c := newBootstrapCluster(t, 3)
	c.startAll()
	leader := c.waitOneCluster(t, 20*time.Second)
	for _, n := range c {
		n.WaitReady(20 * time.Second)
	}
	needFTS5(t, leader)

	s, b := leader.Execute("", `[
		"CREATE VIRTUAL TABLE docs USING fts5(title, body)",
		["INSERT INTO docs(rowid, title, body) VALUES(?, ?, ?)", 1, "rqlite", "a distributed database built on SQLite and Raft"],
		["INSERT INTO docs(rowid, title, body) VALUES(?, ?, ?)", 2, "SQLite", "a small fast self-contained SQL database engine"],
		["INSERT INTO docs(rowid, title, body) VALUES(?, ?, ?)", 3, "Raft", "a consensus algorithm designed to be understandable"]
	]`)
	if s != 200 || strings.Contains(b, "error") {
		t.Fatalf("create and fill docs: %d %s", s, b)
	}
	match := "SELECT rowid FROM docs WHERE docs MATCH 'database' ORDER BY rowid"
	want := "[[1] [2]]"
	// A linearizable read on the leader, then every node (followers
	// included, at level none) answers once it has caught up.
	if v, err := leader.queryValues(match, "linearizable"); err != nil || fmt.Sprint(v) != want {
		t.Fatalf("MATCH on the leader: %v %v", v, err)
	}
	checkAll := func(what, q, want string) {
		t.Helper()
		for _, n := range c {
			deadline := time.Now().Add(10 * time.Second)
			for {
				v, err := n.queryValues(q, "none")
				if err == nil && fmt.Sprint(v) == want {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s on %s: got %v %v, want %s", what, n.nodeID(), v, err, want)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	checkAll("FTS5 MATCH", match, want)
	checkAll("FTS5 highlight", "SELECT highlight(docs, 0, '[', ']') FROM docs WHERE docs MATCH 'title:raft'", "[[[Raft]]]")
	// The other options, on every node.
	checkAll("math functions", "SELECT sqrt(16), pow(2, 10), ln(1)", "[[4 1024 0]]")
	checkAll("JSON", `SELECT json_extract('{"a":[1,2]}', '$.a[1]'), '{"b":3}' ->> '$.b'`, "[[2 3]]")
	checkAll("dbstat", "SELECT count(*) > 0 FROM dbstat WHERE name = 'docs_data'", "[[1]]")
	checkAll("geopoly", "SELECT geopoly_area('[[0,0],[2,0],[2,2],[0,2],[0,0]]')", "[[4]]")
	for _, o := range []string{"ENABLE_FTS5", "ENABLE_RTREE", "ENABLE_GEOPOLY", "ENABLE_DBSTAT_VTAB", "ENABLE_MATH_FUNCTIONS", "ENABLE_SESSION"} {
		checkAll(o, "SELECT sqlite_compileoption_used('"+o+"')", "[[1]]")
	}

	// A follower takes a snapshot (the log is truncated behind it) and
	// restarts: the store rebuilds its database from that snapshot.
	f := c.followers(leader)[0]
	if s, b := f.Do("POST", "/snapshot?trailing_logs=0", "", nil); s != 200 {
		t.Fatalf("snapshot on %s: %d %s", f.nodeID(), s, b)
	}
	if snaps, _ := f.status("store.snapshot_store.snapshots").([]any); len(snaps) < 1 {
		t.Fatalf("no snapshot stored on %s: %v", f.nodeID(), f.status("store.snapshot_store"))
	}
	f.Stop()
	f.Restart()
	if idx := fmt.Sprint(f.status("store.raft.last_snapshot_index")); idx == "" || idx == "0" || idx == "<nil>" {
		t.Fatalf("restarted node reports no snapshot: last_snapshot_index %q", idx)
	}
	if v, err := f.queryValues(match, "none"); err != nil || fmt.Sprint(v) != want {
		t.Fatalf("MATCH on %s restored from its snapshot: %v %v", f.nodeID(), v, err)
	}
	// The restored index keeps following the log.
	c.waitOneCluster(t, 20*time.Second)
	s, b = leader.Execute("", `[["INSERT INTO docs(rowid, title, body) VALUES(?, ?, ?)", 4, "dqlite", "another database on Raft"], "DELETE FROM docs WHERE rowid = 2"]`)
	if s != 200 || strings.Contains(b, "error") {
		t.Fatalf("write after the restart: %d %s", s, b)
	}
	if v, err := leader.queryValues(match, "linearizable"); err != nil || fmt.Sprint(v) != "[[1] [4]]" {
		t.Fatalf("MATCH on the leader after the restart: %v %v", v, err)
	}
	checkAll("FTS5 MATCH after the restart", match, "[[1] [4]]")
	checkAll("FTS5 integrity", "SELECT count(*) FROM docs WHERE docs MATCH 'raft'", "[[3]]")
}
