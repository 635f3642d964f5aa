package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// scenarioNames are the single-node scenarios, in the order they run.
// readyz-c16 is not a database scenario: it measures the HTTP round trip
// alone (GET /readyz, no SQLite, no Raft log) with the same client, as a
// floor for the others on the same machine.
var scenarioNames = []string{"insert-c1", "insert-c16", "batch-1000", "queued-c16", "query-weak-c16", "query-linearizable-c16", "readyz-c16"}

func parseScenarios(s string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, n := range strings.Split(s, ",") {
		n = strings.TrimSpace(n)
		switch {
		case n == "":
		case n == "all":
			for _, k := range scenarioNames {
				out[k] = true
			}
			out["batch-1000-c1"], out["batch-1000-c4"] = true, true
		case n == "batch-1000":
			out[n], out["batch-1000-c1"], out["batch-1000-c4"] = true, true, true
		case n == "batch-1000-c1" || n == "batch-1000-c4":
			out["batch-1000"], out[n] = true, true
		default:
			known := false
			for _, k := range scenarioNames {
				known = known || k == n
			}
			if !known {
				return nil, fmt.Errorf("unknown scenario %q (known: %s)", n, strings.Join(scenarioNames, ", "))
			}
			out[n] = true
		}
	}
	return out, nil
}

const (
	queryRows  = 10000 // rows in bench_q, the point-query table
	batchSize  = 1000  // statements per batch request
	insertRing = 1024  // distinct pre-built single-insert bodies per scenario
)

func createTable(base, table string) {
	mustPost(base+"/db/execute", fmt.Sprintf(`["CREATE TABLE IF NOT EXISTS %s (id INTEGER PRIMARY KEY, v INTEGER, s TEXT)"]`, table))
}

// countRows returns SELECT COUNT(*) of table, read at the given level.
func countRows(base, table, level string) (int64, error) {
	b, err := get(base + "/db/query?level=" + level + "&q=" + url.QueryEscape("SELECT COUNT(*) FROM "+table))
	if err != nil {
		return 0, err
	}
	var resp struct {
		Results []struct {
			Values [][]int64 `json:"values"`
		} `json:"results"`
	}
	if err := json.Unmarshal(b, &resp); err != nil {
		return 0, fmt.Errorf("count of %s: %w: %s", table, err, truncate(b, 200))
	}
	if len(resp.Results) != 1 || len(resp.Results[0].Values) != 1 || len(resp.Results[0].Values[0]) != 1 {
		return 0, fmt.Errorf("count of %s: unexpected answer %s", table, truncate(b, 200))
	}
	return resp.Results[0].Values[0][0], nil
}

// fillTable inserts rows into table until it holds at least n, 1000 rows a
// request, each request one transaction.
func fillTable(base, table string, n int) {
	have, err := countRows(base, table, "strong")
	if err != nil {
		fail(err)
	}
	for done := int(have); done < n; done += batchSize {
		var sb strings.Builder
		sb.WriteString("[")
		for i := 0; i < batchSize && done+i < n; i++ {
			if i > 0 {
				sb.WriteString(",")
			}
			fmt.Fprintf(&sb, `["INSERT INTO %s(v, s) VALUES(?, ?)", %d, "fill"]`, table, done+i)
		}
		sb.WriteString("]")
		mustPost(base+"/db/execute?transaction", sb.String())
	}
}

// insertSet is a ring of pre-built single-row INSERT requests, with the
// values they carry (the ceiling inserts the same values).
type insertSet struct {
	table  string
	bodies [][]byte
	vals   []int64
}

func newInsertSet(table string) *insertSet {
	s := &insertSet{table: table}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < insertRing; i++ {
		v := r.Int64N(1 << 40)
		s.vals = append(s.vals, v)
		s.bodies = append(s.bodies, fmt.Appendf(nil, `[["INSERT INTO %s(v, s) VALUES(?, ?)", %d, "row"]]`, table, v))
	}
	return s
}

// httpInsert sends single-row INSERTs, each worker walking the ring from
// its own offset.
func httpInsert(u *url.URL, s *insertSet) func(int) work {
	return func(i int) work {
		w := newHTTPWorker()
		k := i * 61
		return func() (int64, error) {
			k++
			if _, err := w.do(http.MethodPost, u, s.bodies[k%len(s.bodies)]); err != nil {
				return 0, err
			}
			return 1, nil
		}
	}
}

// batchBody is one request of batchSize single-row INSERTs.
func batchBody(table string) []byte {
	var b bytes.Buffer
	b.WriteString("[")
	for i := 0; i < batchSize; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `["INSERT INTO %s(v, s) VALUES(?, ?)", %d, "batch row"]`, table, i)
	}
	b.WriteString("]")
	return b.Bytes()
}

func httpBatch(u *url.URL, body []byte) func(int) work {
	return func(int) work {
		w := newHTTPWorker()
		return func() (int64, error) {
			if _, err := w.do(http.MethodPost, u, body); err != nil {
				return 0, err
			}
			return batchSize, nil
		}
	}
}

var valuesMarker = []byte(`"values":[[`)

// httpQuery sends point queries for random ids in [1, maxID]: as POST
// /db/query with the id a bound parameter, or as GET /db/query?q= with the
// id inline. Every request is built before the run.
func httpQuery(base, table, level, form string, maxID int) func(int) work {
	sql := "SELECT * FROM " + table + " WHERE id="
	var bodies [][]byte
	var urls []*url.URL
	post := mustURL(base + "/db/query?level=" + level)
	for id := 1; id <= maxID; id++ {
		if form == "get" {
			urls = append(urls, mustURL(base+"/db/query?level="+level+"&q="+url.QueryEscape(sql+strconv.Itoa(id))))
		} else {
			bodies = append(bodies, fmt.Appendf(nil, `[["%s?", %d]]`, sql, id))
		}
	}
	return func(i int) work {
		w := newHTTPWorker()
		r := rand.New(rand.NewPCG(uint64(i), 99))
		return func() (int64, error) {
			k := r.IntN(maxID)
			var b []byte
			var err error
			if form == "get" {
				b, err = w.do(http.MethodGet, urls[k], nil)
			} else {
				b, err = w.do(http.MethodPost, post, bodies[k])
			}
			if err != nil {
				return 0, err
			}
			if bytes.Contains(b, valuesMarker) {
				return 1, nil
			}
			return 0, nil
		}
	}
}

// line is one scenario of the main table: the server's figures and the
// ceiling they are compared with.
type line struct {
	server  result
	ceiling *result // like for like (autocommit statements for batches)
	extra   *result // batches: the ceiling with one transaction per batch
}

// runSingle runs the selected single-node scenarios against the node at
// base, each followed by its ceiling, and prints the report.
func runSingle(ctx context.Context, o *options, base string) {
	rss := startRSS(ctx, o.pid)
	defer rss.stop()
	var ceil *ceilingDB
	if o.ceiling {
		ceil = openCeiling(o.ceilingDir)
		defer ceil.close()
	}
	rep := &report{opts: o, rss: rss}
	progress := func(r result) {
		fmt.Printf("  .. %-30s %9.0f reqs/s %10.0f rows/s  p50 %-9s p99 %-9s errors %d\n", r.name, r.reqRate(), r.rowRate(),
			fmtDur(r.p50), fmtDur(r.p99), r.errs)
	}
	server := func(name string, conc int, w func(int) work) result {
		rss.beginScenario()
		cpu := startCPU(o.pid)
		r := runLoad(ctx, name, conc, o.dur, w)
		cpu.stop(&r)
		r.rssMB = rss.scenarioPeakMB()
		progress(r)
		return r
	}
	ceiling := func(name string, conc int, w func(int) work) *result {
		r := runLoad(ctx, name, conc, o.dur, w)
		progress(r)
		return &r
	}
	var queryCeiling *result

	for _, name := range scenarioNames {
		if !o.scenarios[name] || ctx.Err() != nil {
			continue
		}
		switch name {
		case "insert-c1", "insert-c16":
			conc := 1
			if name == "insert-c16" {
				conc = 16
			}
			table := "bench_" + strings.ReplaceAll(name, "-", "_")
			createTable(base, table)
			set := newInsertSet(table)
			l := line{server: server(name, conc, httpInsert(mustURL(base+"/db/execute"), set))}
			if ceil != nil {
				l.ceiling = ceiling("ceiling "+name, conc, ceil.insert(set))
			}
			rep.add(l)
		case "batch-1000":
			table := "bench_batch_1000"
			createTable(base, table)
			body := batchBody(table)
			for _, conc := range []int{1, 4} {
				n := fmt.Sprintf("batch-1000-c%d", conc)
				if !o.scenarios[n] {
					continue
				}
				l := line{server: server(n, conc, httpBatch(mustURL(base+"/db/execute"), body))}
				if ceil != nil {
					l.ceiling = ceiling("ceiling "+n+" autocommit", conc, ceil.batch(body, false))
					l.extra = ceiling("ceiling "+n+" 1 tx/batch", conc, ceil.batch(body, true))
				}
				rep.add(l)
			}
		case "queued-c16":
			table := "bench_queued_c16"
			createTable(base, table)
			before, err := countRows(base, table, "strong")
			if err != nil {
				fail(err)
			}
			set := newInsertSet(table)
			r := server(name, 16, httpInsert(mustURL(base+"/db/execute?queue"), set))
			rep.add(line{server: r})
			// One write that waits until it, and so every write queued
			// before it, has been applied; then every acknowledged write
			// must be in the table.
			if _, err := post(base+"/db/execute?queue&wait", string(set.bodies[0])); err != nil {
				rep.warn(fmt.Sprintf("queued-c16: the final ?queue&wait write failed: %v", err))
				break
			}
			after, err := countRows(base, table, "strong")
			if err != nil {
				rep.warn(fmt.Sprintf("queued-c16: counting rows: %v", err))
				break
			}
			acked := r.reqs - r.errs + 1
			if got := after - before; got != acked {
				rep.warn(fmt.Sprintf("queued-c16: %d rows in %s after ?queue&wait, but %d writes were acknowledged (%d failed)", got, table, acked, r.errs))
			} else {
				rep.note(fmt.Sprintf("queued-c16: all %d acknowledged queued writes were applied after ?queue&wait", acked))
			}
		case "query-weak-c16", "query-linearizable-c16":
			level := strings.TrimSuffix(strings.TrimPrefix(name, "query-"), "-c16")
			createTable(base, "bench_q")
			fillTable(base, "bench_q", queryRows)
			l := line{server: server(name, 16, httpQuery(base, "bench_q", level, o.queryForm, queryRows))}
			if ceil != nil {
				if queryCeiling == nil {
					queryCeiling = ceiling("ceiling query-c16", 16, ceil.query(queryRows))
				}
				l.ceiling = queryCeiling
			}
			rep.add(l)
		case "readyz-c16":
			u := mustURL(base + "/readyz")
			rep.add(line{server: server(name, 16, func(int) work {
				w := newHTTPWorker()
				return func() (int64, error) {
					_, err := w.do(http.MethodGet, u, nil)
					return 0, err
				}
			})})
		}
	}
	rep.print()
}
