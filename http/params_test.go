package http

import (
	"testing"
	"time"

	"github.com/rqlited/rqlited/command"
)

func TestParseParams(t *testing.T) {
	p, err := parseParams("pretty&timings=false&level=LINEARIZABLE&freshness=2s&freshness_strict&timeout=5s&q=a&q=b")
	if err != nil {
		t.Fatal(err)
	}
	if !p.pretty || !p.timings || !p.freshnessStrict || p.level != command.Linearizable || p.freshness != 2*time.Second ||
		p.timeout != 5*time.Second || p.v.Get("q") != "a" {
		t.Fatalf("parsed: %+v", p)
	}
	if p, _ := parseParams(""); p.level != command.Weak || p.timeout != 30*time.Second {
		t.Fatalf("defaults: %+v", p)
	}
	for raw, want := range map[string]string{
		"timeout=x":            "timeout is not a valid duration",
		"linearizable_timeout": "linearizable_timeout is not a valid duration",
		"retries=-1":           "retries is not a valid integer",
		"freshness_strict":     "freshness_strict requires freshness",
	} {
		if _, err := parseParams(raw); err == nil || err.Error() != want {
			t.Errorf("%q: got %v, want %q", raw, err, want)
		}
	}
}

// TestParseParamsFlags: presence-only flags are set by the key alone,
// whatever its value, as in rqlite's query_params.go.
func TestParseParamsFlags(t *testing.T) {
	p, err := parseParams("qualify_columns=false&sync=0&retries=3&db_timeout=250ms")
	if err != nil {
		t.Fatal(err)
	}
	if !p.qualifyColumns || !p.sync || p.retries != 3 || p.dbTimeout != 250*time.Millisecond {
		t.Fatalf("parsed: %+v", p)
	}
	if p.queryOptions().DBTimeout != 250*time.Millisecond {
		t.Fatalf("db_timeout not passed to the store: %+v", p.queryOptions())
	}
	if p, _ := parseParams("pretty"); p.qualifyColumns || p.sync || p.retries != 0 {
		t.Fatalf("defaults: %+v", p)
	}
	if _, err := parseParams("db_timeout=soon"); err == nil || err.Error() != "db_timeout is not a valid duration" {
		t.Fatalf("db_timeout=soon: %v", err)
	}
}
