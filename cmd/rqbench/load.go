package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"
)

// maxConc is the highest concurrency of any scenario; the shared client
// keeps at least this many idle connections per host so that no request
// pays for a new connection.
const maxConc = 16

// client is shared by every worker. The load generator runs on the same
// cores as the server, so it is kept cheap: kept-alive connections, no
// compression, request bodies built before the run.
//
// There is no Client.Timeout, which costs a context with a deadline per
// request; a stuck server is caught by ResponseHeaderTimeout instead.
var client = &http.Client{
	Transport: &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          0, // no overall limit
		MaxIdleConnsPerHost:   4 * maxConc,
		IdleConnTimeout:       time.Minute,
		ResponseHeaderTimeout: time.Minute,
		DisableCompression:    true,
	},
}

// result is one scenario's figures.
type result struct {
	name     string
	conc     int
	reqs     int64 // completed requests, failed ones included
	rows     int64 // rows written or read by the successful ones
	errs     int64
	firstErr string
	elapsed  time.Duration
	p50, p99 time.Duration
	rssMB    float64 // peak RSS of the server during the scenario, when sampled
	// CPU time the server (when its pid is known) and the load generator
	// used during the scenario.
	srvCPU, cliCPU time.Duration
}

func (r result) reqRate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.reqs-r.errs) / r.elapsed.Seconds()
}

func (r result) rowRate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.rows) / r.elapsed.Seconds()
}

// work does one request (or, for the ceiling, its in-process equivalent) and
// returns the rows it wrote or read.
type work func() (rows int64, err error)

// runLoad runs conc workers, each doing the work newWorker(i) returns, back
// to back for d, and returns the figures. Requests in flight when d ends are
// allowed to finish and are counted; the elapsed time runs until the last
// of them.
func runLoad(ctx context.Context, name string, conc int, d time.Duration, newWorker func(i int) work) result {
	workers := make([]work, conc)
	for i := range workers {
		workers[i] = newWorker(i)
	}
	type tally struct {
		lat              []time.Duration
		reqs, rows, errs int64
		firstErr         error
		_                [64]byte // keep tallies on separate cache lines
	}
	tallies := make([]tally, conc)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for i := range workers {
		wg.Add(1)
		go func(t *tally, w work) {
			defer wg.Done()
			t.lat = make([]time.Duration, 0, 1<<14)
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(deadline) {
					break
				}
				n, err := w()
				t1 := time.Now()
				t.lat = append(t.lat, t1.Sub(t0))
				t.reqs++
				if err != nil {
					t.errs++
					if t.firstErr == nil {
						t.firstErr = err
					}
				} else {
					t.rows += n
				}
			}
		}(&tallies[i], workers[i])
	}
	wg.Wait()
	closeWorkers()
	res := result{name: name, conc: conc, elapsed: time.Since(start)}
	var all []time.Duration
	for _, t := range tallies {
		res.reqs += t.reqs
		res.rows += t.rows
		res.errs += t.errs
		if t.firstErr != nil && res.firstErr == "" {
			res.firstErr = t.firstErr.Error()
		}
		all = append(all, t.lat...)
	}
	slices.Sort(all)
	if len(all) > 0 {
		res.p50, res.p99 = all[len(all)/2], all[len(all)*99/100]
	}
	return res
}

// httpWorker sends requests for one worker, reusing its response buffer.
type httpWorker struct {
	buf bytes.Buffer
	raw rawConn
}

var (
	workersMu   sync.Mutex
	openWorkers []*httpWorker
)

// newHTTPWorker returns a worker whose connection runLoad closes when the
// scenario ends.
func newHTTPWorker() *httpWorker {
	w := &httpWorker{}
	workersMu.Lock()
	openWorkers = append(openWorkers, w)
	workersMu.Unlock()
	return w
}

// closeWorkers closes the connections of every worker made so far.
func closeWorkers() {
	workersMu.Lock()
	defer workersMu.Unlock()
	for _, w := range openWorkers {
		w.raw.close()
	}
	openWorkers = nil
}

// rawClient makes workers send requests with rawConn instead of net/http
// (-client flag).
var rawClient = true

var (
	jsonHeader = http.Header{"Content-Type": {"application/json"}}
	noHeader   = http.Header{}
	errMarker  = []byte(`"error"`)
)

// do sends one request and returns the response body, which is valid until
// the next call. A transport error, a status other than 200 or an "error"
// in the body is an error.
func (w *httpWorker) do(method string, u *url.URL, body []byte) ([]byte, error) {
	if rawClient {
		w.buf.Reset()
		status, err := w.raw.roundTrip(method, u, body, &w.buf)
		if err != nil {
			return nil, err
		}
		return w.check(method, u, status)
	}
	req := &http.Request{Method: method, URL: u, Host: u.Host, Header: noHeader,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
	if body != nil {
		req.Header = jsonHeader
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	w.buf.Reset()
	_, err = w.buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	return w.check(method, u, resp.StatusCode)
}

// check returns the body in w.buf, or an error for a status other than 200
// or an "error" in the body.
func (w *httpWorker) check(method string, u *url.URL, status int) ([]byte, error) {
	b := w.buf.Bytes()
	if status != http.StatusOK {
		return nil, fmt.Errorf("%s %s: status %d: %s", method, u.Path, status, bytes.TrimSpace(truncate(b, 200)))
	}
	if i := bytes.Index(b, errMarker); i >= 0 {
		return nil, fmt.Errorf("%s %s: %s", method, u.Path, truncate(b[i:], 200))
	}
	return b, nil
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// mustURL parses a URL built by rqbench itself.
func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		fail(err)
	}
	return u
}

// post sends one JSON request and returns the body.
func post(rawURL, body string) ([]byte, error) {
	var w httpWorker
	defer w.raw.close()
	b, err := w.do(http.MethodPost, mustURL(rawURL), []byte(body))
	return bytes.Clone(b), err
}

// mustPost sends one request and fails the benchmark on an error.
func mustPost(rawURL, body string) []byte {
	b, err := post(rawURL, body)
	if err != nil {
		fail(fmt.Errorf("POST %s %s: %w", rawURL, truncate([]byte(body), 200), err))
	}
	return b
}

// get sends one GET and returns the body.
func get(rawURL string) ([]byte, error) {
	var w httpWorker
	defer w.raw.close()
	b, err := w.do(http.MethodGet, mustURL(rawURL), nil)
	return bytes.Clone(b), err
}

var errNotReady = errors.New("node not ready")

// waitReady polls base's /readyz until it answers 200.
func waitReady(ctx context.Context, base string) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			fail(fmt.Errorf("%s: %w", base, errNotReady))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
