//go:build system

package system_test

// Hostile input against the real binary: malformed and oversized bodies,
// slow clients, many idle connections, and garbage on the inter-node port.
// After each attack the node must still be running, still be its own
// leader, and still serve reads and writes.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Server timeouts rqlited uses (http.DefaultConfig and mux.New). No flag
// lowers them, so the tests wait them out where that is short enough.
const (
	hostileHeaderTimeout = 10 * time.Second // http ReadHeaderTimeout
	hostileReadTimeout   = 5 * time.Minute  // http ReadTimeout (whole request, body included)
	hostileMuxTimeout    = 10 * time.Second // mux header-byte deadline
)

// hostileClient is used for checks made while a node is under attack, so a
// stuck server fails the test instead of hanging it.
var hostileClient = &http.Client{Timeout: 10 * time.Second}

// hostileDo sends one request with hostileClient and returns status and body,
// or the transport error.
func hostileDo(n *Node, method, path, body string) (int, string, error) {
	ctype := ""
	if body != "" {
		ctype = "application/json"
	}
	resp, b, err := n.send(hostileClient, n.User, n.Pass, method, path, ctype, []byte(body))
	if resp == nil {
		return 0, "", err
	}
	return resp.StatusCode, b, err
}

// hostileHealthy fails unless n is running, is its own leader, and answers
// a write and a read.
func hostileHealthy(t *testing.T, n *Node) {
	t.Helper()
	select {
	case <-n.done:
		t.Fatalf("node exited: %v\n%s", n.exitErr, n.out.String())
	default:
	}
	if id := n.nodeID(); n.leaderID() != id {
		t.Fatalf("node is no longer its own leader: leader %q, node %q", n.leaderID(), id)
	}
	status, body, err := hostileDo(n, "POST", "/db/execute",
		`["CREATE TABLE IF NOT EXISTS hostile(id INTEGER PRIMARY KEY, v TEXT)", ["INSERT INTO hostile(v) VALUES(?)", "ok"]]`)
	if err != nil || status != 200 || strings.Contains(body, `"error"`) {
		t.Fatalf("write after attack: %d %s %v", status, body, err)
	}
	status, body, err = hostileDo(n, "GET", "/db/query?q=SELECT+COUNT(*)+FROM+hostile&level=strong", "")
	if err != nil || status != 200 || strings.Contains(body, `"error"`) {
		t.Fatalf("read after attack: %d %s %v", status, body, err)
	}
}

// hostileRSS returns the resident set size of n's process in bytes.
func hostileRSS(t *testing.T, n *Node) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.cmd.Process.Pid))
	if err != nil {
		t.Fatalf("read VmRSS: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" && f[2] == "kB" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatalf("VmRSS line %q: %v", line, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", n.cmd.Process.Pid)
	return 0
}

// hostileExchange writes head and then body (from its own goroutine, so a
// server that answers early and closes does not block it) on a new
// connection to addr, and reads one HTTP response.
func hostileExchange(t *testing.T, addr, head string, body []byte, timeout time.Duration) (int, string, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	go func() {
		if _, err := io.WriteString(c, head); err != nil {
			return
		}
		c.Write(body) // may fail once the server has answered and closed
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// hostileClosed waits for the peer to close c (a read returning EOF or a
// reset, after any bytes the server sent), up to timeout. It returns what
// was read, how long it took and whether the peer closed.
func hostileClosed(c net.Conn, timeout time.Duration) (string, time.Duration, bool) {
	start := time.Now()
	c.SetReadDeadline(start.Add(timeout))
	var got bytes.Buffer
	_, err := io.Copy(&got, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return got.String(), time.Since(start), false
	}
	return got.String(), time.Since(start), true
}

// TestHostileNestedJSON sends deeply nested JSON to the statement
// endpoints: each must answer 400 with a clear message, quickly, and the
// node must keep serving.
func TestHostileNestedJSON(t *testing.T) {
	n := startNode(t)
	deep := strings.Repeat("[", 100_000)
	bodies := map[string]string{
		"open brackets":          deep,
		"balanced brackets":      deep + strings.Repeat("]", 100_000),
		"nested objects":         strings.Repeat(`{"a":`, 50_000) + "1" + strings.Repeat("}", 50_000),
		"nested in a parameter":  `[["SELECT ?", ` + deep + strings.Repeat("]", 100_000) + `]]`,
		"nested named parameter": `[["SELECT :a", {"a":` + strings.Repeat(`{"a":`, 50_000) + "1" + strings.Repeat("}", 50_001) + `]]`,
		"16 MiB of brackets":     strings.Repeat("[", 16<<20),
	}
	for _, path := range []string{"/db/execute", "/db/query", "/db/request"} {
		for name, body := range bodies {
			start := time.Now()
			status, resp, err := hostileDo(n, "POST", path, body)
			if err != nil {
				t.Fatalf("%s %s: %v", path, name, err)
			}
			if status != 400 || !strings.Contains(resp, "invalid JSON") {
				t.Errorf("%s %s: got %d %q, want 400 invalid JSON", path, name, status, resp)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("%s %s: took %v", path, name, d)
			}
		}
	}
	hostileHealthy(t, n)
}

// TestHostileBodyTooLarge sends bodies over -http-max-body: 413 with the
// limit in the message, without reading the rest, and the node keeps
// serving. A body of exactly the limit is accepted.
func TestHostileBodyTooLarge(t *testing.T) {
	const limit = 64 << 10
	n := startNode(t, "-http-max-body", strconv.Itoa(limit))
	big := bytes.Repeat([]byte(" "), 1<<20)
	big[0] = '['
	post := func(extra string) string {
		return "POST /db/execute HTTP/1.1\r\nHost: rqlited\r\nContent-Type: application/json\r\n" + extra + "\r\n"
	}
	want413 := func(t *testing.T, status int, body string, err error) {
		t.Helper()
		if err != nil || status != 413 || !strings.Contains(body, "too large") || !strings.Contains(body, strconv.Itoa(limit)) {
			t.Fatalf("got %d %q %v, want 413 naming the limit %d", status, body, err, limit)
		}
	}

	t.Run("content-length", func(t *testing.T) {
		status, body, err := hostileExchange(t, n.HTTPAddr, post(fmt.Sprintf("Content-Length: %d\r\n", len(big))), big, 10*time.Second)
		want413(t, status, body, err)
	})
	t.Run("chunked", func(t *testing.T) {
		var chunked bytes.Buffer
		for off := 0; off < len(big); off += 8192 {
			fmt.Fprintf(&chunked, "%x\r\n%s\r\n", 8192, big[off:off+8192])
		}
		chunked.WriteString("0\r\n\r\n")
		status, body, err := hostileExchange(t, n.HTTPAddr, post("Transfer-Encoding: chunked\r\n"), chunked.Bytes(), 10*time.Second)
		want413(t, status, body, err)
	})
	t.Run("declared 1 GiB, limit+1 sent", func(t *testing.T) {
		// The server must stop at the limit, not wait for the gigabyte.
		status, body, err := hostileExchange(t, n.HTTPAddr, post("Content-Length: 1073741824\r\n"), big[:limit+1], 10*time.Second)
		want413(t, status, body, err)
	})
	t.Run("go client", func(t *testing.T) {
		status, body, err := hostileDo(n, "POST", "/db/execute", string(big))
		want413(t, status, body, err)
	})
	t.Run("exactly the limit", func(t *testing.T) {
		stmt := `["CREATE TABLE IF NOT EXISTS limit_ok(x)"`
		ok := stmt + strings.Repeat(" ", limit-len(stmt)-1) + "]"
		status, body, err := hostileDo(n, "POST", "/db/execute", ok)
		if err != nil || status != 200 || strings.Contains(body, `"error"`) {
			t.Fatalf("body of exactly -http-max-body: %d %s %v", status, body, err)
		}
	})
	t.Run("declared 1 GiB, nothing sent", func(t *testing.T) {
		// A Content-Length over the limit is known to be too large before
		// any of the body arrives: the answer need not wait for it.
		status, body, err := hostileExchange(t, n.HTTPAddr, post("Content-Length: 1073741824\r\n"), nil, 5*time.Second)
		want413(t, status, body, err)
	})
	hostileHealthy(t, n)
}

// TestHostileSlowLoris trickles request headers, one byte at a time, on
// many connections: the server must close each within its header timeout
// (10 s, not configurable), and serve other clients meanwhile.
func TestHostileSlowLoris(t *testing.T) {
	n := startNode(t)
	const conns = 20
	type result struct {
		got    string
		took   time.Duration
		closed bool
	}
	results := make(chan result, conns)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		c, err := net.DialTimeout("tcp", n.HTTPAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "POST /db/execute HTTP/1.1\r\nHost: rqlited\r\nX-Slow: "); err != nil {
			t.Fatal(err)
		}
		wg.Add(2)
		go func() { // the trickle: one header byte every 250 ms, never ending
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(250 * time.Millisecond):
				}
				if _, err := c.Write([]byte("a")); err != nil {
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			got, took, closed := hostileClosed(c, hostileHeaderTimeout+10*time.Second)
			results <- result{got, took, closed}
		}()
	}

	// Other clients are served while the trickles go on.
	deadline := time.Now().Add(hostileHeaderTimeout + 10*time.Second)
	pending := conns
	var served int
	for pending > 0 && time.Now().Before(deadline) {
		select {
		case r := <-results:
			pending--
			if !r.closed {
				t.Errorf("slow-loris connection still open after %v", r.took)
			} else if pending == 0 {
				t.Logf("last slow-loris connection closed by the server after %v (sent back %q)", r.took.Round(100*time.Millisecond), r.got)
			}
		default:
			start := time.Now()
			status, body, err := hostileDo(n, "GET", "/db/query?q=SELECT+1", "")
			if err != nil || status != 200 {
				t.Fatalf("query during slow-loris: %d %s %v", status, body, err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("query during slow-loris took %v", d)
			}
			served++
			time.Sleep(100 * time.Millisecond) // pace the other client
		}
	}
	close(stop)
	wg.Wait()
	for len(results) > 0 {
		if r := <-results; !r.closed {
			t.Errorf("slow-loris connection still open after %v", r.took)
		}
		pending--
	}
	if pending > 0 {
		t.Errorf("%d slow-loris connections not closed within %v", pending, hostileHeaderTimeout+10*time.Second)
	}
	if served == 0 {
		t.Error("no request served during the slow-loris")
	}
	hostileHealthy(t, n)
}

// TestHostileSlowBody sends complete headers, then trickles the body: the
// server must give up on it (a body must arrive within 10 s plus its
// length at 64 KiB/s) while other clients are served meanwhile.
func TestHostileSlowBody(t *testing.T) {
	n := startNode(t)
	c, err := net.DialTimeout("tcp", n.HTTPAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if _, err := io.WriteString(c, "POST /db/execute HTTP/1.1\r\nHost: rqlited\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n["); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	trickled := make(chan struct{})
	go func() {
		defer close(trickled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
			}
			if _, err := c.Write([]byte(" ")); err != nil {
				return
			}
		}
	}()
	defer func() { close(stop); <-trickled }()
	closedCh := make(chan result3, 1)
	go func() {
		got, _, closed := hostileClosed(c, hostileReadTimeout+time.Minute)
		closedCh <- result3{got, time.Since(start), closed}
	}()

	observe := 2 * hostileHeaderTimeout
	deadline := time.Now().Add(observe)
	for time.Now().Before(deadline) {
		select {
		case r := <-closedCh:
			t.Logf("slow body: the server answered %q and closed after %v", firstLine(r.got), r.took.Round(time.Second))
			if !r.closed {
				t.Errorf("slow body: connection still open after %v", r.took)
			}
			hostileHealthy(t, n)
			return
		default:
		}
		status, body, err := hostileDo(n, "GET", "/db/query?q=SELECT+1", "")
		if err != nil || status != 200 {
			t.Fatalf("query during slow body: %d %s %v", status, body, err)
		}
		time.Sleep(250 * time.Millisecond) // pace the other client
	}
	hostileHealthy(t, n)
	t.Fatalf("slow body: a request whose body trickles in (1 byte/500ms) is still held after %v; "+
		"a body must arrive within 10 s plus its length at 64 KiB/s", observe)
}

type result3 struct {
	got    string
	took   time.Duration
	closed bool
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return strings.TrimSpace(s[:i])
	}
	return s
}

// TestHostileIdleConnections opens 2000 idle TCP connections to the HTTP
// port. Normal requests must still succeed, and the node's memory stays
// bounded: Go's server spends roughly 20 KB on a connection (a goroutine
// stack, 4 KB read and write buffers, the conn state), so 2000 cost about
// 40 MB; the race-enabled binary adds shadow memory, so the bound allows
// 75 KB a connection (150 MB) over the node's RSS before the attack, and at
// most 400 MB in all. Connections that never send a request must be closed
// by the server within its header timeout.
func TestHostileIdleConnections(t *testing.T) {
	const conns = 2000
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	const need = conns + 1024
	if lim.Cur < need {
		if lim.Max < need {
			t.Skipf("RLIMIT_NOFILE hard limit %d is below the %d this test needs", lim.Max, need)
		}
		old := lim
		lim.Cur = need
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatalf("raise RLIMIT_NOFILE: %v", err)
		}
		t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
	}
	n := startNode(t) // started after the raise, so it inherits the limit
	hostileHealthy(t, n)
	base := hostileRSS(t, n)

	open := make([]net.Conn, 0, conns)
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	opened := time.Now()
	for i := 0; i < conns; i++ {
		c, err := net.DialTimeout("tcp", n.HTTPAddr, 5*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		open = append(open, c)
	}
	t.Logf("opened %d idle connections in %v", conns, time.Since(opened).Round(time.Millisecond))

	for i := 0; i < 20; i++ {
		start := time.Now()
		status, body, err := hostileDo(n, "GET", "/db/query?q=SELECT+1", "")
		if err != nil || status != 200 {
			t.Fatalf("query %d with %d idle connections: %d %s %v", i, conns, status, body, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("query %d with %d idle connections took %v", i, conns, d)
		}
	}
	hostileHealthy(t, n)
	rss := hostileRSS(t, n)
	t.Logf("RSS %d MB before, %d MB with %d idle connections (%d KB each)", base>>20, rss>>20, conns, (rss-base)/conns>>10)
	if rss-base > 150<<20 || rss > 400<<20 {
		t.Errorf("RSS grew from %d MB to %d MB with %d idle connections", base>>20, rss>>20, conns)
	}

	// The server reclaims connections that never send a request.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var held int
	waitUntil := opened.Add(hostileHeaderTimeout + 15*time.Second)
	for _, c := range open {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, closed := hostileClosed(c, time.Until(waitUntil)); !closed {
				mu.Lock()
				held++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if held > 0 {
		t.Errorf("%d of %d idle connections still open %v after they were opened", held, conns, time.Since(opened).Round(time.Second))
	}
	for _, c := range open {
		c.Close()
	}
	open = nil
	hostileHealthy(t, n)
	t.Logf("RSS %d MB after the idle connections were closed", hostileRSS(t, n)>>20)
}

// TestHostileRaftPort sends garbage to the inter-node (Raft and cluster)
// port: huge frame lengths, random bytes, msgpack that announces huge
// arrays and byte strings, unknown header bytes and silence. Each
// connection must be closed by the node, which keeps serving, stays leader
// and does not balloon in memory.
func TestHostileRaftPort(t *testing.T) {
	n := startNode(t)
	hostileHealthy(t, n)
	base := hostileRSS(t, n)

	rnd := rand.New(rand.NewSource(1))
	garbage := make([]byte, 64<<10)
	rnd.Read(garbage)
	garbage[0] = 0xc1 // an invalid Raft RPC type, whatever the seed gives
	u32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	// Raft RPC type 0 is AppendEntries, followed by a msgpack map.
	hugeEntries := cat([]byte{1, 0, 0x81, 0xa7}, []byte("Entries"), []byte{0xdd}, u32(0xFFFFFFFF))
	hugeData := cat([]byte{1, 0, 0x81, 0xa7}, []byte("Entries"), []byte{0xdd}, u32(1),
		[]byte{0x81, 0xa4}, []byte("Data"), []byte{0xc6}, u32(0xFFFFFFF0), []byte("tiny"))

	cases := []struct {
		name    string
		data    []byte
		timeout time.Duration // by when the node must have closed the connection
	}{
		{"cluster header, 4 GiB frame length", cat([]byte{2}, u32(0xFFFFFFFF)), 5 * time.Second},
		{"cluster header, frame just over the limit", cat([]byte{2}, u32(1<<20+1)), 5 * time.Second},
		{"cluster header, HTTP request", cat([]byte{2}, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")), 5 * time.Second},
		{"cluster header, garbage frame", cat([]byte{2}, u32(16), garbage[:16]), 5 * time.Second},
		{"cluster header, short frame then silence", cat([]byte{2}, u32(1000), []byte("{")), 10*time.Second + 15*time.Second},
		{"raft header, 64 KiB garbage", cat([]byte{1}, garbage), 5 * time.Second},
		{"raft header, 2^32-1 log entries", hugeEntries, 10 * time.Second},
		{"raft header, 4 GiB log data", hugeData, 10 * time.Second},
		{"unknown header byte", []byte{0xff, 1, 2, 3}, 5 * time.Second},
		{"HTTP request", []byte("GET /status HTTP/1.1\r\nHost: x\r\n\r\n"), 5 * time.Second},
		{"silence", nil, hostileMuxTimeout + 10*time.Second},
	}
	var wg sync.WaitGroup
	for _, tc := range cases {
		c, err := net.DialTimeout("tcp", n.RaftAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			c.Write(tc.data) // the node may close before it has read everything
			if tc.name == "raft header, 2^32-1 log entries" || tc.name == "raft header, 4 GiB log data" {
				// End the stream so the decoder sees EOF instead of waiting.
				c.(*net.TCPConn).CloseWrite()
			}
			got, took, closed := hostileClosed(c, tc.timeout)
			if !closed {
				t.Errorf("%s: connection still open after %v", tc.name, took)
				return
			}
			t.Logf("%s: closed after %v, sent back %q", tc.name, took.Round(10*time.Millisecond), truncate(got, 120))
		}()
	}
	// The node serves throughout.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for waiting := true; waiting; {
		select {
		case <-done:
			waiting = false
		default:
			status, body, err := hostileDo(n, "GET", "/db/query?q=SELECT+1", "")
			if err != nil || status != 200 {
				t.Fatalf("query during the inter-node attack: %d %s %v", status, body, err)
			}
			time.Sleep(100 * time.Millisecond) // pace the client
		}
	}
	hostileHealthy(t, n)
	rss := hostileRSS(t, n)
	t.Logf("RSS %d MB before, %d MB after the inter-node garbage", base>>20, rss>>20)
	if rss-base > 100<<20 {
		t.Errorf("RSS grew from %d MB to %d MB after the inter-node garbage", base>>20, rss>>20)
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// TestHostileUnauthenticatedBody checks that with -auth a request without
// credentials is refused without the server first reading its body: a
// client that cannot authenticate must not be able to make the node wait
// for, or buffer, up to -http-max-body per request.
func TestHostileUnauthenticatedBody(t *testing.T) {
	authFile := t.TempDir() + "/auth.json"
	if err := os.WriteFile(authFile, []byte(`[{"username":"admin","password":"admin-pw","perms":["all"]}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	n := newNode(t, "", "-auth", authFile)
	n.User, n.Pass = "admin", "admin-pw"
	n.Start()
	n.WaitReady(20 * time.Second)
	hostileHealthy(t, n)

	head := "POST /db/execute HTTP/1.1\r\nHost: rqlited\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
	status, body, err := hostileExchange(t, n.HTTPAddr, head, []byte(`["SELECT 1"]`+strings.Repeat(" ", 1000-12)), 5*time.Second)
	if err != nil || status != 401 {
		t.Fatalf("unauthenticated POST with its body: got %d %q %v, want 401", status, body, err)
	}
	status, body, err = hostileExchange(t, n.HTTPAddr, head, nil, 5*time.Second)
	if err != nil || status != 401 {
		t.Fatalf("unauthenticated POST whose body has not arrived: got %d %q %v, want 401 at once", status, body, err)
	}
	hostileHealthy(t, n)
}
