package command

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"time"
	"unsafe"
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
// only for parameter values of an unsupported Go type. dst grows at most
// once, to exactly the size needed (a large write is copied once, not
// once per doubling), so Encode(nil, c) allocates exactly the encoding.
func Encode(dst []byte, c *Command) ([]byte, error) {
	n, err := encodedSize(c)
	if err != nil {
		return nil, err
	}
	dst = slices.Grow(dst, n)
	dst = append(dst, formatVersion, byte(c.Type))
	dst = binary.AppendVarint(dst, unixNano(c.Time))
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

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// encodedSize returns the exact length of c's encoding.
func encodedSize(c *Command) (int, error) {
	n := 2 + varintLen(unixNano(c.Time)) + 8 + 1 + uvarintLen(uint64(len(c.Request.Statements)))
	for i := range c.Request.Statements {
		s := &c.Request.Statements[i]
		n += stringLen(len(s.SQL)) + uvarintLen(uint64(len(s.Parameters)))
		for _, p := range s.Parameters {
			n += stringLen(len(p.Name)) + 1
			switch v := p.Value.(type) {
			case nil:
			case int64:
				n += varintLen(v)
			case float64:
				n += 8
			case bool:
				n++
			case string:
				n += stringLen(len(v))
			case []byte:
				n += stringLen(len(v))
			default:
				return 0, fmt.Errorf("encode parameter %q: unsupported type %T", p.Name, p.Value)
			}
		}
	}
	return n + stringLen(len(c.Data)), nil
}

// stringLen is the encoded size of a length-prefixed string of n bytes.
func stringLen(n int) int { return uvarintLen(uint64(n)) + n }

func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

func varintLen(v int64) int { return uvarintLen(uint64(v<<1) ^ uint64(v>>63)) }

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// Decode parses the output of Encode. Every length is checked against the
// input, so hostile or truncated input returns an error wrapping ErrCorrupt
// and never panics or allocates more than the input's size allows. The
// Command shares no memory with b.
func Decode(b []byte) (*Command, error) {
	return decode(b, false)
}

// ShareMin is the size from which DecodeShared lets a value share the
// input's memory.
const ShareMin = 1 << 10

// DecodeShared is Decode, except that string and []byte parameter values
// and Data of ShareMin bytes or more are not copied: they share b's
// memory, so a large write is not copied once more to be applied. b must
// not change while the Command or any such value is in use, and the
// values should not outlive the Command (each keeps all of b alive). SQL
// text and parameter names are always copied: they may be kept, as keys
// of a prepared-statement cache.
func DecodeShared(b []byte) (*Command, error) {
	return decode(b, true)
}

func decode(b []byte, share bool) (*Command, error) {
	d := decoder{b: b, share: share}
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
				p.Value = d.value()
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
	b     []byte
	off   int
	err   error
	share bool // values of ShareMin bytes or more share b (DecodeShared)
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

// span reads a length-prefixed byte string and returns it without copying.
func (d *decoder) span() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)-d.off) {
		d.fail("length exceeds input")
		return nil
	}
	v := d.b[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return v
}

// bytes reads a []byte value: shared with the input if the decoder shares
// and it is large, copied otherwise.
func (d *decoder) bytes() []byte {
	v := d.span()
	if d.err != nil {
		return nil
	}
	if d.share && len(v) >= ShareMin {
		return v
	}
	return append(make([]byte, 0, len(v)), v...)
}

func (d *decoder) string() string {
	return string(d.span())
}

// value reads a string parameter value: shared with the input if the
// decoder shares and it is large, copied otherwise.
func (d *decoder) value() string {
	v := d.span()
	if d.share && len(v) >= ShareMin {
		return unsafe.String(&v[0], len(v))
	}
	return string(v)
}
