package http

import (
	"context"
	"encoding/json"
	"errors"
	"expvar"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rqlited/rqlited/command"
)

// statusStore is the part of the store /status, /nodes and /leader use;
// the embedded Store (nil) panics if anything else is called.
type statusStore struct {
	Store
	servers    []command.Server
	leaderID   string
	leaderAddr string
	stats      map[string]any
	statsErr   error
}

func (f *statusStore) ID() string                         { return "1" }
func (f *statusStore) Addr() string                       { return "localhost:4002" }
func (f *statusStore) Leader() (string, string)           { return f.leaderID, f.leaderAddr }
func (f *statusStore) Servers() ([]command.Server, error) { return f.servers, nil }
func (f *statusStore) Stats() (map[string]any, error)     { return f.stats, f.statsErr }

// metaCluster answers NodeMeta from a table; an address not in it blocks
// until the context ends.
type metaCluster map[string]string

func (m metaCluster) NodeMeta(ctx context.Context, addr string) (string, string, error) {
	if url, ok := m[addr]; ok {
		if url == "" {
			return "", "", errors.New("connection refused")
		}
		return url, "v9.9.9", nil
	}
	<-ctx.Done()
	return "", "", ctx.Err()
}

func newStatusService(t *testing.T, st *statusStore) *Service {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Build = BuildInfo{Version: "v9.9.9", Commit: "abc"}
	s, err := New(cfg, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s.SetCluster(metaCluster{"localhost:4004": "http://localhost:4003", "localhost:4006": ""})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func threeNodes() *statusStore {
	return &statusStore{
		servers: []command.Server{
			{ID: "3", Addr: "localhost:4006", Voter: true},
			{ID: "1", Addr: "localhost:4002", Voter: true},
			{ID: "2", Addr: "localhost:4004", Voter: true},
			{ID: "4", Addr: "localhost:4008", Voter: false},
		},
		leaderID: "2", leaderAddr: "localhost:4004",
		stats: map[string]any{"node_id": "1", "raft": map[string]any{"voter": true}},
	}
}

func get(t *testing.T, s *Service, target string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
	return w
}

func decode(t *testing.T, w *httptest.ResponseRecorder) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("body %q is not JSON: %v", w.Body.String(), err)
	}
	return v
}

// at walks a dot path through decoded JSON objects.
func at(v any, path string) (any, bool) {
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

func jsonType(v any) string {
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

// TestStatusSections: /status has rqlite's sections and keys, with
// rqlite's JSON types.
func TestStatusSections(t *testing.T) {
	s := newStatusService(t, threeNodes())
	s.AddStatus("http.cluster", func() map[string]any { return map[string]any{"timeout": "30s"} })
	s.AddStatus("disco", func() map[string]any { return map[string]any{"mode": "dns"} })
	w := get(t, s, "/status")
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("status %d, Content-Type %q", w.Code, w.Header().Get("Content-Type"))
	}
	body := decode(t, w)
	for path, want := range map[string]string{
		"os.pid": "number", "os.ppid": "number", "os.page_size": "number", "os.executable": "string",
		"os.hostname": "string", "runtime.GOOS": "string", "runtime.GOARCH": "string",
		"runtime.GOMAXPROCS": "number", "runtime.num_cpu": "number", "runtime.num_goroutine": "number",
		"runtime.version": "string", "runtime.kubernetes_hint": "bool",
		"http.bind_addr": "string", "http.auth": "string", "http.tls": "object", "http.tls.enabled": "string",
		"http.queue._default": "object", "http.queue._default.max_size": "number",
		"http.queue._default.batch_size": "number", "http.queue._default.timeout": "string",
		"http.queue._default.sequence_number": "number", "http.cluster.timeout": "string",
		"http.cluster.local_node_addr": "string", "node.start_time": "string", "node.current_time": "string",
		"node.uptime": "string", "build.version": "string", "build.commit": "string",
		"build.build_time": "string", "build.compiler_toolchain": "string", "build.compiler_command": "string",
		"network": "object", "store.node_id": "string", "store.raft.voter": "bool", "disco.mode": "string",
	} {
		v, ok := at(body, path)
		if !ok {
			t.Errorf("%s: missing", path)
			continue
		}
		if got := jsonType(v); got != want {
			t.Errorf("%s: JSON type %s, want %s", path, got, want)
		}
	}
	if v, _ := at(body, "http.tls.enabled"); v != "false" {
		t.Errorf("http.tls.enabled = %v, want \"false\"", v)
	}
	if v, _ := at(body, "http.cluster.timeout"); v != "30s" {
		t.Errorf("http.cluster.timeout = %v: the http.cluster section was not merged", v)
	}
}

// TestStatusKey: ?key walks the dot path as rqlite does.
func TestStatusKey(t *testing.T) {
	s := newStatusService(t, threeNodes())
	for _, c := range []struct{ key, want string }{
		{"store.raft", `{"voter":true}`},
		{"store.raft.voter", `true`},
		{"store.node_id", `"1"`},
		{"store.node_id.deeper", `"1"`}, // rqlite stops at the first value that is not an object
		{"no.such.key", `{}`},
		{"store.missing", `{}`},
		{"http.tls.enabled", `"false"`},
	} {
		w := get(t, s, "/status?key="+c.key)
		if w.Code != http.StatusOK || w.Body.String() != c.want {
			t.Errorf("key %s: %d %q, want 200 %q", c.key, w.Code, w.Body.String(), c.want)
		}
	}
}

// TestStatusPretty: ?pretty indents with four spaces, as rqlite does.
func TestStatusPretty(t *testing.T) {
	s := newStatusService(t, threeNodes())
	w := get(t, s, "/status?pretty")
	if !strings.Contains(w.Body.String(), "{\n    \"") {
		t.Fatalf("not indented: %.80q", w.Body.String())
	}
	decode(t, w)
}

// TestStatusStoreError: a failing store answers 500 "store stats: ...".
func TestStatusStoreError(t *testing.T) {
	st := threeNodes()
	st.statsErr = errors.New("boom")
	s := newStatusService(t, st)
	w := get(t, s, "/status")
	if w.Code != http.StatusInternalServerError || !strings.HasPrefix(w.Body.String(), "store stats: boom") {
		t.Fatalf("got %d %q", w.Code, w.Body.String())
	}
	if w := httptest.NewRecorder(); true {
		s.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/status", nil))
		if w.Code != http.StatusMethodNotAllowed {
			t.Errorf("POST /status: %d, want 405", w.Code)
		}
	}
}

// TestNodesLegacyAndV2: voters only by default, keyed by ID; ?nonvoters
// adds read replicas; ?ver=2 is {"nodes": [...]} sorted by ID. Only a node
// that answered has api_addr and time, and only it can be the leader.
func TestNodesLegacyAndV2(t *testing.T) {
	s := newStatusService(t, threeNodes())
	legacy := decode(t, get(t, s, "/nodes?timeout=200ms")).(map[string]any)
	if len(legacy) != 3 || legacy["4"] != nil {
		t.Fatalf("default /nodes should list the 3 voters: %v", legacy)
	}
	self := legacy["1"].(map[string]any)
	leader := legacy["2"].(map[string]any)
	down := legacy["3"].(map[string]any)
	for k, want := range map[string]any{"id": "1", "addr": "localhost:4002", "api_addr": s.APIURL(),
		"version": "v9.9.9", "voter": true, "reachable": true, "leader": false} {
		if self[k] != want {
			t.Errorf("self %s = %v, want %v", k, self[k], want)
		}
	}
	if leader["leader"] != true || leader["api_addr"] != "http://localhost:4003" || jsonType(leader["time"]) != "number" ||
		jsonType(leader["time_s"]) != "string" || leader["error"] != nil {
		t.Errorf("leader entry: %v", leader)
	}
	if down["reachable"] != false || down["leader"] != false || down["error"] != "connection refused" ||
		down["api_addr"] != nil || down["time"] != nil || down["version"] != "" {
		t.Errorf("unreachable entry: %v", down)
	}

	all := decode(t, get(t, s, "/nodes?nonvoters&timeout=200ms")).(map[string]any)
	if replica, _ := all["4"].(map[string]any); replica == nil || replica["voter"] != false ||
		replica["error"] != errNoResponse {
		t.Errorf("?nonvoters: read replica entry %v", all["4"])
	}

	v2 := decode(t, get(t, s, "/nodes?ver=2&nonvoters&timeout=200ms")).(map[string]any)
	list, _ := v2["nodes"].([]any)
	var ids []string
	for _, n := range list {
		ids = append(ids, n.(map[string]any)["id"].(string))
	}
	if strings.Join(ids, ",") != "1,2,3,4" || len(v2) != 1 {
		t.Errorf("ver=2: %v", v2)
	}
}

// TestNodesProbeParallel: nodes are probed at once, so two silent nodes
// cost one timeout, not two.
func TestNodesProbeParallel(t *testing.T) {
	st := threeNodes()
	st.servers = append(st.servers, command.Server{ID: "5", Addr: "localhost:4010", Voter: true})
	s := newStatusService(t, st)
	start := time.Now()
	w := get(t, s, "/nodes?nonvoters&timeout=300ms")
	if d := time.Since(start); d > 550*time.Millisecond {
		t.Errorf("/nodes took %s with a 300ms timeout", d)
	}
	if n := decode(t, w).(map[string]any)["5"].(map[string]any); n["error"] != errNoResponse {
		t.Errorf("silent node: %v", n)
	}
}

// TestLeader: GET /leader is the leader's node object; without a leader it
// is 503 "leader not found".
func TestLeader(t *testing.T) {
	st := threeNodes()
	s := newStatusService(t, st)
	n := decode(t, get(t, s, "/leader")).(map[string]any)
	if n["id"] != "2" || n["leader"] != true || n["voter"] != true || n["reachable"] != true || n["version"] != "v9.9.9" {
		t.Errorf("leader: %v", n)
	}
	st.leaderID, st.leaderAddr = "", ""
	w := get(t, s, "/leader")
	if w.Code != http.StatusServiceUnavailable || strings.TrimSpace(w.Body.String()) != "leader not found" {
		t.Errorf("no leader: %d %q", w.Code, w.Body.String())
	}
}

// TestVars: /debug/vars has Go's variables and rqlite's maps; ?key keeps
// one; /status adds to http.num_status.
func TestVars(t *testing.T) {
	s := newStatusService(t, threeNodes())
	before := httpVars.Get("num_status").(*expvar.Int).Value()
	get(t, s, "/status")
	vars := decode(t, get(t, s, "/debug/vars")).(map[string]any)
	for _, k := range []string{"cmdline", "memstats", "http", "proxy", "queue", "mux", "uploader", "downloader"} {
		if _, ok := vars[k]; !ok {
			t.Errorf("/debug/vars has no %q", k)
		}
	}
	for _, k := range httpVarNames {
		if _, ok := at(vars, "http."+k); !ok {
			t.Errorf("/debug/vars has no http.%s", k)
		}
	}
	if got, _ := at(vars, "http.num_status"); got != float64(before+1) {
		t.Errorf("http.num_status = %v, want %d", got, before+1)
	}
	only := decode(t, get(t, s, "/debug/vars?key=uploader")).(map[string]any)
	if len(only) != 1 || only["uploader"] == nil {
		t.Errorf("?key=uploader: %v", only)
	}
	if none := decode(t, get(t, s, "/debug/vars?key=nope")).(map[string]any); len(none) != 0 {
		t.Errorf("?key=nope: %v", none)
	}
}

// TestCounters: the router's counting helpers use rqlite's names.
func TestCounters(t *testing.T) {
	value := func(k string) int64 { return httpVars.Get(k).(*expvar.Int).Value() }
	ex, ok, fail := value("executions"), value("auth_ok"), value("auth_fail")
	countRoute(lookupRoute("/db/execute"))
	countRoute(lookupRoute("/nodes")) // not counted, as in rqlite
	countAuth(nil)
	countAuth(errors.New("denied"))
	if value("executions") != ex+1 || value("auth_ok") != ok+1 || value("auth_fail") != fail+1 {
		t.Errorf("executions %d->%d, auth_ok %d->%d, auth_fail %d->%d",
			ex, value("executions"), ok, value("auth_ok"), fail, value("auth_fail"))
	}
}
