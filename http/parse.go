package http

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/rqlited/rqlited/command"
)

// Request-body errors. Their texts are rqlite's, which clients match on.
var (
	errNoStatements    = errors.New("no statements")
	errInvalidRequest  = errors.New("invalid request")
	errInvalidJSON     = errors.New("invalid JSON body")
	errUnsupportedType = errors.New("unsupported type")
)

// maxJSONDepth bounds nesting in request bodies; statements never need more
// than an array of arrays of objects.
const maxJSONDepth = 8

// parseStatements parses a request body: a JSON array whose elements are
// SQL strings or arrays [sql, params...], where params are positional scalars
// or objects of named parameters.
func parseStatements(body []byte) ([]command.Statement, error) {
	body = bytes.TrimSpace(body)
	if stmts, ok := fastStatements(body); ok {
		return stmts, nil
	}
	return parseStatementsGeneral(body)
}

// parseStatementsGeneral is parseStatements for any body, built on
// encoding/json.
func parseStatementsGeneral(body []byte) ([]command.Statement, error) {
	if jsonTooDeep(body) {
		return nil, errInvalidJSON
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(body, &elems); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return nil, errInvalidRequest
		}
		return nil, errInvalidJSON
	}
	if len(elems) == 0 {
		return nil, errNoStatements
	}
	stmts := make([]command.Statement, len(elems))
	for i, e := range elems {
		st, err := parseStatement(e)
		if err != nil {
			return nil, err
		}
		stmts[i] = st
	}
	return stmts, nil
}

func parseStatement(e json.RawMessage) (command.Statement, error) {
	switch firstByte(e) {
	case '"':
		var s string
		if err := json.Unmarshal(e, &s); err != nil {
			return command.Statement{}, errInvalidJSON
		}
		return command.Statement{SQL: s}, nil
	case '[':
		var parts []json.RawMessage
		if err := json.Unmarshal(e, &parts); err != nil {
			return command.Statement{}, errInvalidJSON
		}
		if len(parts) == 0 || firstByte(parts[0]) != '"' {
			return command.Statement{}, errInvalidRequest
		}
		var st command.Statement
		if err := json.Unmarshal(parts[0], &st.SQL); err != nil {
			return command.Statement{}, errInvalidJSON
		}
		for _, p := range parts[1:] {
			if firstByte(p) == '{' {
				named, err := parseNamed(p)
				if err != nil {
					return command.Statement{}, err
				}
				st.Parameters = append(st.Parameters, named...)
				continue
			}
			v, err := parseValue(p)
			if err != nil {
				return command.Statement{}, err
			}
			st.Parameters = append(st.Parameters, command.Parameter{Value: v})
		}
		return st, nil
	default:
		return command.Statement{}, errInvalidRequest
	}
}

func parseNamed(p json.RawMessage) ([]command.Parameter, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(p, &m); err != nil {
		return nil, errInvalidJSON
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	// Sorted, so the same request always encodes to the same log entry.
	slices.Sort(names)
	out := make([]command.Parameter, 0, len(m))
	for _, k := range names {
		v, err := parseValue(m[k])
		if err != nil {
			return nil, err
		}
		out = append(out, command.Parameter{Name: k, Value: v})
	}
	return out, nil
}

// parseValue maps a JSON value to a parameter: integers to int64, other
// numbers to float64, strings to text (or a BLOB for an x'..' hex literal),
// arrays of bytes to a BLOB.
func parseValue(p json.RawMessage) (any, error) {
	switch c := firstByte(p); {
	case c == 'n':
		return nil, nil
	case c == 't':
		return true, nil
	case c == 'f':
		return false, nil
	case c == '"':
		var s string
		if err := json.Unmarshal(p, &s); err != nil {
			return nil, errInvalidJSON
		}
		if b, ok := hexLiteral(s); ok {
			return b, nil
		}
		return s, nil
	case c == '[':
		var arr []json.Number
		if err := json.Unmarshal(p, &arr); err != nil {
			return nil, errUnsupportedType
		}
		b := make([]byte, len(arr))
		for i, n := range arr {
			v, err := strconv.ParseUint(string(n), 10, 8)
			if err != nil {
				return nil, errUnsupportedType
			}
			b[i] = byte(v)
		}
		return b, nil
	case c == '-' || (c >= '0' && c <= '9'):
		s := string(bytes.TrimSpace(p))
		if !strings.ContainsAny(s, ".eE") {
			if i, err := strconv.ParseInt(s, 10, 64); err == nil {
				return i, nil
			}
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, errUnsupportedType
		}
		return f, nil
	default:
		return nil, errUnsupportedType
	}
}

// hexLiteral recognises SQLite blob literals such as x'DEADBEEF'.
func hexLiteral(s string) ([]byte, bool) {
	if len(s) < 3 || (s[0] != 'x' && s[0] != 'X') || s[1] != '\'' || s[len(s)-1] != '\'' {
		return nil, false
	}
	h := s[2 : len(s)-1]
	if len(h)%2 != 0 {
		return nil, false
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		return nil, false
	}
	return b, true
}

func firstByte(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c
	}
	return 0
}

// jsonTooDeep reports whether b nests arrays or objects deeper than
// maxJSONDepth, ignoring brackets inside strings.
func jsonTooDeep(b []byte) bool {
	depth, inStr, esc := 0, false, false
	for _, c := range b {
		switch {
		case inStr:
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == '[' || c == '{':
			depth++
			if depth > maxJSONDepth {
				return true
			}
		case c == ']' || c == '}':
			depth--
		}
	}
	return false
}
