package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rqlited/rqlited/auth"
	"github.com/rqlited/rqlited/cluster"
	"github.com/rqlited/rqlited/internal/tlsconfig"
	"github.com/rqlited/rqlited/store"
)

// security is what the -auth and TLS flags produce: the users, and the TLS
// configurations of the HTTP API and of the inter-node port. Certificate
// files are re-read when they change; the auth file on SIGHUP.
type security struct {
	auth *auth.Store
	// joinAs returns the -join-as user's credentials for cluster calls.
	joinAs func() (string, string, bool)

	httpServer *tls.Config                   // nil: plain HTTP
	httpClient func(host string) *tls.Config // forwarding to leaders, https:// join URLs
	nodeServer *tls.Config                   // nil: no node TLS
	nodeClient func(host string) *tls.Config
}

func newSecurity(cfg *Config, logger *slog.Logger) (*security, error) {
	sec := &security{}
	if cfg.AuthFile != "" {
		st, plain, err := auth.Load(cfg.AuthFile)
		if err != nil {
			return nil, fmt.Errorf("-auth: %w", err)
		}
		sec.auth = st
		if len(plain) > 0 {
			logger.Warn("the auth file holds plain-text passwords; replace them with bcrypt hashes (see DOC/SECURITY.md)",
				"file", cfg.AuthFile, "users", strings.Join(plain, ","))
		}
		if cfg.JoinAs != "" {
			if _, err := st.Password(cfg.JoinAs); err != nil {
				return nil, err
			}
			sec.joinAs = func() (string, string, bool) {
				p, err := st.Password(cfg.JoinAs)
				return cfg.JoinAs, p, err == nil
			}
		}
	}

	httpFiles := tlsconfig.Files{CertFile: cfg.HTTPCert, KeyFile: cfg.HTTPKey, CAFile: cfg.HTTPCACert}
	if cfg.HTTPCert != "" || cfg.HTTPCACert != "" {
		src, err := tlsconfig.NewSource(httpFiles)
		if err != nil {
			return nil, fmt.Errorf("HTTPS (-http-cert, -http-key, -http-ca-cert): %w", err)
		}
		if cfg.HTTPCert != "" {
			if sec.httpServer, err = src.Server(tlsconfig.ServerOptions{
				VerifyClient: cfg.HTTPVerifyClient, VerifyCommonName: cfg.HTTPVerifyCommonName,
			}); err != nil {
				return nil, fmt.Errorf("HTTPS: %w", err)
			}
		}
		// Forwarding presents this node's HTTP certificate, so a leader
		// that verifies clients accepts its peers.
		sec.httpClient = src.ClientFor(tlsconfig.ClientOptions{})
	}

	if cfg.NodeCert != "" {
		src, err := tlsconfig.NewSource(tlsconfig.Files{CertFile: cfg.NodeCert, KeyFile: cfg.NodeKey, CAFile: cfg.NodeCACert})
		if err != nil {
			return nil, fmt.Errorf("node TLS (-node-cert, -node-key, -node-ca-cert): %w", err)
		}
		if sec.nodeServer, err = src.Server(tlsconfig.ServerOptions{
			VerifyClient: cfg.NodeVerifyClient, VerifyCommonName: cfg.NodeVerifyCommonName,
		}); err != nil {
			return nil, fmt.Errorf("node TLS: %w", err)
		}
		sec.nodeClient = src.ClientFor(tlsconfig.ClientOptions{
			ServerName: cfg.NodeVerifyServerName, NoVerify: cfg.NodeNoVerify,
			VerifyCommonName: cfg.NodeVerifyCommonName,
		})
	}
	return sec, nil
}

// openInterNode reports whether -auth is on while the inter-node port,
// bound at addr, takes connections from other hosts without demanding a
// node certificate (-node-verify-client): then the users protect the HTTP
// API, but anyone who reaches the port can act as a cluster member.
func openInterNode(cfg *Config, addr net.Addr) bool {
	if cfg.AuthFile == "" || cfg.NodeVerifyClient {
		return false
	}
	if ta, ok := addr.(*net.TCPAddr); ok && ta.IP.IsLoopback() {
		return false
	}
	return true
}

// warnOpenInterNode logs, once at start, what openInterNode detects. It is
// a warning, not a refusal: rqlite accepts the same command line, and a
// private network or a firewall may be what guards the port.
func warnOpenInterNode(cfg *Config, addr net.Addr, logger *slog.Logger) {
	if !openInterNode(cfg, addr) {
		return
	}
	logger.Warn("-auth is on, but the inter-node port (-raft-addr) accepts any peer: anyone who can reach it can act as a "+
		"cluster member (send Raft messages, pose as the leader, and so receive clients' forwarded credentials and the "+
		"-join-as password). Set -node-cert, -node-key, -node-ca-cert and -node-verify-client (mutual TLS), or make sure "+
		"only cluster nodes can reach the port (see DOC/SECURITY.md)", "raft_addr", addr.String())
}

// raftMember returns a check of whether a Raft address is in str's current
// configuration, for cluster.Client.SetMemberCheck.
func raftMember(str *store.Store) func(raftAddr string) bool {
	return func(raftAddr string) bool {
		servers, err := str.Servers()
		if err != nil {
			return false
		}
		for _, srv := range servers {
			if srv.Addr == raftAddr {
				return true
			}
		}
		return false
	}
}

// clusterAuth returns the authorizer for cluster calls, nil without -auth.
func (s *security) clusterAuth() cluster.Authorizer {
	if s.auth == nil {
		return nil
	}
	return s.auth
}

// reloadOnHUP re-reads the auth file on every SIGHUP until the returned
// function is called. A file that does not load leaves the users in force.
func (s *security) reloadOnHUP(logger *slog.Logger) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case <-ch:
				if s.auth == nil {
					logger.Info("SIGHUP: no -auth file to reload")
					continue
				}
				plain, err := s.auth.Reload()
				if err != nil {
					logger.Error("SIGHUP: auth file not reloaded; the previous users stay in force", "error", err)
					continue
				}
				logger.Info("SIGHUP: auth file reloaded", "plain_text_passwords", len(plain))
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
		wg.Wait()
	}
}

// forwardDialTimeout bounds dialing another node's HTTPS API (forwarding
// to the leader, https:// join URLs).
const forwardDialTimeout = 10 * time.Second

// httpTransport returns a transport that verifies HTTPS servers with the
// -http-ca-cert pool against the host dialed and presents this node's
// HTTP certificate; nil when neither is configured.
func (s *security) httpTransport() *http.Transport {
	if s.httpClient == nil {
		return nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	dialer := &net.Dialer{Timeout: forwardDialTimeout, KeepAlive: 30 * time.Second}
	tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		c, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc := tls.Client(c, s.httpClient(host))
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, err
		}
		return tc, nil
	}
	return tr
}
