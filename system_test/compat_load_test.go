//go:build system

package system_test

import (
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
)

// sqliteFile returns a SQLite database file, made with the SQLite driver,
// holding table with rows rows of a blob of blob bytes each.
func sqliteFile(t *testing.T, table string, rows, blob int) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), table+".db")
	d, err := sql.Open("sqlite3", p)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, q := range []string{
		fmt.Sprintf("CREATE TABLE %s (id INTEGER PRIMARY KEY, v BLOB)", table),
		fmt.Sprintf("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < %d) INSERT INTO %s(v) SELECT randomblob(%d) FROM c", rows, table, blob),
	} {
		if _, err := d.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tables returns the names in the node's sqlite_master, sorted.
func (n *Node) tables() string {
	n.t.Helper()
	_, b := n.Query("SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master ORDER BY name)", "&level=none")
	return b
}

// waitCount waits until table holds want rows on every node (read locally).
func waitCount(t *testing.T, nodes []*Node, table string, want int64) {
	t.Helper()
	for _, n := range nodes {
		waitFor(t, 20*time.Second, fmt.Sprintf("%d rows in %s on %s", want, table, n.HTTPAddr), func() bool {
			s, b := n.Query("SELECT COUNT(*) FROM "+table, "&level=none")
			return s == 200 && strings.Contains(b, fmt.Sprintf(`"values":[[%d]]`, want))
		})
	}
}

// garbage returns n random bytes that do not start like a SQLite file.
func garbage(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	b[0] = 0xff
	return b
}

// TestCompatLoadBootSingleNode: /boot loads a SQLite file into a single-node cluster
// without the log, as rqlite's: 200 with an empty body, the file's data
// readable at once and after restarts (clean and SIGKILL), later writes
// kept. Bodies that are not a whole SQLite file get 400 and change nothing.
func TestCompatLoadBootSingleNode(t *testing.T) {
	n := startNode(t)
	if s, b := n.Execute("", `["CREATE TABLE old (x)", "INSERT INTO old VALUES (1)"]`); s != 200 || strings.Contains(b, "error") {
		t.Fatalf("create: %d %s", s, b)
	}
	file := sqliteFile(t, "booted", 3000, 200) // ~700 KB, many pages
	before := n.tables()

	for _, tc := range []struct {
		name string
		body []byte
		want string
	}{
		{"garbage", garbage(t, 8192), "invalid SQLite data"},
		{"empty", nil, "invalid SQLite data"},
		{"header only", file[:100], "invalid SQLite data"},
		{"truncated", file[:len(file)/2], "invalid SQLite data"},
		{"cut mid-page", file[:len(file)-100], "invalid SQLite data"},
	} {
		s, b := n.Do("POST", "/boot", "application/octet-stream", tc.body)
		if s != 400 || !strings.Contains(b, tc.want) {
			t.Errorf("/boot of %s: %d %q, want 400 %q", tc.name, s, b, tc.want)
		}
		if got := n.tables(); got != before {
			t.Fatalf("/boot of %s changed the database: tables %s, were %s", tc.name, got, before)
		}
	}
	if s, _ := n.Do("GET", "/boot", "", nil); s != 405 {
		t.Errorf("GET /boot: %d, want 405", s)
	}

	// A node killed while a boot body arrives restarts with its old data,
	// acknowledged writes included.
	if s, b := n.Execute("", `["INSERT INTO old VALUES (2)"]`); s != 200 || !strings.Contains(b, `"rows_affected":1`) {
		t.Fatalf("insert: %d %s", s, b)
	}
	pr, pw := io.Pipe()
	go func() {
		resp, err := http.Post(n.URL("/boot"), "application/octet-stream", pr)
		if err == nil {
			resp.Body.Close()
		}
	}()
	if _, err := pw.Write(file[:len(file)/2]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the boot to start", func() bool { return strings.Contains(n.out.String(), "boot requested") })
	n.Kill()
	pw.CloseWithError(errors.New("node killed"))
	n.Restart()
	if got := n.tables(); got != before {
		t.Fatalf("after a kill during /boot: tables %s, were %s", got, before)
	}
	if got := n.count("old", "strong"); got != 2 {
		t.Fatalf("after a kill during /boot: %d rows in old, want 2", got)
	}

	cid := n.clusterID()
	if cid == "" {
		t.Fatal("no cluster ID")
	}
	// Writers run while the boot replaces the database: they may fail
	// (no such table, or aborted by the restore), but nothing may hang
	// or stop the node.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 10 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Post(n.URL("/db/execute"), "application/json", strings.NewReader(`["INSERT INTO old VALUES (9)"]`))
				if err != nil {
					return
				}
				resp.Body.Close()
			}
		}()
	}
	s, b := n.Do("POST", "/boot", "application/octet-stream", file)
	close(stop)
	wg.Wait()
	if s != 200 || b != "" {
		t.Fatalf("/boot: %d %q, want 200 and an empty body", s, b)
	}
	if got := n.clusterID(); got != cid {
		t.Fatalf("cluster ID after /boot: %q, was %q", got, cid)
	}
	if strings.Contains(n.out.String(), "index differs") {
		t.Fatalf("the boot's snapshot and the FSM disagree on the index:\n%s", n.out.String())
	}
	if n.count("booted", "strong") != 3000 {
		t.Fatal("booted rows missing")
	}
	if s, b := n.Query("SELECT COUNT(*) FROM old", ""); !strings.Contains(b, "no such table") {
		t.Fatalf("the old table survived the boot: %d %s", s, b)
	}
	if s, b := n.Execute("", `["INSERT INTO booted(v) VALUES (x'00')"]`); s != 200 || !strings.Contains(b, `"last_insert_id":3001`) {
		t.Fatalf("write after boot: %d %s", s, b)
	}

	// A snapshot that truncates the log across the hole the boot left
	// (the boot's snapshot index has no log entry).
	if s, b := n.Do("POST", "/snapshot?trailing_logs=1", "", nil); s != 200 {
		t.Fatalf("snapshot after boot: %d %s", s, b)
	}
	n.Stop()
	n.Restart()
	if got := n.count("booted", "strong"); got != 3001 {
		t.Fatalf("after a clean restart: %d rows, want 3001", got)
	}
	if s, b := n.Execute("", `["INSERT INTO booted(v) VALUES (x'01')"]`); s != 200 || strings.Contains(b, "error") {
		t.Fatalf("write: %d %s", s, b)
	}
	n.Kill()
	n.Restart()
	if got := n.count("booted", "strong"); got != 3002 {
		t.Fatalf("after SIGKILL and restart: %d rows, want 3002", got)
	}
	if got := n.tables(); !strings.Contains(got, "booted") || strings.Contains(got, "old") {
		t.Fatalf("tables after restart: %s", got)
	}
	if got := n.clusterID(); got != cid {
		t.Fatalf("cluster ID after /boot and restarts: %q, was %q", got, cid)
	}

	// A second boot replaces the first.
	second := sqliteFile(t, "second", 10, 10)
	if s, b := n.Do("POST", "/boot", "application/octet-stream", second); s != 200 || b != "" {
		t.Fatalf("second /boot: %d %q", s, b)
	}
	if strings.Contains(n.out.String(), "index differs") {
		t.Fatalf("the boot's snapshot and the FSM disagree on the index:\n%s", n.out.String())
	}
	n.Kill()
	n.Restart()
	if got := n.count("second", "strong"); got != 10 {
		t.Fatalf("after the second boot and a restart: %d rows, want 10", got)
	}
}

// TestCompatLoadCluster: on a 3-node cluster, /db/load of a SQLite file
// larger than -http-max-body is streamed and replicated to every node
// (answer {"results":[]}, as rqlite), from the leader or a follower; a SQL
// dump answers with rqlite's counters; bad bodies change nothing; /boot is
// refused with rqlite's 503 and reason.
func TestCompatLoadCluster(t *testing.T) {
	const maxBody = 64 << 10
	c := newBootstrapCluster(t, 3, "-http-max-body", fmt.Sprint(maxBody))
	c.startAll()
	leader := c.waitOneCluster(t, 30*time.Second)
	follower := c.followers(leader)[0]

	big := sqliteFile(t, "big", 2000, 200)
	if len(big) <= maxBody {
		t.Fatalf("test file of %d bytes is not over -http-max-body", len(big))
	}
	s, b := leader.Do("POST", "/db/load", "application/octet-stream", big)
	mustJSON(t, s, b, `{"results":[]}`)
	waitCount(t, c, "big", 2000)

	other := sqliteFile(t, "other", 700, 200)
	s, b = follower.Do("POST", "/db/load", "application/octet-stream", other)
	mustJSON(t, s, b, `{"results":[]}`)
	waitCount(t, c, "other", 700)
	for _, n := range c {
		if got := n.tables(); strings.Contains(got, "big") {
			t.Fatalf("the load did not replace the database on %s: %s", n.HTTPAddr, got)
		}
	}

	// A SQL dump: rqlite's answer is SQLite's counters after the dump.
	dump := "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE d (id INTEGER PRIMARY KEY, v TEXT);\n" +
		"INSERT INTO d VALUES(7,'a');\nINSERT INTO d VALUES(8,'b');\nCREATE INDEX d_v ON d(v);\nCOMMIT;\n"
	s, b = leader.Do("POST", "/db/load", "text/plain", []byte(dump))
	mustJSON(t, s, b, `{"results":[{"last_insert_id":8,"rows_affected":1}]}`)
	waitCount(t, c, "d", 2)
	s, b = follower.Do("POST", "/db/load", "text/plain", []byte("INSERT INTO d(v) VALUES('c'),('d');"))
	mustJSON(t, s, b, `{"results":[{"last_insert_id":10,"rows_affected":2}]}`)
	s, b = leader.Do("POST", "/db/load", "text/plain", []byte("INSERT INTO nosuch VALUES(1);"))
	mustJSON(t, s, b, `{"results":[{"error":"no such table: nosuch"}]}`)

	// Bad bodies change nothing, on any node.
	before := leader.tables()
	for _, tc := range []struct {
		name   string
		body   []byte
		status int
		want   string
	}{
		{"truncated SQLite file", big[:len(big)/2], 400, "invalid SQLite data"},
		{"SQLite header only", big[:200], 400, "invalid SQLite data"},
		{"empty body", nil, 400, "neither a SQLite database nor SQL text"},
		{"SQL dump over -http-max-body", []byte(strings.Repeat("INSERT INTO d(v) VALUES('x');\n", maxBody/20)), 413, "too large"},
		{"garbage", garbage(t, 4096), 200, `"error":`},
	} {
		for _, n := range []*Node{leader, follower} {
			s, b := n.Do("POST", "/db/load", "application/octet-stream", tc.body)
			if s != tc.status || !strings.Contains(b, tc.want) {
				t.Errorf("/db/load of %s on %s: %d %.200q, want %d %q", tc.name, n.HTTPAddr, s, b, tc.status, tc.want)
			}
		}
	}
	// A marker write behind the refused loads: once a node has it, it has
	// applied anything a refused load could have put in the log.
	if s, b := leader.Execute("", `["CREATE TABLE marker (x)"]`); s != 200 || strings.Contains(b, "error") {
		t.Fatalf("marker: %d %s", s, b)
	}
	want := strings.Replace(before, "d,d_v,", "d,d_v,marker,", 1)
	for _, n := range c {
		waitFor(t, 20*time.Second, "the marker on "+n.HTTPAddr, func() bool { return strings.Contains(n.tables(), "marker") })
		if got := n.tables(); got != want {
			t.Fatalf("tables on %s after refused loads: %s, want %s", n.HTTPAddr, got, want)
		}
		if got := n.count("d", "none"); got != 4 {
			t.Fatalf("rows of d on %s: %d, want 4", n.HTTPAddr, got)
		}
	}

	// /boot is for single-node clusters only: rqlite answers 503 with the
	// reason, and reads nothing into the database.
	small := sqliteFile(t, "boot", 10, 10)
	if s, b := leader.Do("POST", "/boot", "application/octet-stream", small); s != 503 || !strings.Contains(b, "not single-node") {
		t.Errorf("/boot on the leader of 3 nodes: %d %q, want 503 \"not single-node\"", s, b)
	}
	if s, b := follower.Do("POST", "/boot", "application/octet-stream", small); s != 503 || !strings.Contains(b, "not leader") {
		t.Errorf("/boot on a follower: %d %q, want 503 \"not leader\"", s, b)
	}
	if got := leader.tables(); strings.Contains(got, "boot") {
		t.Fatalf("/boot on a cluster changed the database: %s", got)
	}
}
