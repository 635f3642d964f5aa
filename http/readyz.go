package http

import (
	"net/http"
	"strings"
)

func (s *Service) handleReadyz(w http.ResponseWriter, r *http.Request, p *params) {
	if !allow(w, r, http.MethodGet) {
		return
	}
	var b strings.Builder
	b.WriteString("[+]node ok")
	status := http.StatusOK
	if !p.noLeader {
		if _, addr := s.store.Leader(); addr == "" {
			b.WriteString("\n[+]leader does not exist")
			if s.explain != nil {
				if why := s.explain(); why != "" {
					b.WriteString("\n[+]cluster: " + why)
				}
			}
			status = http.StatusServiceUnavailable
		} else if !s.store.Ready() {
			b.WriteString("\n[+]leader ok\n[+]store not ready")
			status = http.StatusServiceUnavailable
		} else {
			b.WriteString("\n[+]leader ok\n[+]store ok\n[+]db ok")
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	w.Write([]byte(b.String()))
}
