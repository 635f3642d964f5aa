package http

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/rqlited/rqlited/command"
)

func TestParseStatements(t *testing.T) {
	got, err := parseStatements([]byte(` ["SELECT 1", ["INSERT INTO t VALUES(?, ?, ?, ?, ?, ?)", 1, 2.5, true, null, "x'0aFF'", [1, 255]],
		["UPDATE t SET a=:a, b=:b", {"b": "s", "a": -3}], ["SELECT ?", 1e3, 9223372036854775807, 9223372036854775808]] `))
	if err != nil {
		t.Fatal(err)
	}
	want := []command.Statement{
		{SQL: "SELECT 1"},
		{SQL: "INSERT INTO t VALUES(?, ?, ?, ?, ?, ?)", Parameters: []command.Parameter{
			{Value: int64(1)}, {Value: 2.5}, {Value: true}, {Value: nil}, {Value: []byte{0x0a, 0xff}}, {Value: []byte{1, 255}}}},
		{SQL: "UPDATE t SET a=:a, b=:b", Parameters: []command.Parameter{{Name: "a", Value: int64(-3)}, {Name: "b", Value: "s"}}},
		{SQL: "SELECT ?", Parameters: []command.Parameter{{Value: 1000.0}, {Value: int64(9223372036854775807)}, {Value: 9223372036854775808.0}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %#v\nwant %#v", got, want)
	}
}

func TestParseStatementsErrors(t *testing.T) {
	for body, want := range map[string]error{
		``:                               errInvalidJSON,
		`[`:                              errInvalidJSON,
		`[]`:                             errNoStatements,
		`{}`:                             errInvalidRequest,
		`"SELECT 1"`:                     errInvalidRequest,
		`[1]`:                            errInvalidRequest,
		`[[]]`:                           errInvalidRequest,
		`[[1, 2]]`:                       errInvalidRequest,
		`[["SELECT ?", [256]]]`:          errUnsupportedType,
		`[["SELECT ?", ["a"]]]`:          errUnsupportedType,
		`[["SELECT ?", {"a": [1, {}]}]]`: errUnsupportedType,
		strings.Repeat("[", 50):          errInvalidJSON,
	} {
		if _, err := parseStatements([]byte(body)); !errors.Is(err, want) {
			t.Errorf("%q: got %v, want %v", body, err, want)
		}
	}
}

func FuzzParseStatements(f *testing.F) {
	f.Add([]byte(`["SELECT 1", ["INSERT INTO t VALUES(?, :a)", 1, {"a": "x'00'"}]]`))
	f.Add([]byte(`[[[[[[[[[[`))
	f.Fuzz(func(t *testing.T, body []byte) {
		stmts, err := parseStatements(body)
		if err == nil && len(stmts) == 0 {
			t.Fatal("no error and no statements")
		}
		for _, s := range stmts {
			if _, err := command.Encode(nil, &command.Command{Request: command.Request{Statements: []command.Statement{s}}}); err != nil {
				t.Fatalf("parsed statement cannot be replicated: %v", err)
			}
		}
	})
}

// generalStatements is parseStatements without the fast path.
func generalStatements(body []byte) ([]command.Statement, error) {
	return parseStatementsGeneral(bytes.TrimSpace(body))
}

func TestFastStatements(t *testing.T) {
	for _, body := range []string{
		`["SELECT 1"]`,
		` [ "SELECT 1" , ["INSERT INTO t VALUES(?, ?, ?, ?, ?, ?, ?)", 1, -2.5e3, true, false, null, "x'0aFF'", "text"] ] `,
		`[["SELECT ?", 0, -0, 123456789012345678, 1234567890123456789, 9223372036854775807, 9223372036854775808, -9223372036854775808, -9223372036854775809, 1E2, 0.5]]`,
		`["a\"b\\c\/d\b\f\n\r\t", ["é ✓", "x'00'", "X'AbCd'", "x'0'"]]`,
		"[\"\x7f\"]",
	} {
		fast, ok := fastStatements(bytes.TrimSpace([]byte(body)))
		if !ok {
			t.Errorf("%s: fast path declined", body)
			continue
		}
		general, err := generalStatements([]byte(body))
		if err != nil || !reflect.DeepEqual(fast, general) {
			t.Errorf("%s:\nfast    %#v\ngeneral %#v (%v)", body, fast, general, err)
		}
	}
	// Shapes the fast path leaves to the general one.
	for _, body := range []string{
		``, `[]`, `[`, `["a"`, `["a",]`, `["a"] x`, `{}`, `[1]`, `[[]]`, `[[1]]`,
		`[["SELECT :a", {"a": 1}]]`, `[["SELECT ?", [1, 2]]]`, `["\u00e9"]`, "[\"\xff\"]", "[\"a\nb\"]",
		`[["SELECT ?", 01]]`, `[["SELECT ?", 1.]]`, `[["SELECT ?", .5]]`, `[["SELECT ?", 1e]]`, `[["SELECT ?", +1]]`,
		`[["SELECT ?", 1e400]]`, `[["SELECT ?", tru]]`, `[["SELECT ?", nul]]`, `["a\x"]`,
	} {
		if _, ok := fastStatements([]byte(body)); ok {
			t.Errorf("%s: fast path accepted it", body)
		}
	}
}

func FuzzFastStatements(f *testing.F) {
	f.Add([]byte(`["SELECT 1", ["INSERT INTO t VALUES(?, ?, ?)", 1, -2.5e3, "x'00'"]]`))
	f.Add([]byte(`[["SELECT ?", 9223372036854775808, "a\"b\\c", null, true]]`))
	f.Add([]byte("[\"\xe2\x9c\x93\"]"))
	f.Fuzz(func(t *testing.T, body []byte) {
		body = bytes.TrimSpace(body)
		fast, ok := fastStatements(body)
		if !ok {
			return
		}
		general, err := generalStatements(body)
		if err != nil {
			t.Fatalf("fast path accepted %q, the general path refuses it: %v", body, err)
		}
		if !reflect.DeepEqual(fast, general) {
			t.Fatalf("%q:\nfast    %#v\ngeneral %#v", body, fast, general)
		}
	})
}

// inBody reports whether s's bytes lie inside body.
func inBody(s string, body []byte) bool {
	if len(s) == 0 {
		return false
	}
	p, start := uintptr(unsafe.Pointer(unsafe.StringData(s))), uintptr(unsafe.Pointer(unsafe.SliceData(body)))
	return p >= start && p < start+uintptr(len(body))
}

// TestLargeValuesShareBody: the fast path does not copy large parameter
// values out of the body; SQL text, small values and values with escapes
// are copies of their own.
func TestLargeValuesShareBody(t *testing.T) {
	big := strings.Repeat("v", command.ShareMin)
	sql := "INSERT INTO t VALUES(?, ?, ?) -- " + big
	body := []byte(`[["` + sql + `", "` + big + `", "small", "` + big + `\n"]]`)
	stmts, err := parseStatements(body)
	if err != nil {
		t.Fatal(err)
	}
	ps := stmts[0].Parameters
	if stmts[0].SQL != sql || ps[0].Value != big || ps[1].Value != "small" || ps[2].Value != big+"\n" {
		t.Fatalf("parsed %#v", stmts)
	}
	if !inBody(ps[0].Value.(string), body) {
		t.Error("a large value was copied out of the body")
	}
	if inBody(stmts[0].SQL, body) {
		t.Error("SQL text shares the body: a statement cache keyed by it would keep the body alive")
	}
	if inBody(ps[1].Value.(string), body) || inBody(ps[2].Value.(string), body) {
		t.Error("a small or escaped value shares the body")
	}
}
