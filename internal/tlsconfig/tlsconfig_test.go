package tlsconfig

import (
	"crypto/tls"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rqlited/rqlited/internal/certtest"
)

// serve accepts TLS connections with cfg until the test ends, completing
// each handshake and closing the connection.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c.(*tls.Conn).Handshake()
				c.Write([]byte{1})
				c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

// dial completes a handshake and reads the server's byte; it returns the
// server's leaf certificate common name.
func dial(addr string, cfg *tls.Config) (string, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	var b [1]byte
	if _, err := c.Read(b[:]); err != nil {
		return "", err
	}
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

func TestMutualTLSAndRotation(t *testing.T) {
	ca := certtest.NewCA(t, "test")
	server := ca.Issue(t, "server", certtest.Options{CommonName: "server-1"})
	client := ca.Issue(t, "client", certtest.Options{CommonName: "client"})
	other := certtest.NewCA(t, "other")
	stranger := other.Issue(t, "stranger", certtest.Options{CommonName: "client"})

	ssrc, err := NewSource(Files{CertFile: server.CertFile, KeyFile: server.KeyFile, CAFile: ca.CertFile})
	if err != nil {
		t.Fatal(err)
	}
	scfg, err := ssrc.Server(ServerOptions{VerifyClient: true, VerifyCommonName: "client"})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, scfg)

	csrc, err := NewSource(Files{CertFile: client.CertFile, KeyFile: client.KeyFile, CAFile: ca.CertFile})
	if err != nil {
		t.Fatal(err)
	}
	ccfg := csrc.Client(ClientOptions{ServerName: "localhost"})
	if cn, err := dial(addr, ccfg); err != nil || cn != "server-1" {
		t.Fatalf("trusted client: cn %q, err %v", cn, err)
	}

	bad, err := NewSource(Files{CertFile: stranger.CertFile, KeyFile: stranger.KeyFile, CAFile: ca.CertFile})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dial(addr, bad.Client(ClientOptions{ServerName: "localhost"})); err == nil {
		t.Fatal("a client certificate from another CA was accepted")
	}
	anon, err := NewSource(Files{CAFile: ca.CertFile})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dial(addr, anon.Client(ClientOptions{ServerName: "localhost"})); err == nil {
		t.Fatal("a client without a certificate was accepted")
	}
	if _, err := dial(addr, ccfg.Clone()); err != nil {
		t.Fatal(err)
	}
	wrongName := csrc.Client(ClientOptions{ServerName: "db.example.com"})
	if _, err := dial(addr, wrongName); err == nil || !strings.Contains(err.Error(), "db.example.com") {
		t.Fatalf("server certificate for the wrong name: err %v", err)
	}
	// An IP address is checked too (crypto/tls sends no SNI for it).
	if _, err := dial(addr, csrc.ClientFor(ClientOptions{})("127.0.0.1")); err != nil {
		t.Fatalf("certificate for 127.0.0.1: %v", err)
	}
	if _, err := dial(addr, csrc.ClientFor(ClientOptions{})("127.0.0.2")); err == nil {
		t.Fatal("a certificate without 127.0.0.2 was accepted for 127.0.0.2")
	}
	if _, err := dial(addr, csrc.Client(ClientOptions{})); err == nil {
		t.Fatal("a client without a server name skipped the name check")
	}

	// Rotate the server certificate in place: new handshakes get it.
	rotated := ca.Issue(t, "server-new", certtest.Options{CommonName: "server-2"})
	for _, f := range [][2]string{{rotated.CertFile, server.CertFile}, {rotated.KeyFile, server.KeyFile}} {
		b, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f[1], b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		cn, err := dial(addr, ccfg)
		if err == nil && cn == "server-2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rotated certificate not served: cn %q, err %v", cn, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestExpiredServerRefused(t *testing.T) {
	ca := certtest.NewCA(t, "test")
	expired := ca.Issue(t, "expired", certtest.Options{CommonName: "old", NotAfter: time.Now().Add(-time.Hour)})
	src, err := NewSource(Files{CertFile: expired.CertFile, KeyFile: expired.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	scfg, err := src.Server(ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, scfg)
	csrc, err := NewSource(Files{CAFile: ca.CertFile})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dial(addr, csrc.Client(ClientOptions{ServerName: "localhost"})); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired server certificate: err %v", err)
	}
	if _, err := dial(addr, csrc.Client(ClientOptions{NoVerify: true})); err != nil {
		t.Fatalf("NoVerify client: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := NewSource(Files{CertFile: "/nonexistent.pem", KeyFile: "/nonexistent-key.pem"}); err == nil || !strings.Contains(err.Error(), "/nonexistent.pem") {
		t.Fatalf("missing files: %v", err)
	}
	p := t.TempDir() + "/ca.pem"
	os.WriteFile(p, []byte("not pem"), 0o600)
	if _, err := NewSource(Files{CAFile: p}); err == nil || !strings.Contains(err.Error(), "no PEM") {
		t.Fatalf("garbage CA file: %v", err)
	}
}
