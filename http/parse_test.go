package http

import (
	"errors"
	"reflect"
	"strings"
	"testing"

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
