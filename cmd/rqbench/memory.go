package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The memory suite (-suites memory, not in the default suites) measures
// how much a node's resident set grows with large writes, the figures of
// issue 14 item 6 ("memory follows the attacker"): one, three and eight
// concurrent POST /db/execute bodies each carrying memPayload bytes of
// string parameter (one statement, or memManyStatements statements adding
// up to the same), and memChunkedBodies concurrent chunked bodies larger
// than the node's -http-max-body, which must be refused; then one and
// three concurrent inserts through the leader of a three-node cluster.
// It takes 25-40 s.
//
// Every probe runs on fresh processes, so each node's VmHWM (the kernel's
// high-water mark of its resident set) is that probe's peak. Each figure
// is reported next to a reference taken in the same run: the node's VmRSS
// when idle just before the probe, as the ratio peak/idle, and as
// (peak-idle)/payload, the number of payload-sized copies the node held at
// its peak.
const (
	memPayload        = 60 << 20 // bytes of parameter per request
	memManyStatements = 1000     // statements of the "many" probe
	memChunkedBodies  = 4
	// memChunkedSize is each chunked body's size: over the default
	// -http-max-body (64 MiB).
	memChunkedSize = 72 << 20
)

// memProbe is one probe's figures for one node.
type memProbe struct {
	name     string
	node     string // "single", "leader", "follower"
	idleMB   float64
	peakMB   float64 // VmHWM after the probe
	afterMB  float64 // VmRSS right after the last response (and, in a cluster, after the followers applied)
	payload  int64   // payload bytes the probe sent in all
	statuses string
	elapsed  time.Duration
}

func (p memProbe) print() {
	copies := "-"
	if p.payload > 0 {
		copies = fmt.Sprintf("%.1f", (p.peakMB-p.idleMB)*(1<<20)/float64(p.payload))
	}
	fmt.Printf("%-40s %-9s %8.1f %9.1f %7.1f %7s %9.1f %9s  %s\n", p.name, p.node, p.idleMB, p.peakMB, p.peakMB/p.idleMB,
		copies, p.afterMB, fmtDur(p.elapsed), p.statuses)
}

// memory runs the memory probes: on a single node, then on a three-node
// cluster.
func (b *bench) memory(ctx context.Context) {
	fmt.Printf("\n## memory: peak RSS (VmHWM) of fresh nodes for large writes; payload %d MiB per request\n", memPayload>>20)
	fmt.Println("(idle: VmRSS just before the probe; x idle: peak/idle; copies: (peak-idle)/payload sent; after: VmRSS right after the responses)")
	fmt.Printf("%-40s %-9s %8s %9s %7s %7s %9s %9s  %s\n", "probe", "node", "idle-MB", "peak-MB", "x idle", "copies", "after-MB", "time", "statuses")
	one := insertBody(1)
	many := insertBody(memManyStatements)
	type probe struct {
		name string
		run  func(ctx context.Context, n *node) memSent
	}
	single := []probe{
		{"1 insert of 60 MiB", func(ctx context.Context, n *node) memSent { return memPost(ctx, n, one, 1, 1) }},
		{"3 concurrent inserts of 60 MiB", func(ctx context.Context, n *node) memSent { return memPost(ctx, n, one, 1, 3) }},
		{"8 concurrent inserts of 60 MiB", func(ctx context.Context, n *node) memSent { return memPost(ctx, n, one, 1, 8) }},
		{"1 request, 1000 stmts = 60 MiB", func(ctx context.Context, n *node) memSent { return memPost(ctx, n, many, memManyStatements, 1) }},
		{fmt.Sprintf("%d chunked bodies of %d MiB", memChunkedBodies, memChunkedSize>>20), func(ctx context.Context, n *node) memSent {
			return memChunked(ctx, n, memChunkedBodies, memChunkedSize)
		}},
		{"2 concurrent queries of 10^7 rows", func(ctx context.Context, n *node) memSent { return memQuery(ctx, n, memQueryRows, 2) }},
	}
	for _, p := range single {
		if ctx.Err() != nil {
			return
		}
		n := b.start()
		n.waitReady(ctx)
		createMemTable(n.base)
		idle := rssMB(n)
		start := time.Now()
		sent := p.run(ctx, n)
		r := memProbe{name: p.name, node: "single", idleMB: idle, payload: sent.bytes, statuses: sent.statuses, elapsed: time.Since(start)}
		r.afterMB = rssMB(n)
		r.peakMB = hwmMB(n)
		r.print()
		n.stop()
	}
	cluster := single[:2] // 1 and 3 inserts
	for _, p := range cluster {
		if ctx.Err() != nil {
			return
		}
		nodes := b.startBootstrap(ctx, 3)
		stop := func() {
			for _, n := range nodes {
				n.stop()
			}
		}
		leader, _ := b.roles(nodes)
		createMemTable(leader.base)
		for _, n := range nodes {
			if err := waitRows(ctx, n, 0); err != nil {
				fmt.Printf("cluster: %s: %v\n", p.name, err)
				stop()
				return
			}
		}
		idle := make([]float64, len(nodes))
		for i, n := range nodes {
			idle[i] = rssMB(n)
		}
		start := time.Now()
		sent := p.run(ctx, leader)
		// The followers' peaks count once they have applied every write
		// the leader acknowledged.
		for _, n := range nodes {
			if err := waitRows(ctx, n, sent.rows); err != nil {
				fmt.Printf("cluster: %s: %v\n", p.name, err)
			}
		}
		elapsed := time.Since(start)
		for i, n := range nodes {
			role := "follower"
			if n == leader {
				role = "leader"
			}
			r := memProbe{name: "cluster: " + p.name, node: role, idleMB: idle[i], payload: sent.bytes, statuses: sent.statuses, elapsed: elapsed}
			r.afterMB = rssMB(n)
			r.peakMB = hwmMB(n)
			r.print()
		}
		stop()
	}
}

// memSent is what a probe sent: payload bytes, the rows acknowledged,
// and the statuses received.
type memSent struct {
	bytes, rows int64
	statuses    string
}

func createMemTable(base string) {
	mustPost(base+"/db/execute", `["CREATE TABLE IF NOT EXISTS mem (id INTEGER PRIMARY KEY, s TEXT)"]`)
}

// insertBody is a /db/execute body of stmts INSERTs whose string
// parameters add up to memPayload bytes.
func insertBody(stmts int) []byte {
	each := memPayload / stmts
	var b bytes.Buffer
	b.Grow(memPayload + stmts*64)
	b.WriteString("[")
	for i := 0; i < stmts; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`["INSERT INTO mem(s) VALUES(?)", "`)
		b.Write(bytes.Repeat([]byte{'a' + byte(i%26)}, each))
		b.WriteString(`"]`)
	}
	b.WriteString("]")
	return b.Bytes()
}

// memPost sends body, which inserts rows rows, to n's /db/execute from
// conc clients at once.
func memPost(ctx context.Context, n *node, body []byte, rows int64, conc int) memSent {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	u := n.base + "/db/execute"
	statuses := make([]string, conc)
	var acked atomic.Int64
	var wg sync.WaitGroup
	for i := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
			if err != nil {
				statuses[i] = err.Error()
				return
			}
			req.Header.Set("Content-Type", "application/json")
			code, b, err := memDo(req)
			if err != nil {
				statuses[i] = err.Error()
				return
			}
			statuses[i] = fmt.Sprint(code)
			if code != http.StatusOK || bytes.Contains(b, errMarker) {
				statuses[i] += " " + string(bytes.TrimSpace(truncate(b, 60)))
				return
			}
			acked.Add(rows)
		}()
	}
	wg.Wait()
	return memSent{bytes: int64(conc) * memPayload, rows: acked.Load(), statuses: summarize(statuses)}
}

// memQueryRows is the row count of the big-query probe (a query of 10^7
// rows took one node to 1.98 GB before -db-max-result-bytes).
const memQueryRows = 10_000_000

// memQuery runs conc queries that each ask for rows rows; the statuses
// say whether the node answered them or refused them for their size.
func memQuery(ctx context.Context, n *node, rows, conc int) memSent {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	q := fmt.Sprintf("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < %d) SELECT x, 'row' FROM c", rows)
	u := n.base + "/db/query?q=" + url.QueryEscape(q)
	statuses := make([]string, conc)
	var wg sync.WaitGroup
	for i := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			if err != nil {
				statuses[i] = err.Error()
				return
			}
			code, b, err := memDo(req)
			if err != nil {
				statuses[i] = err.Error()
				return
			}
			statuses[i] = fmt.Sprint(code)
			if at := bytes.Index(b, []byte(`"error":`)); at >= 0 {
				statuses[i] += " " + string(truncate(b[at:], 60))
			} else {
				statuses[i] += fmt.Sprintf(" %d MB", len(b)>>20)
			}
		}()
	}
	wg.Wait()
	return memSent{statuses: summarize(statuses)}
}

// memDo sends req and returns the response's status and body.
func memDo(req *http.Request) (int, []byte, error) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// summarize counts equal statuses: "200 x3, 503 server busy... x1".
func summarize(statuses []string) string {
	var order []string
	count := map[string]int{}
	for _, s := range statuses {
		if count[s] == 0 {
			order = append(order, s)
		}
		count[s]++
	}
	var out []string
	for _, s := range order {
		out = append(out, fmt.Sprintf("%s x%d", s, count[s]))
	}
	return strings.Join(out, ", ")
}

// memChunked sends conc chunked bodies of size bytes at once; the bytes
// it reports are those written before the server answered.
func memChunked(ctx context.Context, n *node, conc, size int) memSent {
	statuses := make([]string, conc)
	sent := make([]int64, conc)
	var wg sync.WaitGroup
	for i := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sent[i], statuses[i] = sendChunked(ctx, n.http, size)
		}()
	}
	wg.Wait()
	var total int64
	for _, s := range sent {
		total += s
	}
	return memSent{bytes: total, statuses: summarize(statuses)}
}

// sendChunked posts a chunked body of size bytes (the start of an INSERT
// whose string never ends) and returns how many bytes were written before
// the server answered or closed, and the status.
func sendChunked(ctx context.Context, addr string, size int) (int64, string) {
	conn, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err.Error()
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	chunk := bytes.Repeat([]byte{'z'}, 1<<20)
	var written int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		w := bufio.NewWriterSize(conn, 64<<10)
		fmt.Fprintf(w, "POST /db/execute HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n", addr)
		head := []byte(`[["INSERT INTO mem(s) VALUES(?)", "`)
		fmt.Fprintf(w, "%x\r\n%s\r\n", len(head), head)
		for n := len(head); n < size; n += len(chunk) {
			fmt.Fprintf(w, "%x\r\n", len(chunk))
			w.Write(chunk)
			if _, err := w.WriteString("\r\n"); err != nil {
				return
			}
			written = int64(n)
		}
		w.WriteString("0\r\n\r\n")
		w.Flush()
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		<-done
		return written, "no response: " + err.Error()
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	conn.Close() // stops the writer
	<-done
	return written, fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(truncate(b, 40)))
}

// waitRows waits until n's own database holds at least rows rows in mem.
func waitRows(ctx context.Context, n *node, rows int64) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		got, err := countRows(n.base, "mem", "none")
		if err == nil && got >= rows {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s: %d rows in mem, want %d (%v)", n.base, got, rows, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rssMB and hwmMB read a node's VmRSS and VmHWM (0 if it is gone).
func rssMB(n *node) float64 {
	m, err := readRSS(n.cmd.Process.Pid)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rqbench:", err)
	}
	return float64(m.rss) / 1024
}

func hwmMB(n *node) float64 {
	m, err := readRSS(n.cmd.Process.Pid)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rqbench:", err)
	}
	return float64(m.hwm) / 1024
}
