package http

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Request bodies and memory.
//
// A large write is copied several times on its way (the body, the log
// entry, its stored form, SQLite's own copy), on every node, so bodies
// that are being read or served at once draw on a byte budget (Config.
// BodyBudgetBytes, by default twice MaxBodyBytes). A body that does not
// fit waits for the bodies ahead of it, at most bodyBudgetWait, and is
// then answered 503 with Retry-After. Bodies of at most smallBody bytes,
// which is nearly every request, are not counted.
//
// A body larger than exactBodyMax (or of unknown length) is read into a
// stage outside the Go heap while it arrives, then copied once into an
// exact allocation; a body that is refused or cut off frees its stage at
// once.

const (
	// smallBody is the size up to which a body is not counted in the
	// budget.
	smallBody = 64 << 10
	// bodyBudgetWait bounds how long a body waits for budget.
	bodyBudgetWait = 10 * time.Second
	// budgetRetryAfter is the Retry-After of a 503 for lack of budget,
	// in seconds.
	budgetRetryAfter = 1
)

// defaultBodyBudget is the budget when Config.BodyBudgetBytes is 0: two
// bodies of the largest size at once, and never less than 64 MiB.
func defaultBodyBudget(maxBody int64) int64 {
	return max(2*maxBody, 64<<20)
}

// liveStages counts stages not yet freed (tests check that none leak).
var liveStages atomic.Int64

// errBodyTooLarge is a body over MaxBodyBytes.
var errBodyTooLarge = errors.New("request body too large")

// reserve takes n bytes of the body budget for r, waiting at most
// bodyBudgetWait. If they cannot be had it answers 503 (unless the client
// has gone) and returns false.
func (s *Service) reserve(w http.ResponseWriter, r *http.Request, n int64) bool {
	start := time.Now()
	wait := s.budgetWait
	if wait == 0 {
		wait = bodyBudgetWait
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	err := s.budget.acquire(ctx, n)
	if err == nil {
		return true
	}
	if r.Context().Err() != nil {
		return false // the client went away: nobody to answer
	}
	used, size := s.budget.inUse()
	h := w.Header()
	h.Set("Retry-After", strconv.Itoa(budgetRetryAfter))
	h.Set("Connection", "close") // the body is left unread
	http.Error(w, fmt.Sprintf("server busy: request bodies being read or served hold %d of the %d bytes this node takes at once; "+
		"a body of %d bytes waited %v for room: retry later", used, size, n, time.Since(start).Round(time.Millisecond)),
		http.StatusServiceUnavailable)
	return false
}

// readStaged reads a body into a stage of size bytes, after head (bytes
// of it already read), and returns it in one exact allocation. If the body
// fills the stage and limit < size, more than limit bytes arrived:
// errBodyTooLarge. Whatever happens, the stage is freed before it returns.
func readStaged(body io.Reader, head []byte, size int, limit int64) ([]byte, error) {
	st := newStage(size)
	defer st.free()
	st.advance(copy(st.space(), head))
	for {
		sp := st.space()
		if len(sp) == 0 {
			break
		}
		k, err := body.Read(sp)
		st.advance(k)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if int64(st.len()) > limit {
		return nil, errBodyTooLarge
	}
	return st.take(), nil
}

// readHead reads up to n bytes of a body of unknown length. more reports
// that the body did not end within them.
func readHead(body io.Reader, n int) (head []byte, more bool, err error) {
	buf := make([]byte, 0, 512)
	for len(buf) < n {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		k, err := body.Read(buf[len(buf):min(cap(buf), n)])
		buf = buf[:len(buf)+k]
		if errors.Is(err, io.EOF) {
			return buf, false, nil
		}
		if err != nil {
			return nil, false, err
		}
	}
	// Exactly n bytes: the body may end here; a read tells.
	var one [1]byte
	k, err := io.ReadFull(body, one[:])
	if k == 0 && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
		return buf, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return append(buf, one[0]), true, nil
}
