package etcd

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rqlited/rqlited/disco"
	"github.com/rqlited/rqlited/internal/certtest"
)

func decode(t *testing.T, js string) Config {
	t.Helper()
	var c Config
	if err := disco.Decode([]byte(js), &c); err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return c
}

// Every key of clientv3's JSON that rqlite accepted still decodes.
func TestConfigKeepsRqliteKeys(t *testing.T) {
	c := decode(t, `{"endpoints":["http://e1:2379","http://e2:2379"],"auto-sync-interval":1000000000,
		"dial-timeout":3000000000,"dial-keep-alive-time":4000000000,"dial-keep-alive-timeout":5000000000,
		"MaxCallSendMsgSize":1024,"MaxCallRecvMsgSize":2048,"username":"u","password":"p",
		"reject-old-cluster":true,"permit-without-stream":true,"max-unary-retries":3,
		"backoff-wait-between":6000000000,"backoff-jitter-fraction":0.5,
		"tls_config":null}`)
	if len(c.Endpoints) != 2 || c.DialTimeout != 3*time.Second || c.Username != "u" || c.Password != "p" ||
		c.AutoSyncInterval != time.Second || c.DialKeepAliveTime != 4*time.Second || c.DialKeepAliveTimeout != 5*time.Second ||
		c.MaxCallSendMsgSize != 1024 || c.MaxCallRecvMsgSize != 2048 || !c.RejectOldCluster || !c.PermitWithoutStream ||
		c.MaxUnaryRetries != 3 || c.BackoffWaitBetween != 6*time.Second || c.BackoffJitterFraction != 0.5 {
		t.Fatalf("decoded %+v", c.Config)
	}
	c = decode(t, `{"tls_config":{"ca_file":"a","cert_file":"b","key_file":"c","ca_pem":"d","cert_pem":"e","key_pem":"f","server_name":"g","insecure_skip_verify":true}}`)
	if *c.TLSConfig != (TLSConfig{CAFile: "a", CertFile: "b", KeyFile: "c", CAPem: "d", CertPEM: "e", KeyPEM: "f", ServerName: "g", InsecureSkipVerify: true}) {
		t.Fatalf("tls_config %+v", *c.TLSConfig)
	}
	var bad Config
	if err := disco.Decode([]byte(`{"tls_config":{"cafile":"x"}}`), &bad); err == nil {
		t.Fatal("unknown tls_config key accepted")
	}
	// clientv3's own TLS object, as rqlite took it, still works as given.
	c = decode(t, `{"endpoints":["https://e:2379"],"TLS":{"InsecureSkipVerify":true}}`)
	cc, err := clientConfig(c)
	if err != nil || cc.TLS == nil || !cc.TLS.InsecureSkipVerify {
		t.Fatalf("legacy TLS: %v %+v", err, cc.TLS)
	}
}

func TestClientConfig(t *testing.T) {
	ca := certtest.NewCA(t, "ca")
	pair := ca.Issue(t, "client", certtest.Options{CommonName: "rqlited"})
	missing := filepath.Join(t.TempDir(), "nope.pem")
	for _, tc := range []struct {
		js      string
		wantErr string
		tls     bool
	}{
		{`{}`, "", false},
		{`{"endpoints":["http://e:2379"],"username":"u","password":"p"}`, "", false},
		{`{"endpoints":["https://e:2379"]}`, "", true}, // system roots
		{`{"endpoints":["e:2379"],"tls_config":{"ca_file":"` + ca.CertFile + `"}}`, "", true},
		{`{"endpoints":["https://e:2379"],"tls_config":{"ca_file":"` + ca.CertFile + `","cert_file":"` + pair.CertFile + `","key_file":"` + pair.KeyFile + `"}}`, "", true},
		{`{"endpoints":["https://e:2379"],"tls_config":{"insecure_skip_verify":true}}`, "", true},
		{`{"username":"u"}`, `"username" and "password" go together`, false},
		{`{"password":"p"}`, `"username" and "password" go together`, false},
		{`{"endpoints":["http://e:2379"],"tls_config":{}}`, "use https:// for every endpoint", false},
		{`{"endpoints":["https://a:2379","http://b:2379"]}`, "use https:// for every endpoint", false},
		{`{"TLS":{},"tls_config":{}}`, `not both it and "TLS"`, false},
		{`{"tls_config":{"cert_file":"` + pair.CertFile + `"}}`, "go together", false},
		{`{"tls_config":{"ca_file":"x","ca_pem":"y"}}`, "set ca_file or ca_pem, not both", false},
		{`{"tls_config":{"ca_file":"` + missing + `"}}`, "tls_config.ca_file: cannot read " + missing + ": no such file", false},
		{`{"tls_config":{"cert_file":"` + missing + `","key_file":"` + pair.KeyFile + `"}}`, "tls_config.cert_file: cannot read " + missing, false},
		{`{"tls_config":{"cert_file":"` + pair.CertFile + `","key_file":"` + missing + `"}}`, "tls_config.key_file: cannot read " + missing, false},
		{`{"tls_config":{"ca_file":"` + pair.KeyFile + `"}}`, "holds no PEM certificate", false},
		{`{"tls_config":{"ca_pem":"junk"}}`, "tls_config.ca_pem holds no PEM certificate", false},
		{`{"tls_config":{"cert_pem":"junk","key_pem":"junk"}}`, "tls_config.cert_pem and key_pem", false},
		{`{"dial-timeout":-1}`, `"dial-timeout" is negative`, false},
		{`{"endpoints":[" "]}`, "empty endpoint", false},
	} {
		cc, err := clientConfig(decode(t, tc.js))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: error %v, want %q", tc.js, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.js, err)
			continue
		}
		if (cc.TLS != nil) != tc.tls {
			t.Errorf("%s: TLS %v, want %v", tc.js, cc.TLS != nil, tc.tls)
		}
		if cc.DialTimeout != 2*time.Second || cc.Logger == nil {
			t.Errorf("%s: defaults not set: %v %v", tc.js, cc.DialTimeout, cc.Logger)
		}
	}
	// PEM forms work too.
	pem := func(p string) string { b, _ := os.ReadFile(p); return string(b) }
	c := Config{TLSConfig: &TLSConfig{CAPem: pem(ca.CertFile), CertPEM: pem(pair.CertFile), KeyPEM: pem(pair.KeyFile)}}
	c.Endpoints = []string{"https://e:2379"}
	if cc, err := clientConfig(c); err != nil || cc.TLS == nil {
		t.Fatalf("PEM: %v", err)
	}
}

// tlsServer accepts TLS connections (offering h2, as etcd does) with a
// certificate for ips, and never speaks gRPC.
func tlsServer(t *testing.T, ca *certtest.CA, ips ...net.IP) string {
	t.Helper()
	p := ca.Issue(t, "server", certtest.Options{CommonName: "etcd", IPs: ips})
	cert, err := tls.LoadX509KeyPair(p.CertFile, p.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}})
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
				time.Sleep(time.Second)
				c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

// An endpoint given by IP address is checked against the certificate's
// names even though TLS sends no server name for IPs.
func TestServerNameCheckedForIPEndpoints(t *testing.T) {
	ca := certtest.NewCA(t, "ca")
	addr := tlsServer(t, ca, net.IPv4(10, 9, 9, 9))
	c := Config{TLSConfig: &TLSConfig{CAFile: ca.CertFile}}
	c.Endpoints = []string{"https://" + addr}
	cl, err := New(c, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = cl.Get(ctx)
	if err == nil || !strings.Contains(err.Error(), "not 127.0.0.1") || !strings.Contains(err.Error(), "last TLS error") {
		t.Fatalf("Get from a server with a certificate for another address: %v", err)
	}

	// The same with the right address in the certificate passes the check
	// (and then fails only because the server is no etcd).
	good := tlsServer(t, ca, net.IPv4(127, 0, 0, 1))
	c.Endpoints = []string{"https://" + good}
	cl2, err := New(c, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	if _, err := cl2.Get(ctx2); err == nil || strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Get from a server with the right certificate: %v", err)
	}
}

// A store that does not answer at boot is retried, also with credentials
// (clientv3.New authenticates at once when a username is set).
func TestNewWithCredentialsStoreDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := Config{}
	c.Endpoints, c.Username, c.Password, c.DialTimeout = []string{"http://" + addr}, "u", "p", 300*time.Millisecond
	cl, err := New(c, "k")
	if err != nil {
		t.Fatalf("New with etcd down: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := cl.Get(ctx); err == nil {
		t.Fatal("Get from a store that is down succeeded")
	}
}
