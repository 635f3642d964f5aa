package command

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrCorrupt is returned (wrapped) by Decode for any input that is not a
// well-formed encoded Command.
var ErrCorrupt = errors.New("corrupt command")

// formatVersion is the first byte of every encoded Command.
const formatVersion = 1

// Parameter kinds on the wire.
const (
	kindNull   = 0
	kindInt    = 1
	kindFloat  = 2
	kindBool   = 3
	kindString = 4
	kindBytes  = 5
)

// Encode appends the binary form of c to dst and returns the result. It fails
// only for parameter values of an unsupported Go type.
func Encode(dst []byte, c *Command) ([]byte, error) {
	dst = append(dst, formatVersion, byte(c.Type))
	var unixNano int64
	if !c.Time.IsZero() {
		unixNano = c.Time.UnixNano()
	}
	dst = binary.AppendVarint(dst, unixNano)
	dst = binary.LittleEndian.AppendUint64(dst, c.Seed)
	var flags byte
	if c.Request.Transaction {
		flags |= 1
	}
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, uint64(len(c.Request.Statements)))
	for i := range c.Request.Statements {
		s := &c.Request.Statements[i]
		dst = appendString(dst, s.SQL)
		dst = binary.AppendUvarint(dst, uint64(len(s.Parameters)))
		for _, p := range s.Parameters {
			dst = appendString(dst, p.Name)
			switch v := p.Value.(type) {
			case nil:
				dst = append(dst, kindNull)
			case int64:
				dst = append(dst, kindInt)
				dst = binary.AppendVarint(dst, v)
			case float64:
				dst = append(dst, kindFloat)
				dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
			case bool:
				b := byte(0)
				if v {
					b = 1
				}
				dst = append(dst, kindBool, b)
			case string:
				dst = append(dst, kindString)
				dst = appendString(dst, v)
			case []byte:
				dst = append(dst, kindBytes)
				dst = binary.AppendUvarint(dst, uint64(len(v)))
				dst = append(dst, v...)
			default:
				return nil, fmt.Errorf("encode parameter %q: unsupported type %T", p.Name, p.Value)
			}
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(c.Data)))
	dst = append(dst, c.Data...)
	return dst, nil
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// Decode parses the output of Encode. Every length is checked against the
// input, so hostile or truncated input returns an error wrapping ErrCorrupt
// and never panics or allocates more than the input's size allows.
func Decode(b []byte) (*Command, error) {
	d := decoder{b: b}
	if v := d.byte(); v != formatVersion {
		if d.err != nil {
			return nil, d.err
		}
		return nil, fmt.Errorf("%w: unknown format version %d", ErrCorrupt, v)
	}
	c := &Command{Type: Type(d.byte())}
	if ns := d.varint(); ns != 0 {
		c.Time = time.Unix(0, ns).UTC()
	}
	c.Seed = d.uint64()
	flags := d.byte()
	c.Request.Transaction = flags&1 != 0
	n := d.count(2) // each statement takes at least 2 bytes
	if n > 0 {
		c.Request.Statements = make([]Statement, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		s := &c.Request.Statements[i]
		s.SQL = d.string()
		np := d.count(2)
		if np > 0 {
			s.Parameters = make([]Parameter, np)
		}
		for j := 0; j < np && d.err == nil; j++ {
			p := &s.Parameters[j]
			p.Name = d.string()
			switch k := d.byte(); k {
			case kindNull:
			case kindInt:
				p.Value = d.varint()
			case kindFloat:
				p.Value = math.Float64frombits(d.uint64())
			case kindBool:
				p.Value = d.byte() != 0
			case kindString:
				p.Value = d.string()
			case kindBytes:
				p.Value = d.bytes()
			default:
				d.fail(fmt.Sprintf("unknown parameter kind %d", k))
			}
		}
	}
	if data := d.bytes(); len(data) > 0 {
		c.Data = data
	}
	if d.err == nil && d.off != len(d.b) {
		d.fail(fmt.Sprintf("%d trailing bytes", len(d.b)-d.off))
	}
	if d.err != nil {
		return nil, d.err
	}
	return c, nil
}

type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) fail(msg string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s at byte %d", ErrCorrupt, msg, d.off)
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail("truncated")
		return 0
	}
	v := d.b[d.off]
	d.off++
	return v
}

func (d *decoder) uint64() uint64 {
	if d.err != nil {
		return 0
	}
	if len(d.b)-d.off < 8 {
		d.fail("truncated")
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b[d.off:])
	d.off += 8
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.off += n
	return v
}

// count reads a element count and checks that the remaining input could
// hold that many elements of at least min bytes each.
func (d *decoder) count(min int) int {
	n := d.uvarint()
	if d.err != nil {
		return 0
	}
	if n > uint64((len(d.b)-d.off)/min) {
		d.fail("count exceeds input")
		return 0
	}
	return int(n)
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)-d.off) {
		d.fail("length exceeds input")
		return nil
	}
	v := make([]byte, n)
	copy(v, d.b[d.off:])
	d.off += int(n)
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)-d.off) {
		d.fail("length exceeds input")
		return ""
	}
	v := string(d.b[d.off : d.off+int(n)])
	d.off += int(n)
	return v
}
