package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestRawConn drives rawConn against Go's HTTP server: small bodies
// (Content-Length), large ones (chunked), error statuses, a server that
// closes the connection, and the request bytes the server sees.
func TestRawConn(t *testing.T) {
	big := strings.Repeat("0123456789", 10_000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/echo":
			w.Write([]byte(r.Method + " " + r.URL.RawQuery + " " + r.Header.Get("Content-Type") + " " + string(body)))
		case "/big":
			w.Write([]byte(big))
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/close":
			w.Header().Set("Connection", "close")
			w.Write([]byte("bye"))
		default:
			http.Error(w, "nope", http.StatusNotFound)
		}
	}))
	defer srv.Close()
	u := func(p string) *url.URL { return mustURL(srv.URL + p) }

	var c rawConn
	defer c.close()
	var body bytes.Buffer
	for i := 0; i < 3; i++ { // the same connection, kept alive
		body.Reset()
		status, err := c.roundTrip(http.MethodPost, u("/echo?level=weak"), []byte(`["SELECT 1"]`), &body)
		if err != nil || status != 200 || body.String() != `POST level=weak application/json ["SELECT 1"]` {
			t.Fatalf("echo: %d %q %v", status, body.String(), err)
		}
	}
	first := c.conn
	body.Reset()
	if status, err := c.roundTrip(http.MethodGet, u("/big"), nil, &body); err != nil || status != 200 || body.String() != big {
		t.Fatalf("big: %d, %d bytes, %v", status, body.Len(), err)
	}
	body.Reset()
	if status, err := c.roundTrip(http.MethodGet, u("/missing"), nil, &body); err != nil || status != 404 || !strings.Contains(body.String(), "nope") {
		t.Fatalf("missing: %d %q %v", status, body.String(), err)
	}
	body.Reset()
	if status, err := c.roundTrip(http.MethodPost, u("/empty"), []byte("x"), &body); err != nil || status != 204 || body.Len() != 0 {
		t.Fatalf("empty: %d %q %v", status, body.String(), err)
	}
	if c.conn != first {
		t.Fatal("the connection was not kept alive")
	}
	body.Reset()
	if status, err := c.roundTrip(http.MethodGet, u("/close"), nil, &body); err != nil || status != 200 || body.String() != "bye" {
		t.Fatalf("close: %d %q %v", status, body.String(), err)
	}
	if c.conn != nil {
		t.Fatal("connection kept after Connection: close")
	}
	body.Reset()
	if status, err := c.roundTrip(http.MethodGet, u("/big"), nil, &body); err != nil || status != 200 || body.Len() != len(big) {
		t.Fatalf("after redial: %d, %d bytes, %v", status, body.Len(), err)
	}
}
