package http

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/rqlited/rqlited/command"
)

// handleReadyz answers whether this node can serve requests, as rqlite's
// /readyz: a leader is known and answers, the local database has replayed
// its log and answers a query, and with ?sync it has caught up with what
// the leader had committed. ?noleader checks only that the node runs.
func (s *Service) handleReadyz(w http.ResponseWriter, r *http.Request, p *params) {
	status, body := http.StatusOK, "[+]node ok"
	if !p.noLeader {
		status, body = s.readiness(r.Context(), p)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	w.Write([]byte(body))
}

// readiness runs the checks of /readyz in rqlite's order and returns the
// status and body: each check adds a line, and the first that fails ends
// the answer with 503.
func (s *Service) readiness(ctx context.Context, p *params) (int, string) {
	var b strings.Builder
	b.WriteString("[+]node ok")
	fail := func(line string) (int, string) {
		b.WriteString("\n" + line)
		return http.StatusServiceUnavailable, b.String()
	}
	_, addr := s.store.Leader()
	if addr == "" {
		line := "[+]leader does not exist"
		if s.explain != nil {
			if why := s.explain(); why != "" {
				line += "\n[+]cluster: " + why
			}
		}
		return fail(line)
	}
	if err := s.contactLeader(ctx, addr, p); err != nil {
		return fail("[+]leader not contactable: " + err.Error())
	}
	b.WriteString("\n[+]leader ok")
	if !s.store.Ready() {
		return fail("[+]store not ready")
	}
	b.WriteString("\n[+]store ok")
	if p.sync {
		if _, err := s.store.Committed(ctx, p.timeout); err != nil {
			return fail("[+]sync " + err.Error())
		}
		b.WriteString("\n[+]sync ok")
	}
	if err := s.checkDB(ctx, p); err != nil {
		return fail("[+]db not ok: " + err.Error())
	}
	b.WriteString("\n[+]db ok")
	return http.StatusOK, b.String()
}

// contactLeader asks the leader at its Raft address for its metadata, as
// rqlite does, with ?timeout for each try and ?retries more tries.
func (s *Service) contactLeader(ctx context.Context, addr string, p *params) error {
	if addr == s.store.Addr() || s.cluster == nil {
		return nil
	}
	var err error
	for attempt := 0; attempt <= p.retries; attempt++ {
		actx, cancel := context.WithTimeout(ctx, p.timeout)
		_, _, err = s.cluster.NodeMeta(actx, addr)
		cancel()
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	return err
}

// checkDB runs SELECT 1 on the local database (level none), as rqlite.
func (s *Service) checkDB(ctx context.Context, p *params) error {
	req := &command.Request{Statements: []command.Statement{{SQL: "SELECT 1"}}}
	res, _, err := s.store.Query(ctx, req, command.QueryOptions{Level: command.None, DBTimeout: p.timeout})
	switch {
	case err != nil:
		return err
	case len(res) != 1 || res[0].Error != "" || len(res[0].Values) != 1 || len(res[0].Values[0]) != 1:
		return fmt.Errorf("unexpected result %+v", res)
	}
	if v, ok := res[0].Values[0][0].(int64); !ok || v != 1 {
		return fmt.Errorf("unexpected result %+v", res)
	}
	return nil
}
