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
