package http

import (
	"reflect"
	"testing"
	"time"
)

// FuzzParseParams feeds arbitrary query strings to parseParams. It must
// never panic; an accepted query has no negative durations or retries, keeps
// the defaults for keys it does not name, and parses the same again from its
// canonical encoding.
func FuzzParseParams(f *testing.F) {
	for _, s := range []string{
		"", "pretty", "pretty&timings", "level=strong", "level=LINEARIZABLE&linearizable_timeout=2s",
		"level=none&freshness=1s&freshness_strict", "freshness_strict", "timeout=5s&transaction",
		"timeout=-1s", "timeout=1", "timeout=9223372036854775807ns", "timeout=999999999h", "db_timeout=100ms",
		"retries=3", "retries=-1", "retries=99999999999999999999", "trailing_logs=18446744073709551615",
		"trailing_logs=-1", "queue&wait&timeout=10s", "redirect&noleader&nonvoters&raft_index",
		"associative&blob_array&q=SELECT+1", "q=SELECT%20*%20FROM%20t%20WHERE%20a%3D%27x%27",
		"%zz", "a;b", "timeout=1s&timeout=bad", "=x&&&", "vacuum&compress&sync",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := parseParams(raw)
		if err != nil {
			if p != nil {
				t.Fatalf("%q: error %v with params", raw, err)
			}
			if err.Error() == "" {
				t.Fatalf("%q: empty error text (the 400 body)", raw)
			}
			return
		}
		if p == nil || p.v == nil {
			t.Fatalf("%q: no params and no error", raw)
		}
		for name, d := range map[string]time.Duration{"timeout": p.timeout, "freshness": p.freshness,
			"db_timeout": p.dbTimeout, "linearizable_timeout": p.linearizableTimeout} {
			if d < 0 {
				t.Fatalf("%q: negative %s %v accepted", raw, name, d)
			}
		}
		if p.retries < 0 {
			t.Fatalf("%q: negative retries %d accepted", raw, p.retries)
		}
		if _, ok := p.v["timeout"]; !ok && p.timeout != 30*time.Second {
			t.Fatalf("%q: default timeout is %v", raw, p.timeout)
		}
		if _, ok := p.v["linearizable_timeout"]; !ok && p.linearizableTimeout != 10*time.Second {
			t.Fatalf("%q: default linearizable_timeout is %v", raw, p.linearizableTimeout)
		}
		if _, ok := p.v["freshness"]; p.freshnessStrict && !ok {
			t.Fatalf("%q: freshness_strict accepted without freshness", raw)
		}
		if p.level.String() == "" {
			t.Fatalf("%q: level %d has no name", raw, p.level)
		}
		_ = p.queryOptions()
		_ = p.format(true)
		p2, err := parseParams(p.v.Encode())
		if err != nil {
			t.Fatalf("%q accepted, but its encoding %q is refused: %v", raw, p.v.Encode(), err)
		}
		if !reflect.DeepEqual(p, p2) {
			t.Fatalf("%q and its encoding %q parse differently:\n%+v\n%+v", raw, p.v.Encode(), p, p2)
		}
	})
}
