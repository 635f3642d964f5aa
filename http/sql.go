package http

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/rqlited/rqlited/command"
)

// sqlResult is one statement of a /db/sql answer: rqlite shows how it
// rewrites non-deterministic SQL (RANDOM(), date('now')) before
// replicating it. rqlited replicates every statement as sent (SQLite's
// clock and random numbers are fixed while an entry is applied instead),
// so the statement that runs is the original.
type sqlResult struct {
	Original  string `json:"original"`
	Rewritten string `json:"rewritten,omitempty"`
	Error     string `json:"error,omitempty"`
}

type sqlResponse struct {
	Results []sqlResult `json:"results"`
	Time    float64     `json:"time,omitempty"`
}

// handleSQL serves /db/sql: GET ?q= or POST statements, as rqlite.
func (s *Service) handleSQL(w http.ResponseWriter, r *http.Request, p *params) {
	start := time.Now()
	var stmts []command.Statement
	if r.Method == http.MethodGet {
		q := p.v.Get("q")
		if q == "" {
			http.Error(w, "query not specified", http.StatusBadRequest)
			return
		}
		stmts = []command.Statement{{SQL: q}}
	} else {
		var err error
		if stmts, err = parseStatements(p.body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	resp := sqlResponse{Results: make([]sqlResult, len(stmts))}
	for i, st := range stmts {
		resp.Results[i] = sqlResult{Original: st.SQL, Rewritten: st.SQL}
	}
	if p.timings {
		resp.Time = time.Since(start).Seconds()
	}
	b, err := json.Marshal(resp)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, p, http.StatusOK, b)
}
