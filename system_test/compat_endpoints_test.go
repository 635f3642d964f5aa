//go:build system

package system_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ceClient does not follow redirects, so that a test sees the 301 or 302
// itself.
var ceClient = &http.Client{
	Timeout:       30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// ceDo sends a request to n and returns the response (body read) and body.
func ceDo(t *testing.T, n *Node, method, path, ctype, body string) (*http.Response, string) {
	t.Helper()
	resp, b, err := n.send(ceClient, "", "", method, path, ctype, []byte(body))
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp, b
}

// ceCase is one request and what rqlite's source says it answers.
type ceCase struct {
	method, path, ctype, body string
	status                    int
	// contentType, if set, is the Content-Type wanted.
	contentType string
	// location, if set, is the Location wanted.
	location string
	// exact, if set, is the whole body wanted (trimmed).
	exact string
	// contains, if set, must be in the body.
	contains string
	// keys, if set, are top-level JSON keys and the JSON type of each
	// ("number", "string", "array", "object", "bool").
	keys map[string]string
}

func (c ceCase) check(t *testing.T, n *Node) {
	t.Helper()
	resp, body := ceDo(t, n, c.method, c.path, c.ctype, c.body)
	name := c.method + " " + c.path
	if resp.StatusCode != c.status {
		t.Errorf("%s: status %d, want %d; body %.300q", name, resp.StatusCode, c.status, body)
		return
	}
	if c.contentType != "" && resp.Header.Get("Content-Type") != c.contentType {
		t.Errorf("%s: Content-Type %q, want %q", name, resp.Header.Get("Content-Type"), c.contentType)
	}
	if c.location != "" && resp.Header.Get("Location") != c.location {
		t.Errorf("%s: Location %q, want %q", name, resp.Header.Get("Location"), c.location)
	}
	if c.exact != "" && strings.TrimSpace(body) != c.exact {
		t.Errorf("%s: body %q, want %q", name, body, c.exact)
	}
	if c.contains != "" && !strings.Contains(body, c.contains) {
		t.Errorf("%s: body %.300q does not contain %q", name, body, c.contains)
	}
	if c.keys != nil {
		var m map[string]any
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Errorf("%s: body %q is not a JSON object: %v", name, body, err)
			return
		}
		for k, typ := range c.keys {
			if got := jsonType(m[k]); got != typ {
				t.Errorf("%s: key %q is %s, want %s (body %s)", name, k, got, typ, body)
			}
		}
	}
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "missing or null"
	case float64:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	case bool:
		return "bool"
	}
	return fmt.Sprintf("%T", v)
}

// TestCompatEndpoints checks, on one node, the endpoints and routes of
// rqlite's ServeHTTP (v10 http/service.go): prefix and exact matching,
// /reap, /db/sql, /licenses, / and /console, and their answers.
func TestCompatEndpoints(t *testing.T) {
	n := startNode(t, "-raft-snap", "5", "-raft-snap-int", "100ms")
	const js = "application/json; charset=utf-8"
	ceMust(t, n, "POST", "/db/execute", `["CREATE TABLE foo (id INTEGER PRIMARY KEY, name TEXT)"]`, `{"results":[{}]}`)
	for _, c := range []ceCase{
		// Prefix routes: anything after the route's path is the route.
		{method: "POST", path: "/db/execute/", ctype: "application/json", body: `[["INSERT INTO foo(name) VALUES(?)", "fiona"]]`,
			status: 200, contentType: js, exact: `{"results":[{"last_insert_id":1,"rows_affected":1}]}`},
		{method: "GET", path: "/db/query/x?q=SELECT+name+FROM+foo", status: 200, contentType: js,
			exact: `{"results":[{"columns":["name"],"types":["text"],"values":[["fiona"]]}]}`},
		{method: "POST", path: "/db/request/", ctype: "application/json", body: `["SELECT COUNT(*) FROM foo"]`, status: 200,
			exact: `{"results":[{"columns":["COUNT(*)"],"types":["integer"],"values":[[1]]}]}`},
		{method: "GET", path: "/statusz", status: 200, contentType: js, keys: map[string]string{"store": "object", "http": "object"}},
		{method: "GET", path: "/nodes/", status: 200, contentType: js},
		{method: "GET", path: "/readyz/", status: 200, exact: "[+]node ok\n[+]leader ok\n[+]store ok\n[+]db ok"},
		{method: "DELETE", path: "/remove/", ctype: "application/json", body: `{"id":"nobody","x":1}`, status: 400},
		// Exact routes: anything after is 404.
		{method: "GET", path: "/leader/", status: 404},
		{method: "POST", path: "/snapshot/", status: 404},
		{method: "POST", path: "/reap/", status: 404},
		{method: "GET", path: "/licenses/", status: 404},
		{method: "GET", path: "/debug/vars/", status: 404},
		{method: "GET", path: "/nothing", status: 404},
		{method: "POST", path: "/nothing", ctype: "application/json", body: `["x"]`, status: 404},
		{method: "GET", path: "/db", status: 404},
		{method: "GET", path: "/debug/pprof", status: 200, contains: "profiles"},
		// / and the console.
		{method: "GET", path: "/", status: 302, location: "/console/"},
		{method: "POST", path: "/", status: 302, location: "/console/"},
		{method: "GET", path: "/console", status: 301, location: "/console/"},
		{method: "GET", path: "/console/", status: 200, contentType: "text/html; charset=utf-8", contains: "/db/execute"},
		{method: "POST", path: "/console/", status: 405},
		// /licenses: text, permission status, GET only.
		{method: "GET", path: "/licenses", status: 200, contentType: "text/plain; charset=utf-8", contains: "github.com/hashicorp/raft"},
		{method: "POST", path: "/licenses", status: 405},
		// /db/sql: the statement that is replicated.
		{method: "GET", path: "/db/sql?q=" + url.QueryEscape("SELECT RANDOM()"), status: 200, contentType: js,
			exact: `{"results":[{"original":"SELECT RANDOM()","rewritten":"SELECT RANDOM()"}]}`},
		{method: "POST", path: "/db/sql", ctype: "application/json", body: `["SELECT 1"]`, status: 200,
			exact: `{"results":[{"original":"SELECT 1","rewritten":"SELECT 1"}]}`},
		{method: "GET", path: "/db/sql", status: 400, exact: "query not specified"},
		{method: "DELETE", path: "/db/sql", status: 405},
		// /reap: POST only, rqlite's two counts.
		{method: "POST", path: "/reap", status: 200, contentType: js,
			keys: map[string]string{"snapshots_reaped": "number", "wals_checkpointed": "number"}},
		{method: "GET", path: "/reap", status: 405},
	} {
		c.check(t, n)
	}
}

// ceMust sends a JSON request and fails unless the answer is 200 with
// the body want.
func ceMust(t *testing.T, n *Node, method, path, body, want string) {
	t.Helper()
	resp, b := ceDo(t, n, method, path, "application/json", body)
	mustJSON(t, resp.StatusCode, b, want)
}

// TestCompatEndpointsReap: /reap removes the older snapshot the store
// keeps, and then has nothing left to remove.
func TestCompatEndpointsReap(t *testing.T) {
	n := startNode(t, "-raft-snap", "5", "-raft-snap-int", "50ms")
	ceMust(t, n, "POST", "/db/execute", `["CREATE TABLE t (x)"]`, `{"results":[{}]}`)
	for i := 0; i < 3; i++ {
		for j := 0; j < 6; j++ {
			s, b := n.Execute("", `[["INSERT INTO t VALUES(?)", 1]]`)
			if s != 200 {
				t.Fatalf("insert: %d %s", s, b)
			}
		}
		// A forced snapshot makes sure each round leaves one (204 only if
		// the timer took it first).
		if s, b := n.Do("POST", "/snapshot", "", nil); s != 200 && s != 204 {
			t.Fatalf("snapshot: %d %s", s, b)
		}
	}
	s, b := n.Do("POST", "/reap", "", nil)
	if s != 200 || strings.TrimSpace(b) != `{"snapshots_reaped":1,"wals_checkpointed":0}` {
		t.Fatalf("first reap: %d %q, want 200 with one snapshot reaped", s, b)
	}
	s, b = n.Do("POST", "/reap", "", nil)
	if s != 200 || strings.TrimSpace(b) != `{"snapshots_reaped":0,"wals_checkpointed":0}` {
		t.Fatalf("second reap: %d %q, want nothing left to reap", s, b)
	}
	// The node restarts from what is left.
	n.Stop()
	n.Restart()
	if got := n.count("t", "weak"); got != 18 {
		t.Fatalf("after reap and restart: %d rows, want 18", got)
	}
}

// TestCompatEndpointsSQLBehaviour: the statement-level answers rqlite
// gives: a WITH ... SELECT on /db/execute changes nothing (no stale
// counters), db_timeout interrupts a long read with rqlite's error, and
// qualify_columns names columns table.column.
func TestCompatEndpointsSQLBehaviour(t *testing.T) {
	n := startNode(t)
	ceMust(t, n, "POST", "/db/execute", `[
		"CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT)",
		"CREATE TABLE titles (id INTEGER PRIMARY KEY, contact_id INTEGER, title TEXT)",
		"INSERT INTO contacts(id, name) VALUES(1, 'alice')",
		"INSERT INTO titles(id, contact_id, title) VALUES(7, 1, 'engineer')"]`,
		`{"results":[{},{},{"last_insert_id":1,"rows_affected":1},{"last_insert_id":7,"rows_affected":1}]}`)
	ceMust(t, n, "POST", "/db/execute", `["WITH x AS (SELECT 1) SELECT * FROM x"]`, `{"results":[{}]}`)
	// A WITH that writes still reports its counters.
	ceMust(t, n, "POST", "/db/execute", `["WITH x(v) AS (SELECT 'bob') INSERT INTO contacts(id, name) SELECT 2, v FROM x"]`,
		`{"results":[{"last_insert_id":2,"rows_affected":1}]}`)

	long := url.QueryEscape("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 100000000) SELECT count(*) FROM c")
	s, b := n.Do("GET", "/db/query?db_timeout=50ms&q="+long, "", nil)
	mustJSON(t, s, b, `{"results":[{"error":"query timeout"}]}`)
	s, b = n.Do("POST", "/db/request?db_timeout=50ms", "application/json",
		[]byte(`["WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 100000000) SELECT count(*) FROM c"]`))
	mustJSON(t, s, b, `{"results":[{"error":"query timeout"}]}`)

	if !ceHasCompileOption(t, n, "ENABLE_COLUMN_METADATA") {
		t.Fatal("qualify_columns needs SQLite's column metadata: build with go-sqlite3's tag sqlite_column_metadata " +
			"(add it to SQLITE_TAGS in the Makefile)")
	}
	join := url.QueryEscape("SELECT *, 1+1 AS two FROM contacts JOIN titles ON contacts.id = titles.contact_id")
	s, b = n.Query("SELECT *, 1+1 AS two FROM contacts JOIN titles ON contacts.id = titles.contact_id", "&qualify_columns")
	mustJSON(t, s, b, `{"results":[{"columns":["contacts.id","contacts.name","titles.id","titles.contact_id","titles.title","two"],`+
		`"types":["integer","text","integer","integer","text","integer"],"values":[[1,"alice",7,1,"engineer",2]]}]}`)
	s, b = n.Do("GET", "/db/query?level=strong&qualify_columns&q="+join, "", nil)
	if s != 200 || !strings.Contains(b, `"columns":["contacts.id","contacts.name","titles.id"`) {
		t.Fatalf("strong read with qualify_columns: %d %s", s, b)
	}
	s, b = n.Do("POST", "/db/request?qualify_columns&associative", "application/json", []byte(`["SELECT name FROM contacts WHERE id = 1"]`))
	mustJSON(t, s, b, `{"results":[{"types":{"contacts.name":"text"},"rows":[{"contacts.name":"alice"}]}]}`)
	s, b = n.Query("SELECT name FROM contacts WHERE id = 1", "")
	mustJSON(t, s, b, `{"results":[{"columns":["name"],"types":["text"],"values":[["alice"]]}]}`)
}

// ceHasCompileOption reports whether the node's SQLite was built with opt.
func ceHasCompileOption(t *testing.T, n *Node, opt string) bool {
	t.Helper()
	s, b := n.Query("PRAGMA compile_options", "")
	if s != 200 {
		t.Fatalf("compile_options: %d %s", s, b)
	}
	return strings.Contains(b, `"`+opt+`"`)
}

// TestCompatEndpointsNoQuorum: on the one node left of three, writes and
// strong or linearizable reads get rqlite's 503 "leader not found", and
// /readyz says there is no leader; a read at level none still works.
func TestCompatEndpointsNoQuorum(t *testing.T) {
	c := newBootstrapCluster(t, 3)
	c.startAll()
	leader := c.waitOneCluster(t, 30*time.Second)
	s, b := leader.Execute("", `["CREATE TABLE t (x)", "INSERT INTO t VALUES(1)"]`)
	if s != 200 {
		t.Fatalf("setup: %d %s", s, b)
	}
	survivor := c.followers(leader)[0]
	waitFor(t, 10*time.Second, "the write on the survivor", func() bool {
		s, b := survivor.Query("SELECT COUNT(*) FROM t", "&level=none")
		return s == 200 && strings.Contains(b, `"values":[[1]]`)
	})
	for _, n := range c {
		if n != survivor {
			n.Kill()
		}
	}
	waitFor(t, 15*time.Second, "the survivor to know it has no leader", func() bool {
		return survivor.leaderID() == ""
	})
	for _, r := range []struct{ method, path, body string }{
		{"POST", "/db/execute", `[["INSERT INTO t VALUES(2)"]]`},
		{"POST", "/db/request", `[["INSERT INTO t VALUES(2)"]]`},
		{"GET", "/db/query?level=strong&q=SELECT+COUNT(*)+FROM+t", ""},
		{"GET", "/db/query?level=linearizable&q=SELECT+COUNT(*)+FROM+t", ""},
		{"GET", "/db/query?q=SELECT+COUNT(*)+FROM+t", ""},
	} {
		s, b := survivor.Do(r.method, r.path, "application/json", []byte(r.body))
		if s != http.StatusServiceUnavailable || strings.TrimSpace(b) != "leader not found" {
			t.Errorf("%s %s without quorum: %d %q, want 503 \"leader not found\"", r.method, r.path, s, b)
		}
	}
	// With ?redirect rqlite cannot form the Location: 500.
	s, b = survivor.Execute("?redirect", `[["INSERT INTO t VALUES(2)"]]`)
	if s != http.StatusInternalServerError || strings.TrimSpace(b) != "leader not found" {
		t.Errorf("write with ?redirect without quorum: %d %q, want 500 \"leader not found\"", s, b)
	}
	s, b = survivor.Do("GET", "/readyz", "", nil)
	if s != 503 || !strings.HasPrefix(b, "[+]node ok\n[+]leader does not exist") {
		t.Errorf("/readyz without quorum: %d %q", s, b)
	}
	s, b = survivor.Query("SELECT COUNT(*) FROM t", "&level=none")
	mustJSON(t, s, b, `{"results":[{"columns":["COUNT(*)"],"types":["integer"],"values":[[1]]}]}`)
}

// TestCompatEndpointsReadyzSync: /readyz?sync on a follower answers 200
// only once the follower has applied what the leader had committed, and
// a leader that does not answer in time is "leader not contactable".
func TestCompatEndpointsReadyzSync(t *testing.T) {
	c := newBootstrapCluster(t, 3)
	c.startAll()
	leader := c.waitOneCluster(t, 30*time.Second)
	follower := c.followers(leader)[0]
	follower.WaitReady(20 * time.Second)
	if s, b := leader.Execute("", `["CREATE TABLE t (x)"]`); s != 200 {
		t.Fatalf("setup: %d %s", s, b)
	}
	for round := 1; round <= 3; round++ {
		var stmts []string
		for i := 0; i < 200; i++ {
			stmts = append(stmts, fmt.Sprintf(`"INSERT INTO t VALUES(%d)"`, i))
		}
		if s, b := leader.Execute("", "["+strings.Join(stmts, ",")+"]"); s != 200 {
			t.Fatalf("insert: %d %s", s, b)
		}
		s, b := follower.Do("GET", "/readyz?sync", "", nil)
		if s != 200 || b != "[+]node ok\n[+]leader ok\n[+]store ok\n[+]sync ok\n[+]db ok" {
			t.Fatalf("follower /readyz?sync: %d %q", s, b)
		}
		if got := follower.count("t", "none"); got != int64(200*round) {
			t.Fatalf("round %d: /readyz?sync said ok, but the follower has %d rows, want %d", round, got, 200*round)
		}
	}
	s, b := leader.Do("GET", "/readyz?sync", "", nil)
	if s != 200 || !strings.Contains(b, "\n[+]sync ok\n") {
		t.Fatalf("leader /readyz?sync: %d %q", s, b)
	}
	// A timeout too short for any call: the follower cannot reach the
	// leader in it.
	s, b = follower.Do("GET", "/readyz?timeout=1ns", "", nil)
	if s != 503 || !strings.HasPrefix(b, "[+]node ok\n[+]leader not contactable: ") {
		t.Fatalf("follower /readyz?timeout=1ns: %d %q, want 503 leader not contactable", s, b)
	}
}

// TestCompatEndpointsShutdownInFlight: a write in flight while the node
// shuts down is answered as rqlite answers store errors, 200 with the
// error in the JSON body (or its results, if it finished first), never a
// 500.
func TestCompatEndpointsShutdownInFlight(t *testing.T) {
	n := startNode(t)
	ceMust(t, n, "POST", "/db/execute", `["CREATE TABLE t (x)"]`, `{"results":[{}]}`)
	// Long enough to be running when SIGTERM comes and 2 s after it (when
	// the node stops it), well under -db-max-steps.
	body := `["WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 30000000) INSERT INTO t SELECT x FROM c"]`
	before := ceLastLogIndex(n)
	req, err := http.NewRequest("POST", n.URL("/db/execute"), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	type answer struct {
		status int
		body   string
		err    error
	}
	done := make(chan answer, 1)
	go func() {
		resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
		if err != nil {
			done <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- answer{resp.StatusCode, string(b), err}
	}()
	// In flight: in the log, so being applied (or just done).
	waitFor(t, 20*time.Second, "the write in the log", func() bool { return ceLastLogIndex(n) > before })
	n.cmd.Process.Signal(syscall.SIGTERM)
	a := <-done
	if a.err != nil {
		t.Fatalf("in-flight write: %v", a.err)
	}
	switch strings.TrimSpace(a.body) {
	case `{"results":[],"error":"store not open"}`:
	case `{"results":[{"last_insert_id":30000000,"rows_affected":30000000}]}`:
		t.Log("the write finished before the node stopped it")
	default:
		t.Fatalf("in-flight write at shutdown: %d %q", a.status, a.body)
	}
	if a.status != 200 {
		t.Fatalf("in-flight write at shutdown: status %d, want 200 (%s)", a.status, a.body)
	}
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		t.Fatal("node did not exit after SIGTERM")
	}
}

// ceLastLogIndex returns the node's last Raft log index (0 if unknown).
func ceLastLogIndex(n *Node) float64 {
	v, _ := n.status("store.raft.last_log_index").(float64)
	return v
}
