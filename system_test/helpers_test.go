//go:build system

// Package system_test runs the real rqlited binary: every test starts
// processes on random loopback ports with their own data directories and
// talks to them over HTTP, exactly as users do.
package system_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rqlited/rqlited/internal/chaos"
)

// rqlitedPath is the binary under test: $RQLITED_PATH, or one built by TestMain.
var rqlitedPath string

func TestMain(m *testing.M) {
	// No request of a test may hang the run (see defaultClient).
	http.DefaultClient.Timeout = 30 * time.Second
	rqlitedPath = os.Getenv("RQLITED_PATH")
	var tmp string
	if rqlitedPath == "" {
		var err error
		tmp, err = os.MkdirTemp("", "rqlited-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		rqlitedPath = filepath.Join(tmp, "rqlited")
		cmd := exec.Command("go", "build", "-o", rqlitedPath, "../cmd/rqlited")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build rqlited:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	writeMatrixReport() // RQLITED_MATRIX_REPORT (matrix_test.go)
	if tmp != "" {
		os.RemoveAll(tmp)
	}
	os.Exit(code)
}

// freePort returns a loopback address with a port that was free a moment ago.
var (
	portsMu   sync.Mutex
	portsUsed = map[int]bool{}
)

// freePort returns a loopback address whose port no earlier call in this
// run returned, chosen below the kernel's ephemeral range (32768 and up):
// a port from that range can be taken, between this check and the node's
// bind, by the local end of some node's outgoing connection.
func freePort(t testing.TB) string {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 2000 {
		p := 20000 + rand.IntN(12000)
		if portsUsed[p] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		ln.Close()
		portsUsed[p] = true
		return ln.Addr().String()
	}
	t.Fatal("no free loopback port in 20000-31999")
	return ""
}

// syncBuffer collects a process's output safely across goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Node is one rqlited process.
type Node struct {
	t        testing.TB
	Dir      string
	HTTPAddr string
	RaftAddr string
	Args     []string
	cmd      *exec.Cmd
	out      *syncBuffer
	done     chan struct{}
	exitErr  error
	// For nodes with HTTPS or -auth: the client (nil: defaultClient),
	// the scheme ("" is http) and the Basic credentials every helper sends.
	Client     *http.Client
	Scheme     string
	User, Pass string
	// Host, if set, is the network namespace the process runs in.
	Host *chaos.Host
	// NoHangDump opts n out of checkHang, for a test that expects helper
	// requests to n to time out while its process runs.
	NoHangDump bool
	// dumped is the process checkHang sent SIGQUIT to.
	dumped atomic.Pointer[exec.Cmd]
}

// defaultClient bounds every helper request, so that a node that stops
// answering (paused, or hung by a bug) fails a test at its deadline,
// with the node's log, instead of hanging the whole run.
var defaultClient = &http.Client{Timeout: 10 * time.Second}

// httpClient returns the client the helpers use for n.
func (n *Node) httpClient() *http.Client {
	if n.Client != nil {
		return n.Client
	}
	return defaultClient
}

// send is the one way the helpers send a request to a node: with client
// (nil: n's own, see httpClient), Basic credentials user:pass (none if
// user is ""), and a Content-Type if ctype is set. It returns the response
// (its body read and closed) and the body, or the transport error. A
// request on n's own client that times out goes through checkHang; other
// clients set their own timeouts, which may pass by design. It is safe to
// call from any goroutine.
func (n *Node) send(client *http.Client, user, pass, method, path, ctype string, body []byte) (*http.Response, string, error) {
	req, err := http.NewRequest(method, n.URL(path), bytes.NewReader(body))
	if err != nil {
		return nil, "", err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	own := client == nil
	if own {
		client = n.httpClient()
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		if own {
			n.checkHang(req.URL.String(), start, err)
		}
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil && own {
		n.checkHang(req.URL.String(), start, err)
	}
	return resp, string(b), err
}

// try sends a request with n's client and credentials and returns status
// and body, or the transport error. It is safe to call from any goroutine.
func (n *Node) try(method, path, ctype string, body []byte) (int, string, error) {
	resp, b, err := n.send(nil, n.User, n.Pass, method, path, ctype, body)
	if err != nil {
		return 0, "", err
	}
	return resp.StatusCode, b, nil
}

// hangAfter is how long a helper request goes unanswered before checkHang
// takes the node for hung: defaultClient's timeout. Requests with shorter
// client timeouts (the chaos tests' 2 s) may time out by design.
const hangAfter = 10 * time.Second

// checkHang is given the outcome of a helper request to url that started
// at start. If it timed out after hangAfter while the process was running
// (not stopped: the chaos and matrix tests SIGSTOP nodes on purpose), the
// node is hung: checkHang fails the test and sends the process SIGQUIT, so
// that the Go runtime writes every goroutine's stack to stderr, which the
// node's output (printed when the test fails) holds, and waits for the
// dump. SIGQUIT ends the process; the test fails anyway.
func (n *Node) checkHang(url string, start time.Time, err error) {
	if err == nil || n.NoHangDump || !isTimeout(err) || time.Since(start) < hangAfter {
		return
	}
	cmd, done := n.cmd, n.done
	if cmd == nil || cmd.Process == nil {
		return
	}
	pid := cmd.Process.Pid
	state := procState(pid)
	switch state {
	case "R", "S", "D", "I":
	default: // T, t: stopped on purpose; Z, X, "": exited
		n.t.Logf("request to node %s (pid %d) timed out after %v: %s: process state %q, no goroutine dump",
			n.HTTPAddr, pid, time.Since(start).Round(time.Millisecond), url, state)
		return
	}
	if n.dumped.Swap(cmd) == cmd {
		return // one dump per process
	}
	serr := cmd.Process.Signal(syscall.SIGQUIT)
	n.t.Errorf("node %s (pid %d) hung: request timed out after %v: %s (%v); process state %q; "+
		"sent SIGQUIT for a goroutine dump (in the node's output; signal error: %v)",
		n.HTTPAddr, pid, time.Since(start).Round(time.Millisecond), url, err, state, serr)
	// Let the runtime finish writing the dump before anything (Cleanup's
	// SIGKILL) can cut it short.
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		n.t.Logf("node %s still running 10 s after SIGQUIT", n.HTTPAddr)
	}
}

// isTimeout reports whether err is a request's deadline passing.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// procState returns the state letter of /proc/<pid>/stat (field 3: R
// running, S sleeping, D disk wait, T stopped, Z zombie...), "" if the
// process is gone.
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// exitReason is the process's exit status, naming checkHang's SIGQUIT so
// that the exit is not taken for a second, unrelated failure.
func (n *Node) exitReason() string {
	if n.cmd != nil && n.dumped.Load() == n.cmd {
		return fmt.Sprintf("%v (SIGQUIT from the harness for a goroutine dump after a request timed out: see the first error)", n.exitErr)
	}
	return fmt.Sprint(n.exitErr)
}

// newNode prepares (but does not start) a node with fresh ports.
func newNode(t testing.TB, dir string, args ...string) *Node {
	if dir == "" {
		dir = t.TempDir()
	}
	return &Node{t: t, Dir: dir, HTTPAddr: freePort(t), RaftAddr: freePort(t), Args: args}
}

// startNode starts a single node in a new data directory and waits until it
// is ready.
func startNode(t testing.TB, args ...string) *Node {
	t.Helper()
	n := newNode(t, "", args...)
	n.Start()
	n.WaitReady(20 * time.Second)
	return n
}

// Start launches the process; Cleanup kills it.
func (n *Node) Start() {
	n.t.Helper()
	args := append([]string{"-http-addr", n.HTTPAddr, "-raft-addr", n.RaftAddr,
		"-raft-heartbeat-timeout", "200ms", "-raft-election-timeout", "200ms", "-raft-leader-lease-timeout", "100ms"}, n.Args...)
	args = append(args, n.Dir)
	n.out = &syncBuffer{}
	if n.Host != nil {
		n.cmd = n.Host.Command(rqlitedPath, args...)
	} else {
		n.cmd = exec.Command(rqlitedPath, args...)
	}
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.done = make(chan struct{})
	cmd, done := n.cmd, n.done
	go func() {
		n.exitErr = cmd.Wait()
		close(done)
	}()
	out := n.out
	n.t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		// The race-enabled binary reports data races on stderr and carries on.
		if strings.Contains(out.String(), "WARNING: DATA RACE") {
			n.t.Errorf("data race in rqlited:\n%s", out.String())
		}
		if n.t.Failed() {
			n.t.Logf("output of node %s:\n%s", n.HTTPAddr, n.out.String())
		}
	})
}

// Kill stops the process with SIGKILL and waits for it.
func (n *Node) Kill() {
	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
}

// Stop sends SIGTERM and waits for a clean exit.
func (n *Node) Stop() {
	n.t.Helper()
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		n.t.Fatalf("node did not exit after SIGTERM:\n%s", n.out.String())
	}
	if n.exitErr != nil {
		n.t.Fatalf("node exited with %s:\n%s", n.exitReason(), n.out.String())
	}
}

// Restart stops (or has stopped) the node and starts it again on the same
// data directory and ports.
func (n *Node) Restart() {
	n.t.Helper()
	n.Start()
	n.WaitReady(20 * time.Second)
}

// WaitReady polls /readyz until it answers 200.
func (n *Node) WaitReady(timeout time.Duration) {
	n.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-n.done:
			n.t.Fatalf("node exited while starting: %s\n%s", n.exitReason(), n.out.String())
		default:
		}
		if status, _, err := n.try("GET", "/readyz", "", nil); err == nil && status == 200 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	n.t.Fatalf("node %s not ready after %v:\n%s", n.HTTPAddr, timeout, n.out.String())
}

// URL returns the node's URL for path (which may carry a query string).
func (n *Node) URL(path string) string {
	if n.Scheme != "" {
		return n.Scheme + "://" + n.HTTPAddr + path
	}
	return "http://" + n.HTTPAddr + path
}

// Do sends a request with n's client and credentials and returns status
// and body; a transport error fails the test.
func (n *Node) Do(method, path, contentType string, body []byte) (int, string) {
	n.t.Helper()
	status, b, err := n.try(method, path, contentType, body)
	if err != nil {
		n.t.Fatalf("%s %s to %s: %v", method, path, n.HTTPAddr, err)
	}
	return status, b
}

// Execute posts a JSON statement list to /db/execute (path may add params).
func (n *Node) Execute(params, body string) (int, string) {
	n.t.Helper()
	return n.Do("POST", "/db/execute"+params, "application/json", []byte(body))
}

// Query runs a GET /db/query with q=sql and extra params.
func (n *Node) Query(sql, params string) (int, string) {
	n.t.Helper()
	return n.Do("GET", "/db/query?q="+url.QueryEscape(sql)+params, "", nil)
}

// mustJSON fails unless status is 200 and body equals want.
func mustJSON(t testing.TB, status int, body, want string) {
	t.Helper()
	if status != 200 || strings.TrimSpace(body) != want {
		t.Fatalf("got %d %s\nwant 200 %s", status, body, want)
	}
}

// insertAcked posts one INSERT of id into table t and reports whether the
// node acknowledged it (200 and one row affected). Transport errors, as when
// the node is killed mid-request, are not acknowledgements.
func insertAcked(client *http.Client, n *Node, id int64) bool {
	resp, b, err := n.send(client, "", "", "POST", "/db/execute", "application/json",
		fmt.Appendf(nil, `[["INSERT INTO t(id) VALUES(?)", %d]]`, id))
	return err == nil && resp.StatusCode == 200 && strings.Contains(b, `"rows_affected":1`)
}

// queryResult is one entry of "results" in a db endpoint's answer
// (numbers are float64, as encoding/json decodes them into any).
type queryResult struct {
	Columns []string `json:"columns"`
	Values  [][]any  `json:"values"`
	Error   string   `json:"error"`
}

// parseResults is the one way the helpers read a db endpoint's answer:
// status 200 and a JSON object with "results". A result's own error is
// left to the caller.
func parseResults(status int, body string) ([]queryResult, error) {
	if status != 200 {
		return nil, fmt.Errorf("status %d, want 200: %s", status, body)
	}
	var r struct {
		Results []queryResult `json:"results"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		return nil, fmt.Errorf("answer is not JSON (%v): %s", err, body)
	}
	return r.Results, nil
}

// queryValues runs sql on n at level and returns the rows of its one
// result, or what went wrong (a status, a malformed answer, the result's
// error).
func (n *Node) queryValues(sql, level string) ([][]any, error) {
	n.t.Helper()
	rs, err := parseResults(n.Query(sql, "&level="+level))
	if err != nil {
		return nil, err
	}
	if len(rs) != 1 {
		return nil, fmt.Errorf("%d results, want 1", len(rs))
	}
	if rs[0].Error != "" {
		return nil, errors.New(rs[0].Error)
	}
	return rs[0].Values, nil
}

// queryInts runs sql, which returns one integer column, on n at level and
// returns the column; anything else fails the test.
func queryInts(t testing.TB, n *Node, sql, level string) []int64 {
	t.Helper()
	rows, err := n.queryValues(sql, level)
	if err != nil {
		t.Fatalf("query %q on %s: %v", sql, n.HTTPAddr, err)
	}
	out := make([]int64, 0, len(rows))
	for _, row := range rows {
		var f float64
		ok := len(row) > 0
		if ok {
			f, ok = row[0].(float64)
		}
		if !ok || f != math.Trunc(f) {
			t.Fatalf("query %q on %s: row %v does not start with an integer", sql, n.HTTPAddr, row)
		}
		out = append(out, int64(f))
	}
	return out
}
