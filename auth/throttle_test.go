package auth

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func TestMain(m *testing.M) {
	// The dummy hash of a file without hashes would cost bcrypt's default
	// (hundreds of milliseconds per check under -race).
	noHashCost = bcrypt.MinCost
	os.Exit(m.Run())
}

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock                   { return &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }
func hashOf(t *testing.T, pw string, cost int) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// countingStore loads body with a fake clock and a comparison that counts
// its calls and records the hashes it was given.
type countingStore struct {
	*Store
	clock *clock
	mu    sync.Mutex
	calls int
	seen  [][]byte
}

func loadCounting(t *testing.T, body string) *countingStore {
	t.Helper()
	s, _, err := Load(writeFile(t, body))
	if err != nil {
		t.Fatal(err)
	}
	cs := &countingStore{Store: s, clock: newClock()}
	s.throttle.now = cs.clock.now
	s.compare = func(hash, pw []byte) error {
		cs.mu.Lock()
		cs.calls++
		cs.seen = append(cs.seen, hash)
		cs.mu.Unlock()
		return bcrypt.CompareHashAndPassword(hash, pw)
	}
	return cs
}

func (cs *countingStore) take() (calls int, seen [][]byte) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	calls, seen = cs.calls, cs.seen
	cs.calls, cs.seen = 0, nil
	return calls, seen
}

// TestEveryFailureCostsOneComparison: a wrong password costs one bcrypt
// comparison whoever the user is (unknown, plain text, hashed, without the
// permission), unknown and plain-text users against the dummy hash, whose
// cost is the highest in the file; right passwords are cached.
func TestEveryFailureCostsOneComparison(t *testing.T) {
	cs := loadCounting(t, `[{"username":"plain","password":"p","perms":["all"]},
		{"username":"low","password":"`+hashOf(t, "l", bcrypt.MinCost)+`","perms":["all"]},
		{"username":"high","password":"`+hashOf(t, "h", bcrypt.MinCost+1)+`","perms":["status"]},
		{"username":"*","perms":["ready"]}]`)
	if c, err := bcrypt.Cost(cs.dummy); err != nil || c != bcrypt.MinCost+1 {
		t.Fatalf("dummy hash cost = %d, %v; want the highest in the file, %d", c, err, bcrypt.MinCost+1)
	}
	for _, c := range []struct {
		user, pass string
		dummy      bool // compared against the dummy hash
	}{
		{"nobody", "x", true},
		{"*", "x", true},
		{"plain", "wrong", true},
		{"plain", "", true},
		{"low", "wrong", false},
		{"high", "wrong", false}, // lacks "query", refused after the comparison all the same
	} {
		err := cs.Authorize("", c.user, c.pass, true, PermQuery)
		if !errors.Is(err, ErrDenied) {
			t.Errorf("%s/%s: error %v, want ErrDenied", c.user, c.pass, err)
		}
		calls, seen := cs.take()
		if calls != 1 {
			t.Errorf("%s/%s: %d bcrypt comparisons, want 1", c.user, c.pass, calls)
			continue
		}
		if isDummy := string(seen[0]) == string(cs.dummy); isDummy != c.dummy {
			t.Errorf("%s/%s: compared against the dummy hash: %v, want %v", c.user, c.pass, isDummy, c.dummy)
		}
	}
	// Right passwords: plain text costs no comparison, a hash one, then
	// none (cached); a user without the permission is refused after it.
	for _, c := range []struct {
		user, pass, perm string
		calls            int
		want             bool
	}{
		{"plain", "p", PermQuery, 0, true},
		{"low", "l", PermQuery, 1, true},
		{"low", "l", PermQuery, 0, true},
		{"high", "h", PermQuery, 1, false},
		{"high", "h", PermStatus, 0, true},
		{"nobody", "", PermReady, 0, true}, // "*" has it
	} {
		err := cs.Authorize("192.0.2.1", c.user, c.pass, true, c.perm)
		if (err == nil) != c.want {
			t.Errorf("%s %s: error %v, want allowed %v", c.user, c.perm, err, c.want)
		}
		if calls, _ := cs.take(); calls != c.calls {
			t.Errorf("%s %s: %d bcrypt comparisons, want %d", c.user, c.perm, calls, c.calls)
		}
	}
	if err := cs.Authorize("", "low", "l", false, PermQuery); !errors.Is(err, ErrDenied) {
		t.Errorf("no credentials: %v, want ErrDenied", err)
	}
}

func TestDummyCost(t *testing.T) {
	plain := map[string]*user{"a": {}}
	if got := dummyCost(plain, bcrypt.DefaultCost); got != bcrypt.DefaultCost {
		t.Errorf("no hashes: cost %d, want bcrypt.DefaultCost", got)
	}
	mixed := map[string]*user{"a": {}, "b": {hashed: true, cost: 11}, "c": {hashed: true, cost: 12}}
	if got := dummyCost(mixed, bcrypt.DefaultCost); got != 12 {
		t.Errorf("hashes of cost 11 and 12: cost %d, want 12", got)
	}
	s, _, err := Load(writeFile(t, `[{"username":"a","password":"x"}]`))
	if err != nil {
		t.Fatal(err)
	}
	if c, err := bcrypt.Cost(s.dummy); err != nil || c != noHashCost {
		t.Fatalf("file without hashes: dummy cost %d, %v, want %d", c, err, noHashCost)
	}
	if bcrypt.CompareHashAndPassword(s.dummy, []byte("")) == nil || bcrypt.CompareHashAndPassword(s.dummy, []byte("x")) == nil {
		t.Fatal("the dummy hash matches a guessable password")
	}
}

func TestPlainEqual(t *testing.T) {
	stored := func(p string) [32]byte { return sha256.Sum256([]byte(p)) }
	for _, c := range []struct {
		stored, given string
		want          bool
	}{
		{"secret", "secret", true},
		{"secret", "secre", false},
		{"secret", "secret1", false},
		{"secret", "Secret", false},
		{"secret", "", false},
		{"", "", true},
		{"", "x", false},
	} {
		if got := plainEqual(stored(c.stored), c.given); got != c.want {
			t.Errorf("plainEqual(%q, %q) = %v, want %v", c.stored, c.given, got, c.want)
		}
	}
}

// TestThrottle: failures from one address lock it out after maxFailures,
// for longer each time up to maxBackoff, without a bcrypt comparison; other
// addresses are not affected; a success resets the count.
func TestThrottle(t *testing.T) {
	cs := loadCounting(t, `[{"username":"bob","password":"`+hashOf(t, "right", bcrypt.MinCost)+`","perms":["all"]}]`)
	const ip = "192.0.2.7"
	fail := func() error { return cs.Authorize(ip, "bob", "wrong", true, PermQuery) }
	for i := 0; i < maxFailures; i++ {
		if err := fail(); !errors.Is(err, ErrDenied) || errors.Is(err, ErrThrottled) {
			t.Fatalf("failure %d: %v, want ErrDenied", i+1, err)
		}
	}
	cs.take()
	// Locked out: refused without bcrypt, even with the right password.
	var te *ThrottledError
	for _, pw := range []string{"wrong", "right"} {
		err := cs.Authorize(ip, "bob", pw, true, PermQuery)
		if !errors.Is(err, ErrThrottled) || !errors.As(err, &te) {
			t.Fatalf("locked out, password %q: %v, want a ThrottledError", pw, err)
		}
	}
	if te.RetryAfter() != baseBackoff || te.Failures != maxFailures || te.Client != ip {
		t.Fatalf("first lock-out: %+v, want %v after %d failures from %s", te, baseBackoff, maxFailures, ip)
	}
	if msg := te.Error(); !strings.Contains(msg, "too many failed logins from "+ip) || !strings.Contains(msg, "for 1 second more") {
		t.Errorf("message %q does not say what happened and when to retry", msg)
	}
	if calls, _ := cs.take(); calls != 0 {
		t.Fatalf("%d bcrypt comparisons while locked out, want 0", calls)
	}
	// Another address is not affected.
	if err := cs.Authorize("192.0.2.8", "bob", "wrong", true, PermQuery); errors.Is(err, ErrThrottled) || !errors.Is(err, ErrDenied) {
		t.Fatalf("another address: %v, want ErrDenied", err)
	}
	// Each further failure after a lock-out doubles it, up to maxBackoff.
	want := baseBackoff
	for i := 0; i < 8; i++ {
		cs.clock.advance(want)
		want = min(want*2, maxBackoff)
		if err := fail(); !errors.Is(err, ErrDenied) {
			t.Fatalf("after lock-out %d: %v, want one attempt (ErrDenied)", i+1, err)
		}
		if err := fail(); !errors.As(err, &te) || te.RetryAfter() != want {
			t.Fatalf("lock-out %d: %v, want retry after %v", i+2, err, want)
		}
	}
	if want != maxBackoff {
		t.Fatalf("the back-off reached only %v", want)
	}
	// Part of a second left counts as a whole second.
	cs.clock.advance(maxBackoff - 1500*time.Millisecond)
	if err := fail(); !errors.As(err, &te) || te.RetryAfter() != 2*time.Second {
		t.Fatalf("1.5 s before the end of a lock-out: %v, want retry after 2s", err)
	}
	// A success resets the count: maxFailures more failures before a
	// lock-out.
	cs.clock.advance(2 * time.Second)
	if err := cs.Authorize(ip, "bob", "right", true, PermQuery); err != nil {
		t.Fatalf("right password after the lock-out: %v", err)
	}
	for i := 0; i < maxFailures; i++ {
		if err := fail(); errors.Is(err, ErrThrottled) {
			t.Fatalf("failure %d after a success: %v", i+1, err)
		}
	}
	if err := fail(); !errors.As(err, &te) || te.RetryAfter() != baseBackoff {
		t.Fatalf("after a success, the lock-out started over at %v: %v", baseBackoff, err)
	}
	// A cached success also resets it.
	cs.clock.advance(baseBackoff)
	cs.take()
	if err := cs.Authorize(ip, "bob", "right", true, PermQuery); err != nil {
		t.Fatal(err)
	}
	if calls, _ := cs.take(); calls != 0 {
		t.Fatalf("a cached password cost %d comparisons", calls)
	}
	if err := fail(); errors.Is(err, ErrThrottled) {
		t.Fatalf("after a cached success: %v", err)
	}
	// Failures are forgotten after failureWindow without one.
	for i := 1; i < maxFailures; i++ {
		fail()
	}
	cs.clock.advance(failureWindow)
	if err := fail(); errors.Is(err, ErrThrottled) {
		t.Fatalf("failures older than the window still count: %v", err)
	}
	// Allowed (the cluster service's check) is not throttled.
	for i := 0; i < 2*maxFailures; i++ {
		cs.Allowed("bob", "wrong", true, PermQuery)
	}
	if !cs.Allowed("bob", "right", true, PermQuery) {
		t.Fatal("Allowed was throttled")
	}
}

// TestThrottleTableIsBounded: many addresses cannot grow the table past its
// capacity; the least recently active are evicted, expired ones first.
func TestThrottleTableIsBounded(t *testing.T) {
	c := newClock()
	th := newThrottle(c.now)
	th.capacity = 3
	fail := func(addr string) {
		cl, err := th.begin(addr)
		if err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		th.end(cl, false)
	}
	for i := 0; i < 100; i++ {
		fail(fmt.Sprintf("10.0.0.%d", i))
		c.advance(time.Millisecond)
	}
	if len(th.clients) != 3 || th.lru.Len() != 3 {
		t.Fatalf("table holds %d clients (list %d), want 3", len(th.clients), th.lru.Len())
	}
	for _, a := range []string{"10.0.0.97", "10.0.0.98", "10.0.0.99"} {
		if th.clients[a] == nil {
			t.Errorf("the most recent client %s was evicted", a)
		}
	}
	// An active client is kept over older ones.
	fail("10.0.0.97")
	fail("10.0.0.200")
	if th.clients["10.0.0.97"] == nil || th.clients["10.0.0.98"] != nil {
		t.Error("eviction did not take the least recently active client")
	}
	// Expired entries go when looked up, and successes leave none.
	c.advance(failureWindow)
	if err := th.check("10.0.0.97"); err != nil || th.clients["10.0.0.97"] != nil {
		t.Errorf("an expired client was kept (check: %v)", err)
	}
	th.record("10.0.0.1", true)
	cl, _ := th.begin("10.0.0.2")
	th.end(cl, true)
	if th.clients["10.0.0.1"] != nil || th.clients["10.0.0.2"] != nil {
		t.Error("a success left an entry in the table")
	}
}

// TestThrottleConcurrentChecks: checks in progress count against the
// failures left, so concurrent attempts cannot run more bcrypt comparisons
// than the limit allows.
func TestThrottleConcurrentChecks(t *testing.T) {
	th := newThrottle(newClock().now)
	const ip = "198.51.100.1"
	var held []*client
	for i := 0; i < maxFailures; i++ {
		cl, err := th.begin(ip)
		if err != nil {
			t.Fatalf("check %d: %v", i+1, err)
		}
		held = append(held, cl)
	}
	var te *ThrottledError
	if _, err := th.begin(ip); !errors.As(err, &te) || !te.Busy || !errors.Is(err, ErrThrottled) {
		t.Fatalf("check %d while %d run: %v, want a busy ThrottledError", maxFailures+1, maxFailures, err)
	}
	th.end(held[0], false)
	th.end(held[1], false) // 2 failures, 3 in progress: no room
	if _, err := th.begin(ip); err == nil {
		t.Fatal("a check began with failures + checks in progress at the limit")
	}
	for _, cl := range held[2:] {
		th.end(cl, false)
	}
	if _, err := th.begin(ip); !errors.As(err, &te) || te.Busy {
		t.Fatalf("after %d failures: %v, want a lock-out", maxFailures, err)
	}
	if th.begin(""); len(th.clients) != 1 {
		t.Fatal("the empty address was tracked")
	}
}

// TestIdenticalChecksShareOneComparison: a check identical to one in
// progress waits for its result instead of running bcrypt, and its failure
// still counts for its own address; if the check it waited for was
// refused by the throttle (another address), it runs its own.
func TestIdenticalChecksShareOneComparison(t *testing.T) {
	cs := loadCounting(t, `[{"username":"bob","password":"`+hashOf(t, "right", bcrypt.MinCost)+`","perms":["all"]}]`)
	const ip = "203.0.113.5"
	key := cacheKey("bob", "wrong", cs.users["bob"].password)
	waiting := make(chan struct{}, 1)
	cs.waiting = func() { waiting <- struct{}{} }
	for _, c := range []struct {
		ran   bool
		calls int
	}{{ran: true, calls: 0}, {ran: false, calls: 1}} {
		f, leader := cs.join(key)
		if !leader {
			t.Fatal("no check should be in progress")
		}
		done := make(chan error)
		go func() { done <- cs.Authorize(ip, "bob", "wrong", true, PermQuery) }()
		<-waiting
		f.ran = c.ran
		cs.land(key, f)
		if err := <-done; !errors.Is(err, ErrDenied) {
			t.Fatalf("waited for a check (ran %v): %v, want ErrDenied", c.ran, err)
		}
		if calls, _ := cs.take(); calls != c.calls {
			t.Fatalf("waited for a check (ran %v): %d comparisons, want %d", c.ran, calls, c.calls)
		}
	}
	if c := cs.throttle.clients[ip]; c == nil || c.fails != 2 {
		t.Fatalf("the waiting checks' failures were not counted: %+v", c)
	}
}

// TestAuthorizeConcurrent exercises the store from many goroutines (for
// -race) and checks every answer.
func TestAuthorizeConcurrent(t *testing.T) {
	cs := loadCounting(t, `[{"username":"bob","password":"`+hashOf(t, "right", bcrypt.MinCost)+`","perms":["all"]},
		{"username":"pat","password":"pw","perms":["query"]}]`)
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ip := fmt.Sprintf("10.1.0.%d", g%4)
			for i := 0; i < 10; i++ {
				if err := cs.Authorize(ip, "bob", "right", true, PermQuery); err != nil && !errors.Is(err, ErrThrottled) {
					errs <- fmt.Sprintf("bob right: %v", err)
				}
				if err := cs.Authorize(ip, "pat", "pw", true, PermExecute); !errors.Is(err, ErrDenied) && !errors.Is(err, ErrThrottled) {
					errs <- fmt.Sprintf("pat execute: %v", err)
				}
				if err := cs.Authorize(ip, "eve", fmt.Sprint(i), true, PermQuery); err == nil {
					errs <- "eve was let in"
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
