// Package dns finds cluster members in DNS: A/AAAA records of a name
// (-disco-mode dns) or SRV records of a service (-disco-mode dns-srv). Its
// providers satisfy cluster.AddressProvider without importing it.
package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrNoRecords is returned (wrapped) when the name has no usable records yet.
var ErrNoRecords = errors.New("no DNS records")

// Config is the -disco-config of -disco-mode dns.
type Config struct {
	// Name is looked up for A and AAAA records (default "rqlite").
	Name string `json:"name"`
	// Port is paired with every address (default: this node's Raft port).
	Port int `json:"port"`
	// Resolver, if set, is the DNS server (host:port) to ask instead of the
	// system's resolvers.
	Resolver string `json:"resolver"`
}

// SRVConfig is the -disco-config of -disco-mode dns-srv.
type SRVConfig struct {
	// Name is the domain (default "rqlite").
	Name string `json:"name"`
	// Service is looked up as _<service>._tcp.<name> (default "rqlite").
	Service string `json:"service"`
	// Resolver, as in Config.
	Resolver string `json:"resolver"`
}

// hostsEnv overrides every lookup with a fixed list, as rqlite's
// RQLITE_DISCO_DNS_HOSTS does; it exists for compatibility with test setups.
const hostsEnv = "RQLITE_DISCO_DNS_HOSTS"

func resolver(addr string) (*net.Resolver, error) {
	if addr == "" {
		return net.DefaultResolver, nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("resolver %q must be host:port: %w", addr, err)
	}
	d := net.Dialer{Timeout: 2 * time.Second}
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}}, nil
}

// Provider looks up A/AAAA records.
type Provider struct {
	cfg Config
	r   *net.Resolver
}

// New returns a Provider; defaultPort is used when cfg.Port is 0.
func New(cfg Config, defaultPort int) (*Provider, error) {
	if cfg.Name == "" {
		cfg.Name = "rqlite"
	}
	if cfg.Port == 0 {
		cfg.Port = defaultPort
	}
	if cfg.Port <= 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("dns: port %d is not a valid port", cfg.Port)
	}
	r, err := resolver(cfg.Resolver)
	if err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	return &Provider{cfg: cfg, r: r}, nil
}

// Name returns the name being looked up.
func (p *Provider) Name() string { return p.cfg.Name }

// Lookup returns ip:port for every A and AAAA record, sorted.
func (p *Provider) Lookup(ctx context.Context) ([]string, error) {
	if v := os.Getenv(hostsEnv); v != "" {
		return strings.Split(v, ","), nil
	}
	ips, err := p.r.LookupIPAddr(ctx, p.cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", p.cfg.Name, err)
	}
	var out []string
	for _, ip := range ips {
		out = append(out, net.JoinHostPort(ip.IP.String(), strconv.Itoa(p.cfg.Port)))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w for %s", ErrNoRecords, p.cfg.Name)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// SRVProvider looks up SRV records and the addresses of their targets.
type SRVProvider struct {
	cfg SRVConfig
	r   *net.Resolver
}

// NewSRV returns an SRVProvider.
func NewSRV(cfg SRVConfig) (*SRVProvider, error) {
	if cfg.Name == "" {
		cfg.Name = "rqlite"
	}
	if cfg.Service == "" {
		cfg.Service = "rqlite"
	}
	r, err := resolver(cfg.Resolver)
	if err != nil {
		return nil, fmt.Errorf("dns-srv: %w", err)
	}
	return &SRVProvider{cfg: cfg, r: r}, nil
}

// Name returns the SRV name being looked up.
func (p *SRVProvider) Name() string { return "_" + p.cfg.Service + "._tcp." + p.cfg.Name }

// Lookup returns ip:port for every address of every SRV target. Only the
// records of the best (lowest) priority are used: higher-priority values
// are standbys, as in RFC 2782. Within it, targets come in the resolver's
// weight-randomised order; the caller sorts what it needs sorted.
func (p *SRVProvider) Lookup(ctx context.Context) ([]string, error) {
	if v := os.Getenv(hostsEnv); v != "" {
		return strings.Split(v, ","), nil
	}
	_, srvs, err := p.r.LookupSRV(ctx, p.cfg.Service, "tcp", p.cfg.Name)
	if err != nil && len(srvs) == 0 {
		return nil, fmt.Errorf("look up %s: %w", p.Name(), err)
	}
	if len(srvs) == 0 {
		return nil, fmt.Errorf("%w for %s", ErrNoRecords, p.Name())
	}
	best := srvs[0].Priority
	for _, s := range srvs {
		best = min(best, s.Priority)
	}
	var out []string
	var lastErr error
	for _, s := range srvs {
		if s.Priority != best {
			continue
		}
		ips, err := p.r.LookupIPAddr(ctx, s.Target)
		if err != nil {
			lastErr = err
			continue
		}
		for _, ip := range ips {
			out = append(out, net.JoinHostPort(ip.IP.String(), strconv.Itoa(int(s.Port))))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no SRV target of %s resolves: %v", ErrNoRecords, p.Name(), lastErr)
	}
	return slices.Compact(out), nil
}
