// Package disco finds the other nodes of a cluster through a service:
// Consul or etcd key-value stores, or DNS (through package dns). This file
// loads -disco-config.
package disco

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Modes of -disco-mode.
const (
	ModeConsulKV = "consul-kv"
	ModeEtcdKV   = "etcd-kv"
	ModeDNS      = "dns"
	ModeDNSSRV   = "dns-srv"
)

// ValidMode reports whether m is a -disco-mode value.
func ValidMode(m string) bool {
	switch m {
	case ModeConsulKV, ModeEtcdKV, ModeDNS, ModeDNSSRV:
		return true
	}
	return false
}

// IsKV reports whether m is a key-value store mode.
func IsKV(m string) bool { return m == ModeConsulKV || m == ModeEtcdKV }

// LoadConfig turns a -disco-config value into JSON bytes: the contents of
// the file it names, or the value itself if it is JSON, with $VAR and
// ${VAR} replaced from the environment. An empty value gives nil. Errors say
// where the JSON is broken and how to quote it.
func LoadConfig(raw string) ([]byte, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, nil
	}
	b, err := os.ReadFile(raw)
	source := "file " + raw
	if err != nil {
		if !looksLikeJSON(raw) {
			return nil, fmt.Errorf("-disco-config %q is neither a readable file (%v) nor JSON", raw, err)
		}
		b, source = []byte(raw), "value"
	}
	b = []byte(os.ExpandEnv(string(b)))
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, describeJSONError(source, b, err)
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, fmt.Errorf("-disco-config %s must be a JSON object, like {\"name\":\"rqlite\"}", source)
	}
	return b, nil
}

func looksLikeJSON(s string) bool {
	return strings.HasPrefix(s, "{") || strings.HasPrefix(s, "'{") || strings.HasPrefix(s, "\"{")
}

// describeJSONError adds the line and column to a JSON error, and a hint
// about the usual cause: shell or YAML quoting.
func describeJSONError(source string, b []byte, err error) error {
	var se *json.SyntaxError
	offset := int64(-1)
	if errors.As(err, &se) {
		offset = se.Offset
	}
	hint := "if you pass JSON on the command line, put it in single quotes for the shell, e.g. -disco-config '{\"name\":\"rqlite\"}'; in YAML, quote the whole value once"
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("'")) || bytes.HasPrefix(bytes.TrimSpace(b), []byte("\"")) {
		hint = "the value still has quotes around it, so it was quoted twice (once for the shell or YAML, once literally): remove one level of quoting"
	}
	if offset < 0 {
		return fmt.Errorf("-disco-config %s is not valid JSON: %v (%s)", source, err, hint)
	}
	line, col := 1, 1
	// Offset counts the bytes read, including the offending one.
	for _, c := range b[:min(max(int(offset)-1, 0), len(b))] {
		if c == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return fmt.Errorf("-disco-config %s is not valid JSON at line %d, column %d: %v (%s)", source, line, col, err, hint)
}

// Decode parses JSON config into dst, refusing unknown fields so typos are
// caught at start-up. A nil config leaves dst as it is.
func Decode(b []byte, dst any) error {
	if b == nil {
		return nil
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(dst); err != nil {
		return fmt.Errorf("-disco-config: %w", err)
	}
	return nil
}
