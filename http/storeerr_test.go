package http

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/rqlited/rqlited/command"
)

// errNotOpen stands for the store's "store not open" (store.ErrNotOpen),
// which http knows only by its text.
var errNotOpen = errors.New("store not open")

// failingAt returns a store whose every call that can fail on the routes
// of storeErrorRoutes fails with err.
func failingAt(err error) *fakeStore {
	return &fakeStore{
		ExecuteFn: failExecute(err),
		QueryFn:   failQuery(err),
		BackupFn:  func(context.Context, io.Writer, command.BackupOptions) error { return err },
		SnapshotFn: func(uint64) error {
			return err
		},
		RemoveFn:   func(string) error { return err },
		StepdownFn: func(string) error { return err },
	}
}

// storeErrorRoutes answer a store error with writeStoreError.
var storeErrorRoutes = [][3]string{
	{"GET", "/db/backup", ""},
	{"POST", "/snapshot", ""},
	{"DELETE", "/remove", `{"id":"2"}`},
	{"POST", "/leader", `{"id":"2"}`},
}

// dbErrorRoutes answer a store error with writeDBError.
var dbErrorRoutes = [][3]string{
	{"POST", "/db/execute", `["INSERT INTO t VALUES(1)"]`},
	{"GET", "/db/query?q=SELECT+1", ""},
	{"POST", "/db/query", `["SELECT 1"]`},
	{"POST", "/db/request", `["SELECT 1"]`},
}

// TestStoreErrorStatus pins writeStoreError: how an error of the store is
// answered on the routes that are not /db/execute, /db/query or
// /db/request (status and body, as rqlite answers them).
func TestStoreErrorStatus(t *testing.T) {
	for _, c := range []struct {
		err    error
		status int
		body   string
	}{
		{command.ErrNodeNotFound, http.StatusNotFound, "node not found\n"},
		{command.ErrDisallowedPragma, http.StatusOK, `{"results":[],"error":"disallowed pragma"}`},
		{command.ErrStaleRead, http.StatusOK, `{"results":[],"error":"stale read"}`},
		{command.ErrNotSQLite, http.StatusBadRequest, "invalid SQLite data\n"},
		{context.DeadlineExceeded, http.StatusServiceUnavailable, "context deadline exceeded\n"},
		{command.ErrTimeout, http.StatusServiceUnavailable, "timeout\n"},
		{fmt.Errorf("stepdown: %w", command.ErrTimeout), http.StatusServiceUnavailable, "stepdown: timeout\n"},
		{command.ErrLeadershipLost, http.StatusServiceUnavailable, command.ErrLeadershipLost.Error() + "\n"},
		{errNotOpen, http.StatusInternalServerError, "store not open\n"},
		{errors.New("disk full"), http.StatusInternalServerError, "disk full\n"},
	} {
		s := newServiceWith(t, failingAt(c.err), nil)
		for _, req := range storeErrorRoutes {
			w := do(s, req[0], req[1], req[2])
			if w.Code != c.status || w.Body.String() != c.body {
				t.Errorf("%s %s failing with %q: %d %q, want %d %q", req[0], req[1], c.err, w.Code, w.Body.String(), c.status, c.body)
			}
		}
	}
}

// TestDBErrorStatus pins writeDBError: on /db/execute, /db/query and
// /db/request every error but "not leader" is a 200 JSON body, as rqlite
// answers them; a lost leadership has hashicorp/raft's text.
func TestDBErrorStatus(t *testing.T) {
	for _, c := range []struct {
		err  error
		body string
	}{
		{errNotOpen, `{"results":[],"error":"store not open"}`},
		{command.ErrLeadershipLost, `{"results":[],"error":"leadership lost while committing log"}`},
		{fmt.Errorf("apply: %w", command.ErrLeadershipLost), `{"results":[],"error":"leadership lost while committing log"}`},
		{command.ErrStaleRead, `{"results":[],"error":"stale read"}`},
		{command.ErrTimeout, `{"results":[],"error":"timeout"}`},
		{context.DeadlineExceeded, `{"results":[],"error":"context deadline exceeded"}`},
		{command.ErrNodeNotFound, `{"results":[],"error":"node not found"}`},
	} {
		s := newServiceWith(t, failingAt(c.err), nil)
		for _, req := range dbErrorRoutes {
			w := do(s, req[0], req[1], req[2])
			if w.Code != http.StatusOK || w.Body.String() != c.body || w.Header().Get("Content-Type") != "application/json; charset=utf-8" {
				t.Errorf("%s %s failing with %q: %d %q (%s), want 200 %q", req[0], req[1], c.err, w.Code, w.Body.String(), w.Header().Get("Content-Type"), c.body)
			}
		}
	}
}

// TestOtherStoreErrorStatus pins the handlers that map store errors
// themselves.
func TestOtherStoreErrorStatus(t *testing.T) {
	for _, c := range []struct {
		name, method, target string
		st                   *fakeStore
		status               int
		body                 string
	}{
		{"nodes, store not open", "GET", "/nodes", &fakeStore{ServersFn: func() ([]command.Server, error) { return nil, errNotOpen }},
			http.StatusServiceUnavailable, "store nodes: store not open\n"},
		{"nodes, other", "GET", "/nodes", &fakeStore{ServersFn: func() ([]command.Server, error) { return nil, errors.New("boom") }},
			http.StatusInternalServerError, "store nodes: boom\n"},
		{"status", "GET", "/status", &fakeStore{StatsFn: func() (map[string]any, error) { return nil, errNotOpen }},
			http.StatusInternalServerError, "store stats: store not open\n"},
		{"reap", "POST", "/reap", &fakeStore{ReapFn: func() (int, int, error) { return 0, 0, errNotOpen }},
			http.StatusInternalServerError, "store not open\n"},
		{"snapshot, nothing new", "POST", "/snapshot", &fakeStore{SnapshotFn: func(uint64) error { return command.ErrNothingNew }},
			http.StatusNoContent, ""},
		{"leader, none", "GET", "/leader", &fakeStore{LeaderFn: noLeader}, http.StatusServiceUnavailable, "leader not found\n"},
		{"boot, store cannot", "POST", "/boot", &fakeStore{}, http.StatusNotImplemented, "boot is not supported by this store\n"},
	} {
		s := newServiceWith(t, c.st, nil)
		w := do(s, c.method, c.target, "")
		if w.Code != c.status || w.Body.String() != c.body {
			t.Errorf("%s: %d %q, want %d %q", c.name, w.Code, w.Body.String(), c.status, c.body)
		}
	}
}

// leaderAPI is the HTTP API of the leader a follower forwards to: it
// records the requests it gets and answers 200 with a fixed body.
type leaderAPI struct {
	mu   sync.Mutex
	reqs []string // method, URI, body and the headers forwarding sets
	srv  *httptest.Server
}

func newLeaderAPI(t *testing.T) *leaderAPI {
	l := &leaderAPI{}
	l.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		l.mu.Lock()
		l.reqs = append(l.reqs, fmt.Sprintf("%s %s %s ct=%q auth=%t by=%s", r.Method, r.RequestURI, b,
			r.Header.Get("Content-Type"), r.Header.Get("Authorization") != "", r.Header.Get(forwardedHeader)))
		l.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"from":"leader"}`)
	}))
	t.Cleanup(l.srv.Close)
	return l
}

// follower returns a fakeStore that is a follower of leader L at
// "l:4002", failing every call with not leader, and a cluster client that
// gives apiURL as L's API URL ("" for a call that fails).
func follower(apiURL string) (*fakeStore, *fakeCluster) {
	st := failingAt(command.ErrNotLeader)
	st.LeaderFn = leaderAt("L", "l:4002")
	st.ServersFn = func() ([]command.Server, error) {
		return []command.Server{{ID: fakeID, Addr: fakeAddr, Voter: true}, {ID: "L", Addr: "l:4002", Voter: true}}, nil
	}
	cl := &fakeCluster{MemberAPIURLFn: func(_ context.Context, id, addr string) (string, error) {
		if apiURL == "" || id != "L" || addr != "l:4002" {
			return "", errors.New("nothing answers")
		}
		return apiURL, nil
	}}
	return st, cl
}

// TestNotLeaderForwards: a "not leader" from the store, on any route that
// can get one, sends the request on to the leader, method, path, query
// and body, with the caller's credentials, and relays its answer.
func TestNotLeaderForwards(t *testing.T) {
	leader := newLeaderAPI(t)
	st, cl := follower(leader.srv.URL)
	s := newServiceWith(t, st, nil)
	s.SetCluster(cl)
	for _, req := range append(append([][3]string{}, dbErrorRoutes...), storeErrorRoutes...) {
		leader.mu.Lock()
		leader.reqs = nil
		leader.mu.Unlock()
		w := serve(s, req[0], req[1], req[2])
		if w.Code != http.StatusAccepted || w.Body.String() != `{"from":"leader"}` || w.Header().Get("X-RQLITE-SERVED-BY") != "l:4002" {
			t.Errorf("%s %s: %d %q served by %q, want the leader's answer", req[0], req[1], w.Code, w.Body.String(), w.Header().Get("X-RQLITE-SERVED-BY"))
		}
		want := fmt.Sprintf("%s %s %s ct=%q auth=true by=%s", req[0], req[1], req[2], "", fakeID)
		if leader.reqs == nil || leader.reqs[0] != want {
			t.Errorf("%s %s: the leader got %q, want %q", req[0], req[1], leader.reqs, want)
		}
	}
}

// TestNotLeaderWithoutLeader: a "not leader" that cannot be forwarded is
// 503 "leader not found" (500 with ?redirect, as rqlite cannot form the
// Location), a request forwarded already is not forwarded again, and
// ?redirect sends the caller to the leader.
func TestNotLeaderWithoutLeader(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	for _, c := range []struct {
		name, apiURL, target string
		forwarded            bool
		status               int
		body, location       string
	}{
		{"API URL unknown", "", "/db/execute", false, 503, "leader not found\n", ""},
		{"API URL unknown, redirect", "", "/db/execute?redirect", false, 500, "leader not found\n", ""},
		{"forwarded already", "http://l:4001", "/db/execute", true, 503, "leader not found\n", ""},
		{"redirect", "http://l:4001", "/db/execute?redirect&timings", false, 301, "", "http://l:4001/db/execute?redirect&timings"},
		{"leader down", dead.URL, "/db/execute", false, 503, "leader not found: forwarding to l:4002 failed: ", ""},
	} {
		st, cl := follower(c.apiURL)
		s := newServiceWith(t, st, nil)
		s.SetCluster(cl)
		r := httptest.NewRequest("POST", c.target, strings.NewReader(`["INSERT INTO t VALUES(1)"]`))
		if c.forwarded {
			r.Header.Set(forwardedHeader, "F")
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code != c.status || !strings.HasPrefix(w.Body.String(), c.body) {
			t.Errorf("%s: %d %q, want %d %q", c.name, w.Code, w.Body.String(), c.status, c.body)
		}
		if loc := w.Header().Get("Location"); loc != c.location {
			t.Errorf("%s: Location %q, want %q", c.name, loc, c.location)
		}
	}
}

// TestNoLeaderWaits: with no leader at all, a "not leader" waits for an
// election (leaderWait), then is 503 "leader not found".
func TestNoLeaderWaits(t *testing.T) {
	st := failingAt(command.ErrNotLeader)
	st.LeaderFn = noLeader
	s := newServiceWith(t, st, nil)
	if w := do(s, "POST", "/snapshot", ""); w.Code != http.StatusServiceUnavailable || w.Body.String() != "leader not found\n" {
		t.Fatalf("%d %q, want 503 leader not found", w.Code, w.Body.String())
	}
}

// TestLeadershipMovedHere: a "not leader" on a node that has become the
// leader while the request waited is served again here, once, through the
// route (counted and checked again).
func TestLeadershipMovedHere(t *testing.T) {
	calls := 0
	st := &fakeStore{ExecuteFn: func(context.Context, *command.Request) ([]command.Result, uint64, error) {
		if calls++; calls == 1 {
			return nil, 0, command.ErrNotLeader
		}
		return []command.Result{{RowsAffected: 1}}, 2, nil
	}}
	a, asked := refuser(nil)
	s := newServiceWith(t, st, a)
	w := serve(s, "POST", "/db/execute", `["INSERT INTO t VALUES(1)"]`)
	if w.Code != http.StatusOK || w.Body.String() != `{"results":[{"rows_affected":1}]}` || calls != 2 {
		t.Errorf("%d %q after %d calls, want 200 and the second call's result", w.Code, w.Body.String(), calls)
	}
	if got := strings.Join(asked.all(), ","); got != "execute,execute,execute" {
		t.Errorf("asked %s, want execute three times (before the body, then at each routing)", got)
	}
}
