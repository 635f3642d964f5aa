package http

import (
	_ "embed"
	"net/http"
)

// licensesText holds the license of every module built into rqlited, the
// Go standard library's and SQLite's notice. It is generated from
// `go list -deps ./cmd/rqlited` and the license files in the module cache;
// regenerate it when go.mod changes.
//
//go:embed licenses.txt
var licensesText []byte

// handleLicenses serves GET /licenses as text, as rqlite does.
func (s *Service) handleLicenses(w http.ResponseWriter, r *http.Request, _ *params) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	w.Write(licensesText)
}
