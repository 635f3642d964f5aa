package auth

import (
	"container/list"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Throttling of failed logins, per client address.
const (
	// maxFailures failed logins in a row lock a client out.
	maxFailures = 5
	// failureWindow: a client forgets its failures after this long
	// without one (and without being locked out).
	failureWindow = time.Minute
	// The first lock-out lasts baseBackoff; each further failure doubles
	// it, up to maxBackoff.
	baseBackoff = time.Second
	maxBackoff  = 30 * time.Second
	// maxClients bounds the table of clients; the least recently active
	// are evicted first.
	maxClients = 10000
)

// ErrThrottled marks a login refused, without checking the password,
// because its client has failed too often; the error is a
// *ThrottledError, which says when to retry.
var ErrThrottled = errors.New("too many failed logins from this address")

// ThrottledError refuses a login from a client that failed too often (or
// has too many logins being checked at once).
type ThrottledError struct {
	// Client is the address the failures came from.
	Client string
	// Failures is the number of failed logins in a row from Client.
	Failures int
	// Busy means Client is not locked out but has as many logins being
	// checked at once as it may have failures left.
	Busy bool
	// Wait is how long to wait before retrying, in whole seconds.
	Wait time.Duration
}

func (e *ThrottledError) Error() string {
	wait := fmt.Sprintf("%d seconds", int(e.Wait/time.Second))
	if e.Wait == time.Second {
		wait = "1 second"
	}
	if e.Busy {
		return fmt.Sprintf("too many logins from %s are being checked at once (%d failed logins in a row so far): retry in %s", e.Client, e.Failures, wait)
	}
	return fmt.Sprintf("too many failed logins from %s (%d in a row): logins from this address are refused without being checked for %s more; retry after that (see the Retry-After header) with the right credentials", e.Client, e.Failures, wait)
}

// Unwrap makes errors.Is(err, ErrThrottled) hold.
func (e *ThrottledError) Unwrap() error { return ErrThrottled }

// RetryAfter is how long the client should wait (an HTTP server sends it
// as Retry-After).
func (e *ThrottledError) RetryAfter() time.Duration { return e.Wait }

// throttle counts failed logins per client address and locks out those
// that fail too often. Entries expire lazily, when looked up or when the
// table needs room; there is no goroutine.
type throttle struct {
	now      func() time.Time
	limit    int // failures in a row before a lock-out
	window   time.Duration
	base     time.Duration
	max      time.Duration
	capacity int

	mu      sync.Mutex
	clients map[string]*client
	lru     list.List // of *client, most recently active at the front
}

type client struct {
	addr     string
	fails    int       // failed logins in a row
	pending  int       // logins being checked now
	lockouts int       // lock-outs so far: each doubles the next
	until    time.Time // locked out until then
	last     time.Time // last login begun or failed
	elem     *list.Element
}

func newThrottle(now func() time.Time) *throttle {
	return &throttle{
		now: now, limit: maxFailures, window: failureWindow,
		base: baseBackoff, max: maxBackoff, capacity: maxClients,
		clients: map[string]*client{},
	}
}

// lookup returns addr's entry, dropping it first if it has expired.
func (t *throttle) lookup(addr string, now time.Time) *client {
	c := t.clients[addr]
	if c != nil && t.stale(c, now) {
		t.drop(c)
		return nil
	}
	return c
}

func (t *throttle) stale(c *client, now time.Time) bool {
	return c.pending == 0 && !now.Before(c.until) && now.Sub(c.last) >= t.window
}

func (t *throttle) drop(c *client) {
	t.lru.Remove(c.elem)
	c.elem = nil
	delete(t.clients, c.addr)
}

// add makes an entry for addr, first dropping expired entries and, if the
// table is still full, the least recently active ones.
func (t *throttle) add(addr string, now time.Time) *client {
	for e := t.lru.Back(); e != nil; e = t.lru.Back() {
		c := e.Value.(*client)
		if !t.stale(c, now) && t.lru.Len() < t.capacity {
			break
		}
		t.drop(c)
	}
	c := &client{addr: addr, last: now}
	c.elem = t.lru.PushFront(c)
	t.clients[addr] = c
	return c
}

// lockedOut returns a *ThrottledError if c is locked out.
func (t *throttle) lockedOut(c *client, now time.Time) error {
	if now.Before(c.until) {
		return &ThrottledError{Client: c.addr, Failures: c.fails, Wait: wholeSeconds(c.until.Sub(now))}
	}
	return nil
}

// check returns a *ThrottledError if addr is locked out. The empty address
// is never throttled.
func (t *throttle) check(addr string) error {
	if addr == "" {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if c := t.lookup(addr, now); c != nil {
		return t.lockedOut(c, now)
	}
	return nil
}

// begin reserves a password check for addr, or refuses it with a
// *ThrottledError: when addr is locked out, or when it already has as many
// checks in progress as it has failures left before a lock-out (one at a
// time after a lock-out), so that concurrent attempts cannot get past the
// limit. The result goes to end. The empty address is never throttled
// (begin returns nil).
func (t *throttle) begin(addr string) (*client, error) {
	if addr == "" {
		return nil, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	c := t.lookup(addr, now)
	if c == nil {
		c = t.add(addr, now)
	}
	if err := t.lockedOut(c, now); err != nil {
		return nil, err
	}
	if c.pending >= max(t.limit-c.fails, 1) {
		return nil, &ThrottledError{Client: addr, Failures: c.fails, Busy: true, Wait: wholeSeconds(t.base)}
	}
	c.pending++
	c.last = now
	t.lru.MoveToFront(c.elem)
	return c, nil
}

// end records the outcome of a check begun with begin.
func (t *throttle) end(c *client, ok bool) {
	if c == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	c.pending--
	if c.elem != nil { // not evicted meanwhile
		t.outcome(c, ok, t.now())
	}
}

// record records the outcome of a login for addr that did not go through
// begin (a cached success, or a check shared with a concurrent identical
// one).
func (t *throttle) record(addr string, ok bool) {
	if addr == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	c := t.lookup(addr, now)
	if c == nil {
		if ok {
			return
		}
		c = t.add(addr, now)
	}
	t.outcome(c, ok, now)
}

// outcome applies a success (which forgets c's failures) or a failure
// (which may lock c out, for longer at each lock-out) to c.
func (t *throttle) outcome(c *client, ok bool, now time.Time) {
	if ok {
		if c.pending == 0 {
			t.drop(c)
		} else {
			c.fails, c.lockouts, c.until = 0, 0, time.Time{}
		}
		return
	}
	c.fails++
	c.last = now
	t.lru.MoveToFront(c.elem)
	if c.fails >= t.limit {
		d := t.base
		for i := 0; i < c.lockouts && d < t.max; i++ {
			d *= 2
		}
		c.until = now.Add(min(d, t.max))
		c.lockouts++
	}
}

// wholeSeconds rounds d up to whole seconds, at least one.
func wholeSeconds(d time.Duration) time.Duration {
	s := (d + time.Second - 1) / time.Second
	return max(s, 1) * time.Second
}
