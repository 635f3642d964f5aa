package http

import (
	"encoding/json"
	"net/http"
)

// reapResponse is rqlite's answer to POST /reap.
type reapResponse struct {
	SnapshotsReaped  int `json:"snapshots_reaped"`
	WALsCheckpointed int `json:"wals_checkpointed"`
}

// handleReap serves POST /reap: remove this node's older snapshots now
// instead of at the next snapshot, as rqlite does.
func (s *Service) handleReap(w http.ResponseWriter, r *http.Request, p *params) {
	n, c, err := s.store.Reap()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	b, err := json.Marshal(reapResponse{SnapshotsReaped: n, WALsCheckpointed: c})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	// rqlite writes it with json.Encoder: one line, ending in a newline.
	writeJSON(w, nil, http.StatusOK, append(b, '\n'))
}
