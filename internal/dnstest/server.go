// Package dnstest runs a real authoritative DNS server (the wire protocol,
// over UDP and TCP on a loopback port) whose records tests change while it
// runs: records can grow, shrink, fail with SERVFAIL or go unanswered.
package dnstest

import (
	"net"
	"strings"
	"sync"

	mdns "github.com/miekg/dns"
)

// SRV is one SRV record.
type SRV struct {
	Priority, Weight, Port uint16
	Target                 string
}

// Server is a DNS server for tests.
type Server struct {
	mu       sync.Mutex
	a        map[string][]string
	srv      map[string][]SRV
	servfail bool
	drop     bool
	// Addr is the host:port to use as a resolver.
	Addr    string
	udp, tc *mdns.Server
}

// TB is the part of testing.TB the server needs, so benchmarks outside
// tests can run one too.
type TB interface {
	Helper()
	Fatal(args ...any)
	Cleanup(func())
}

// New returns a server with no records that is not listening yet; see
// ListenAndServe. Tests use Start instead.
func New() *Server {
	return &Server{a: map[string][]string{}, srv: map[string][]SRV{}}
}

// ListenAndServe serves on addr (UDP and TCP) until one of them fails.
func (s *Server) ListenAndServe(addr string) error {
	errc := make(chan error, 2)
	for _, network := range []string{"udp", "tcp"} {
		srv := &mdns.Server{Addr: addr, Net: network, Handler: s}
		go func() { errc <- srv.ListenAndServe() }()
	}
	return <-errc
}

// Start runs a server on 127.0.0.1 (UDP and TCP, same port) until the test
// ends.
func Start(t TB) *Server {
	t.Helper()
	var pc net.PacketConn
	var ln net.Listener
	for i := 0; i < 20; i++ {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		pc = nil
	}
	if pc == nil {
		t.Fatal("no port free for both UDP and TCP")
	}
	s := &Server{a: map[string][]string{}, srv: map[string][]SRV{}, Addr: pc.LocalAddr().String()}
	var wg sync.WaitGroup
	wg.Add(2)
	s.udp = &mdns.Server{PacketConn: pc, Handler: s, NotifyStartedFunc: wg.Done}
	s.tc = &mdns.Server{Listener: ln, Handler: s, NotifyStartedFunc: wg.Done}
	go s.udp.ActivateAndServe()
	go s.tc.ActivateAndServe()
	wg.Wait()
	t.Cleanup(func() { s.udp.Shutdown(); s.tc.Shutdown() })
	return s
}

func fqdn(name string) string { return mdns.Fqdn(strings.ToLower(name)) }

// SetA replaces the A and AAAA records of name (IPv4 and IPv6 addresses).
func (s *Server) SetA(name string, ips ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.a[fqdn(name)] = ips
}

// SetSRV replaces the SRV records of name (e.g. "_raft._tcp.rqlite.test").
func (s *Server) SetSRV(name string, recs ...SRV) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.srv[fqdn(name)] = recs
}

// SetServfail makes every answer SERVFAIL (or stops it).
func (s *Server) SetServfail(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.servfail = on
}

// SetDrop makes the server ignore queries, so clients time out.
func (s *Server) SetDrop(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drop = on
}

// ServeDNS answers one query.
func (s *Server) ServeDNS(w mdns.ResponseWriter, r *mdns.Msg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.drop || len(r.Question) == 0 {
		return
	}
	m := new(mdns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if s.servfail {
		m.Rcode = mdns.RcodeServerFailure
		w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	hdr := mdns.RR_Header{Name: q.Name, Class: mdns.ClassINET, Ttl: 1}
	_, known := s.a[name]
	_, knownSRV := s.srv[name]
	switch q.Qtype {
	case mdns.TypeA, mdns.TypeAAAA:
		for _, ipStr := range s.a[name] {
			ip := net.ParseIP(ipStr)
			switch {
			case q.Qtype == mdns.TypeA && ip.To4() != nil:
				hdr.Rrtype = mdns.TypeA
				m.Answer = append(m.Answer, &mdns.A{Hdr: hdr, A: ip.To4()})
			case q.Qtype == mdns.TypeAAAA && ip.To4() == nil:
				hdr.Rrtype = mdns.TypeAAAA
				m.Answer = append(m.Answer, &mdns.AAAA{Hdr: hdr, AAAA: ip})
			}
		}
	case mdns.TypeSRV:
		for _, rec := range s.srv[name] {
			hdr.Rrtype = mdns.TypeSRV
			m.Answer = append(m.Answer, &mdns.SRV{Hdr: hdr, Priority: rec.Priority, Weight: rec.Weight, Port: rec.Port, Target: fqdn(rec.Target)})
		}
	}
	if !known && !knownSRV {
		m.Rcode = mdns.RcodeNameError
	}
	w.WriteMsg(m)
}
