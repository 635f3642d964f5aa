// Package auth holds the users of an -auth file and the permissions each
// has, in rqlite's format:
//
//	[{"username":"bob","password":"secret","perms":["all"]},
//	 {"username":"*","perms":["status","ready"]}]
//
// The user "*" stands for everyone, anonymous callers included. A password
// may be a bcrypt hash ("$2a$", "$2b$" or "$2y$"); plain text is still
// accepted, as rqlite accepts it, and Load reports which users have one.
package auth

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Permissions, as rqlite names them.
const (
	PermAll             = "all"
	PermJoin            = "join"
	PermJoinReadOnly    = "join-read-only"
	PermJoinReadReplica = "join-read-replica"
	PermRemove          = "remove"
	PermExecute         = "execute"
	PermQuery           = "query"
	PermStatus          = "status"
	PermReady           = "ready"
	PermBackup          = "backup"
	PermLoad            = "load"
	PermSnapshot        = "snapshot"
	PermLeaderOps       = "leader-ops"
	PermUI              = "ui"
)

var knownPerms = map[string]bool{
	PermAll: true, PermJoin: true, PermJoinReadOnly: true, PermJoinReadReplica: true,
	PermRemove: true, PermExecute: true, PermQuery: true, PermStatus: true, PermReady: true,
	PermBackup: true, PermLoad: true, PermSnapshot: true, PermLeaderOps: true, PermUI: true,
}

// Everyone is the username whose permissions every caller has.
const Everyone = "*"

// entry is one element of the file.
type entry struct {
	Username string   `json:"username"`
	Password string   `json:"password"`
	Perms    []string `json:"perms"`
}

type user struct {
	password []byte   // plain text, or a bcrypt hash when hashed
	digest   [32]byte // SHA-256 of a plain-text password
	hashed   bool
	cost     int // bcrypt cost, when hashed
	perms    map[string]bool
}

// Store is a loaded -auth file. It is safe for concurrent use; Reload
// swaps in a new version of the file atomically.
//
// Every failed password check costs one bcrypt comparison, whether the
// user exists or not (unknown users, and wrong plain-text passwords, are
// compared against a dummy hash of the highest cost in the file), so that
// the time taken does not tell which users exist. Callers that pass their
// client's address to Authorize are throttled after repeated failures.
type Store struct {
	path string
	// compare is bcrypt's comparison (a test counts calls).
	compare  func(hash, password []byte) error
	throttle *throttle

	mu    sync.RWMutex
	users map[string]*user
	// dummy is a bcrypt hash of a random password, of the highest cost
	// among the users' hashes (bcrypt.DefaultCost without any).
	dummy []byte
	// verified caches successful bcrypt checks (username + SHA-256 of the
	// password), since bcrypt costs tens of milliseconds per request.
	verified map[[32]byte]bool

	// flights are the password checks in progress, by cache key: a check
	// identical to one in progress waits for its result instead of running
	// bcrypt again (a client opening many connections at once with the
	// same credentials pays for one).
	flightMu sync.Mutex
	flights  map[[32]byte]*flight
	// waiting, if set, is called when a check waits for an identical one
	// (a test's hook).
	waiting func()
}

type flight struct {
	done chan struct{}
	ran  bool // false: the check was refused by the throttle, not run
	good bool
}

// noHashCost is the dummy hash's cost when no user has a bcrypt hash (a
// test lowers it).
var noHashCost = bcrypt.DefaultCost

// Load reads the file at path. plain lists the users whose password is in
// plain text, for a start-up warning.
func Load(path string) (s *Store, plain []string, err error) {
	s = &Store{
		path:     path,
		compare:  bcrypt.CompareHashAndPassword,
		throttle: newThrottle(time.Now),
		flights:  map[[32]byte]*flight{},
	}
	if plain, err = s.Reload(); err != nil {
		return nil, nil, err
	}
	return s, plain, nil
}

// Reload reads the file again and, if it is valid, replaces the users. An
// invalid file leaves the previous users in force.
func (s *Store) Reload() (plain []string, err error) {
	b, err := os.ReadFile(s.path)
	if err != nil {
		return nil, fmt.Errorf("read auth file: %w", err)
	}
	users, plain, err := parse(b)
	if err != nil {
		return nil, fmt.Errorf("auth file %s: %w", s.path, err)
	}
	cost := dummyCost(users, noHashCost)
	s.mu.RLock()
	dummy := s.dummy
	s.mu.RUnlock()
	if c, err := bcrypt.Cost(dummy); err != nil || c != cost {
		if dummy, err = bcrypt.GenerateFromPassword([]byte(rand.Text()), cost); err != nil {
			return nil, fmt.Errorf("auth file %s: make a dummy bcrypt hash of cost %d: %w", s.path, cost, err)
		}
	}
	s.mu.Lock()
	s.users, s.dummy, s.verified = users, dummy, map[[32]byte]bool{}
	s.mu.Unlock()
	return plain, nil
}

// dummyCost is the highest bcrypt cost among users, or fallback if none has
// a hash.
func dummyCost(users map[string]*user, fallback int) int {
	cost := 0
	for _, u := range users {
		if u.hashed {
			cost = max(cost, u.cost)
		}
	}
	if cost == 0 {
		return fallback
	}
	return cost
}

func parse(b []byte) (map[string]*user, []string, error) {
	var entries []entry
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&entries); err != nil {
		return nil, nil, fmt.Errorf("not a JSON list of {\"username\",\"password\",\"perms\"} objects: %w", err)
	}
	users := map[string]*user{}
	var plain []string
	for i, e := range entries {
		if e.Username == "" {
			return nil, nil, fmt.Errorf("entry %d has no username", i)
		}
		if _, dup := users[e.Username]; dup {
			return nil, nil, fmt.Errorf("user %q appears twice", e.Username)
		}
		u := &user{password: []byte(e.Password), perms: map[string]bool{}}
		for _, p := range e.Perms {
			p = strings.ToLower(strings.TrimSpace(p))
			if !knownPerms[p] {
				return nil, nil, fmt.Errorf("user %q: unknown permission %q (known: %s)", e.Username, p, strings.Join(Perms(), ", "))
			}
			u.perms[p] = true
		}
		if isBcrypt(e.Password) {
			cost, err := bcrypt.Cost(u.password)
			if err != nil {
				return nil, nil, fmt.Errorf("user %q: password looks like a bcrypt hash but is not one: %w", e.Username, err)
			}
			u.hashed, u.cost = true, cost
		} else {
			u.digest = sha256.Sum256(u.password)
			if e.Username != Everyone {
				plain = append(plain, e.Username)
			}
		}
		users[e.Username] = u
	}
	return users, plain, nil
}

func isBcrypt(p string) bool {
	return strings.HasPrefix(p, "$2a$") || strings.HasPrefix(p, "$2b$") || strings.HasPrefix(p, "$2y$")
}

// Perms returns every permission name, sorted.
func Perms() []string {
	var ps []string
	for p := range knownPerms {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

// ErrNoUser is returned by Password for a username the file lacks.
var ErrNoUser = errors.New("no such user in the auth file")

// Password returns the stored password of username, for sending that
// user's credentials to other nodes (-join-as). A bcrypt hash cannot be
// sent: the caller gets an error saying so.
func (s *Store) Password(username string) (string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	u, ok := s.users[username]
	if !ok {
		return "", fmt.Errorf("-join-as %q: %w", username, ErrNoUser)
	}
	if u.hashed {
		return "", fmt.Errorf("-join-as %q: the auth file holds only a bcrypt hash of this user's password, which cannot be sent to other nodes; give this user a plain-text password", username)
	}
	return string(u.password), nil
}

// ErrDenied marks a refused caller: no credentials, a wrong username or
// password, or a user without the permission.
var ErrDenied = errors.New("not authorized")

var errWrong = fmt.Errorf("%w: wrong username or password", ErrDenied)

// Authenticate reports whether the credentials are those of a user in the
// file. Anonymous callers (ok false) are not authenticated. It does not
// throttle (see Authorize).
func (s *Store) Authenticate(username, password string, ok bool) bool {
	if !ok {
		return false
	}
	_, err := s.verify("", username, password)
	return err == nil
}

// Allowed reports whether a caller may do what perm names: the "*" user
// has it, or the caller authenticates as a user that has it (or "all").
// ok says whether the caller sent credentials at all. It does not throttle
// (see Authorize).
func (s *Store) Allowed(username, password string, ok bool, perm string) bool {
	return s.Authorize("", username, password, ok, perm) == nil
}

// Authorize returns nil if a caller may do everything perms name: for each,
// the "*" user has it, or the caller authenticates as a user that has it
// (or "all"). ok says whether the caller sent credentials at all. client is
// the caller's address (its IP): after repeated failed logins from it,
// further logins are refused without checking the password, with a
// *ThrottledError (errors.Is(err, ErrThrottled)) that says when to retry.
// An empty client is not throttled. Other refusals wrap ErrDenied.
func (s *Store) Authorize(client, username, password string, ok bool, perms ...string) error {
	s.mu.RLock()
	every := s.users[Everyone]
	s.mu.RUnlock()
	var need []string
	for _, p := range perms {
		if every == nil || !(every.perms[p] || every.perms[PermAll]) {
			need = append(need, p)
		}
	}
	if len(need) == 0 {
		return nil
	}
	if !ok {
		return fmt.Errorf("%w: no credentials", ErrDenied)
	}
	// The password is checked before the permissions, so that a user
	// without the permission takes as long to refuse as any other.
	u, err := s.verify(client, username, password)
	if err != nil {
		return err
	}
	for _, p := range need {
		if !(u.perms[p] || u.perms[PermAll]) {
			return fmt.Errorf("%w: user %q lacks the %q permission", ErrDenied, username, p)
		}
	}
	return nil
}

// verify checks a username and password, at the cost of one bcrypt
// comparison unless they are right (and cached, or plain text): unknown
// users and wrong plain-text passwords are compared against the dummy
// hash. It returns the user the credentials are those of.
func (s *Store) verify(client, username, password string) (*user, error) {
	if err := s.throttle.check(client); err != nil {
		return nil, err
	}
	s.mu.RLock()
	u, dummy := s.users[username], s.dummy
	s.mu.RUnlock()
	if username == Everyone {
		u = nil
	}
	hash := dummy
	if u != nil && u.hashed {
		hash = u.password
	}
	key := cacheKey(username, password, hash)
	if u != nil && u.hashed {
		s.mu.RLock()
		hit := s.verified[key]
		s.mu.RUnlock()
		if hit {
			s.throttle.record(client, true)
			return u, nil
		}
	} else if u != nil && plainEqual(u.digest, password) {
		s.throttle.record(client, true)
		return u, nil
	}
	for {
		f, leader := s.join(key)
		if !leader {
			if s.waiting != nil {
				s.waiting()
			}
			<-f.done
			if !f.ran {
				continue // its client was throttled; this one may not be
			}
			s.throttle.record(client, f.good)
			if !f.good {
				return nil, errWrong
			}
			return u, nil
		}
		c, err := s.throttle.begin(client)
		if err == nil {
			// Only a hashed user's own hash can succeed; the dummy
			// comparison is there for its cost.
			f.good = s.compare(hash, []byte(password)) == nil && u != nil && u.hashed
			f.ran = true
			s.throttle.end(c, f.good)
			if f.good {
				s.mu.Lock()
				if len(s.verified) > 10000 {
					s.verified = map[[32]byte]bool{}
				}
				s.verified[key] = true
				s.mu.Unlock()
			}
		}
		s.land(key, f)
		if err != nil {
			return nil, err
		}
		if !f.good {
			return nil, errWrong
		}
		return u, nil
	}
}

// cacheKey keys the cache of successful checks, and the checks in
// progress.
func cacheKey(username, password string, hash []byte) [32]byte {
	return sha256.Sum256([]byte(username + "\x00" + password + "\x00" + string(hash)))
}

// join returns the check in progress for key, or starts one (leader true)
// that the caller must land.
func (s *Store) join(key [32]byte) (f *flight, leader bool) {
	s.flightMu.Lock()
	defer s.flightMu.Unlock()
	if f := s.flights[key]; f != nil {
		return f, false
	}
	f = &flight{done: make(chan struct{})}
	s.flights[key] = f
	return f, true
}

func (s *Store) land(key [32]byte, f *flight) {
	s.flightMu.Lock()
	delete(s.flights, key)
	s.flightMu.Unlock()
	close(f.done)
}

// plainEqual compares a plain-text password with the SHA-256 digest of the
// stored one in constant time: comparing digests, rather than the
// passwords, keeps the time independent of the passwords' lengths too.
func plainEqual(digest [32]byte, password string) bool {
	d := sha256.Sum256([]byte(password))
	return subtle.ConstantTimeCompare(digest[:], d[:]) == 1
}
