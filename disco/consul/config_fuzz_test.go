package consul

import (
	"os"
	"strings"
	"testing"

	"github.com/rqlited/rqlited/disco"
)

// FuzzConsulConfig runs -disco-config literals through the path rqlited
// takes for -disco-mode consul-kv: LoadConfig, Decode into Config, Validate
// and APIConfig. None may panic. Connecting (New) is not fuzzed: it reads
// token and certificate files the input names.
func FuzzConsulConfig(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"address":"consul:8500"}`, `{"address":"consul:8500","scheme":"https","datacenter":"dc1"}`,
		`{"address":"http://consul:8500"}`, `{"address":"127.0.0.1:8500","token":"secret","namespace":"ns","partition":"p"}`,
		`{"basic_auth":{"username":"u","password":"p"}}`, `{"basic_auth":null}`, `{"basic_auth":[]}`,
		`{"tls_config":{"address":"consul","ca_pem":"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n","insecure_skip_verify":true}}`,
		`{"tls_config":{"cert_pem":"x","key_pem":"y"}}`, `{"adress":"typo:8500"}`, `{"address":1}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if p := strings.TrimSpace(raw); p != "" {
			if _, err := os.Lstat(p); err == nil {
				t.Skip("input names an existing path; only literal values are fuzzed")
			}
		}
		b, err := disco.LoadConfig(raw)
		if err != nil {
			return
		}
		var c Config
		if err := disco.Decode(b, &c); err != nil {
			return
		}
		verr := c.Validate()
		if verr == nil && strings.Contains(c.Address, "://") {
			t.Fatalf("address with a scheme %q passed Validate", c.Address)
		}
		ac := c.APIConfig()
		if ac == nil {
			t.Fatal("APIConfig returned nil")
		}
		if c.Address != "" && ac.Address != c.Address {
			t.Fatalf("address %q became %q", c.Address, ac.Address)
		}
		if c.BasicAuth != nil && (ac.HttpAuth == nil || ac.HttpAuth.Username != c.BasicAuth.Username) {
			t.Fatalf("basic_auth %+v lost: %+v", c.BasicAuth, ac.HttpAuth)
		}
		if c.TLSConfig != nil && ac.TLSConfig.InsecureSkipVerify != c.TLSConfig.InsecureSkipVerify {
			t.Fatalf("insecure_skip_verify %v became %v", c.TLSConfig.InsecureSkipVerify, ac.TLSConfig.InsecureSkipVerify)
		}
	})
}
