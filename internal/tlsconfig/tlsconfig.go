// Package tlsconfig builds crypto/tls configurations from certificate,
// key and CA files, and re-reads those files when they change, so an
// operator can rotate certificates without restarting a node.
package tlsconfig

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Files names the PEM files of one TLS identity. CertFile and KeyFile go
// together; CAFile, if set, is the pool that verifies the other side
// (instead of the system roots).
type Files struct {
	CertFile string
	KeyFile  string
	CAFile   string
}

// ServerOptions say how a server checks its clients.
type ServerOptions struct {
	// VerifyClient requires a client certificate signed by the CA.
	VerifyClient bool
	// VerifyCommonName, if set, is the common name a client certificate
	// must have.
	VerifyCommonName string
}

// ClientOptions say how a client checks its server.
type ClientOptions struct {
	// ServerName, if set, is the name the server's certificate must carry,
	// instead of the host dialed.
	ServerName string
	// NoVerify skips verification of the server's certificate.
	NoVerify bool
	// VerifyCommonName, if set, is the common name the server's
	// certificate must have.
	VerifyCommonName string
}

// checkInterval bounds how often the files are looked at: at most once a
// second, on a handshake.
const checkInterval = time.Second

// Source holds the current certificate and CA pool of some Files and
// re-reads them, on use, when their modification time or size changed.
type Source struct {
	files Files

	mu      sync.Mutex
	checked time.Time
	stamp   string
	cert    *tls.Certificate
	pool    *x509.CertPool
	err     error
}

// NewSource loads files and fails if they cannot be read or parsed.
func NewSource(files Files) (*Source, error) {
	s := &Source{files: files}
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

// stampOf describes the files' modification times and sizes.
func (s *Source) stampOf() string {
	var b bytes.Buffer
	for _, p := range []string{s.files.CertFile, s.files.KeyFile, s.files.CAFile} {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err == nil {
			fmt.Fprintf(&b, "%s:%d:%d;", p, fi.ModTime().UnixNano(), fi.Size())
		} else {
			fmt.Fprintf(&b, "%s:missing;", p)
		}
	}
	return b.String()
}

func (s *Source) load() error {
	stamp := s.stampOf()
	var cert *tls.Certificate
	if s.files.CertFile != "" {
		c, err := tls.LoadX509KeyPair(s.files.CertFile, s.files.KeyFile)
		if err != nil {
			return fmt.Errorf("load certificate %s and key %s: %w", s.files.CertFile, s.files.KeyFile, err)
		}
		cert = &c
	}
	var pool *x509.CertPool
	if s.files.CAFile != "" {
		b, err := os.ReadFile(s.files.CAFile)
		if err != nil {
			return fmt.Errorf("read CA certificate: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return fmt.Errorf("CA certificate file %s holds no PEM certificate", s.files.CAFile)
		}
	}
	s.cert, s.pool, s.stamp = cert, pool, stamp
	return nil
}

// current returns the certificate and pool, reloading them first if the
// files changed. A file that changed but does not load (say, a key written
// before its certificate) leaves the previous pair in use until it does.
func (s *Source) current() (*tls.Certificate, *x509.CertPool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now := time.Now(); now.Sub(s.checked) >= checkInterval {
		s.checked = now
		if s.stampOf() != s.stamp {
			s.err = s.load()
		}
	}
	return s.cert, s.pool
}

// Err returns the error of the latest failed reload, nil if the files in
// use are the newest.
func (s *Source) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

var errNoCert = errors.New("no certificate configured")

// Server returns a server configuration whose certificate (and client CA)
// follow the files.
func (s *Source) Server(o ServerOptions) (*tls.Config, error) {
	if s.files.CertFile == "" {
		return nil, fmt.Errorf("TLS server: %w", errNoCert)
	}
	if o.VerifyCommonName != "" && !o.VerifyClient {
		return nil, errors.New("verifying the client common name needs client verification on")
	}
	base := &tls.Config{MinVersion: tls.VersionTLS12}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		cert, pool := s.current()
		c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*cert}}
		if o.VerifyClient {
			c.ClientAuth = tls.RequireAndVerifyClientCert
			c.ClientCAs = pool // nil: the system roots
		}
		if o.VerifyCommonName != "" {
			c.VerifyPeerCertificate = commonName(o.VerifyCommonName, "client")
		}
		return c, nil
	}
	return base, nil
}

// Client returns a client configuration that presents the certificate (if
// any) and verifies the server against the CA file (or the system roots)
// and against o.ServerName. Use ClientFor when the name to verify is the
// host dialed.
func (s *Source) Client(o ClientOptions) *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.ServerName}
	c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		cert, _ := s.current()
		if cert == nil {
			return &tls.Certificate{}, nil
		}
		return cert, nil
	}
	// Verify by hand so that a new CA file takes effect without a restart.
	c.InsecureSkipVerify = true
	if o.NoVerify {
		return c
	}
	name := o.ServerName
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		_, pool := s.current()
		if len(cs.PeerCertificates) == 0 {
			return errors.New("server presented no certificate")
		}
		want := name
		if want == "" {
			// The name sent in SNI (set by a library that cloned this
			// configuration). crypto/tls sends none for an IP address, so
			// an empty one must fail rather than skip the check.
			want = cs.ServerName
		}
		if want == "" {
			return errors.New("no server name to verify the certificate against: set one (the host is an IP address)")
		}
		opts := x509.VerifyOptions{Roots: pool, DNSName: want, Intermediates: x509.NewCertPool()}
		for _, ic := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(ic)
		}
		if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
			return err
		}
		if o.VerifyCommonName != "" && cs.PeerCertificates[0].Subject.CommonName != o.VerifyCommonName {
			return fmt.Errorf("server certificate common name %q is not the required %q", cs.PeerCertificates[0].Subject.CommonName, o.VerifyCommonName)
		}
		return nil
	}
	return c
}

// ClientFor returns a function giving the client configuration for a
// connection to host: the certificate is verified against o.ServerName if
// set, else against host.
func (s *Source) ClientFor(o ClientOptions) func(host string) *tls.Config {
	return func(host string) *tls.Config {
		oo := o
		if oo.ServerName == "" {
			oo.ServerName = host
		}
		return s.Client(oo)
	}
}

func commonName(want, side string) func([][]byte, [][]*x509.Certificate) error {
	return func(_ [][]byte, chains [][]*x509.Certificate) error {
		for _, ch := range chains {
			if len(ch) > 0 && ch[0].Subject.CommonName == want {
				return nil
			}
		}
		return fmt.Errorf("%s certificate common name is not the required %q", side, want)
	}
}
