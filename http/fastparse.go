package http

import (
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/rqlited/rqlited/command"
)

// fastStatements parses the shapes almost every request body has, in one
// pass and without reflection: an array of SQL strings and of arrays
// [sql, scalar...] whose strings use no \u escapes. Anything else (named
// parameters, byte arrays, \u escapes, malformed JSON, ...) returns
// ok=false and parseStatements takes the general path, which also
// produces every error; so the fast path changes speed, never results
// (FuzzFastStatements checks that it agrees with the general path).
func fastStatements(b []byte) (stmts []command.Statement, ok bool) {
	p := scanner{b: b}
	p.ws()
	if !p.eat('[') {
		return nil, false
	}
	p.ws()
	if p.peek() == ']' {
		return nil, false // empty: the general path has the error
	}
	stmts = make([]command.Statement, 0, estimateStatements(b))
	for {
		var st command.Statement
		switch p.peek() {
		case '"':
			if st.SQL, ok = p.str(false); !ok {
				return nil, false
			}
		case '[':
			p.i++
			p.ws()
			if p.peek() != '"' {
				return nil, false
			}
			if st.SQL, ok = p.str(false); !ok {
				return nil, false
			}
			for {
				more, ok := p.listNext()
				if !ok {
					return nil, false
				}
				if !more {
					break
				}
				v, ok := p.scalar()
				if !ok {
					return nil, false
				}
				st.Parameters = append(st.Parameters, command.Parameter{Value: v})
			}
		default:
			return nil, false
		}
		stmts = append(stmts, st)
		more, ok := p.listNext()
		if !ok {
			return nil, false
		}
		if !more {
			break
		}
	}
	p.ws()
	if p.i != len(p.b) {
		return nil, false
	}
	return stmts, true
}

// estimateStatements guesses the number of statements from the number of
// opening brackets (one per statement of the [sql, params...] form), capped so a hostile body cannot make a large
// allocation.
func estimateStatements(b []byte) int {
	n := 1
	for _, c := range b {
		if c == '[' {
			n++
		}
	}
	return min(n, 4096)
}

// scanner walks a JSON text.
type scanner struct {
	b []byte
	i int
}

func (p *scanner) peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *scanner) eat(c byte) bool {
	if p.peek() == c {
		p.i++
		return true
	}
	return false
}

// ws skips JSON whitespace.
func (p *scanner) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// listNext follows an element of an array: it takes the closing bracket
// (more=false) or a comma and the whitespace after it (more=true); ok is
// false for anything else.
func (p *scanner) listNext() (more, ok bool) {
	p.ws()
	if p.eat(']') {
		return false, true
	}
	if !p.eat(',') {
		return false, false
	}
	p.ws()
	return true, true
}

// str reads a JSON string starting at its opening quote. It declines
// (ok=false) \u escapes, control characters and invalid UTF-8, which the
// general path handles (or rejects).
//
// With share, a string without escapes of command.ShareMin bytes or more
// is not copied: it shares the body's memory, which nothing writes after
// it is read, and which it keeps alive (the body lives until the request
// is served anyway, for forwarding). Parameter values are read so; SQL
// text never is, since a prepared-statement cache may keep it as a key
// long after the request.
func (p *scanner) str(share bool) (string, bool) {
	p.i++ // opening quote
	start := p.i
	high := false
	for p.i < len(p.b) {
		switch c := p.b[p.i]; {
		case c == '"':
			seg := p.b[start:p.i]
			p.i++
			if high && !utf8.Valid(seg) {
				return "", false
			}
			if share && len(seg) >= command.ShareMin {
				return unsafe.String(&seg[0], len(seg)), true
			}
			return string(seg), true
		case c == '\\':
			return p.escapedStr(start, high)
		case c < 0x20:
			return "", false
		case c >= 0x80:
			high = true
		}
		p.i++
	}
	return "", false
}

// escapedStr finishes a string that has a backslash at p.i, its text
// starting at start. The unescaped text is built in one buffer of the
// escaped length, which becomes the string without another copy.
func (p *scanner) escapedStr(start int, high bool) (string, bool) {
	out := make([]byte, 0, p.quotedLen(start))
	out = append(out, p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			if high && !utf8.Valid(out) {
				return "", false
			}
			if len(out) == 0 {
				return "", true
			}
			// out is this string's own buffer, written no more.
			return unsafe.String(&out[0], len(out)), true
		case c == '\\':
			if p.i+1 >= len(p.b) {
				return "", false
			}
			var r byte
			switch p.b[p.i+1] {
			case '"':
				r = '"'
			case '\\':
				r = '\\'
			case '/':
				r = '/'
			case 'b':
				r = '\b'
			case 'f':
				r = '\f'
			case 'n':
				r = '\n'
			case 'r':
				r = '\r'
			case 't':
				r = '\t'
			default: // \u and invalid escapes
				return "", false
			}
			out = append(out, r)
			p.i += 2
			continue
		case c < 0x20:
			return "", false
		case c >= 0x80:
			high = true
		}
		out = append(out, c)
		p.i++
	}
	return "", false
}

// quotedLen returns the number of bytes from start to the closing quote
// of the string p.i is in (backslashes skip the byte after them), or to
// the end of the input if it is not closed.
func (p *scanner) quotedLen(start int) int {
	i := p.i
	for i < len(p.b) {
		switch p.b[i] {
		case '"':
			return i - start
		case '\\':
			i++
		}
		i++
	}
	return len(p.b) - start
}

// scalar reads a positional parameter: a string (an x'..' literal becomes
// a BLOB), a number, true, false or null. Objects and arrays decline.
func (p *scanner) scalar() (any, bool) {
	switch c := p.peek(); {
	case c == '"':
		s, ok := p.str(true)
		if !ok {
			return nil, false
		}
		if b, ok := hexLiteral(s); ok {
			return b, true
		}
		return s, true
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return true, p.word("true")
	case c == 'f':
		return false, p.word("false")
	case c == 'n':
		return nil, p.word("null")
	}
	return nil, false
}

func (p *scanner) word(w string) bool {
	if len(p.b)-p.i >= len(w) && string(p.b[p.i:p.i+len(w)]) == w {
		p.i += len(w)
		return true
	}
	return false
}

// number reads a JSON number with JSON's grammar and converts it as
// parseValue does: integers that fit become int64, everything else
// float64.
func (p *scanner) number() (any, bool) {
	start := p.i
	p.eat('-')
	switch c := p.peek(); {
	case c == '0':
		p.i++
	case c >= '1' && c <= '9':
		p.digits()
	default:
		return nil, false
	}
	integer := true
	if p.eat('.') {
		integer = false
		if !p.digits() {
			return nil, false
		}
	}
	if c := p.peek(); c == 'e' || c == 'E' {
		integer = false
		p.i++
		if c := p.peek(); c == '+' || c == '-' {
			p.i++
		}
		if !p.digits() {
			return nil, false
		}
	}
	s := p.b[start:p.i]
	if integer {
		if v, ok := smallInt(s); ok {
			return v, true
		}
		if v, err := strconv.ParseInt(string(s), 10, 64); err == nil {
			return v, true
		}
	}
	f, err := strconv.ParseFloat(string(s), 64)
	if err != nil {
		return nil, false
	}
	return f, true
}

// digits skips one or more decimal digits, reporting whether there was one.
func (p *scanner) digits() bool {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	return p.i > start
}

// smallInt converts an optionally signed integer of at most 18 digits,
// which always fits in an int64, without allocating.
func smallInt(s []byte) (int64, bool) {
	neg := len(s) > 0 && s[0] == '-'
	if neg {
		s = s[1:]
	}
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	var v int64
	for _, c := range s {
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}
