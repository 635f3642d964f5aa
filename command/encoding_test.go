package command

import (
	"errors"
	"reflect"
	"testing"
	"time"
	"unsafe"
)

func sampleCommand() *Command {
	return &Command{
		Type: TypeRequest,
		Time: time.Unix(1700000000, 123456789).UTC(),
		Seed: 0xdeadbeefcafef00d,
		Request: Request{
			Transaction: true,
			Statements: []Statement{
				{SQL: "CREATE TABLE foo (id INTEGER PRIMARY KEY, name TEXT)"},
				{SQL: "INSERT INTO foo(name, age, b, f, n, blob) VALUES(?, :age, ?, ?, ?, ?)", Parameters: []Parameter{
					{Value: "fiona"}, {Name: "age", Value: int64(-20)}, {Value: true},
					{Value: 3.25}, {Value: nil}, {Value: []byte{0xde, 0xad}},
				}},
			},
		},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, c := range []*Command{
		sampleCommand(),
		{Type: TypeNoop},
		{Type: TypeLoad, Data: []byte("SQLite format 3\x00...")},
	} {
		b, err := Encode(nil, c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("decode %v: %v", c.Type, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("round trip of %v:\n got %#v\nwant %#v", c.Type, got, c)
		}
	}
}

func TestEncodeUnsupported(t *testing.T) {
	c := &Command{Type: TypeExecute, Request: Request{Statements: []Statement{{SQL: "x", Parameters: []Parameter{{Value: struct{}{}}}}}}}
	if _, err := Encode(nil, c); err == nil {
		t.Fatal("expected error for unsupported parameter type")
	}
}

func TestDecodeCorrupt(t *testing.T) {
	b, err := Encode(nil, sampleCommand())
	if err != nil {
		t.Fatal(err)
	}
	// Every truncation must fail cleanly.
	for i := 0; i < len(b); i++ {
		if _, err := Decode(b[:i]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated at %d: err = %v, want ErrCorrupt", i, err)
		}
	}
	if _, err := Decode(append(b, 0)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("trailing byte: err = %v", err)
	}
	// A huge count must not allocate.
	if _, err := Decode([]byte{formatVersion, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("huge count: err = %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	b, _ := Encode(nil, sampleCommand())
	f.Add(b)
	f.Add([]byte{formatVersion, 5, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Decode(data)
		if err != nil {
			return
		}
		// Anything that decodes must re-encode to the same bytes.
		again, err := Encode(nil, c)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		c2, err := Decode(again)
		if err != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("unstable round trip: %v", err)
		}
		if n, _ := encodedSize(c); n != len(again) {
			t.Fatalf("encodedSize %d, encoding %d bytes", n, len(again))
		}
		shared, err := DecodeShared(data)
		if err != nil || !reflect.DeepEqual(c, shared) {
			t.Fatalf("DecodeShared differs from Decode: %v", err)
		}
	})
}

// largeCommand carries string and blob parameters and Data above and below
// ShareMin.
func largeCommand() *Command {
	big := make([]byte, 3*ShareMin)
	for i := range big {
		big[i] = byte('a' + i%26)
	}
	return &Command{
		Type: TypeExecute,
		Time: time.Unix(-5, 0).UTC(),
		Seed: 1,
		Request: Request{Statements: []Statement{
			{SQL: "INSERT INTO t VALUES(?, ?, ?, ?, :n)", Parameters: []Parameter{
				{Value: string(big)}, {Value: big}, {Value: "small"}, {Value: []byte{}},
				{Name: "n", Value: int64(-1 << 62)},
			}},
		}},
		Data: big[:ShareMin],
	}
}

func TestEncodeAllocatesExactly(t *testing.T) {
	for _, c := range []*Command{sampleCommand(), largeCommand(), {Type: TypeNoop}, {Type: TypeLoad, Data: make([]byte, 1<<20)}} {
		b, err := Encode(nil, c)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := encodedSize(c); n != len(b) {
			t.Fatalf("%v: encodedSize %d, encoding %d bytes", c.Type, n, len(b))
		}
		if allocs := testing.AllocsPerRun(10, func() { Encode(nil, c) }); allocs != 1 && !raceEnabled {
			t.Fatalf("%v: Encode(nil) made %v allocations, want 1 (the buffer, once)", c.Type, allocs)
		}
		// Appending to a prefix keeps the prefix and encodes the same bytes.
		again, err := Encode([]byte("prefix"), c)
		if err != nil {
			t.Fatal(err)
		}
		if string(again) != "prefix"+string(b) {
			t.Fatalf("%v: Encode after a prefix differs", c.Type)
		}
	}
}

// within reports whether p points into b.
func within(p unsafe.Pointer, b []byte) bool {
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return uintptr(p) >= start && uintptr(p) < start+uintptr(len(b))
}

func TestDecodeShared(t *testing.T) {
	want := largeCommand()
	b, err := Encode(nil, want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeShared(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeShared:\n got %#v\nwant %#v", got, want)
	}
	ps := got.Request.Statements[0].Parameters
	s, blob := ps[0].Value.(string), ps[1].Value.([]byte)
	if !within(unsafe.Pointer(unsafe.StringData(s)), b) || !within(unsafe.Pointer(&blob[0]), b) || !within(unsafe.Pointer(&got.Data[0]), b) {
		t.Fatal("large values were copied, not shared")
	}
	if cap(blob) != len(blob) {
		t.Fatalf("shared blob has capacity %d past its length %d: an append would overwrite the entry", cap(blob), len(blob))
	}
	small := ps[2].Value.(string)
	if within(unsafe.Pointer(unsafe.StringData(small)), b) {
		t.Fatal("a small value shares the input")
	}
	if sql := got.Request.Statements[0].SQL; within(unsafe.Pointer(unsafe.StringData(sql)), b) {
		t.Fatal("SQL text shares the input: a statement cache keyed by it would keep the whole entry alive")
	}
	if name := ps[4].Name; within(unsafe.Pointer(unsafe.StringData(name)), b) {
		t.Fatal("a parameter name shares the input")
	}

	// Decode shares nothing: changing the input changes no value.
	copied, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0
	}
	if !reflect.DeepEqual(copied, want) {
		t.Fatal("Decode's result changed with its input")
	}
}
