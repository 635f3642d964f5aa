//go:build system

package system_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

func TestSingleNodeAPI(t *testing.T) {
	n := startNode(t)

	s, b := n.Execute("", `["CREATE TABLE foo (id INTEGER NOT NULL PRIMARY KEY, name TEXT, age INTEGER, data BLOB)"]`)
	mustJSON(t, s, b, `{"results":[{}]}`)
	s, b = n.Execute("", `[["INSERT INTO foo(name, age) VALUES(?, ?)", "fiona", 20], ["INSERT INTO foo(name, age) VALUES(:name, :age)", {"name": "sinead", "age": 30}]]`)
	mustJSON(t, s, b, `{"results":[{"last_insert_id":1,"rows_affected":1},{"last_insert_id":2,"rows_affected":1}]}`)
	s, b = n.Execute("", `["INSERT INTO bar VALUES(1)", "INSERT INTO foo(name) VALUES('x')", "blah"]`)
	mustJSON(t, s, b, `{"results":[{"error":"no such table: bar"},{"last_insert_id":3,"rows_affected":1},{"error":"near \"blah\": syntax error"}]}`)

	t.Run("query", func(t *testing.T) {
		s, b := n.Query("SELECT id, name, age FROM foo WHERE id < 3", "")
		mustJSON(t, s, b, `{"results":[{"columns":["id","name","age"],"types":["integer","text","integer"],"values":[[1,"fiona",20],[2,"sinead",30]]}]}`)
		s, b = n.Query("SELECT id, name FROM foo WHERE id > 100", "")
		mustJSON(t, s, b, `{"results":[{"columns":["id","name"],"types":["integer","text"]}]}`)
		s, b = n.Query("SELECT name FROM foo WHERE id = 3", "&associative")
		mustJSON(t, s, b, `{"results":[{"types":{"name":"text"},"rows":[{"name":"x"}]}]}`)
		s, b = n.Query("SELECT name FROM foo WHERE id > 100", "&associative")
		mustJSON(t, s, b, `{"results":[{"types":{"name":"text"},"rows":[]}]}`)
		s, b = n.Do("POST", "/db/query", "application/json", []byte(`[["SELECT age FROM foo WHERE name = ?", "fiona"], "SELECT COUNT(*) FROM foo", "SELECT * FROM nope"]`))
		mustJSON(t, s, b, `{"results":[{"columns":["age"],"types":["integer"],"values":[[20]]},{"columns":["COUNT(*)"],"types":["integer"],"values":[[3]]},{"error":"no such table: nope"}]}`)
		for _, level := range []string{"none", "weak", "strong", "linearizable", "auto", "WEAK", "bogus"} {
			s, b := n.Query("SELECT COUNT(*) FROM foo", "&level="+level)
			mustJSON(t, s, b, `{"results":[{"columns":["COUNT(*)"],"types":["integer"],"values":[[3]]}]}`)
		}
		s, b = n.Query("SELECT COUNT(*) FROM foo", "&level=none&freshness=1s&freshness_strict")
		mustJSON(t, s, b, `{"results":[{"columns":["COUNT(*)"],"types":["integer"],"values":[[3]]}]}`)
	})

	t.Run("request", func(t *testing.T) {
		s, b := n.Do("POST", "/db/request?associative", "application/json",
			[]byte(`[["INSERT INTO foo(name) VALUES(?)","declan"],"SELECT COUNT(*) FROM foo","nonsense"]`))
		mustJSON(t, s, b, `{"results":[{"last_insert_id":4,"rows_affected":1,"rows":null},{"types":{"COUNT(*)":"integer"},"rows":[{"COUNT(*)":4}]},{"error":"near \"nonsense\": syntax error"}]}`)
		s, b = n.Do("POST", "/db/request", "application/json", []byte(`["SELECT COUNT(*) FROM foo"]`))
		mustJSON(t, s, b, `{"results":[{"columns":["COUNT(*)"],"types":["integer"],"values":[[4]]}]}`)
		s, b = n.Do("POST", "/db/request", "application/json", []byte(`["DELETE FROM foo WHERE id = 4"]`))
		mustJSON(t, s, b, `{"results":[{"last_insert_id":4,"rows_affected":1}]}`)
	})

	t.Run("blobs and types", func(t *testing.T) {
		s, b := n.Execute("", `[["INSERT INTO foo(id, name, data) VALUES(10, ?, ?)", "b1", "x'DEADBEEF'"], ["INSERT INTO foo(id, name, data) VALUES(11, ?, ?)", "b2", [1, 2, 255]]]`)
		mustJSON(t, s, b, `{"results":[{"last_insert_id":10,"rows_affected":1},{"last_insert_id":11,"rows_affected":1}]}`)
		s, b = n.Query("SELECT data FROM foo WHERE id >= 10 ORDER BY id", "")
		mustJSON(t, s, b, `{"results":[{"columns":["data"],"types":["blob"],"values":[["3q2+7w=="],["AQL/"]]}]}`)
		s, b = n.Query("SELECT data FROM foo WHERE id >= 10 ORDER BY id", "&blob_array")
		mustJSON(t, s, b, `{"results":[{"columns":["data"],"types":["blob"],"values":[[[222,173,190,239]],[[1,2,255]]]}]}`)
		s, b = n.Execute("", `[["SELECT ?, ?, ?, ?", 1.5, true, null, "<&>"]]`)
		mustJSON(t, s, b, `{"results":[{}]}`)
		s, b = n.Do("POST", "/db/query", "application/json", []byte(`[["SELECT ? AS f, ? AS b, ? AS n, ? AS s, 2.0 AS r", 1.5, true, null, "<&>"]]`))
		mustJSON(t, s, b, `{"results":[{"columns":["f","b","n","s","r"],"types":["real","integer","","text","real"],"values":[[1.5,1,null,"\u003c\u0026\u003e",2]]}]}`)
		s, b = n.Execute("", `[["INSERT INTO foo(name) VALUES(?)", {"nested": {"a": 1}}]]`)
		if s != 400 || strings.TrimSpace(b) != "unsupported type" {
			t.Fatalf("nested object parameter: %d %q", s, b)
		}
	})

	t.Run("transaction", func(t *testing.T) {
		s, b := n.Execute("?transaction", `["INSERT INTO foo(id, name) VALUES(20, 'a')", "INSERT INTO foo(id, name) VALUES(20, 'b')", "INSERT INTO foo(id, name) VALUES(21, 'c')"]`)
		mustJSON(t, s, b, `{"results":[{"last_insert_id":20,"rows_affected":1},{"error":"UNIQUE constraint failed: foo.id"}]}`)
		s, b = n.Query("SELECT COUNT(*) FROM foo WHERE id >= 20", "")
		mustJSON(t, s, b, `{"results":[{"columns":["COUNT(*)"],"types":["integer"],"values":[[0]]}]}`)
	})

	t.Run("timings pretty raft_index", func(t *testing.T) {
		s, b := n.Execute("?timings&raft_index", `["INSERT INTO foo(id, name) VALUES(30, 't')"]`)
		re := regexp.MustCompile(`^\{"results":\[\{"last_insert_id":30,"rows_affected":1,"time":[0-9.e-]+\}\],"time":[0-9.e-]+,"raft_index":[0-9]+\}$`)
		if s != 200 || !re.MatchString(strings.TrimSpace(b)) {
			t.Fatalf("timings: %d %s", s, b)
		}
		s, b = n.Query("SELECT 1 AS one", "&pretty")
		want := "{\n    \"results\": [\n        {\n            \"columns\": [\n                \"one\"\n            ],\n            \"types\": [\n                \"integer\"\n            ],\n            \"values\": [\n                [\n                    1\n                ]\n            ]\n        }\n    ]\n}"
		if s != 200 || b != want {
			t.Fatalf("pretty:\n%s", b)
		}
	})

	t.Run("request-level errors", func(t *testing.T) {
		s, b := n.Execute("", `["PRAGMA journal_mode=DELETE"]`)
		mustJSON(t, s, b, `{"results":[],"error":"disallowed pragma"}`)
		s, b = n.Execute("", `["INSERT INTO foo(name) VALUES('ok')", "PRAGMA synchronous=OFF"]`)
		mustJSON(t, s, b, `{"results":[],"error":"disallowed pragma"}`)
		s, b = n.Query("PRAGMA wal_checkpoint(TRUNCATE)", "")
		mustJSON(t, s, b, `{"results":[],"error":"disallowed pragma"}`)
		s, b = n.Query("PRAGMA journal_mode", "")
		mustJSON(t, s, b, `{"results":[{"columns":["journal_mode"],"types":["text"],"values":[["wal"]]}]}`)
	})

	t.Run("bad input", func(t *testing.T) {
		for _, tc := range []struct {
			method, path, ct, body string
			status                 int
			text                   string
		}{
			{"POST", "/db/execute", "application/json", `{bad`, 400, "invalid JSON body"},
			{"POST", "/db/execute", "application/json", `[]`, 400, "no statements"},
			{"POST", "/db/execute", "application/json", `{"a":1}`, 400, "invalid request"},
			{"POST", "/db/execute", "application/json", `[1]`, 400, "invalid request"},
			{"POST", "/db/execute", "application/json", `[["SELECT ?", {"x":[{}]}]]`, 400, "unsupported type"},
			{"POST", "/db/execute", "application/json", strings.Repeat("[", 100) + strings.Repeat("]", 100), 400, "invalid JSON body"},
			{"GET", "/db/query?q=", "", "", 400, "query parameter not set"},
			{"GET", "/db/query?q=SELECT+1&timeout=xyz", "", "", 400, "timeout is not a valid duration"},
			{"GET", "/db/query?q=SELECT+1&freshness=1", "", "", 400, "freshness is not a valid duration"},
			{"GET", "/db/query?q=SELECT+1&db_timeout=-", "", "", 400, "db_timeout is not a valid duration"},
			{"GET", "/db/query?q=SELECT+1&freshness_strict", "", "", 400, "freshness_strict requires freshness"},
			{"GET", "/nodes?retries=x", "", "", 400, "retries is not a valid integer"},
			{"POST", "/snapshot?trailing_logs=x", "", "", 400, "trailing_logs is not a valid integer"},
			{"GET", "/db/backup?fmt=xml", "", "", 400, "invalid backup format: use fmt=binary or fmt=sql"},
			{"POST", "/db/load", "application/octet-stream", "", 400, "load body is neither a SQLite database nor SQL text"},
			{"GET", "/no/such/path", "", "", 404, ""},
			{"PUT", "/db/execute", "", "", 405, ""},
			{"DELETE", "/db/query", "", "", 405, ""},
			{"POST", "/status", "", "", 405, ""},
			{"OPTIONS", "/db/execute", "", "", 200, ""},
		} {
			s, b := n.Do(tc.method, tc.path, tc.ct, []byte(tc.body))
			if s != tc.status || strings.TrimSpace(b) != tc.text {
				t.Errorf("%s %s %q: got %d %q, want %d %q", tc.method, tc.path, tc.body, s, b, tc.status, tc.text)
			}
		}
	})

	t.Run("text/plain execute", func(t *testing.T) {
		s, b := n.Do("POST", "/db/execute", "text/plain", []byte("INSERT INTO foo(id, name) VALUES(40, 'plain')"))
		mustJSON(t, s, b, `{"results":[{"last_insert_id":40,"rows_affected":1}]}`)
	})

	t.Run("queue", func(t *testing.T) {
		s, b := n.Execute("?queue", `["INSERT INTO foo(id, name) VALUES(50, 'q1')"]`)
		if s != 200 || !regexp.MustCompile(`^\{"results":\[\],"sequence_number":[0-9]+\}$`).MatchString(strings.TrimSpace(b)) {
			t.Fatalf("queue: %d %s", s, b)
		}
		s, b = n.Execute("?queue&wait&timeout=10s", `["INSERT INTO foo(id, name) VALUES(51, 'q2')"]`)
		if s != 200 {
			t.Fatalf("queue wait: %d %s", s, b)
		}
		// wait means applied: both rows are visible now.
		s, b = n.Query("SELECT COUNT(*) FROM foo WHERE id IN (50, 51)", "")
		mustJSON(t, s, b, `{"results":[{"columns":["COUNT(*)"],"types":["integer"],"values":[[2]]}]}`)
	})

	t.Run("status nodes leader readyz", func(t *testing.T) {
		s, b := n.Do("GET", "/status?key=store.leader", "", nil)
		mustJSON(t, s, b, fmt.Sprintf(`{"addr":%q,"node_id":%q}`, n.RaftAddr, n.RaftAddr))
		s, b = n.Do("GET", "/status?key=store.no.such", "", nil)
		mustJSON(t, s, b, `{}`)
		s, b = n.Do("GET", "/status", "", nil)
		var st map[string]any
		if err := json.Unmarshal([]byte(b), &st); err != nil || s != 200 {
			t.Fatalf("status: %d %v", s, err)
		}
		for _, k := range []string{"build", "http", "node", "os", "runtime", "store"} {
			if _, ok := st[k]; !ok {
				t.Errorf("status lacks %q", k)
			}
		}
		s, b = n.Do("GET", "/nodes?ver=2", "", nil)
		var nodes struct {
			Nodes []map[string]any `json:"nodes"`
		}
		if err := json.Unmarshal([]byte(b), &nodes); err != nil || s != 200 || len(nodes.Nodes) != 1 {
			t.Fatalf("nodes: %d %s", s, b)
		}
		nd := nodes.Nodes[0]
		if nd["id"] != n.RaftAddr || nd["api_addr"] != "http://"+n.HTTPAddr || nd["leader"] != true || nd["reachable"] != true || nd["voter"] != true {
			t.Fatalf("node entry: %v", nd)
		}
		s, b = n.Do("GET", "/nodes", "", nil)
		var legacy map[string]map[string]any
		if err := json.Unmarshal([]byte(b), &legacy); err != nil || legacy[n.RaftAddr]["addr"] != n.RaftAddr {
			t.Fatalf("legacy nodes: %d %s", s, b)
		}
		s, b = n.Do("GET", "/leader", "", nil)
		if s != 200 || !strings.Contains(b, `"leader":true`) {
			t.Fatalf("leader: %d %s", s, b)
		}
		s, b = n.Do("GET", "/readyz", "", nil)
		if s != 200 || b != "[+]node ok\n[+]leader ok\n[+]store ok\n[+]db ok" {
			t.Fatalf("readyz: %d %q", s, b)
		}
		s, b = n.Do("GET", "/readyz?noleader", "", nil)
		if s != 200 || b != "[+]node ok" {
			t.Fatalf("readyz noleader: %d %q", s, b)
		}
		resp, _, err := n.send(http.DefaultClient, "", "", "GET", "/status", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Header.Get("X-RQLITE-VERSION") == "" {
			t.Fatal("no X-RQLITE-VERSION header")
		}
	})

	t.Run("snapshot", func(t *testing.T) {
		if s, _ := n.Do("POST", "/snapshot", "", nil); s != 200 {
			t.Fatalf("snapshot: %d", s)
		}
		if s, _ := n.Do("POST", "/snapshot", "", nil); s != 204 {
			t.Fatalf("second snapshot: %d, want 204", s)
		}
	})
}

func TestBodyLimit(t *testing.T) {
	n := startNode(t, "-http-max-body", "1000")
	s, b := n.Execute("", `["`+strings.Repeat("x", 2000)+`"]`)
	if s != 413 || !strings.Contains(b, "request body too large") {
		t.Fatalf("oversized body: %d %s", s, b)
	}
	s, b = n.Execute("", `["CREATE TABLE t (x)"]`)
	mustJSON(t, s, b, `{"results":[{}]}`)
}
