package http

import "net/http"

// handleVars serves /debug/vars (expvar, with rqlite's counters).
func (s *Service) handleVars(w http.ResponseWriter, r *http.Request, p *params) {
	w.WriteHeader(http.StatusNotImplemented)
}
