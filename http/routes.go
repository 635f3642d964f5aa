package http

import (
	"net/http"
	"net/http/pprof"
	"strings"
)

// routePerms names the permissions each route (see routeKey) needs when
// -auth is on; a caller needs all of them. "/" needs none, nor does the
// redirect of "/console" to "/console/", as in rqlite.
var routePerms = map[string][]string{
	"/db/execute": {"execute"}, "/db/query": {"query"}, "/db/request": {"execute", "query"},
	"/db/load": {"load"}, "/db/backup": {"backup"}, "/db/sql": {"query"},
	"/snapshot": {"snapshot"}, "/reap": {"snapshot"},
	"/status": {"status"}, "/nodes": {"status"}, "/leader": {"leader-ops"},
	"/readyz": {"ready"}, "/remove": {"remove"},
	"/boot": {"load"}, "/debug/vars": {"status"}, "/licenses": {"status"},
	"/debug/pprof": {"status"}, "/console": {"ui"},
}

// bodyRoutes are the routes whose POST or DELETE bodies are read (or, for
// streamedBody routes, admitted) before the handler runs, so that a
// forwarded request can send them again. Other routes ignore a body.
var bodyRoutes = map[string]bool{
	"/db/execute": true, "/db/query": true, "/db/request": true, "/db/load": true,
	"/db/sql": true, "/remove": true, "/leader": true, "/boot": true,
}

// routeGroup is a run of routes rqlite's ServeHTTP tries in turn, either
// by prefix (so /db/execute/ and /statusz reach /db/execute and /status)
// or by the whole path.
type routeGroup struct {
	keys   []string
	prefix bool
}

// routeOrder is rqlite's order: the first match wins.
var routeOrder = []routeGroup{
	{[]string{"/console", "/db/execute", "/db/query", "/db/request", "/db/backup", "/db/load", "/db/sql"}, true},
	{[]string{"/boot", "/snapshot", "/reap"}, false},
	{[]string{"/remove", "/status", "/nodes"}, true},
	{[]string{"/leader"}, false},
	{[]string{"/readyz"}, true},
	{[]string{"/licenses", "/debug/vars"}, false},
	{[]string{"/debug/pprof"}, true},
}

// routeKey returns the route that serves path, matched as rqlite matches
// it, or "" for none (404).
func routeKey(path string) string {
	if path == "/" || path == "" {
		return "/"
	}
	for _, g := range routeOrder {
		for _, k := range g.keys {
			if path == k || g.prefix && strings.HasPrefix(path, k) {
				return k
			}
		}
	}
	return ""
}

// route dispatches a request to the handler of its route (key, from
// routeKey), after checking the caller's permissions.
func (s *Service) route(w http.ResponseWriter, r *http.Request, p *params, key string) {
	h, ok := s.routes[key]
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	countRoute(key)
	if perms := routePerms[key]; len(perms) > 0 && r.URL.Path != "/console" {
		err := s.authorize(r, perms)
		countAuth(err)
		if err != nil {
			refuse(w, err)
			return
		}
	}
	h(w, r, p)
}

// handlePprof serves Go's profiles under /debug/pprof.
func (s *Service) handlePprof(w http.ResponseWriter, r *http.Request, _ *params) {
	switch r.URL.Path {
	case "/debug/pprof/cmdline":
		pprof.Cmdline(w, r)
	case "/debug/pprof/profile":
		pprof.Profile(w, r)
	case "/debug/pprof/symbol":
		pprof.Symbol(w, r)
	case "/debug/pprof/trace":
		pprof.Trace(w, r)
	default:
		pprof.Index(w, r)
	}
}
