package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"
)

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 0, IdleConnTimeout: time.Minute}}

// result is one scenario's figures.
type result struct {
	name     string
	reqs     int64
	rows     int64
	errs     int64
	elapsed  time.Duration
	p50, p99 time.Duration
	rssMB    float64 // peak RSS of the server during the run, when known
}

func (r result) reqRate() float64 { return float64(r.reqs) / r.elapsed.Seconds() }
func (r result) rowRate() float64 { return float64(r.rows) / r.elapsed.Seconds() }

func header() {
	fmt.Printf("%-34s %10s %10s %9s %9s %7s\n", "scenario", "reqs/s", "rows/s", "p50", "p99", "errors")
}

func (r result) print() {
	fmt.Printf("%-34s %10.0f %10.0f %9s %9s %7d\n", r.name, r.reqRate(), r.rowRate(),
		r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.errs)
}

// request is what one worker sends: method, URL and body.
type request struct {
	method, url string
	body        []byte
	rows        int64
}

// errRequest marks a request that failed (status, transport or a JSON error).
var errRequest = errors.New("request failed")

// run drives gen with conc HTTP workers for d and returns the figures.
func run(ctx context.Context, name string, conc int, d time.Duration, gen func(r *rand.Rand) request) result {
	return runLocal(ctx, name, conc, d, func(r *rand.Rand) (int64, error) {
		q := gen(r)
		if !do(q) {
			return 0, errRequest
		}
		return q.rows, nil
	})
}

var errMarker = []byte(`"error"`)

// do sends one request; it fails on a non-200 status or any error in the body.
func do(q request) bool {
	var body io.Reader
	if q.body != nil {
		body = bytes.NewReader(q.body)
	}
	req, err := http.NewRequest(q.method, q.url, body)
	if err != nil {
		return false
	}
	if q.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return err == nil && resp.StatusCode == 200 && !bytes.Contains(b, errMarker)
}

// mustPost sends one request and fails the benchmark on an error.
func mustPost(base, path, body string) {
	if !do(request{method: "POST", url: base + path, body: []byte(body)}) {
		fail(fmt.Errorf("POST %s%s %s failed", base, path, body))
	}
}

func insertReq(base, table string) func(*rand.Rand) request {
	return func(r *rand.Rand) request {
		return request{method: "POST", url: base + "/db/execute",
			body: fmt.Appendf(nil, `[["INSERT INTO %s(v, s) VALUES(?, ?)", %d, "row"]]`, table, r.Int64()), rows: 1}
	}
}

func batchReq(base, table string, n int) func(*rand.Rand) request {
	var b bytes.Buffer
	b.WriteString("[")
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `["INSERT INTO %s(v, s) VALUES(?, ?)", %d, "batch row"]`, table, i)
	}
	b.WriteString("]")
	body := b.Bytes()
	return func(*rand.Rand) request {
		return request{method: "POST", url: base + "/db/execute", body: body, rows: int64(n)}
	}
}

// pointQueryReq reads one row by primary key, with the key as a bound
// parameter (POST /db/query), as client libraries send it.
func pointQueryReq(base, table, level string, maxID int) func(*rand.Rand) request {
	u := base + "/db/query?level=" + url.QueryEscape(level)
	return func(r *rand.Rand) request {
		return request{method: "POST", url: u, rows: 1,
			body: fmt.Appendf(nil, `[["SELECT * FROM %s WHERE id=?", %d]]`, table, 1+r.IntN(maxID))}
	}
}
