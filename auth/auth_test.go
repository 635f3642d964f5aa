package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "auth.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAllowed(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("hashed-secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	p := writeFile(t, `[{"username":"bob","password":"secret1","perms":["all"]},
		{"username":"mary","password":"`+string(hash)+`","perms":["query","backup","join"]},
		{"username":"*","perms":["status","ready"]}]`)
	s, plain, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(plain, ",") != "bob" {
		t.Fatalf("plain-text users = %v, want [bob]", plain)
	}
	for _, c := range []struct {
		user, pass string
		ok         bool
		perm       string
		want       bool
	}{
		{"bob", "secret1", true, PermExecute, true},
		{"bob", "wrong", true, PermExecute, false},
		{"bob", "", false, PermExecute, false},
		{"mary", "hashed-secret", true, PermQuery, true},
		{"mary", "hashed-secret", true, PermQuery, true}, // cached
		{"mary", "nope", true, PermQuery, false},
		{"mary", "hashed-secret", true, PermExecute, false},
		{"", "", false, PermStatus, true},
		{"mary", "nope", true, PermReady, true}, // "*" has it
		{"", "", false, PermQuery, false},
		{"*", "", true, PermQuery, false},
		{"nobody", "x", true, PermQuery, false},
	} {
		if got := s.Allowed(c.user, c.pass, c.ok, c.perm); got != c.want {
			t.Errorf("Allowed(%q, %q, %v, %q) = %v, want %v", c.user, c.pass, c.ok, c.perm, got, c.want)
		}
	}
	if pw, err := s.Password("bob"); err != nil || pw != "secret1" {
		t.Fatalf("Password(bob) = %q, %v", pw, err)
	}
	if _, err := s.Password("mary"); err == nil || !strings.Contains(err.Error(), "bcrypt") {
		t.Fatalf("Password(mary) error = %v, want one about bcrypt", err)
	}
	if _, err := s.Password("ghost"); err == nil {
		t.Fatal("Password of an unknown user succeeded")
	}
}

func TestReloadKeepsOldUsersOnError(t *testing.T) {
	p := writeFile(t, `[{"username":"bob","password":"a","perms":["query"]}]`)
	s, _, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p, []byte(`[{"username":"bob","password":"b","perms":["query"]}]`), 0o600)
	if _, err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if s.Allowed("bob", "a", true, PermQuery) || !s.Allowed("bob", "b", true, PermQuery) {
		t.Fatal("reload did not replace bob's password")
	}
	os.WriteFile(p, []byte(`[{"username":"bob"`), 0o600)
	if _, err := s.Reload(); err == nil {
		t.Fatal("reload of a broken file succeeded")
	}
	if !s.Allowed("bob", "b", true, PermQuery) {
		t.Fatal("a broken file replaced the users in force")
	}
}

func TestLoadErrors(t *testing.T) {
	for body, want := range map[string]string{
		`{"username":"x"}`:                            "not a JSON list",
		`[{"password":"x"}]`:                          "no username",
		`[{"username":"a","perms":["fly"]}]`:          `unknown permission "fly"`,
		`[{"username":"a"},{"username":"a"}]`:         "appears twice",
		`[{"username":"a","password":"$2a$garbage"}]`: "bcrypt",
		`[{"username":"a","pass":"x"}]`:               "unknown field",
	} {
		_, _, err := Load(writeFile(t, body))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Load(%s) error = %v, want it to mention %q", body, err, want)
		}
	}
	if _, _, err := Load(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("Load of a missing file succeeded")
	}
}
