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

// TestLookupRoute: paths are matched as rqlite's ServeHTTP matches them,
// prefixes for some routes and whole paths for others, in its order.
func TestLookupRoute(t *testing.T) {
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
		got := ""
		if rt := lookupRoute(path); rt != nil {
			got = rt.path
		}
		if got != want {
			t.Errorf("lookupRoute(%q) is route %q, want %q", path, got, want)
		}
	}
}

// TestRoutePermsComplete: every route but / and the /console redirect has
// a permission, so that -auth can never leave one open by omission.
func TestRoutePermsComplete(t *testing.T) {
	for _, rt := range routes {
		if rt.path == "/" || rt.path == "/console" && rt.match == exact {
			continue
		}
		if len(rt.perms) == 0 {
			t.Errorf("route %s has no permission", rt.path)
		}
	}
	for path, want := range map[string]string{
		"/reap": "snapshot", "/db/sql": "query", "/licenses": "status", "/console/": "ui", "/debug/pprof": "status",
	} {
		if got := strings.Join(lookupRoute(path).perms, ","); got != want {
			t.Errorf("%s needs %q, want %q (rqlite's)", path, got, want)
		}
	}
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
	s := newTestService(t, &fakeStore{ReapFn: func() (int, int, error) { return 2, 0, nil }})
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
	s := newTestService(t, &fakeStore{ReapFn: func() (int, int, error) { return 0, 0, errors.New("store not open") }})
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
		pa, asked := refuser(errors.New("denied"))
		cfg := DefaultConfig()
		cfg.Auth = pa
		s, err := New(cfg, &fakeStore{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		w := do(s, c.method, c.target, `["x"]`)
		perms := asked.all()
		if c.target == "/db/execute/x" {
			if got := strings.Join(perms, ","); got != "execute" {
				t.Errorf("%s %s: asked %q, want execute", c.method, c.target, got)
			}
			continue
		}
		if c.want == nil {
			if len(perms) != 0 || w.Code == http.StatusUnauthorized {
				t.Errorf("%s %s: checked %v (status %d), want no check", c.method, c.target, perms, w.Code)
			}
			continue
		}
		if got := strings.Join(perms, ","); got != strings.Join(c.want, ",") || w.Code != http.StatusUnauthorized {
			t.Errorf("%s %s: asked %q, status %d; want %q and 401", c.method, c.target, got, w.Code, c.want)
		}
	}
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
		{"no leader", &fakeStore{LeaderFn: noLeader}, "/readyz", 503, "[+]node ok\n[+]leader does not exist"},
		{"noleader", &fakeStore{LeaderFn: noLeader}, "/readyz?noleader", 200, "[+]node ok"},
		{"not ready", &fakeStore{ReadyFn: func() bool { return false }}, "/readyz", 503, "[+]node ok\n[+]leader ok\n[+]store not ready"},
		{"ok", &fakeStore{}, "/readyz", 200, "[+]node ok\n[+]leader ok\n[+]store ok\n[+]db ok"},
		{"sync ok", &fakeStore{}, "/readyz?sync", 200, "[+]node ok\n[+]leader ok\n[+]store ok\n[+]sync ok\n[+]db ok"},
		{"sync fails", &fakeStore{CommittedFn: func(context.Context, time.Duration) (uint64, error) { return 0, errors.New("timeout") }},
			"/readyz?sync&timeout=1s", 503, "[+]node ok\n[+]leader ok\n[+]store ok\n[+]sync timeout"},
		{"db fails", &fakeStore{QueryFn: failQuery(errors.New("boom"))}, "/readyz", 503, "[+]node ok\n[+]leader ok\n[+]store ok\n[+]db not ok: boom"},
	} {
		s := newTestService(t, c.st)
		w := do(s, "GET", c.target, "")
		if w.Code != c.status || w.Body.String() != c.body {
			t.Errorf("%s: %d %q, want %d %q", c.name, w.Code, w.Body.String(), c.status, c.body)
		}
	}
}

// TestReadyzLeaderNotContactable: a leader that does not answer is 503
// "leader not contactable", after ?retries more tries.
func TestReadyzLeaderNotContactable(t *testing.T) {
	s := newTestService(t, &fakeStore{LeaderFn: leaderAt("2", "other:4002")})
	calls := 0
	s.SetCluster(&fakeCluster{NodeMetaFn: func(context.Context, string) (string, string, error) {
		calls++
		return "", "", errors.New("dial tcp: connection refused")
	}})
	w := do(s, "GET", "/readyz?retries=2", "")
	want := "[+]node ok\n[+]leader not contactable: dial tcp: connection refused"
	if w.Code != 503 || w.Body.String() != want {
		t.Fatalf("got %d %q, want 503 %q", w.Code, w.Body.String(), want)
	}
	if calls != 3 {
		t.Fatalf("leader asked %d times, want 3 (1 + retries=2)", calls)
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
		s := newTestService(t, &fakeStore{ExecuteFn: failExecute(c.err), QueryFn: failQuery(c.err)})
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
	// newStore returns a store whose queries answer stored (copied, as the
	// store makes fresh results) and whose column tables are tables (or
	// err), and where it records the column counts asked for.
	newStore := func(stored []command.Result, tables [][]string, err error) (*fakeStore, *[]int) {
		var ncols []int
		return &fakeStore{
			QueryFn: func(context.Context, *command.Request, command.QueryOptions) ([]command.Result, uint64, error) {
				return append([]command.Result(nil), stored...), 0, nil
			},
			ColumnTablesFn: func(_ context.Context, _ *command.Request, n []int) ([][]string, error) {
				ncols = n
				return tables, err
			},
		}, &ncols
	}
	stored := res()
	st, gotNcols := newStore(stored, [][]string{{"foo", "bar", ""}}, nil)
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
	if len(*gotNcols) != 1 || (*gotNcols)[0] != 3 {
		t.Errorf("asked for column counts %v, want [3]", *gotNcols)
	}
	if c := strings.Join(stored[0].Columns, ","); c != "id,name,n" {
		t.Errorf("the store's own column names were changed to %s: later queries would see them", c)
	}

	st, gotNcols = newStore(res(), [][]string{{"foo", "bar", ""}}, nil)
	s = newTestService(t, st)
	w = do(s, "GET", "/db/query?q=SELECT+1", "")
	if !strings.Contains(w.Body.String(), `"columns":["id","name","n"]`) || *gotNcols != nil {
		t.Errorf("without qualify_columns: %s (tables asked: %v)", w.Body.String(), *gotNcols)
	}

	st, _ = newStore(res(), nil, errors.New("no metadata"))
	s = newTestService(t, st)
	w = do(s, "POST", "/db/request?qualify_columns", `["SELECT 1"]`)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"columns":["id","name","n"]`) {
		t.Errorf("tables unknown: %d %s, want the columns unqualified", w.Code, w.Body.String())
	}
}
