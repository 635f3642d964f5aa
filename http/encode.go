package http

import (
	"encoding/base64"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/rqlited/rqlited/command"
)

// resultFormat says how results are rendered.
type resultFormat struct {
	associative bool // rows as objects keyed by column name
	blobArray   bool // BLOBs as arrays of byte values instead of base64
	timings     bool // include "time" per result
	request     bool // /db/request: writes carry "rows":null when associative
}

// response is the top-level JSON object of the db endpoints.
type response struct {
	results   []command.Result
	err       string
	time      float64 // seconds; 0: omitted
	raftIndex uint64  // 0: omitted
	seq       int64   // queued writes: 0 omitted
	emptyOK   bool    // render "results":[] even when results is nil
}

// appendResponse renders r as rqlite does: {"results":[...]} followed by the
// optional "error", "time", "sequence_number" and "raft_index" fields.
func appendResponse(b []byte, r *response, f resultFormat) []byte {
	b = append(b, `{"results":[`...)
	for i := range r.results {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendResult(b, &r.results[i], f)
	}
	b = append(b, ']')
	if r.err != "" {
		b = append(b, `,"error":`...)
		b = appendString(b, r.err)
	}
	if r.time > 0 {
		b = append(b, `,"time":`...)
		b = appendFloat(b, r.time)
	}
	if r.seq != 0 {
		b = append(b, `,"sequence_number":`...)
		b = strconv.AppendInt(b, r.seq, 10)
	}
	if r.raftIndex != 0 {
		b = append(b, `,"raft_index":`...)
		b = strconv.AppendUint(b, r.raftIndex, 10)
	}
	return append(b, '}')
}

func appendResult(b []byte, r *command.Result, f resultFormat) []byte {
	b = append(b, '{')
	n := 0
	field := func(name string) {
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, '"', ':')
	}
	if r.Error != "" {
		field("error")
		b = appendString(b, r.Error)
	} else if !r.IsQuery {
		if r.LastInsertID != 0 {
			field("last_insert_id")
			b = strconv.AppendInt(b, r.LastInsertID, 10)
		}
		if r.RowsAffected != 0 {
			field("rows_affected")
			b = strconv.AppendInt(b, r.RowsAffected, 10)
		}
		if f.associative && f.request {
			field("rows")
			b = append(b, "null"...)
		}
	} else if f.associative {
		field("types")
		b = append(b, '{')
		for i, c := range sortedColumns(r.Columns) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, r.Columns[c])
			b = append(b, ':')
			b = appendString(b, r.Types[c])
		}
		b = append(b, '}')
		field("rows")
		b = append(b, '[')
		order := sortedColumns(r.Columns)
		for i, row := range r.Values {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '{')
			for j, c := range order {
				if j > 0 {
					b = append(b, ',')
				}
				b = appendString(b, r.Columns[c])
				b = append(b, ':')
				b = appendValue(b, row[c], f.blobArray)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	} else {
		if len(r.Columns) > 0 {
			field("columns")
			b = appendStrings(b, r.Columns)
			field("types")
			b = appendStrings(b, r.Types)
		}
		if len(r.Values) > 0 {
			field("values")
			b = append(b, '[')
			for i, row := range r.Values {
				if i > 0 {
					b = append(b, ',')
				}
				b = append(b, '[')
				for j, v := range row {
					if j > 0 {
						b = append(b, ',')
					}
					b = appendValue(b, v, f.blobArray)
				}
				b = append(b, ']')
			}
			b = append(b, ']')
		}
	}
	if f.timings && r.Time > 0 {
		field("time")
		b = appendFloat(b, r.Time)
	}
	return append(b, '}')
}

// sortedColumns returns column indexes in name order, which is the order
// encoding/json gives map keys in rqlite's associative output.
func sortedColumns(cols []string) []int {
	idx := make([]int, len(cols))
	for i := range idx {
		idx[i] = i
	}
	for i := 1; i < len(idx); i++ {
		for j := i; j > 0 && cols[idx[j]] < cols[idx[j-1]]; j-- {
			idx[j], idx[j-1] = idx[j-1], idx[j]
		}
	}
	return idx
}

func appendStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

func appendValue(b []byte, v any, blobArray bool) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...)
	case int64:
		return strconv.AppendInt(b, v, 10)
	case float64:
		return appendFloat(b, v)
	case bool:
		return strconv.AppendBool(b, v)
	case string:
		return appendString(b, v)
	case []byte:
		if blobArray {
			b = append(b, '[')
			for i, c := range v {
				if i > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendUint(b, uint64(c), 10)
			}
			return append(b, ']')
		}
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, v)
		return append(b, '"')
	default:
		return append(b, "null"...)
	}
}

// appendFloat formats like encoding/json. JSON has no infinities or NaN;
// they are written as null.
func appendFloat(b []byte, f float64) []byte {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return append(b, "null"...)
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	start := len(b)
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9, as encoding/json does
		n := len(b) - start
		if n >= 4 && b[len(b)-4] == 'e' && b[len(b)-3] == '-' && b[len(b)-2] == '0' {
			b[len(b)-2] = b[len(b)-1]
			b = b[:len(b)-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string exactly as encoding/json does,
// including its HTML-safe escaping of <, > and &.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
