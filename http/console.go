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

// redirectConsole sends /console to /console/ (301, any method, no
// permission), as rqlite does.
func (s *Service) redirectConsole(w http.ResponseWriter, r *http.Request, _ *params) {
	http.Redirect(w, r, "/console/", http.StatusMovedPermanently)
}

// handleConsole serves the pages under /console/ (GET and HEAD,
// permission ui: see routes).
func (s *Service) handleConsole(w http.ResponseWriter, r *http.Request, _ *params) {
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
