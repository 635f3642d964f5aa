package disco

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTLSFilesCheckPair(t *testing.T) {
	for _, tc := range []struct {
		f  TLSFiles
		ok bool
	}{
		{TLSFiles{}, true},
		{TLSFiles{CAFile: "ca"}, true},
		{TLSFiles{CertFile: "c", KeyFile: "k"}, true},
		{TLSFiles{CertPEM: "c", KeyFile: "k"}, true},
		{TLSFiles{CertFile: "c"}, false},
		{TLSFiles{KeyPEM: "k"}, false},
	} {
		err := tc.f.CheckPair("etcd")
		if (err == nil) != tc.ok {
			t.Errorf("%+v: %v", tc.f, err)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "etcd -disco-config tls_config: a client certificate and its key go together") {
			t.Errorf("%+v: message %q", tc.f, err)
		}
	}
}

func TestTLSFilesCheckFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.pem")
	if err := os.WriteFile(good, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		f    TLSFiles
		want string
	}{
		{TLSFiles{CAFile: good, CertFile: good, KeyFile: good, CAPath: dir}, ""},
		{TLSFiles{CAFile: missing}, "consul -disco-config tls_config.ca_file: cannot read " + missing + ": no such file or directory"},
		{TLSFiles{CertFile: missing, KeyFile: good}, "tls_config.cert_file: cannot read " + missing},
		{TLSFiles{CertFile: good, KeyFile: missing}, "tls_config.key_file: cannot read " + missing},
		{TLSFiles{CAPath: missing}, "tls_config.ca_path: cannot read " + missing},
	} {
		err := tc.f.CheckFiles("consul")
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.f, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: got %v, want %q", tc.f, err, tc.want)
		}
	}
}
