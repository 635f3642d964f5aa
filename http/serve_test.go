package http

import (
	"context"
	"errors"
	"expvar"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// rqliteRoutes is the routing of rqlite's ServeHTTP, written out here
// rather than taken from the routes table, so that a change to the table
// shows up as a failure: for each route, paths it serves (the route's own,
// and, for a route matched by prefix, longer ones), the methods its
// handler serves ("*": any), the permissions it needs with -auth ("+"
// between several; "" none) and rqlite's "http" counter for it.
var rqliteRoutes = []struct {
	paths   []string
	methods string
	perms   string
	counter string
}{
	{[]string{"/"}, "*", "", ""},
	{[]string{"/console"}, "*", "", "ui"},
	// No path cleaning: /console/../status is the console's.
	{[]string{"/console/", "/console/index.html", "/consolex", "/console/../status"}, "GET,HEAD", "ui", "ui"},
	{[]string{"/db/execute", "/db/execute/", "/db/executex"}, "POST", "execute", "executions"},
	{[]string{"/db/query", "/db/query/x"}, "GET,POST", "query", "queries"},
	{[]string{"/db/request", "/db/request/"}, "POST", "execute+query", "requests"},
	{[]string{"/db/backup", "/db/backup/"}, "GET", "backup", "backups"},
	{[]string{"/db/load", "/db/load/"}, "POST", "load", "loads"},
	{[]string{"/db/sql", "/db/sql/"}, "GET,POST", "query", "sql_analyze"},
	{[]string{"/boot"}, "POST", "load", "boot"},
	{[]string{"/snapshot"}, "POST", "snapshot", "user_snapshots"},
	{[]string{"/reap"}, "POST", "snapshot", "user_reaps"},
	{[]string{"/remove", "/remove/"}, "DELETE", "remove", ""},
	{[]string{"/status", "/status/", "/statusz"}, "GET", "status", ""}, // handleStatus counts num_status
	{[]string{"/nodes", "/nodes/"}, "GET", "status", ""},
	{[]string{"/leader"}, "GET,POST", "leader-ops", ""},
	{[]string{"/readyz", "/readyz/", "/readyzz"}, "GET", "ready", "num_readyz"},
	{[]string{"/licenses"}, "GET", "status", ""},
	{[]string{"/debug/vars"}, "*", "status", ""},
	{[]string{"/debug/pprof", "/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprofx/"}, "*", "status", ""},
}

// unrouted are paths no route serves: exact routes with more after them,
// and paths rqlite does not have.
var unrouted = []string{
	"/boot/", "/snapshot/", "/reap/", "/reapx", "/leader/", "/licenses/", "/debug/vars/", "/debug/varsx",
	"/db", "/db/", "/dbx", "/foo", "/STATUS", "/join", "/notify", "/debug", "/debug/",
}

// routeMethods are the methods tried on every path (OPTIONS is answered
// before routing, see TestOptionsBeforeRouting).
var routeMethods = []string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"}

// bodyFor returns a body that the handler of path accepts.
func bodyFor(path string) string {
	switch {
	case strings.HasPrefix(path, "/remove"):
		return `{"id":"2"}`
	case strings.HasPrefix(path, "/leader"):
		return ""
	}
	return `["SELECT 1"]`
}

// serve sends a request with body and Basic credentials to s.
func serve(s *Service, method, target, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	r.SetBasicAuth("bob", "secret")
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

// newServiceWith returns a Service on st, with a as its -auth (nil: off).
// It is not started: requests go straight to ServeHTTP.
func newServiceWith(t *testing.T, st Store, a Authorizer) *Service {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	if a != nil {
		cfg.Auth = a
	}
	s, err := New(cfg, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startService starts s, for handlers that need its queue and listener
// (/status), and closes it when the test ends.
func startService(t *testing.T, s *Service) *Service {
	t.Helper()
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// TestRoutingMethods: every path of rqlite's matching rules, with every
// method: a path no route serves is 404 and a method the route does not
// serve is 405, both with an empty body; any other request reaches the
// handler. The same holds with -auth (the permission is checked first).
func TestRoutingMethods(t *testing.T) {
	for _, withAuth := range []bool{false, true} {
		var a Authorizer
		if withAuth {
			a = &fakeAuthorizer{}
		}
		s := startService(t, newServiceWith(t, &fakeStore{}, a))
		for _, m := range routeMethods {
			for _, rt := range rqliteRoutes {
				allowed := rt.methods == "*" || slices.Contains(strings.Split(rt.methods, ","), m)
				for _, path := range rt.paths {
					w := serve(s, m, path, bodyFor(path))
					empty := w.Body.Len() == 0
					switch {
					case !allowed && (w.Code != http.StatusMethodNotAllowed || !empty):
						t.Errorf("auth %v: %s %s: %d %.80q, want 405 and no body", withAuth, m, path, w.Code, w.Body.String())
					case allowed && (w.Code == http.StatusMethodNotAllowed || w.Code == http.StatusNotFound) && empty:
						t.Errorf("auth %v: %s %s: %d from the router, want the handler's answer", withAuth, m, path, w.Code)
					}
				}
			}
			for _, path := range unrouted {
				if w := serve(s, m, path, bodyFor(path)); w.Code != http.StatusNotFound || w.Body.Len() != 0 {
					t.Errorf("auth %v: %s %s: %d %.80q, want 404 and no body", withAuth, m, path, w.Code, w.Body.String())
				}
			}
		}
	}
}

// TestOptionsBeforeRouting: OPTIONS is 200 on any path, known or not, and
// asks for no permission (CORS preflights carry no credentials).
func TestOptionsBeforeRouting(t *testing.T) {
	a, asked := refuser(errors.New("denied"))
	s := newServiceWith(t, &fakeStore{}, a)
	for _, path := range []string{"/db/execute", "/status", "/foo", "/"} {
		if w := serve(s, "OPTIONS", path, ""); w.Code != http.StatusOK {
			t.Errorf("OPTIONS %s: %d, want 200", path, w.Code)
		}
	}
	if got := asked.all(); len(got) != 0 {
		t.Errorf("OPTIONS asked for %v, want nothing", got)
	}
}

// TestRoutePermissions: with -auth, each route asks for rqlite's
// permissions, on every path it serves and whatever the method (a refused
// caller learns nothing of which methods exist); a refusal is 401 with an
// empty body. A caller let in reaches the handler. / and the /console
// redirect ask nothing.
func TestRoutePermissions(t *testing.T) {
	for _, rt := range rqliteRoutes {
		for _, path := range rt.paths {
			for _, m := range []string{"GET", "POST", "DELETE"} {
				a, asked := refuser(errors.New("denied"))
				s := newServiceWith(t, &fakeStore{}, a)
				w := serve(s, m, path, bodyFor(path))
				var got []string
				for _, c := range asked.calls {
					got = append(got, strings.Join(c, "+"))
				}
				if rt.perms == "" {
					if len(got) != 0 || w.Code == http.StatusUnauthorized {
						t.Errorf("%s %s: asked %v, status %d; want no check", m, path, got, w.Code)
					}
					continue
				}
				if len(got) != 1 || got[0] != rt.perms || w.Code != http.StatusUnauthorized || w.Body.Len() != 0 {
					t.Errorf("%s %s: asked %v, status %d %q; want once %q, 401, no body", m, path, got, w.Code, w.Body.String(), rt.perms)
				}
			}
		}
	}
}

// TestRouteCounters: each request adds one to its route's counter in
// rqlite's "http" map, whether or not the caller is let in, and nothing to
// another route's; every permission check adds one to auth_ok or
// auth_fail (with or without -auth, as rqlite counts).
func TestRouteCounters(t *testing.T) {
	value := func(k string) int64 { return httpVars.Get(k).(*expvar.Int).Value() }
	snapshot := func() map[string]int64 {
		m := map[string]int64{}
		for _, k := range httpVarNames {
			m[k] = value(k)
		}
		return m
	}
	for _, refuse := range []bool{false, true} {
		var err error
		if refuse {
			err = errors.New("denied")
		}
		a, _ := refuser(err)
		s := startService(t, newServiceWith(t, &fakeStore{}, a))
		for _, rt := range rqliteRoutes {
			m := strings.Split(rt.methods, ",")[0]
			if m == "*" {
				m = "GET"
			}
			before := snapshot()
			serve(s, m, rt.paths[0], bodyFor(rt.paths[0]))
			want := map[string]int64{}
			if rt.counter != "" {
				want[rt.counter] = 1
			}
			if rt.paths[0] == "/status" && !refuse {
				want["num_status"] = 1 // counted by the handler, once served
			}
			if rt.perms != "" {
				if refuse {
					want["auth_fail"] = 1
				} else {
					want["auth_ok"] = 1
				}
			}
			for k, v := range snapshot() {
				if d := v - before[k]; d != want[k] {
					t.Errorf("refuse %v: %s %s: %s went up by %d, want %d", refuse, m, rt.paths[0], k, d, want[k])
				}
			}
		}
	}
}

// readSpy is a request body that records whether anything read it.
type readSpy struct {
	r    io.Reader
	read bool
}

func (b *readSpy) Read(p []byte) (int, error) {
	b.read = true
	return b.r.Read(p)
}

// throttledErr is a refusal of a caller that failed to log in too often.
type throttledErr struct{ wait time.Duration }

func (e throttledErr) Error() string             { return "too many failed logins" }
func (e throttledErr) RetryAfter() time.Duration { return e.wait }

// TestRefusedBeforeBody: a POST or DELETE to a route that takes a body
// (read up front or streamed) is refused before any of the body is read,
// even one declared larger than the limit (401 or 429, not 413), and the
// connection is closed after the answer, as the body is left unread.
func TestRefusedBeforeBody(t *testing.T) {
	for _, c := range []struct{ method, path string }{
		{"POST", "/db/execute"}, {"POST", "/db/query"}, {"POST", "/db/request"}, {"POST", "/db/sql"},
		{"POST", "/db/load"}, {"POST", "/boot"}, {"DELETE", "/remove"}, {"POST", "/leader"},
		{"DELETE", "/db/execute"}, // 405 once read; refused first all the same
	} {
		for _, refusal := range []error{errors.New("denied"), throttledErr{3 * time.Second}} {
			a, asked := refuser(refusal)
			s := newServiceWith(t, &fakeStore{}, a)
			body := &readSpy{r: strings.NewReader(`["SELECT 1"]`)}
			r := httptest.NewRequest(c.method, c.path, body)
			r.ContentLength = s.cfg.MaxBodyBytes + 1
			r.SetBasicAuth("bob", "wrong")
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			want := http.StatusUnauthorized
			if _, ok := refusal.(throttledErr); ok {
				want = http.StatusTooManyRequests
			}
			name := c.method + " " + c.path + " refused with " + refusal.Error()
			if w.Code != want || body.read || w.Header().Get("Connection") != "close" {
				t.Errorf("%s: %d, body read %v, Connection %q; want %d, unread, close",
					name, w.Code, body.read, w.Header().Get("Connection"), want)
			}
			if len(asked.calls) != 1 {
				t.Errorf("%s: asked %d times, want once", name, len(asked.calls))
			}
		}
	}
}

// TestThrottledRetryAfter: a throttled refusal is 429 with its text and
// Retry-After in whole seconds, rounded up and at least 1, on a route with
// a body and on one without; another refusal is 401 with no Retry-After.
func TestThrottledRetryAfter(t *testing.T) {
	for _, c := range []struct {
		err        error
		status     int
		retryAfter string
	}{
		{throttledErr{4 * time.Second}, http.StatusTooManyRequests, "4"},
		{throttledErr{1500 * time.Millisecond}, http.StatusTooManyRequests, "2"},
		{throttledErr{10 * time.Millisecond}, http.StatusTooManyRequests, "1"},
		{throttledErr{0}, http.StatusTooManyRequests, "1"},
		{errors.Join(errors.New("wrapped"), throttledErr{2 * time.Second}), http.StatusTooManyRequests, "2"},
		{errors.New("denied"), http.StatusUnauthorized, ""},
	} {
		a, _ := refuser(c.err)
		s := newServiceWith(t, &fakeStore{}, a)
		for _, req := range [][2]string{{"POST", "/db/execute"}, {"GET", "/status"}, {"GET", "/console/"}} {
			w := serve(s, req[0], req[1], `["SELECT 1"]`)
			name := req[0] + " " + req[1] + " refused with " + c.err.Error()
			if w.Code != c.status || w.Header().Get("Retry-After") != c.retryAfter {
				t.Errorf("%s: %d Retry-After %q, want %d %q", name, w.Code, w.Header().Get("Retry-After"), c.status, c.retryAfter)
			}
			if c.status == http.StatusTooManyRequests && strings.TrimSpace(w.Body.String()) != c.err.Error() {
				t.Errorf("%s: body %q, want the refusal's text", name, w.Body.String())
			}
		}
	}
}

// TestAuthBeforeMethod: the permission is checked before the method, so a
// refused caller gets 401 where a caller let in gets 405.
func TestAuthBeforeMethod(t *testing.T) {
	for _, c := range []struct {
		refuse bool
		status int
	}{{true, http.StatusUnauthorized}, {false, http.StatusMethodNotAllowed}} {
		var err error
		if c.refuse {
			err = errors.New("denied")
		}
		a, _ := refuser(err)
		s := newServiceWith(t, &fakeStore{}, a)
		for _, req := range [][2]string{{"GET", "/db/execute"}, {"PUT", "/db/execute"}, {"POST", "/status"}, {"POST", "/console/"}} {
			if w := serve(s, req[0], req[1], ""); w.Code != c.status {
				t.Errorf("refuse %v: %s %s: %d, want %d", c.refuse, req[0], req[1], w.Code, c.status)
			}
		}
	}
}

// TestRedirectsWithoutPermission: / and /console redirect to /console/
// with any method and without asking for a permission, even of a caller
// who would be refused.
func TestRedirectsWithoutPermission(t *testing.T) {
	a, asked := refuser(errors.New("denied"))
	s := newServiceWith(t, &fakeStore{}, a)
	for _, c := range []struct {
		path   string
		status int
	}{{"/", http.StatusFound}, {"/console", http.StatusMovedPermanently}} {
		for _, m := range routeMethods {
			w := serve(s, m, c.path, "")
			if w.Code != c.status || w.Header().Get("Location") != "/console/" {
				t.Errorf("%s %s: %d to %q, want %d to /console/", m, c.path, w.Code, w.Header().Get("Location"), c.status)
			}
		}
	}
	if got := asked.all(); len(got) != 0 {
		t.Errorf("asked for %v, want nothing", got)
	}
}
