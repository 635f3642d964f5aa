package http

import (
	_ "embed"
	"net/http"
)

// consolePage stands in for rqlite's web console until rqlited has one.
//
//go:embed console.html
var consolePage []byte

// handleRoot sends / to the console, as rqlite does (302, any method).
func (s *Service) handleRoot(w http.ResponseWriter, r *http.Request, _ *params) {
	http.Redirect(w, r, "/console/", http.StatusFound)
}

// handleConsole serves /console (301 to /console/) and the pages under
// /console/ (GET and HEAD, permission ui).
func (s *Service) handleConsole(w http.ResponseWriter, r *http.Request, _ *params) {
	if r.URL.Path == "/console" {
		http.Redirect(w, r, "/console/", http.StatusMovedPermanently)
		return
	}
	if !allow(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	switch r.URL.Path {
	case "/console/":
	case "/console/index.html":
		// As a file server does: the directory is the page's address.
		http.Redirect(w, r, "./", http.StatusMovedPermanently)
		return
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(consolePage)
	}
}
