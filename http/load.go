package http

import (
	"net/http"
	"strings"
	"time"

	"github.com/rqlited/rqlited/command"
)

// streamedBody names the paths whose handlers read the request body
// themselves, as a stream: ServeHTTP neither reads nor bounds it.
var streamedBody = map[string]bool{"/boot": true}

// dumpWrapper lines are those of a .dump that rqlited supplies itself when
// it runs a dump as one transaction.
var dumpWrapper = map[string]bool{"BEGIN TRANSACTION;": true, "BEGIN;": true, "COMMIT;": true, "END;": true}

func (s *Service) handleLoad(w http.ResponseWriter, r *http.Request, p *params) {
	if !allow(w, r, http.MethodPost) {
		return
	}
	start := time.Now()
	body := p.body
	if len(body) >= 16 && string(body[:16]) == "SQLite format 3\x00" {
		idx, err := s.store.Load(r.Context(), body)
		if err != nil {
			s.writeStoreError(w, r, p, err)
			return
		}
		s.writeResults(w, p, start, nil, idx, false)
		return
	}
	var sql strings.Builder
	for _, line := range strings.SplitAfter(string(body), "\n") {
		if dumpWrapper[strings.ToUpper(strings.TrimSpace(line))] {
			continue
		}
		sql.WriteString(line)
	}
	if strings.TrimSpace(sql.String()) == "" {
		http.Error(w, "load body is neither a SQLite database nor SQL text", http.StatusBadRequest)
		return
	}
	req := &command.Request{Statements: []command.Statement{{SQL: sql.String()}}, Transaction: true}
	res, idx, err := s.store.Execute(r.Context(), req)
	if err != nil {
		s.writeStoreError(w, r, p, err)
		return
	}
	s.writeResults(w, p, start, res, idx, false)
}
