package http

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rqlited/rqlited/command"
)

// loadStore is a leader that records what /db/load and /boot hand it.
type loadStore struct {
	Store
	mu       sync.Mutex
	streamed []byte // what LoadFrom read
	loaded   []byte // what Load got
	booted   []byte // what Boot read
	stmts    []command.Statement
	bootErr  error
	loadErr  error
	members  int // Servers' length (0: one)
}

func (l *loadStore) Servers() ([]command.Server, error) {
	srv := make([]command.Server, max(l.members, 1))
	for i := range srv {
		srv[i] = command.Server{ID: fmt.Sprint(i + 1), Addr: fmt.Sprintf("127.0.0.1:%d", i+1), Voter: true}
	}
	return srv, nil
}

func (l *loadStore) Leader() (string, string) { return "1", "127.0.0.1:1" }
func (l *loadStore) Addr() string             { return "127.0.0.1:1" }

func (l *loadStore) LoadFrom(_ context.Context, r io.Reader, before func(int64) error) (uint64, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return 0, err
	}
	if l.loadErr != nil {
		return 0, l.loadErr
	}
	if err := before(int64(len(b))); err != nil {
		return 0, err
	}
	l.mu.Lock()
	l.streamed = b
	l.mu.Unlock()
	return 7, nil
}

func (l *loadStore) Load(_ context.Context, b []byte) (uint64, error) {
	l.mu.Lock()
	l.loaded = b
	l.mu.Unlock()
	return 7, nil
}

func (l *loadStore) Request(_ context.Context, req *command.Request, _ command.QueryOptions) ([]command.Result, uint64, error) {
	l.mu.Lock()
	l.stmts = append(l.stmts, req.Statements...)
	l.mu.Unlock()
	return []command.Result{{}, {IsQuery: true, Values: [][]any{{int64(3), int64(1)}}}}, 8, nil
}

func (l *loadStore) Boot(_ context.Context, r io.Reader) (int64, error) {
	if l.bootErr != nil {
		return 0, l.bootErr
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return int64(len(b)), err
	}
	l.mu.Lock()
	l.booted = b
	l.mu.Unlock()
	return int64(len(b)), nil
}

func newLoadServer(t *testing.T, maxBody int64) (*loadStore, *httptest.Server) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.MaxBodyBytes = maxBody
	st := &loadStore{}
	s, err := New(cfg, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return st, srv
}

func postBody(t *testing.T, url string, body io.Reader) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/octet-stream", body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func fakeSQLite(n int) []byte {
	b := bytes.Repeat([]byte{'x'}, n)
	copy(b, sqliteMagic)
	return b
}

// TestLoadStreamsSQLiteFile: a SQLite file over -http-max-body is streamed
// to the store (declared length or chunked) and answered as rqlite answers.
func TestLoadStreamsSQLiteFile(t *testing.T) {
	st, srv := newLoadServer(t, 1024)
	file := fakeSQLite(300 << 10)
	for _, chunked := range []bool{false, true} {
		var body io.Reader = bytes.NewReader(file)
		if chunked {
			body = io.MultiReader(body) // no length: sent chunked
		}
		s, b := postBody(t, srv.URL+"/db/load", body)
		if s != 200 || b != `{"results":[]}` {
			t.Fatalf("chunked %v: %d %s", chunked, s, b)
		}
		if !bytes.Equal(st.streamed, file) {
			t.Fatalf("chunked %v: the store read %d bytes, want %d", chunked, len(st.streamed), len(file))
		}
		st.streamed = nil
	}
	s, b := postBody(t, srv.URL+"/db/load?raft_index", bytes.NewReader(file))
	if s != 200 || b != `{"results":[],"raft_index":7}` {
		t.Fatalf("raft_index: %d %s", s, b)
	}
}

// TestLoadDump: a SQL body is read as other bodies are (bounded by
// -http-max-body), stripped of the dump's own transaction, and answered
// with rqlite's counters.
func TestLoadDump(t *testing.T) {
	st, srv := newLoadServer(t, 1024)
	s, b := postBody(t, srv.URL+"/db/load", strings.NewReader("BEGIN TRANSACTION;\nCREATE TABLE t(x);\nINSERT INTO t VALUES(1);\nCOMMIT;\n"))
	if s != 200 || b != `{"results":[{"last_insert_id":3,"rows_affected":1}]}` {
		t.Fatalf("dump: %d %s", s, b)
	}
	if len(st.stmts) != 2 || st.stmts[0].SQL != "CREATE TABLE t(x);\nINSERT INTO t VALUES(1);\n" || st.stmts[1].SQL != dumpCounters {
		t.Fatalf("statements: %q", st.stmts)
	}
	if s, b := postBody(t, srv.URL+"/db/load", strings.NewReader(strings.Repeat("x", 2048))); s != 413 {
		t.Fatalf("dump over the limit: %d %s", s, b)
	}
	if s, b := postBody(t, srv.URL+"/db/load", io.MultiReader(strings.NewReader(strings.Repeat("x", 2048)))); s != 413 {
		t.Fatalf("chunked dump over the limit: %d %s", s, b)
	}
	if s, b := postBody(t, srv.URL+"/db/load", strings.NewReader(" \n")); s != 400 {
		t.Fatalf("blank body: %d %s", s, b)
	}
}

func TestDumpResult(t *testing.T) {
	for _, tc := range []struct {
		in   []command.Result
		want command.Result
	}{
		{[]command.Result{{Time: 1}, {Values: [][]any{{int64(5), int64(2)}}}}, command.Result{LastInsertID: 5, RowsAffected: 2, Time: 1}},
		{[]command.Result{{Error: "no such table: x"}}, command.Result{Error: "no such table: x"}},
		{[]command.Result{{}, {Error: "boom"}}, command.Result{Error: "boom"}},
	} {
		got := dumpResult(tc.in)
		if len(got) != 1 || got[0].LastInsertID != tc.want.LastInsertID || got[0].RowsAffected != tc.want.RowsAffected ||
			got[0].Error != tc.want.Error || got[0].Time != tc.want.Time {
			t.Errorf("dumpResult(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestHandleBoot: rqlite's answers, and the store sees nothing of a body that is
// not a SQLite file.
func TestHandleBoot(t *testing.T) {
	st, srv := newLoadServer(t, 1024)
	file := fakeSQLite(200 << 10)
	s, b := postBody(t, srv.URL+"/boot", io.MultiReader(bytes.NewReader(file)))
	if s != 200 || b != "" || !bytes.Equal(st.booted, file) {
		t.Fatalf("boot: %d %q, store read %d bytes of %d", s, b, len(st.booted), len(file))
	}
	st.booted = nil
	for name, body := range map[string][]byte{"empty": nil, "garbage": bytes.Repeat([]byte{1}, 4096), "short": file[:50]} {
		if s, b := postBody(t, srv.URL+"/boot", bytes.NewReader(body)); s != 400 || !strings.Contains(b, "invalid SQLite data") {
			t.Errorf("%s: %d %q", name, s, b)
		}
		if st.booted != nil {
			t.Fatalf("%s reached the store", name)
		}
	}
	for _, tc := range []struct {
		err    error
		status int
		want   string
	}{
		{errors.New("not single-node"), 503, "not single-node"},
		{command.ErrNotLeader, 503, "not leader"},
		{fmt.Errorf("boot: %w: truncated", command.ErrNotSQLite), 400, "invalid SQLite data: truncated"},
	} {
		st.bootErr = tc.err
		if s, b := postBody(t, srv.URL+"/boot", bytes.NewReader(file)); s != tc.status || strings.TrimSpace(b) != tc.want {
			t.Errorf("store error %v: %d %q, want %d %q", tc.err, s, b, tc.status, tc.want)
		}
	}
	resp, err := http.Get(srv.URL + "/boot")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Fatalf("GET /boot: %d", resp.StatusCode)
	}
}

// TestStreamedBodyIdle: a client that sends the start of a streamed body
// and then nothing is cut off after bodyIdleLimit, not left to hold the
// connection.
func TestStreamedBodyIdle(t *testing.T) {
	old := bodyIdleLimit
	bodyIdleLimit = 300 * time.Millisecond
	defer func() { bodyIdleLimit = old }()
	_, srv := newLoadServer(t, 1024)
	for _, path := range []string{"/boot", "/db/load"} {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		head := "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" + string(fakeSQLite(200))
		if _, err := conn.Write([]byte(head)); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(conn)
		conn.Close()
		if took := time.Since(start); took > 5*time.Second || !strings.Contains(string(b), "400 Bad Request") {
			t.Fatalf("%s: after %v: %q", path, took, b)
		}
	}
}

func TestCapReader(t *testing.T) {
	c := &capReader{r: strings.NewReader("0123456789"), max: 10}
	if b, err := io.ReadAll(c); err != nil || len(b) != 10 {
		t.Fatalf("at the cap: %q %v", b, err)
	}
	c = &capReader{r: strings.NewReader("0123456789A"), max: 10}
	if _, err := io.ReadAll(c); !errors.Is(err, errLoadTooLarge) {
		t.Fatalf("over the cap: %v", err)
	}
}

// TestLoadOverLogLimit: a SQLite file over the log-load limit is installed
// through Boot on a single-node cluster (any size, answered as a load) and
// refused with 413 on a larger cluster, before its body is read.
func TestLoadOverLogLimit(t *testing.T) {
	for _, members := range []int{1, 3} {
		st := &loadStore{members: members}
		s, err := New(DefaultConfig(), st, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		s.logLoadMax = 64 << 10
		srv := httptest.NewServer(s)
		file := fakeSQLite(200 << 10)
		code, body := postBody(t, srv.URL+"/db/load", bytes.NewReader(file))
		srv.Close()
		switch members {
		case 1:
			if code != 200 || body != `{"results":[]}` || !bytes.Equal(st.booted, file) || st.streamed != nil {
				t.Fatalf("single node: %d %s, booted %d bytes, streamed %d", code, body, len(st.booted), len(st.streamed))
			}
		default:
			if code != 413 || !strings.Contains(body, "the limit is 65536 bytes") || st.booted != nil || st.streamed != nil {
				t.Fatalf("%d nodes: %d %s, booted %d bytes, streamed %d", members, code, body, len(st.booted), len(st.streamed))
			}
		}
	}
}
