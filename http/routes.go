package http

import (
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/rqlited/rqlited/auth"
)

// match says how a route's path is compared with a request's.
type match uint8

const (
	// exact matches the whole path only.
	exact match = iota
	// prefix matches any path that starts with the route's, as rqlite's
	// ServeHTTP does for some routes (so /db/execute/ and /statusz reach
	// /db/execute and /status).
	prefix
)

// bodyMode says what ServeHTTP does with the body of a POST or DELETE
// before the handler runs (other methods' bodies are never read up front).
type bodyMode uint8

const (
	// bodyIgnored leaves the body alone: the route's handlers need none.
	bodyIgnored bodyMode = iota
	// bodyRead reads the whole body (bounded by -http-max-body and the
	// body budget) into params.body, so that a request forwarded to the
	// leader can send it again.
	bodyRead
	// bodyStreamed only refuses callers without the permission; the
	// handler reads r.Body itself, as a stream (load.go, boot.go).
	bodyStreamed
)

// route is everything the router knows of one route.
type route struct {
	path  string
	match match
	// methods are those the handler serves; others get 405 with an empty
	// body, after the permission check (as rqlite). nil means any method.
	methods []string
	// perms are the permissions a caller needs, all of them, with -auth;
	// nil means none.
	perms []string
	body  bodyMode
	// counter is rqlite's "http" expvar counter that every request to the
	// route adds one to, before the permission check; "" for none.
	counter string
	handle  func(*Service, http.ResponseWriter, *http.Request, *params)
}

// allows reports whether the route serves method.
func (rt *route) allows(method string) bool {
	if rt.methods == nil {
		return true
	}
	for _, m := range rt.methods {
		if m == method {
			return true
		}
	}
	return false
}

// The method sets of the routes.
var (
	getOnly    = []string{http.MethodGet}
	postOnly   = []string{http.MethodPost}
	getOrPost  = []string{http.MethodGet, http.MethodPost}
	getOrHead  = []string{http.MethodGet, http.MethodHead}
	deleteOnly = []string{http.MethodDelete}
)

// routes is every route, in rqlite's order: the first that matches a path
// serves it, and a path none matches is 404. It is filled by init, as the
// handlers refer to it (through forward) and a variable initialised with
// them would be an initialisation cycle.
var routes []route

func init() {
	routes = []route{
		// "/" sends the caller to the console; neither it nor the bare
		// /console redirect needs a permission, as in rqlite.
		{path: "/", match: exact, handle: (*Service).handleRoot},
		{path: "/console", match: exact, counter: "ui", handle: (*Service).redirectConsole},
		{path: "/console", match: prefix, methods: getOrHead, perms: []string{auth.PermUI},
			counter: "ui", handle: (*Service).handleConsole},
		{path: "/db/execute", match: prefix, methods: postOnly, perms: []string{auth.PermExecute},
			body: bodyRead, counter: "executions", handle: (*Service).handleExecute},
		{path: "/db/query", match: prefix, methods: getOrPost, perms: []string{auth.PermQuery},
			body: bodyRead, counter: "queries", handle: (*Service).handleQuery},
		{path: "/db/request", match: prefix, methods: postOnly, perms: []string{auth.PermExecute, auth.PermQuery},
			body: bodyRead, counter: "requests", handle: (*Service).handleRequest},
		{path: "/db/backup", match: prefix, methods: getOnly, perms: []string{auth.PermBackup},
			counter: "backups", handle: (*Service).handleBackup},
		{path: "/db/load", match: prefix, methods: postOnly, perms: []string{auth.PermLoad},
			body: bodyStreamed, counter: "loads", handle: (*Service).handleLoad},
		{path: "/db/sql", match: prefix, methods: getOrPost, perms: []string{auth.PermQuery},
			body: bodyRead, counter: "sql_analyze", handle: (*Service).handleSQL},
		{path: "/boot", match: exact, methods: postOnly, perms: []string{auth.PermLoad},
			body: bodyStreamed, counter: "boot", handle: (*Service).handleBoot},
		{path: "/snapshot", match: exact, methods: postOnly, perms: []string{auth.PermSnapshot},
			counter: "user_snapshots", handle: (*Service).handleSnapshot},
		{path: "/reap", match: exact, methods: postOnly, perms: []string{auth.PermSnapshot},
			counter: "user_reaps", handle: (*Service).handleReap},
		// rqlite does not count /remove, /nodes and /leader; /status counts
		// num_status itself, once served (handleStatus).
		{path: "/remove", match: prefix, methods: deleteOnly, perms: []string{auth.PermRemove},
			body: bodyRead, handle: (*Service).handleRemove},
		{path: "/status", match: prefix, methods: getOnly, perms: []string{auth.PermStatus},
			handle: (*Service).handleStatus},
		{path: "/nodes", match: prefix, methods: getOnly, perms: []string{auth.PermStatus},
			handle: (*Service).handleNodes},
		{path: "/leader", match: exact, methods: getOrPost, perms: []string{auth.PermLeaderOps},
			body: bodyRead, handle: (*Service).handleLeader},
		{path: "/readyz", match: prefix, methods: getOnly, perms: []string{auth.PermReady},
			counter: "num_readyz", handle: (*Service).handleReadyz},
		{path: "/licenses", match: exact, methods: getOnly, perms: []string{auth.PermStatus},
			handle: (*Service).handleLicenses},
		{path: "/debug/vars", match: exact, perms: []string{auth.PermStatus}, handle: (*Service).handleVars},
		{path: "/debug/pprof", match: prefix, perms: []string{auth.PermStatus}, handle: (*Service).handlePprof},
	}
}

// lookupRoute returns the route that serves path, matched as rqlite
// matches it, or nil for none (404).
func lookupRoute(path string) *route {
	if path == "" {
		path = "/" // a request line with an absolute URL and no path
	}
	for i := range routes {
		rt := &routes[i]
		if path == rt.path || rt.match == prefix && strings.HasPrefix(path, rt.path) {
			return rt
		}
	}
	return nil
}

// route dispatches a request to the handler of rt (from lookupRoute; nil
// is 404), after counting it and checking the caller's permissions, and
// its method.
func (s *Service) route(w http.ResponseWriter, r *http.Request, p *params, rt *route) {
	if rt == nil {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	countRoute(rt)
	if len(rt.perms) > 0 {
		err := s.authorize(r, rt.perms)
		countAuth(err)
		if err != nil {
			refuse(w, err)
			return
		}
	}
	if !rt.allows(r.Method) {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	rt.handle(s, w, r, p)
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
