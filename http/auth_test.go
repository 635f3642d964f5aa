package http

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rqlited/rqlited/auth"
)

var _ Authorizer = (*auth.Store)(nil)

// fakeAuth refuses every caller with err and records the addresses it was
// given.
type fakeAuth struct {
	err     error
	clients []string
}

func (f *fakeAuth) Authorize(client, username, password string, ok bool, perms ...string) error {
	f.clients = append(f.clients, client)
	return f.err
}

func newAuthService(t *testing.T, a Authorizer) *Service {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Auth = a
	s, err := New(cfg, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAuthClientAddress: the throttle sees the IP of r.RemoteAddr, not
// X-Forwarded-For.
func TestAuthClientAddress(t *testing.T) {
	fa := &fakeAuth{err: auth.ErrDenied}
	s := newAuthService(t, fa)
	for remote, want := range map[string]string{
		"192.0.2.1:1234":        "192.0.2.1",
		"[2001:db8::1]:80":      "2001:db8::1",
		"[::ffff:192.0.2.9]:80": "192.0.2.9",
		"[fe80::1%eth0]:443":    "fe80::1",
		"not an address":        "not an address",
	} {
		fa.clients = nil
		r := httptest.NewRequest("GET", "/status", nil)
		r.RemoteAddr = remote
		r.Header.Set("X-Forwarded-For", "198.51.100.66")
		r.SetBasicAuth("bob", "x")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", remote, w.Code)
		}
		if len(fa.clients) != 1 || fa.clients[0] != want {
			t.Errorf("RemoteAddr %q: client %q, want %q", remote, fa.clients, want)
		}
	}
}

// TestAuthThrottledIs429: a throttled caller gets 429 with Retry-After and
// a message saying why and when to retry, on every path that checks
// credentials; other refusals stay 401.
func TestAuthThrottledIs429(t *testing.T) {
	throttled := &auth.ThrottledError{Client: "192.0.2.1", Failures: 6, Wait: 4 * time.Second}
	for _, c := range []struct {
		err    error
		status int
	}{
		{throttled, http.StatusTooManyRequests},
		{fmt.Errorf("wrapped: %w", throttled), http.StatusTooManyRequests},
		{auth.ErrDenied, http.StatusUnauthorized},
		{errors.New("other"), http.StatusUnauthorized},
	} {
		s := newAuthService(t, &fakeAuth{err: c.err})
		for _, req := range []struct{ method, path, body string }{
			{"POST", "/db/execute", `[["INSERT INTO t VALUES(1)"]]`},
			{"GET", "/db/query?q=SELECT+1", ""},
			{"GET", "/debug/pprof/cmdline", ""},
		} {
			r := httptest.NewRequest(req.method, req.path, strings.NewReader(req.body))
			r.SetBasicAuth("bob", "wrong")
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			name := fmt.Sprintf("%s %s refused with %v", req.method, req.path, c.err)
			if w.Code != c.status {
				t.Errorf("%s: status %d, want %d", name, w.Code, c.status)
				continue
			}
			if c.status != http.StatusTooManyRequests {
				if ra := w.Header().Get("Retry-After"); ra != "" {
					t.Errorf("%s: Retry-After %q on a 401", name, ra)
				}
				continue
			}
			if ra := w.Header().Get("Retry-After"); ra != "4" {
				t.Errorf("%s: Retry-After %q, want 4", name, ra)
			}
			if body := w.Body.String(); !strings.Contains(body, "too many failed logins") || !strings.Contains(body, "for 4 seconds more") {
				t.Errorf("%s: body %q does not say what happened and when to retry", name, body)
			}
			if req.method == "POST" && w.Header().Get("Connection") != "close" {
				t.Errorf("%s: the unread body's connection is not closed", name)
			}
		}
	}
}
