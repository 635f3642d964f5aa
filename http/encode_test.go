package http

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/rqlited/rqlited/command"
)

// The hand-written encoder must produce what encoding/json produces, since
// rqlite's output comes from encoding/json.
func TestStringAndFloatMatchEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `quo"te\`, "<a&b>", "tab\tnl\nret\r", "\x00\x01\x1f\b\f", "\u2028\u2029",
		"héllo ☃", "bad\xffutf8", "\xed\xa0\x80"} {
		want, _ := json.Marshal(s)
		if got := appendString(nil, s); string(got) != string(want) {
			t.Errorf("string %q: got %s want %s", s, got, want)
		}
	}
	for _, f := range []float64{0, 1, -1, 1.5, 2.0, 1e20, 1e21, 1e-6, 1e-7, 123456789.123, -0.000001234, math.MaxFloat64, math.SmallestNonzeroFloat64} {
		want, _ := json.Marshal(f)
		if got := appendFloat(nil, f); string(got) != string(want) {
			t.Errorf("float %v: got %s want %s", f, got, want)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("<x>\u2028\xff")
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendString(nil, s); string(got) != string(want) {
			t.Fatalf("string %q: got %s want %s", s, got, want)
		}
	})
}

func TestAppendResponseShapes(t *testing.T) {
	rows := command.Result{IsQuery: true, Columns: []string{"b", "a"}, Types: []string{"text", "blob"},
		Values: [][]any{{"x", []byte{1, 2}}}, Time: 0.5}
	exec := command.Result{LastInsertID: 3, RowsAffected: 1}
	for _, tc := range []struct {
		r    response
		f    resultFormat
		want string
	}{
		{response{results: []command.Result{{}}}, resultFormat{}, `{"results":[{}]}`},
		{response{err: "stale read"}, resultFormat{}, `{"results":[],"error":"stale read"}`},
		{response{results: []command.Result{rows}}, resultFormat{}, `{"results":[{"columns":["b","a"],"types":["text","blob"],"values":[["x","AQI="]]}]}`},
		{response{results: []command.Result{rows}}, resultFormat{blobArray: true, timings: true},
			`{"results":[{"columns":["b","a"],"types":["text","blob"],"values":[["x",[1,2]]],"time":0.5}]}`},
		{response{results: []command.Result{rows, exec}, time: 1.25, raftIndex: 7}, resultFormat{associative: true, request: true},
			`{"results":[{"types":{"a":"blob","b":"text"},"rows":[{"a":"AQI=","b":"x"}]},{"last_insert_id":3,"rows_affected":1,"rows":null}],"time":1.25,"raft_index":7}`},
		{response{results: []command.Result{{Error: "boom", Time: 1}}}, resultFormat{timings: true}, `{"results":[{"error":"boom","time":1}]}`},
		{response{seq: 42}, resultFormat{}, `{"results":[],"sequence_number":42}`},
	} {
		if got := string(appendResponse(nil, &tc.r, tc.f)); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
		var v any
		if err := json.Unmarshal(appendResponse(nil, &tc.r, tc.f), &v); err != nil {
			t.Errorf("invalid JSON: %v", err)
		}
	}
}
