package disco

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/rqlited/rqlited/dns"
)

// fuzzEnv is set for the fuzz targets so $-expansion has something to find;
// seeds in testdata/fuzz use it.
const fuzzEnv = "RQLITED_FUZZ_DISCO_NAME"

// namesRealFile reports whether LoadConfig would read a file for raw. Fuzz
// inputs are -disco-config literals only: one that names an existing path
// (say /dev/zero, /proc/self/mem or a FIFO) could block, read without end or
// depend on the machine, so such inputs are skipped.
func namesRealFile(raw string) bool {
	p := strings.TrimSpace(raw)
	if p == "" {
		return false
	}
	_, err := os.Lstat(p)
	return err == nil
}

// FuzzLoadConfig feeds -disco-config values to LoadConfig. It must never
// panic; with no error the result is a JSON object (nil only for an empty
// value), and without a $ in the input the result is the input itself.
func FuzzLoadConfig(f *testing.F) {
	f.Setenv(fuzzEnv, "svc")
	for _, s := range []string{
		``, `   `, `{}`, `{"name":"rqlite","port":4002}`,
		`{"name":"$` + fuzzEnv + `"}`, `{"name":"${` + fuzzEnv + `}"}`, `{"name":"${NOPE"}`,
		`'{"name":"rqlite"}'`, `"{\"name\":\"rqlite\"}"`, "{\n  \"name\": rqlite\n}",
		`{"a":1`, `{"a":[[[[[[[[[[[[[[[[[[[[`, `[1,2]`, `{"a":1}{"b":2}`, `{"a":"\ud800"}`,
		`/no/such/file.json`, "{\"a\":\"\x00\xff\"}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if namesRealFile(raw) {
			t.Skip("input names an existing path; only literal values are fuzzed")
		}
		b, err := LoadConfig(raw)
		trimmed := strings.TrimSpace(raw)
		if err != nil {
			if b != nil {
				t.Fatalf("error %v with a result %q", err, b)
			}
			if !strings.HasPrefix(err.Error(), "-disco-config ") {
				t.Fatalf("error does not name the flag: %v", err)
			}
			return
		}
		if trimmed == "" {
			if b != nil {
				t.Fatalf("empty value gave %q, want nil", b)
			}
			return
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("accepted %q, which is not JSON: %v", b, err)
		}
		if _, ok := v.(map[string]any); !ok {
			t.Fatalf("accepted %q, which is a JSON %T, not an object", b, v)
		}
		if !strings.Contains(trimmed, "$") && string(b) != trimmed {
			t.Fatalf("without $ the value must be kept as is: got %q from %q", b, trimmed)
		}
		// Every consumer decodes with Decode; an accepted config must decode
		// into a generic object.
		var m map[string]any
		if err := Decode(b, &m); err != nil {
			t.Fatalf("accepted %q that Decode refuses: %v", b, err)
		}
		decodeDNS(t, b)
	})
}

// FuzzDecodeDNSConfig decodes arbitrary bytes into the dns and dns-srv
// -disco-config structs and builds the providers (no lookups). Neither may
// panic, and a provider that is built has a name and a valid port.
func FuzzDecodeDNSConfig(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"name":"rqlite.local","port":4002}`, `{"name":"rqlite","resolver":"127.0.0.1:53"}`,
		`{"name":"rqlite","service":"raft","resolver":"[::1]:5353"}`, `{"port":-1}`, `{"port":70000}`,
		`{"port":1e99}`, `{"port":"4002"}`, `{"resolver":"no-port"}`, `{"nmae":"typo"}`, `null`, `[]`, `{"name":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeDNS(t, b)
	})
}

func decodeDNS(t *testing.T, b []byte) {
	t.Helper()
	var dc dns.Config
	if err := Decode(b, &dc); err == nil {
		if p, err := dns.New(dc, 4002); err == nil {
			if p.Name() == "" {
				t.Fatalf("dns provider from %q has no name", b)
			}
		} else if dc.Port > 0 && dc.Port <= 65535 && dc.Resolver == "" {
			t.Fatalf("dns config %q with a valid port and no resolver refused: %v", b, err)
		}
	}
	var sc dns.SRVConfig
	if err := Decode(b, &sc); err == nil {
		if p, err := dns.NewSRV(sc); err == nil {
			if !strings.HasPrefix(p.Name(), "_") || !strings.Contains(p.Name(), "._tcp.") {
				t.Fatalf("dns-srv provider from %q has name %q", b, p.Name())
			}
		} else if sc.Resolver == "" {
			t.Fatalf("dns-srv config %q without a resolver refused: %v", b, err)
		}
	}
}
