package http

import (
	"expvar"
	"fmt"
	"net/http"
	"strings"
)

// Counters published at /debug/vars under rqlite's names. expvar's registry
// is process-wide, so the maps are created once, here, and every Service in
// the process adds to them (rqlite's are package-level too).
var (
	httpVars = newVarMap("http", httpVarNames)
	// Requests forwarded to the leader (forward.go does not count yet).
	_ = newVarMap("proxy", []string{
		"remote_remove_node", "remote_backups", "remote_loads", "remote_stepdowns",
		"remote_executions", "remote_executions_failed", "remote_queries", "remote_queries_failed",
		"remote_requests", "remote_requests_failed",
	})
	// Maps of rqlite subsystems rqlited has no counterpart of yet (or whose
	// package does not count): published with rqlite's keys at 0, so
	// dashboards that read them keep working.
	_ = newVarMap("queue", []string{"objects_rx", "objects_tx", "num_timeout", "num_flush"})
	_ = newVarMap("mux", []string{"num_connections_handled", "num_unregistered_handlers"})
	_ = newVarMap("uploader", []string{
		"num_uploads_ok", "num_uploads_fail", "num_uploads_skipped", "num_uploads_skipped_id",
		"num_sum_get_fail", "total_upload_bytes", "last_upload_bytes",
	})
	_ = newVarMap("downloader", []string{"num_downloads_ok", "num_downloads_fail", "download_bytes"})
)

// httpVarNames are the keys of rqlite's "http" map.
var httpVarNames = []string{
	"leader_not_found", "ui", "executions", "execute_stmts_rx", "queued_executions",
	"queued_executions_ok", "queued_executions_num_stmts_rx", "queued_executions_num_stmts_tx",
	"queued_executions_no_leader", "queued_executions_not_leader", "queued_executions_leadership_lost",
	"queued_executions_unknown_error", "queued_executions_failed", "queued_executions_wait",
	"queued_executions_wait_timeout", "queries", "query_stmts_rx", "requests", "request_stmts_rx",
	"num_readyz", "num_status", "backups", "loads", "boot", "user_snapshots", "user_reaps",
	"sql_analyze", "auth_ok", "auth_fail", "tls_cert_fetched", "kv_requests", "kv_puts", "kv_gets",
	"kv_deletes", "kv_not_found",
}

// newVarMap publishes a map named name with every key at 0.
func newVarMap(name string, keys []string) *expvar.Map {
	m := expvar.NewMap(name)
	for _, k := range keys {
		m.Add(k, 0)
	}
	return m
}

// countRoute counts a request to rt in its counter (see route.counter).
// The router calls it once per request, before the permission check.
func countRoute(rt *route) {
	if rt.counter != "" {
		httpVars.Add(rt.counter, 1)
	}
}

// countAuth counts a permission check: rqlite counts every check, passed
// (auth_ok) or refused (auth_fail), with or without -auth.
func countAuth(err error) {
	if err != nil {
		httpVars.Add("auth_fail", 1)
		return
	}
	httpVars.Add("auth_ok", 1)
}

// handleVars serves /debug/vars: every published expvar (Go's cmdline and
// memstats, and the counters above and in the store and cluster packages),
// as rqlite writes it. ?key=name keeps only the top-level variable name;
// an unknown name gives an empty object.
func (s *Service) handleVars(w http.ResponseWriter, r *http.Request, p *params) {
	w.Header()["Content-Type"] = jsonContentType
	key := p.v.Get("key")
	var b strings.Builder
	b.WriteString("{\n")
	first := true
	expvar.Do(func(kv expvar.KeyValue) {
		if key != "" && kv.Key != key {
			return
		}
		if !first {
			b.WriteString(",\n")
		}
		first = false
		fmt.Fprintf(&b, "%q: %s", kv.Key, kv.Value)
	})
	b.WriteString("\n}\n")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write([]byte(b.String()))
	}
}
