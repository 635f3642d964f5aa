package disco

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadConfig(t *testing.T) {
	t.Setenv("DISCO_TEST_NAME", "svc")
	b, err := LoadConfig(`{"name":"$DISCO_TEST_NAME","port":4002}`)
	if err != nil || string(b) != `{"name":"svc","port":4002}` {
		t.Fatalf("literal: %s %v", b, err)
	}
	p := filepath.Join(t.TempDir(), "disco.json")
	os.WriteFile(p, []byte("{\n  \"name\": \"${DISCO_TEST_NAME}\"\n}\n"), 0o644)
	if b, err := LoadConfig(p); err != nil || !strings.Contains(string(b), `"svc"`) {
		t.Fatalf("file: %s %v", b, err)
	}
	for raw, want := range map[string]string{
		"{\n  \"name\": rqlite\n}": "line 2, column 11",
		`'{"name":"rqlite"}'`:      "quoted twice",
		`/no/such/file.json`:       "neither a readable file",
		`["a"]`:                    "neither a readable file",
		`{"a":1`:                   "not valid JSON",
	} {
		if _, err := LoadConfig(raw); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want mention of %q", raw, err, want)
		}
	}
	var dst struct{ Name string }
	if err := Decode([]byte(`{"nmae":"x"}`), &dst); err == nil || !strings.Contains(err.Error(), "unknown field") {
		t.Fatalf("typo: %v", err)
	}
}
