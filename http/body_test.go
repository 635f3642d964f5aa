package http

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
)

// TestReadBodyDoesNotTrustDeclaredLength: a client may declare a body just
// under the limit and send a few bytes; the server must not allocate what
// was declared (many such connections would exhaust memory), only what
// arrives. Small declared bodies are read into one exact allocation.
func TestReadBodyDoesNotTrustDeclaredLength(t *testing.T) {
	cfg := DefaultConfig()
	s, err := New(cfg, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		declared int64
		body     string
	}{
		{cfg.MaxBodyBytes - 1, `["SELECT 1"]`},
		{12, `["SELECT 1"]`},
	} {
		r := httptest.NewRequest("POST", "/db/execute", strings.NewReader(tc.body))
		r.ContentLength = tc.declared
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		b, ok := s.readBody(httptest.NewRecorder(), r)
		runtime.ReadMemStats(&after)
		if !ok || string(b) != tc.body {
			t.Fatalf("declared %d: got %q, %v", tc.declared, b, ok)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
			t.Errorf("declared %d bytes, sent %d: reading it allocated %d bytes", tc.declared, len(tc.body), grew)
		}
	}
}
