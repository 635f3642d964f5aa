package command

import (
	"errors"
	"reflect"
	"testing"
	"time"
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
	})
}
