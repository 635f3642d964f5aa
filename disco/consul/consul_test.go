package consul

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{Address: "consul:8500", Scheme: "https", Token: "t", TLSConfig: &TLSConfig{CAFile: "x"}}, ""},
		{Config{Address: "http://consul:8500"}, "must be host:port"},
		{Config{Scheme: "HTTPS"}, `"scheme" "HTTPS" must be "http" or "https"`},
		{Config{Scheme: "http", TLSConfig: &TLSConfig{}}, `"scheme" is "http"`},
		{Config{TLSConfig: &TLSConfig{CertFile: "c"}}, "go together"},
		{Config{TLSConfig: &TLSConfig{KeyPEM: "k"}}, "go together"},
	} {
		err := tc.c.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.c, err, tc.want)
		}
	}
}

func TestAPIConfigTLS(t *testing.T) {
	t.Setenv("CONSUL_HTTP_SSL", "")
	ac := Config{Address: "c:8501", TLSConfig: &TLSConfig{CAFile: "ca", CertFile: "c", KeyFile: "k", InsecureSkipVerify: true}}.APIConfig()
	if ac.Scheme != "https" || ac.TLSConfig.CAFile != "ca" || ac.TLSConfig.CertFile != "c" || ac.TLSConfig.KeyFile != "k" || !ac.TLSConfig.InsecureSkipVerify {
		t.Fatalf("tls_config without scheme: %+v", ac)
	}
	if ac := (Config{Address: "c:8500", Token: "t", TokenFile: "f"}).APIConfig(); ac.Scheme != "http" || ac.Token != "t" || ac.TokenFile != "f" {
		t.Fatalf("token: %+v", ac)
	}
}

func TestCheckFiles(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte(" \n"), 0o600)
	good := filepath.Join(dir, "token")
	os.WriteFile(good, []byte("abc\n"), 0o600)
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{TokenFile: good}, ""},
		{Config{TokenFile: missing}, "token_file: cannot read " + missing + ": no such file or directory"},
		{Config{TokenFile: empty}, "token_file: " + empty + " is empty"},
		{Config{TLSConfig: &TLSConfig{CAFile: missing}}, "tls_config.ca_file: cannot read " + missing},
		{Config{TLSConfig: &TLSConfig{CertFile: missing, KeyFile: good}}, "tls_config.cert_file: cannot read " + missing},
		{Config{TLSConfig: &TLSConfig{CertFile: good, KeyFile: missing}}, "tls_config.key_file: cannot read " + missing},
		{Config{TLSConfig: &TLSConfig{CAPath: missing}}, "tls_config.ca_path: cannot read " + missing},
	} {
		err := tc.c.checkFiles()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.c, err, tc.want)
		}
	}
	if _, err := New(Config{TokenFile: missing}, "k"); err == nil || !strings.Contains(err.Error(), "token_file") {
		t.Fatalf("New with a missing token file: %v", err)
	}
}

// A token Consul does not know stops New; ACLs off, or Consul not
// answering, does not.
func TestCheckToken(t *testing.T) {
	for _, tc := range []struct {
		code    int
		body    string
		wantErr bool
	}{
		{403, "ACL not found", true},
		{401, "ACL support disabled", false},
		{200, `{"AccessorID":"x"}`, false},
		{500, "oops", false},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v1/acl/token/self" || r.Header.Get("X-Consul-Token") != "tok" {
				w.WriteHeader(400)
				return
			}
			w.WriteHeader(tc.code)
			w.Write([]byte(tc.body))
		}))
		addr := strings.TrimPrefix(srv.URL, "http://")
		c, err := New(Config{Address: addr, Token: "tok"}, "k")
		if tc.wantErr {
			if err == nil || !strings.Contains(err.Error(), "consul refused the ACL token") {
				t.Errorf("%d %s: %v", tc.code, tc.body, err)
			}
		} else if err != nil {
			t.Errorf("%d %s: %v", tc.code, tc.body, err)
		} else {
			c.Close()
		}
		srv.Close()
	}
	// Consul down: not an error at New.
	c, err := New(Config{Address: "127.0.0.1:1", Token: "tok"}, "k")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}
