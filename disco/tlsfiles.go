package disco

import (
	"errors"
	"fmt"
	"os"
)

// TLSFiles is what the consul-kv and etcd-kv "tls_config" objects have in
// common: where the CA, client certificate and key come from. The two
// modes check it the same way, with the same messages; who ("consul",
// "etcd") starts each message.
type TLSFiles struct {
	CAFile, CAPath    string // CAPath: a directory of CA files (Consul only)
	CertFile, CertPEM string
	KeyFile, KeyPEM   string
}

// CheckPair reports a client certificate given without its key, or a key
// without its certificate. It reads no files.
func (t TLSFiles) CheckPair(who string) error {
	if (t.CertFile != "" || t.CertPEM != "") != (t.KeyFile != "" || t.KeyPEM != "") {
		return fmt.Errorf("%s -disco-config tls_config: a client certificate and its key go together: set cert_file (or cert_pem) and key_file (or key_pem), or neither", who)
	}
	return nil
}

// CheckFiles reports the first of ca_file, cert_file, key_file and ca_path
// that is set but cannot be read, naming its -disco-config key.
func (t TLSFiles) CheckFiles(who string) error {
	for _, f := range []struct{ key, path string }{{"ca_file", t.CAFile}, {"cert_file", t.CertFile}, {"key_file", t.KeyFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.ReadFile(f.path); err != nil {
			return fmt.Errorf("%s -disco-config tls_config.%s: cannot read %s: %w", who, f.key, f.path, PathCause(err))
		}
	}
	if t.CAPath != "" {
		if _, err := os.ReadDir(t.CAPath); err != nil {
			return fmt.Errorf("%s -disco-config tls_config.ca_path: cannot read %s: %w", who, t.CAPath, PathCause(err))
		}
	}
	return nil
}

// PathCause drops the path from an *os.PathError, for messages that name
// the path already.
func PathCause(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
