package http

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rqlited/rqlited/command"
)

// TestRouteKey: paths are matched as rqlite's ServeHTTP matches them,
// prefixes for some routes and whole paths for others, in its order.
func TestRouteKey(t *testing.T) {
	for path, want := range map[string]string{
		"": "/", "/": "/",
		"/console": "/console", "/console/": "/console", "/console/static/x.js": "/console", "/consolex": "/console",
		"/db/execute": "/db/execute", "/db/execute/": "/db/execute", "/db/executex": "/db/execute",
		"/db/query/x": "/db/query", "/db/request/": "/db/request", "/db/backup/": "/db/backup",
		"/db/load/": "/db/load", "/db/sql": "/db/sql", "/db/sql/": "/db/sql",
		"/boot": "/boot", "/boot/": "", "/snapshot": "/snapshot", "/snapshot/": "",
		"/reap": "/reap", "/reap/": "", "/reapx": "",
		"/remove": "/remove", "/remove/": "/remove", "/status": "/status", "/status/": "/status",
		"/statusz": "/status", "/nodes": "/nodes", "/nodes/": "/nodes",
		"/leader": "/leader", "/leader/": "",
		"/readyz": "/readyz", "/readyz/": "/readyz", "/readyzz": "/readyz",
		"/licenses": "/licenses", "/licenses/": "",
		"/debug/vars": "/debug/vars", "/debug/vars/": "",
		"/debug/pprof": "/debug/pprof", "/debug/pprof/": "/debug/pprof", "/debug/pprof/heap": "/debug/pprof",
		"/db": "", "/db/": "", "/dbx": "", "/foo": "", "/STATUS": "", "/join": "", "/notify": "",
	} {
		if got := routeKey(path); got != want {
			t.Errorf("routeKey(%q) = %q, want %q", path, got, want)
		}
	}
}

// TestRoutePermsComplete: every route but / has a permission, so that
// -auth can never leave one open by omission.
func TestRoutePermsComplete(t *testing.T) {
	s := newTestService(t, &fakeStore{})
	for key := range s.routes {
		if key == "/" {
			continue
		}
		if len(routePerms[key]) == 0 {
			t.Errorf("route %s has no permission", key)
		}
	}
	for key, want := range map[string]string{
		"/reap": "snapshot", "/db/sql": "query", "/licenses": "status", "/console": "ui", "/debug/pprof": "status",
	} {
		if got := strings.Join(routePerms[key], ","); got != want {
			t.Errorf("%s needs %q, want %q (rqlite's)", key, got, want)
		}
	}
}

// fakeStore is a leader (or not) with a database whose answers are set by
// the test. Methods not overridden panic through the nil embedded Store.
type fakeStore struct {
	Store
	leaderAddr  string
	ready       bool
	reapN       int
	reapErr     error
	committed   error
	queryErr    error
	execErr     error
	queryResult []command.Result
	tables      [][]string
	tablesErr   error
	gotNcols    []int
}

func (f *fakeStore) ID() string                     { return "1" }
func (f *fakeStore) Addr() string                   { return "self:4002" }
func (f *fakeStore) Leader() (string, string)       { return "1", f.leaderAddr }
func (f *fakeStore) Stats() (map[string]any, error) { return map[string]any{}, nil }
func (f *fakeStore) Ready() bool                    { return f.ready }
func (f *fakeStore) Reap() (int, int, error)        { return f.reapN, 0, f.reapErr }
func (f *fakeStore) Servers() ([]command.Server, error) {
	return []command.Server{{ID: "1", Addr: "self:4002", Voter: true}}, nil
}
func (f *fakeStore) Committed(ctx context.Context, timeout time.Duration) (uint64, error) {
	return 7, f.committed
}
func (f *fakeStore) Execute(ctx context.Context, req *command.Request) ([]command.Result, uint64, error) {
	return []command.Result{{}}, 1, f.execErr
}
func (f *fakeStore) Query(ctx context.Context, req *command.Request, opts command.QueryOptions) ([]command.Result, uint64, error) {
	if f.queryErr != nil {
		return nil, 0, f.queryErr
	}
	if f.queryResult != nil {
		// Fresh results each time, as the store makes them.
		return append([]command.Result(nil), f.queryResult...), 0, nil
	}
	return []command.Result{{IsQuery: true, Columns: []string{"1"}, Types: []string{"integer"}, Values: [][]any{{int64(1)}}}}, 0, nil
}
func (f *fakeStore) Request(ctx context.Context, req *command.Request, opts command.QueryOptions) ([]command.Result, uint64, error) {
	return f.Query(ctx, req, opts)
}
func (f *fakeStore) ColumnTables(ctx context.Context, req *command.Request, ncols []int) ([][]string, error) {
	f.gotNcols = ncols
	return f.tables, f.tablesErr
}

func newTestService(t *testing.T, st Store) *Service {
	t.Helper()
	s, err := New(DefaultConfig(), st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func do(s *Service, method, target, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

// TestNewEndpoints: /reap, /db/sql, /licenses, /, /console answer as
// rqlite's do: status, content type and body shape.
func TestNewEndpoints(t *testing.T) {
	s := newTestService(t, &fakeStore{leaderAddr: "self:4002", ready: true, reapN: 2})
	for _, c := range []struct {
		method, target, body string
		status               int
		ctype, want          string // want: a substring of the body, or the Location for redirects
	}{
		{"POST", "/reap", "", 200, "application/json; charset=utf-8", `{"snapshots_reaped":2,"wals_checkpointed":0}` + "\n"},
		{"GET", "/reap", "", 405, "", ""},
		{"POST", "/reap/", "", 404, "", ""},
		{"GET", "/db/sql?q=SELECT+RANDOM()", "", 200, "application/json; charset=utf-8", `{"results":[{"original":"SELECT RANDOM()","rewritten":"SELECT RANDOM()"}]}`},
		{"GET", "/db/sql", "", 400, "text/plain; charset=utf-8", "query not specified"},
		{"POST", "/db/sql", `["SELECT 1",["SELECT ?",2]]`, 200, "application/json; charset=utf-8", `{"results":[{"original":"SELECT 1","rewritten":"SELECT 1"},{"original":"SELECT ?","rewritten":"SELECT ?"}]}`},
		{"POST", "/db/sql", `nonsense`, 400, "text/plain; charset=utf-8", "invalid JSON body"},
		{"DELETE", "/db/sql", "", 405, "", ""},
		{"GET", "/licenses", "", 200, "text/plain; charset=utf-8", "github.com/hashicorp/raft@"},
		{"POST", "/licenses", "", 405, "", ""},
		{"GET", "/", "", 302, "", "/console/"},
		{"POST", "/", "", 302, "", "/console/"},
		{"GET", "/console", "", 301, "", "/console/"},
		{"GET", "/console/", "", 200, "text/html; charset=utf-8", "not available yet in rqlited"},
		{"HEAD", "/console/", "", 200, "text/html; charset=utf-8", ""},
		{"POST", "/console/", "", 405, "", ""},
		{"GET", "/console/nothing.js", "", 404, "", ""},
		{"GET", "/debug/pprof", "", 200, "", "Types of profiles available"},
		{"GET", "/readyz/x", "", 200, "text/plain; charset=utf-8", "[+]node ok\n[+]leader ok"},
	} {
		w := do(s, c.method, c.target, c.body)
		name := c.method + " " + c.target
		if w.Code != c.status {
			t.Errorf("%s: status %d, want %d (%s)", name, w.Code, c.status, w.Body.String())
			continue
		}
		if c.ctype != "" && w.Header().Get("Content-Type") != c.ctype {
			t.Errorf("%s: Content-Type %q, want %q", name, w.Header().Get("Content-Type"), c.ctype)
		}
		switch {
		case c.status == 301 || c.status == 302:
			if loc := w.Header().Get("Location"); loc != c.want {
				t.Errorf("%s: Location %q, want %q", name, loc, c.want)
			}
		case strings.HasPrefix(c.ctype, "application/json"):
			if w.Body.String() != c.want {
				t.Errorf("%s: body %q, want %q", name, w.Body.String(), c.want)
			}
		case !strings.Contains(w.Body.String(), c.want):
			t.Errorf("%s: body %.200q does not contain %q", name, w.Body.String(), c.want)
		}
	}
}

// TestReapError: a store error is 500 with its text.
func TestReapError(t *testing.T) {
	s := newTestService(t, &fakeStore{reapErr: errors.New("store not open")})
	if w := do(s, "POST", "/reap", ""); w.Code != 500 || strings.TrimSpace(w.Body.String()) != "store not open" {
		t.Fatalf("got %d %q, want 500 store not open", w.Code, w.Body.String())
	}
}

// TestPermissionsOfNewRoutes: with -auth, each new route asks for
// rqlite's permission; / and the /console redirect ask for none.
func TestPermissionsOfNewRoutes(t *testing.T) {
	for _, c := range []struct {
		method, target string
		want           []string // nil: no check at all
	}{
		{"POST", "/reap", []string{"snapshot"}},
		{"GET", "/db/sql?q=x", []string{"query"}},
		{"POST", "/db/sql", []string{"query"}},
		{"GET", "/licenses", []string{"status"}},
		{"GET", "/console/", []string{"ui"}},
		{"GET", "/console", nil},
		{"GET", "/", nil},
		{"GET", "/debug/pprof", []string{"status"}},
		{"GET", "/db/execute/x", nil}, // GET: 405 comes after the check below
	} {
		pa := &permAuth{}
		cfg := DefaultConfig()
		cfg.Auth = pa
		s, err := New(cfg, &fakeStore{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		w := do(s, c.method, c.target, `["x"]`)
		if c.target == "/db/execute/x" {
			if got := strings.Join(pa.perms, ","); got != "execute" {
				t.Errorf("%s %s: asked %q, want execute", c.method, c.target, got)
			}
			continue
		}
		if c.want == nil {
			if len(pa.perms) != 0 || w.Code == http.StatusUnauthorized {
				t.Errorf("%s %s: checked %v (status %d), want no check", c.method, c.target, pa.perms, w.Code)
			}
			continue
		}
		if got := strings.Join(pa.perms, ","); got != strings.Join(c.want, ",") || w.Code != http.StatusUnauthorized {
			t.Errorf("%s %s: asked %q, status %d; want %q and 401", c.method, c.target, got, w.Code, c.want)
		}
	}
}

// permAuth refuses everyone and records the permissions asked for.
type permAuth struct{ perms []string }

func (p *permAuth) Authorize(client, username, password string, ok bool, perms ...string) error {
	p.perms = append(p.perms, perms...)
	return errors.New("denied")
}

// TestReadyz: the lines and statuses of rqlite's /readyz, in its order.
func TestReadyz(t *testing.T) {
	for _, c := range []struct {
		name   string
		st     *fakeStore
		target string
		status int
		body   string
	}{
		{"no leader", &fakeStore{}, "/readyz", 503, "[+]node ok\n[+]leader does not exist"},
		{"noleader", &fakeStore{}, "/readyz?noleader", 200, "[+]node ok"},
		{"not ready", &fakeStore{leaderAddr: "self:4002"}, "/readyz", 503, "[+]node ok\n[+]leader ok\n[+]store not ready"},
		{"ok", &fakeStore{leaderAddr: "self:4002", ready: true}, "/readyz", 200, "[+]node ok\n[+]leader ok\n[+]store ok\n[+]db ok"},
		{"sync ok", &fakeStore{leaderAddr: "self:4002", ready: true}, "/readyz?sync", 200, "[+]node ok\n[+]leader ok\n[+]store ok\n[+]sync ok\n[+]db ok"},
		{"sync fails", &fakeStore{leaderAddr: "self:4002", ready: true, committed: errors.New("timeout")}, "/readyz?sync&timeout=1s", 503, "[+]node ok\n[+]leader ok\n[+]store ok\n[+]sync timeout"},
		{"db fails", &fakeStore{leaderAddr: "self:4002", ready: true, queryErr: errors.New("boom")}, "/readyz", 503, "[+]node ok\n[+]leader ok\n[+]store ok\n[+]db not ok: boom"},
	} {
		s := newTestService(t, c.st)
		w := do(s, "GET", c.target, "")
		if w.Code != c.status || w.Body.String() != c.body {
			t.Errorf("%s: %d %q, want %d %q", c.name, w.Code, w.Body.String(), c.status, c.body)
		}
	}
}

// unreachable is a Cluster whose nodes never answer; it counts the calls.
type unreachable struct{ calls int }

func (u *unreachable) NodeMeta(ctx context.Context, addr string) (string, string, error) {
	u.calls++
	return "", "", errors.New("dial tcp: connection refused")
}

// TestReadyzLeaderNotContactable: a leader that does not answer is 503
// "leader not contactable", after ?retries more tries.
func TestReadyzLeaderNotContactable(t *testing.T) {
	s := newTestService(t, &fakeStore{leaderAddr: "other:4002", ready: true})
	u := &unreachable{}
	s.SetCluster(u)
	w := do(s, "GET", "/readyz?retries=2", "")
	want := "[+]node ok\n[+]leader not contactable: dial tcp: connection refused"
	if w.Code != 503 || w.Body.String() != want {
		t.Fatalf("got %d %q, want 503 %q", w.Code, w.Body.String(), want)
	}
	if u.calls != 3 {
		t.Fatalf("leader asked %d times, want 3 (1 + retries=2)", u.calls)
	}
}

// TestStoreErrorsAsRqlite: errors other than "not leader" on the data
// endpoints are a 200 JSON body with the error, as rqlite answers them.
func TestStoreErrorsAsRqlite(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{errors.New("store not open"), `{"results":[],"error":"store not open"}`},
		{command.ErrLeadershipLost, `{"results":[],"error":"leadership lost while committing log"}`},
		{command.ErrStaleRead, `{"results":[],"error":"stale read"}`},
	} {
		s := newTestService(t, &fakeStore{execErr: c.err, queryErr: c.err})
		for _, req := range [][3]string{
			{"POST", "/db/execute", `["INSERT INTO t VALUES(1)"]`},
			{"GET", "/db/query?q=SELECT+1", ""},
			{"POST", "/db/request", `["SELECT 1"]`},
		} {
			w := do(s, req[0], req[1], req[2])
			if w.Code != 200 || w.Body.String() != c.want {
				t.Errorf("%s %s with %v: %d %q, want 200 %q", req[0], req[1], c.err, w.Code, w.Body.String(), c.want)
			}
		}
	}
}

// TestQualifyColumns: with ?qualify_columns, columns that come from a
// table are prefixed with its name; others and unknown ones stay.
func TestQualifyColumns(t *testing.T) {
	res := func() []command.Result {
		return []command.Result{{IsQuery: true, Columns: []string{"id", "name", "n"}, Types: []string{"integer", "text", "integer"},
			Values: [][]any{{int64(1), "a", int64(2)}}}}
	}
	st := &fakeStore{queryResult: res(), tables: [][]string{{"foo", "bar", ""}}}
	s := newTestService(t, st)
	w := do(s, "GET", "/db/query?q=SELECT+1&qualify_columns", "")
	var got struct {
		Results []struct{ Columns []string } `json:"results"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || len(got.Results) != 1 {
		t.Fatalf("%d %s: %v", w.Code, w.Body.String(), err)
	}
	if c := strings.Join(got.Results[0].Columns, ","); c != "foo.id,bar.name,n" {
		t.Errorf("columns %s, want foo.id,bar.name,n", c)
	}
	if len(st.gotNcols) != 1 || st.gotNcols[0] != 3 {
		t.Errorf("asked for column counts %v, want [3]", st.gotNcols)
	}
	if c := strings.Join(st.queryResult[0].Columns, ","); c != "id,name,n" {
		t.Errorf("the store's own column names were changed to %s: later queries would see them", c)
	}

	st = &fakeStore{queryResult: res(), tables: [][]string{{"foo", "bar", ""}}}
	s = newTestService(t, st)
	w = do(s, "GET", "/db/query?q=SELECT+1", "")
	if !strings.Contains(w.Body.String(), `"columns":["id","name","n"]`) || st.gotNcols != nil {
		t.Errorf("without qualify_columns: %s (tables asked: %v)", w.Body.String(), st.gotNcols)
	}

	st = &fakeStore{queryResult: res(), tablesErr: errors.New("no metadata")}
	s = newTestService(t, st)
	w = do(s, "POST", "/db/request?qualify_columns", `["SELECT 1"]`)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"columns":["id","name","n"]`) {
		t.Errorf("tables unknown: %d %s, want the columns unqualified", w.Code, w.Body.String())
	}
}
