// Package conntest has helpers for tests of servers that must close
// connections (deadlines on stalled or idle peers).
package conntest

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// ClosedWithin reports how long the other side took to close c, failing
// the test if it did not within limit.
func ClosedWithin(tb testing.TB, c net.Conn, limit time.Duration) time.Duration {
	tb.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, c)
	took := time.Since(start)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		tb.Fatalf("connection still open after %v", took)
	}
	return took
}
