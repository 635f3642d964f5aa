package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"time"
)

// report collects the lines of a single-node run and prints them.
type report struct {
	opts     *options
	rss      *rssSampler
	lines    []line
	warnings []string
	notes    []string
}

func (r *report) add(l line) { r.lines = append(r.lines, l) }

func (r *report) warn(s string) {
	fmt.Println("WARNING:", s)
	r.warnings = append(r.warnings, s)
}

func (r *report) note(s string) { r.notes = append(r.notes, s) }

// ratio is server/ceiling in rows per second (requests per second when the
// scenario moves no rows); 0 when there is no ceiling.
func ratio(s result, c *result) float64 {
	if c == nil {
		return 0
	}
	if s.rows > 0 && c.rowRate() > 0 {
		return s.rowRate() / c.rowRate()
	}
	if c.reqRate() > 0 {
		return s.reqRate() / c.reqRate()
	}
	return 0
}

func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

func (r *report) print() {
	fmt.Println()
	fmt.Printf("%-24s %9s %10s %9s %9s %7s %15s %6s %7s %7s %7s\n", "scenario", "reqs/s", "rows/s", "p50", "p99", "errors", "ceiling-reqs/s", "ratio", "rss-MB", "srv-µs", "cli-µs")
	for _, l := range r.lines {
		s := l.server
		ceil, rat := "-", "-"
		if l.ceiling != nil {
			ceil = fmt.Sprintf("%.0f", l.ceiling.reqRate())
			rat = fmt.Sprintf("%.2f", ratio(s, l.ceiling))
		}
		rss := "-"
		if s.rssMB > 0 {
			rss = fmt.Sprintf("%.1f", s.rssMB)
		}
		fmt.Printf("%-24s %9.0f %10.0f %9s %9s %7d %15s %6s %7s %7s %7s\n", s.name, s.reqRate(), s.rowRate(), fmtDur(s.p50), fmtDur(s.p99), s.errs, ceil, rat, rss,
			cpuPerReq(s.srvCPU, s), cpuPerReq(s.cliCPU, s))
	}
	var ceilings []line
	for _, l := range r.lines {
		if l.ceiling != nil {
			ceilings = append(ceilings, l)
		}
	}
	if len(ceilings) > 0 {
		fmt.Println()
		fmt.Println("ceiling: the same work through database/sql on SQLite (WAL, synchronous=OFF), each write request fsync'd to a group-committed log first")
		fmt.Printf("%-36s %9s %10s %9s %9s %7s %24s %6s\n", "ceiling", "reqs/s", "rows/s", "p50", "p99", "errors", "server scenario", "ratio")
		shown := map[*result]bool{}
		for _, l := range ceilings {
			for _, c := range []*result{l.ceiling, l.extra} {
				if c == nil || shown[c] {
					continue // the query ceiling serves both query levels
				}
				shown[c] = true
				fmt.Printf("%-36s %9.0f %10.0f %9s %9s %7d %24s %6.2f\n", c.name, c.reqRate(), c.rowRate(), fmtDur(c.p50), fmtDur(c.p99), c.errs, l.server.name, ratio(l.server, c))
			}
		}
	}
	for _, l := range r.lines {
		for _, res := range []*result{&l.server, l.ceiling, l.extra} {
			if res != nil && res.firstErr != "" {
				fmt.Printf("first error of %s (%d errors): %s\n", res.name, res.errs, res.firstErr)
			}
		}
	}
	fmt.Println()
	for _, n := range r.notes {
		fmt.Println(n)
	}
	for _, w := range r.warnings {
		fmt.Println("WARNING:", w)
	}
	hwm, rssMax, err := r.rss.peakMB()
	if err != nil && hwm == 0 {
		fmt.Printf("peak RSS of the server: unknown (%v)\n", err)
	} else {
		anon, file := r.rss.peakSplitMB()
		fmt.Printf("peak RSS of the server (pid %d): VmHWM %.1f MB, largest VmRSS sampled every 100 ms %.1f MB (RssAnon %.1f, RssFile %.1f)\n", r.opts.pid, hwm, rssMax, anon, file)
	}
	if r.opts.json {
		r.printJSON(hwm, rssMax)
	}
}

type jsonResult struct {
	Name        string  `json:"name"`
	Concurrency int     `json:"concurrency"`
	Requests    int64   `json:"requests"`
	Rows        int64   `json:"rows"`
	Errors      int64   `json:"errors"`
	FirstError  string  `json:"first_error,omitempty"`
	ElapsedS    float64 `json:"elapsed_s"`
	ReqsPerS    float64 `json:"reqs_per_s"`
	RowsPerS    float64 `json:"rows_per_s"`
	P50us       int64   `json:"p50_us"`
	P99us       int64   `json:"p99_us"`
	RSSPeakMB   float64 `json:"rss_peak_mb,omitempty"`
	ServerCPUus int64   `json:"server_cpu_us,omitempty"`
	ClientCPUus int64   `json:"client_cpu_us,omitempty"`
}

func toJSON(r *result) *jsonResult {
	if r == nil {
		return nil
	}
	return &jsonResult{Name: r.name, Concurrency: r.conc, Requests: r.reqs, Rows: r.rows, Errors: r.errs, FirstError: r.firstErr,
		ElapsedS: r.elapsed.Seconds(), ReqsPerS: r.reqRate(), RowsPerS: r.rowRate(),
		P50us: r.p50.Microseconds(), P99us: r.p99.Microseconds(), RSSPeakMB: r.rssMB,
		ServerCPUus: r.srvCPU.Microseconds(), ClientCPUus: r.cliCPU.Microseconds()}
}

func (r *report) printJSON(hwm, rssMax float64) {
	type jsonLine struct {
		Server       *jsonResult `json:"server"`
		Ceiling      *jsonResult `json:"ceiling,omitempty"`
		Ratio        float64     `json:"ratio,omitempty"`
		CeilingOneTx *jsonResult `json:"ceiling_one_tx_per_batch,omitempty"`
		RatioOneTx   float64     `json:"ratio_one_tx_per_batch,omitempty"`
	}
	out := struct {
		Time      string     `json:"time"`
		Addr      string     `json:"addr"`
		PID       int        `json:"pid"`
		DurationS float64    `json:"duration_s"`
		CPUs      int        `json:"cpus"`
		QueryForm string     `json:"query_form"`
		Scenarios []jsonLine `json:"scenarios"`
		VmHWMMB   float64    `json:"peak_rss_vmhwm_mb"`
		VmRSSMax  float64    `json:"peak_rss_sampled_mb"`
		Notes     []string   `json:"notes,omitempty"`
		Warnings  []string   `json:"warnings,omitempty"`
	}{Time: time.Now().UTC().Format(time.RFC3339), Addr: r.opts.addr, PID: r.opts.pid, DurationS: r.opts.dur.Seconds(),
		CPUs: runtime.NumCPU(), QueryForm: r.opts.queryForm, VmHWMMB: hwm, VmRSSMax: rssMax, Notes: r.notes, Warnings: r.warnings}
	for _, l := range r.lines {
		out.Scenarios = append(out.Scenarios, jsonLine{Server: toJSON(&l.server), Ceiling: toJSON(l.ceiling), Ratio: ratio(l.server, l.ceiling),
			CeilingOneTx: toJSON(l.extra), RatioOneTx: ratio(l.server, l.extra)})
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		fail(err)
	}
	fmt.Println()
	os.Stdout.Write(append(b, '\n'))
}
