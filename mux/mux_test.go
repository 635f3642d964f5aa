package mux

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

func TestMuxRoutesByHeader(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := New(ln, slog.New(slog.NewTextHandler(io.Discard, nil)))
	a, b := m.Layer(HeaderRaft), m.Layer(HeaderCluster)
	m.Serve()
	defer m.Close()

	for _, tc := range []struct {
		l   *Layer
		msg string
	}{{a, "raft"}, {b, "cluster"}} {
		c, err := tc.l.Dial(ln.Addr().String(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(tc.msg))
		s, err := tc.l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(tc.msg))
		if _, err := io.ReadFull(s, buf); err != nil || string(buf) != tc.msg {
			t.Fatalf("layer %d got %q, %v", tc.l.header, buf, err)
		}
		c.Close()
		s.Close()
	}
	// An unknown header is dropped.
	c, _ := net.Dial("tcp", ln.Addr().String())
	c.Write([]byte{99})
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection with unknown header stayed open")
	}
	c.Close()
	m.Close()
	if _, err := a.Accept(); err != ErrClosed {
		t.Fatalf("accept after close: %v", err)
	}
}
