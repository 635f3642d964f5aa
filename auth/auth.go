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
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"

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
	password []byte // plain text, or a bcrypt hash when hashed
	hashed   bool
	perms    map[string]bool
}

// Store is a loaded -auth file. It is safe for concurrent use; Reload
// swaps in a new version of the file atomically.
type Store struct {
	path string

	mu    sync.RWMutex
	users map[string]*user
	// verified caches successful bcrypt checks (username + SHA-256 of the
	// password), since bcrypt costs tens of milliseconds per request.
	verified map[[32]byte]bool
}

// Load reads the file at path. plain lists the users whose password is in
// plain text, for a start-up warning.
func Load(path string) (s *Store, plain []string, err error) {
	s = &Store{path: path}
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
	s.mu.Lock()
	s.users, s.verified = users, map[[32]byte]bool{}
	s.mu.Unlock()
	return plain, nil
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
			if _, err := bcrypt.Cost(u.password); err != nil {
				return nil, nil, fmt.Errorf("user %q: password looks like a bcrypt hash but is not one: %w", e.Username, err)
			}
			u.hashed = true
		} else if e.Username != Everyone {
			plain = append(plain, e.Username)
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

// Authenticate reports whether the credentials are those of a user in the
// file. Anonymous callers (ok false) are not authenticated.
func (s *Store) Authenticate(username, password string, ok bool) bool {
	if !ok || username == Everyone {
		return false
	}
	s.mu.RLock()
	u, found := s.users[username]
	s.mu.RUnlock()
	if !found {
		return false
	}
	if !u.hashed {
		return subtle.ConstantTimeCompare(u.password, []byte(password)) == 1
	}
	key := sha256.Sum256([]byte(username + "\x00" + password + "\x00" + string(u.password)))
	s.mu.RLock()
	hit := s.verified[key]
	s.mu.RUnlock()
	if hit {
		return true
	}
	if bcrypt.CompareHashAndPassword(u.password, []byte(password)) != nil {
		return false
	}
	s.mu.Lock()
	if len(s.verified) > 10000 {
		s.verified = map[[32]byte]bool{}
	}
	s.verified[key] = true
	s.mu.Unlock()
	return true
}

// Allowed reports whether a caller may do what perm names: the "*" user
// has it, or the caller authenticates as a user that has it (or "all").
// ok says whether the caller sent credentials at all.
func (s *Store) Allowed(username, password string, ok bool, perm string) bool {
	s.mu.RLock()
	every := s.users[Everyone]
	u := s.users[username]
	s.mu.RUnlock()
	if every != nil && (every.perms[perm] || every.perms[PermAll]) {
		return true
	}
	if u == nil || !(u.perms[perm] || u.perms[PermAll]) {
		return false
	}
	return s.Authenticate(username, password, ok)
}
