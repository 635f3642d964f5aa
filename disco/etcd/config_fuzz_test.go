package etcd

import (
	"os"
	"strings"
	"testing"

	"github.com/rqlited/rqlited/disco"
)

// FuzzEtcdConfig runs -disco-config literals through the path rqlited
// takes for -disco-mode etcd-kv up to the dial: LoadConfig, Decode into
// Config (clientv3's own JSON plus tls_config) and clientConfig. None may
// panic, and an accepted configuration must be usable: endpoints present
// and non-blank, username and password together, TLS on when an endpoint
// or tls_config asks for it. Inputs whose tls_config names files are only
// decoded: clientConfig opens those files.
func FuzzEtcdConfig(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"endpoints":["localhost:2379"]}`, `{"endpoints":["http://etcd1:2379","http://etcd2:2379"],"dial-timeout":2000000000}`,
		`{"endpoints":["https://etcd:2379"],"username":"root","password":"pw"}`, `{"username":"root"}`,
		`{"endpoints":[""]}`, `{"endpoints":["   "]}`, `{"endpoints":["https://a:2379","http://b:2379"]}`,
		`{"endpoints":["unixs://sock"]}`, `{"endpoints":["unix:sock"]}`, `{"dial-timeout":-1}`, `{"dial-timeout":1e30}`,
		`{"tls_config":{"insecure_skip_verify":true,"server_name":"etcd"}}`,
		`{"tls_config":{"ca_pem":"not pem"}}`, `{"tls_config":{"cert_pem":"x"}}`, `{"tls_config":{"cert_pem":"x","key_pem":"y"}}`,
		`{"tls_config":{"ca_file":"/no/such/ca.pem"}}`, `{"TLS":{}}`, `{"TLS":{"InsecureSkipVerify":true},"tls_config":{}}`,
		`{"TLS":{"RootCAs":{}}}`, `{"Context":{}}`, `{"DialOptions":[1]}`, `{"Logger":{}}`, `{"endpoint":["typo:2379"]}`,
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
		if tc := c.TLSConfig; tc != nil && (tc.CAFile != "" || tc.CertFile != "" || tc.KeyFile != "") {
			return
		}
		cc, err := clientConfig(c)
		if err != nil {
			return
		}
		if len(cc.Endpoints) == 0 {
			t.Fatalf("%s: accepted with no endpoints", b)
		}
		for _, ep := range cc.Endpoints {
			if strings.TrimSpace(ep) == "" {
				t.Fatalf("%s: accepted a blank endpoint", b)
			}
		}
		if (cc.Username == "") != (cc.Password == "") {
			t.Fatalf("%s: accepted a username without a password or the reverse", b)
		}
		secure := c.TLSConfig != nil || c.Config.TLS != nil
		for _, ep := range cc.Endpoints {
			if s := scheme(ep); s == "https" || s == "unixs" {
				secure = true
			}
		}
		if secure && cc.TLS == nil {
			t.Fatalf("%s: TLS asked for but clientConfig left it off", b)
		}
		if cc.Logger == nil {
			t.Fatalf("%s: no logger", b)
		}
	})
}
