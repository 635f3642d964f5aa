package http

import "net/http"

// handleBoot serves /boot (rqlite's: load a SQLite file straight into a
// single-node cluster, bypassing the log).
func (s *Service) handleBoot(w http.ResponseWriter, r *http.Request, p *params) {
	w.WriteHeader(http.StatusNotImplemented)
}
