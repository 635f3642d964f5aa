//go:build system

package system_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// Compatibility of /status, /debug/vars, /nodes and /leader with rqlite v10:
// the key paths and JSON types below come from rqlite's source (http
// service handleStatus, store Stats, db Stats, cluster and disco Stats,
// the expvar maps of each package, and the Node type of /nodes).

// jsonKind is the JSON type of a decoded value.
func jsonKind(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case nil:
		return "null"
	}
	return "?"
}

// jsonAt walks a dot path through decoded JSON objects.
func jsonAt(v any, path string) (any, bool) {
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

// getJSON sends GET path to n and decodes the body (nil if not JSON).
func getJSON(t *testing.T, n *Node, path string) (int, any, string) {
	t.Helper()
	code, body := n.Do("GET", path, "", nil)
	var v any
	if json.Unmarshal([]byte(body), &v) != nil {
		v = nil
	}
	return code, v, body
}

// compatCase is one request and what rqlite answers to it.
type compatCase struct {
	name     string
	path     string
	leader   bool // ask the leader (else a follower)
	code     int
	types    map[string]string // key path -> JSON type
	values   map[string]any    // key path -> exact value
	absent   []string          // key paths that must not be there
	bodyText string            // exact body, for non-JSON answers
}

var statusTypes = map[string]string{
	"os.pid": "number", "os.ppid": "number", "os.page_size": "number", "os.executable": "string", "os.hostname": "string",
	"runtime.GOOS": "string", "runtime.GOARCH": "string", "runtime.GOMAXPROCS": "number", "runtime.num_cpu": "number",
	"runtime.num_goroutine": "number", "runtime.version": "string", "runtime.kubernetes_hint": "bool",
	"build.version": "string", "build.commit": "string", "build.build_time": "string",
	"build.compiler_toolchain": "string", "build.compiler_command": "string",
	"http.bind_addr": "string", "http.auth": "string", "http.tls.enabled": "string",
	"http.cluster.timeout": "string", "http.cluster.local_node_addr": "string",
	"http.queue._default.max_size": "number", "http.queue._default.batch_size": "number",
	"http.queue._default.timeout": "string", "http.queue._default.sequence_number": "number",
	"node.start_time": "string", "node.current_time": "string", "node.uptime": "string",
	"cluster.addr": "string", "cluster.https": "string", "cluster.api_addr": "string",
	"mux.addr": "string", "mux.timeout": "string", "mux.tls": "string", "mux.handlers": "string",
	"extensions.dir": "string", "extensions.names": "array", "network": "object",
	"store.open": "bool", "store.node_id": "string", "store.addr": "string", "store.ready": "bool",
	"store.leader.node_id": "string", "store.leader.addr": "string",
	"store.fsm_index": "number", "store.fsm_term": "number", "store.fsm_update_time": "string",
	"store.db_applied_index": "number", "store.strong_read_term": "number", "store.leader_appended_at_time": "string",
	"store.observer.observed": "number", "store.observer.dropped": "number",
	"store.cdc.enabled": "bool", "store.cdc.registered": "bool",
	"store.apply_timeout": "string", "store.heartbeat_timeout": "string", "store.election_timeout": "string",
	"store.commit_timeout": "string", "store.snapshot_threshold": "number", "store.snapshot_interval": "string",
	"store.snapshot_cas": "object", "store.reap_timeout": "string", "store.reap_read_only_timeout": "string",
	"store.no_freelist_sync": "bool", "store.trailing_logs": "number", "store.request_marshaler": "object",
	"store.nodes": "array", "store.dir": "string", "store.dir_size": "number", "store.dir_size_friendly": "string",
	"store.db_conf.fk_constraints": "bool",
	"store.raft.voter":             "bool", "store.raft.state": "string", "store.raft.term": "number",
	"store.raft.commit_index": "number", "store.raft.applied_index": "number", "store.raft.log_size": "number",
	"store.raft.log_size_friendly": "string", "store.raft.bolt": "object", "store.raft.transport": "object",
	"store.raft.config.HeartbeatTimeout": "number", "store.raft.config.LocalID": "string",
	"store.snapshot_store.dir": "string", "store.snapshot_store.snapshots": "array",
	"store.snapshot_store.db_path": "string",
	"store.sqlite3.version":        "string", "store.sqlite3.path": "string", "store.sqlite3.size": "number",
	"store.sqlite3.db_size": "number", "store.sqlite3.db_size_friendly": "string",
	"store.sqlite3.compile_options": "array", "store.sqlite3.mem_stats.page_size": "number",
	"store.sqlite3.mem_stats.page_count": "number", "store.sqlite3.rw_dsn": "string", "store.sqlite3.ro_dsn": "string",
	"store.sqlite3.conn_pool_stats": "object", "store.sqlite3.pragmas.rw.journal_mode": "string",
	"store.sqlite3.pragmas.ro.journal_mode": "string", "store.sqlite3.pragmas.ro.synchronous": "string",
	"store.sqlite3.transaction.rw": "bool", "store.sqlite3.extensions": "array",
	"store.sqlite3.last_modified": "string",
}

var varsTypes = map[string]string{
	"cmdline": "array", "memstats.Alloc": "number",
	"http.num_status": "number", "http.executions": "number", "http.auth_ok": "number", "http.leader_not_found": "number",
	"store.num_snapshots": "number", "store.num_restores": "number", "store.num_joins": "number",
	"store.num_snapshot_persists": "number", "store.leader_changes_observed": "number",
	"cluster.num_join_req": "number", "cluster.num_get_node_api_req": "number", "cluster.num_notify_req": "number",
	"db.executions": "number", "db.queries": "number", "snapshot.sink_full_total": "number",
	"uploader.num_uploads_ok": "number", "downloader.num_downloads_ok": "number",
	"proxy.remote_executions": "number", "queue.objects_rx": "number", "mux.num_connections_handled": "number",
}

var nodeTypes = map[string]string{
	"id": "string", "api_addr": "string", "addr": "string", "version": "string", "voter": "bool",
	"reachable": "bool", "leader": "bool", "time": "number", "time_s": "string",
}

func compatCases(leaderID string) []compatCase {
	nodeAt := func(prefix string) map[string]string {
		m := map[string]string{}
		for k, v := range nodeTypes {
			m[prefix+k] = v
		}
		return m
	}
	return []compatCase{
		{name: "status on the leader", path: "/status", leader: true, code: 200, types: statusTypes,
			values: map[string]any{"store.raft.voter": true, "store.open": true, "http.tls.enabled": "false",
				"store.raft.state": "Leader", "cluster.https": "false", "http.auth": "disabled"}},
		{name: "status on a follower", path: "/status", code: 200, types: statusTypes,
			values: map[string]any{"store.raft.state": "Follower", "store.leader.node_id": leaderID}},
		{name: "status pretty", path: "/status?pretty", leader: true, code: 200, types: statusTypes},
		{name: "key to an object", path: "/status?key=store.leader", code: 200,
			types: map[string]string{"node_id": "string", "addr": "string"}, values: map[string]any{"node_id": leaderID}},
		{name: "key to a value", path: "/status?key=store.leader.node_id", code: 200, bodyText: `"` + leaderID + `"`},
		{name: "key past a value stops there", path: "/status?key=store.leader.node_id.x", code: 200,
			bodyText: `"` + leaderID + `"`},
		{name: "missing key is an empty object", path: "/status?key=store.no_such_key", code: 200, bodyText: `{}`},
		{name: "missing top key", path: "/status?key=nothing", code: 200, bodyText: `{}`},
		{name: "debug vars", path: "/debug/vars", code: 200, types: varsTypes},
		{name: "debug vars one key", path: "/debug/vars?key=cluster", code: 200,
			types: map[string]string{"cluster.num_join_req": "number"}, absent: []string{"store", "http", "cmdline"}},
		{name: "nodes legacy", path: "/nodes", code: 200, types: nodeAt(leaderID + "."),
			values: map[string]any{leaderID + ".leader": true, leaderID + ".reachable": true, leaderID + ".voter": true},
			absent: []string{leaderID + ".error", "nodes"}},
		{name: "nodes ver=2", path: "/nodes?ver=2", leader: true, code: 200, types: map[string]string{"nodes": "array"}},
		{name: "leader", path: "/leader", code: 200, types: nodeTypes,
			values: map[string]any{"id": leaderID, "leader": true, "voter": true, "reachable": true}, absent: []string{"error"}},
		{name: "status wrong method", path: "POST /status", code: 405},
		{name: "nodes wrong method", path: "POST /nodes", code: 405},
	}
}

func (c compatCase) run(t *testing.T, n *Node) {
	t.Helper()
	method, path := "GET", c.path
	if m, p, ok := strings.Cut(c.path, " "); ok {
		method, path = m, p
	}
	code, body := n.Do(method, path, "application/json", nil)
	if code != c.code {
		t.Fatalf("%s %s: status %d, want %d: %.300s", method, path, code, c.code, body)
	}
	if c.bodyText != "" && strings.TrimSpace(body) != c.bodyText {
		t.Errorf("%s: body %q, want %q", path, body, c.bodyText)
	}
	if len(c.types)+len(c.values)+len(c.absent) == 0 {
		return
	}
	var v any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("%s: not JSON (%v): %.300s", path, err, body)
	}
	for p, want := range c.types {
		got, ok := jsonAt(v, p)
		if !ok {
			t.Errorf("%s: %s missing", path, p)
		} else if jsonKind(got) != want {
			t.Errorf("%s: %s is %s (%v), want %s", path, p, jsonKind(got), got, want)
		}
	}
	for p, want := range c.values {
		if got, _ := jsonAt(v, p); got != want {
			t.Errorf("%s: %s = %v, want %v", path, p, got, want)
		}
	}
	for _, p := range c.absent {
		if _, ok := jsonAt(v, p); ok {
			t.Errorf("%s: %s should be absent", path, p)
		}
	}
}

// varOf reads one /debug/vars counter of n.
func varOf(t *testing.T, n *Node, name, key string) float64 {
	t.Helper()
	_, v, body := getJSON(t, n, "/debug/vars?key="+name)
	x, ok := jsonAt(v, name+"."+key)
	if !ok {
		t.Fatalf("/debug/vars has no %s.%s: %.300s", name, key, body)
	}
	f, _ := x.(float64)
	return f
}

func TestCompatStatus(t *testing.T) {
	c := newBootstrapCluster(t, 3)
	c.startAll()
	leader := c.waitOneCluster(t, 30*time.Second)
	follower := c.followers(leader)[0]
	for _, n := range c {
		n.WaitReady(20 * time.Second)
	}
	if s, b := leader.Execute("", `["CREATE TABLE t (x)", "INSERT INTO t VALUES (1)"]`); s != 200 {
		t.Fatalf("execute: %d %s", s, b)
	}
	for _, tc := range compatCases(leader.nodeID()) {
		t.Run(tc.name, func(t *testing.T) {
			n := follower
			if tc.leader {
				n = leader
			}
			tc.run(t, n)
		})
	}

	t.Run("counters move where the events happen", func(t *testing.T) { compatCounters(t, leader, follower) })
	t.Run("unreachable node", func(t *testing.T) { compatUnreachable(t, c, leader) })
	t.Run("no leader", func(t *testing.T) { compatNoLeader(t, c, leader) })
}

// compatCounters: /debug/vars counters count what happens.
func compatCounters(t *testing.T, leader, follower *Node) {
	status := varOf(t, follower, "http", "num_status")
	snaps := varOf(t, leader, "store", "num_snapshots")
	persists := varOf(t, leader, "snapshot", "sink_full_total")
	execs := varOf(t, follower, "db", "executions")
	meta := varOf(t, leader, "cluster", "num_get_node_api_req")

	follower.Do("GET", "/status", "", nil)
	if s, b := leader.Do("POST", "/snapshot", "", nil); s != 200 && s != 204 {
		t.Fatalf("snapshot: %d %s", s, b)
	}
	if s, b := leader.Execute("", `["INSERT INTO t VALUES (2)", "INSERT INTO t VALUES (3)"]`); s != 200 {
		t.Fatalf("execute: %d %s", s, b)
	}
	follower.Do("GET", "/nodes", "", nil) // asks the leader for its meta

	if got := varOf(t, follower, "http", "num_status"); got < status+1 {
		t.Errorf("http.num_status %v -> %v after GET /status", status, got)
	}
	if got := varOf(t, leader, "store", "num_snapshots"); got < snaps+1 {
		t.Errorf("store.num_snapshots %v -> %v after POST /snapshot", snaps, got)
	}
	if got := varOf(t, leader, "snapshot", "sink_full_total"); got < persists+1 {
		t.Errorf("snapshot.sink_full_total %v -> %v after POST /snapshot", persists, got)
	}
	if got := varOf(t, leader, "cluster", "num_get_node_api_req"); got < meta+1 {
		t.Errorf("cluster.num_get_node_api_req %v -> %v after a follower's GET /nodes", meta, got)
	}
	// The follower applies the two statements from the log.
	waitFor(t, 10*time.Second, "db.executions on the follower", func() bool {
		return varOf(t, follower, "db", "executions") >= execs+2
	})
	code, v, body := getJSON(t, leader, "/status?key=store.snapshot_store.snapshots")
	if list, _ := v.([]any); code != 200 || len(list) == 0 || jsonKind(list[0]) != "string" {
		t.Errorf("snapshot_store.snapshots after a snapshot: %d %s", code, body)
	}
}

// compatUnreachable: a stopped node is listed with reachable false and an
// error, without api_addr or time, and is not the leader.
func compatUnreachable(t *testing.T, c Cluster, leader *Node) {
	down := c.followers(leader)[1]
	down.Kill()
	id := down.nodeID()
	var n map[string]any
	waitFor(t, 20*time.Second, "the stopped node to be unreachable", func() bool {
		_, v, _ := getJSON(t, leader, "/nodes?timeout=1s")
		x, _ := jsonAt(v, id)
		n, _ = x.(map[string]any)
		return n != nil && n["reachable"] == false
	})
	if jsonKind(n["error"]) != "string" || n["error"] == "" || n["leader"] != false || n["voter"] != true ||
		n["api_addr"] != nil || n["time"] != nil || n["addr"] != down.RaftAddr || jsonKind(n["version"]) != "string" {
		t.Errorf("unreachable node entry: %v", n)
	}
	_, v, body := getJSON(t, leader, "/nodes?ver=2&timeout=1s")
	list, _ := jsonAt(v, "nodes")
	arr, _ := list.([]any)
	if len(arr) != 3 {
		t.Fatalf("ver=2: %s", body)
	}
	for i := 1; i < len(arr); i++ {
		if arr[i-1].(map[string]any)["id"].(string) >= arr[i].(map[string]any)["id"].(string) {
			t.Errorf("ver=2 not sorted by id: %s", body)
		}
	}
}

// compatNoLeader: with two of three nodes gone, GET /leader is 503
// "leader not found", and /status still answers.
func compatNoLeader(t *testing.T, c Cluster, leader *Node) {
	leader.Kill()
	var last *Node
	for _, n := range c {
		if n != leader && n != c.followers(leader)[1] {
			last = n
		}
	}
	var body string
	waitFor(t, 20*time.Second, "GET /leader to be 503 on the last node", func() bool {
		var code int
		code, body = last.Do("GET", "/leader", "", nil)
		return code == 503
	})
	if strings.TrimSpace(body) != "leader not found" {
		t.Errorf("GET /leader without a leader: %q", body)
	}
	code, v, _ := getJSON(t, last, "/status?key=store.leader")
	if code != 200 || jsonKind(v) != "object" {
		t.Errorf("status without a leader: %d %v", code, v)
	}
}
