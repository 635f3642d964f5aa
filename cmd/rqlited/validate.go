package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/rqlited/rqlited/disco"
)

// finish completes a parsed Config, in named steps: check the addresses
// as given (validateAddrSyntax), fill in the derived ones (resolveAddrs),
// check the flags together (Validate, no I/O and
// no changes), load -disco-config (loadDiscoConfig), prove the security
// files readable (checkFiles), and add the warnings about flag
// combinations that work but are likely mistakes.
func (c *Config) finish(hostname func() (string, error)) error {
	if err := c.validateAddrSyntax(); err != nil {
		return err
	}
	if err := c.resolveAddrs(hostname); err != nil {
		return err
	}
	if err := c.Validate(); err != nil {
		return err
	}
	if err := c.loadDiscoConfig(); err != nil {
		return err
	}
	if err := c.checkFiles(); err != nil {
		return err
	}
	c.Warnings = append(c.Warnings, c.comboWarnings()...)
	return nil
}

// advertise returns the address to advertise: adv if set, else bind, with
// an unspecified bind host replaced by this host's name.
func advertise(adv, bind string, hostname func() (string, error)) (string, error) {
	if adv != "" {
		return adv, nil
	}
	host, port, err := net.SplitHostPort(bind)
	if err != nil {
		return bind, nil // reported by the bind address check
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return bind, nil
	}
	name, err := hostname()
	if err != nil || name == "" {
		return "", fmt.Errorf("the bind address %s listens on all interfaces and this host's name is unknown (%v): set the advertised address", bind, err)
	}
	return net.JoinHostPort(name, port), nil
}

// isLocalOnly reports whether host:port names a loopback or unspecified
// address, which no other host can reach.
func isLocalOnly(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "" || strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && (ip.IsLoopback() || ip.IsUnspecified())
}

// resolveAddrs fills in the advertised addresses and the node ID.
//
// An advertised address left unset takes the bind address, except that a
// bind address on all interfaces (0.0.0.0:4001, :4001) advertises this
// host's name with the same port: the identical `docker run` line on every
// host then advertises each container's own name.
func (c *Config) resolveAddrs(hostname func() (string, error)) error {
	var err error
	if c.HTTPAdvAddr, err = advertise(c.HTTPAdvAddr, c.HTTPAddr, hostname); err != nil {
		return fmt.Errorf("-http-adv-addr: %w", err)
	}
	advertisedHost := c.RaftAdvAddr == ""
	if c.RaftAdvAddr, err = advertise(c.RaftAdvAddr, c.RaftAddr, hostname); err != nil {
		return fmt.Errorf("-raft-adv-addr: %w", err)
	}
	advertisedHost = advertisedHost && c.RaftAdvAddr != c.RaftAddr
	if c.NodeID == "" {
		// As in rqlite's image, a node that advertises its host name (it
		// binds all interfaces) is named after the host; otherwise the ID is
		// the advertised Raft address.
		c.NodeID = c.RaftAdvAddr
		if advertisedHost {
			c.NodeID, _, _ = net.SplitHostPort(c.RaftAdvAddr)
		}
	}
	return nil
}

// Validate checks the combination of flags, once validateAddrSyntax and
// resolveAddrs have run. It neither changes c nor reads anything.
func (c *Config) Validate() error {
	if err := c.validateAddrs(); err != nil {
		return err
	}
	if err := c.validateFormation(); err != nil {
		return err
	}
	if err := c.validateLimits(); err != nil {
		return err
	}
	return c.validateSecurity()
}

// validateAddrSyntax checks the listen and advertised addresses as given
// (before resolveAddrs fills in the advertised ones) are host:port.
func (c *Config) validateAddrSyntax() error {
	for _, a := range []struct{ flag, val string }{
		{"-http-addr", c.HTTPAddr}, {"-http-adv-addr", c.HTTPAdvAddr},
		{"-raft-addr", c.RaftAddr}, {"-raft-adv-addr", c.RaftAdvAddr},
	} {
		if a.val == "" {
			continue
		}
		if strings.HasPrefix(a.val, "http") {
			return fmt.Errorf("%s %q must be host:port, without a scheme", a.flag, a.val)
		}
		if _, _, err := net.SplitHostPort(a.val); err != nil {
			return fmt.Errorf("%s %q is not a valid host:port: %w", a.flag, a.val, err)
		}
	}
	return nil
}

// validateAddrs checks the advertised addresses are routable and the
// addresses distinct.
func (c *Config) validateAddrs() error {
	for _, a := range []struct{ flag, val string }{{"-http-adv-addr", c.HTTPAdvAddr}, {"-raft-adv-addr", c.RaftAdvAddr}} {
		host, _, _ := net.SplitHostPort(a.val)
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			return fmt.Errorf("advertised address %s (%s) is not routable: set %s to an address other nodes and clients can reach", a.val, a.flag, a.flag)
		}
	}
	if c.HTTPAddr == c.RaftAddr {
		return fmt.Errorf("-http-addr and -raft-addr must differ (both are %s)", c.HTTPAddr)
	}
	if c.HTTPAdvAddr == c.RaftAdvAddr {
		return fmt.Errorf("-http-adv-addr and -raft-adv-addr must differ (both are %s)", c.HTTPAdvAddr)
	}
	return nil
}

// validateJoinAddrs checks each -join address is host:port or a URL.
func (c *Config) validateJoinAddrs() error {
	for _, j := range c.JoinAddrs {
		hostport := j
		if strings.HasPrefix(j, "http://") || strings.HasPrefix(j, "https://") {
			u, err := url.Parse(j)
			if err != nil || u.Host == "" {
				return fmt.Errorf("-join address %q is not a valid URL", j)
			}
			hostport = u.Host
		}
		if hostport != j && !strings.Contains(strings.TrimPrefix(strings.TrimPrefix(hostport, "["), "]"), ":") {
			continue // a URL without a port: the scheme's default port
		}
		if _, port, err := net.SplitHostPort(hostport); err != nil || port == "" {
			return fmt.Errorf("-join address %q must be host:port (a Raft address) or http://host:port", j)
		}
	}
	return nil
}

// validateFormation checks how the node finds its cluster: -join,
// -bootstrap-expect and discovery.
func (c *Config) validateFormation() error {
	if err := c.validateJoinAddrs(); err != nil {
		return err
	}
	if c.BootstrapExpect < 0 {
		return errors.New("-bootstrap-expect must not be negative")
	}
	if c.BootstrapExpect > 0 && c.RaftNonVoter {
		return errors.New("-bootstrap-expect cannot be used with -raft-non-voter: read replicas never form a cluster, they join one")
	}
	if err := c.validateDisco(); err != nil {
		return err
	}
	if c.BootstrapExpect > 0 && c.DiscoMode == "" && len(c.JoinAddrs) == 0 {
		return errors.New("-bootstrap-expect needs -join with the addresses of the nodes that form the cluster")
	}
	if c.BootstrapExpectTimeout <= 0 {
		return errors.New("-bootstrap-expect-timeout must be positive")
	}
	return nil
}

// validateDisco checks -disco-mode against the other formation flags.
func (c *Config) validateDisco() error {
	if c.DiscoMode == "" {
		if c.DiscoConfig != "" {
			return errors.New("-disco-config is set but -disco-mode is not")
		}
		return nil
	}
	if !disco.ValidMode(c.DiscoMode) {
		return fmt.Errorf("-disco-mode %q is not one of consul-kv, etcd-kv, dns, dns-srv", c.DiscoMode)
	}
	if len(c.JoinAddrs) > 0 {
		return errors.New("-disco-mode and -join cannot be used together: discovery finds the nodes to join")
	}
	if disco.IsKV(c.DiscoMode) && c.BootstrapExpect > 0 {
		return fmt.Errorf("-bootstrap-expect cannot be used with -disco-mode %s: the key-value store elects the first node", c.DiscoMode)
	}
	if !disco.IsKV(c.DiscoMode) && !c.RaftNonVoter && c.BootstrapExpect == 0 {
		return fmt.Errorf("-disco-mode %s needs -bootstrap-expect: how many voters form the cluster", c.DiscoMode)
	}
	if c.DiscoKey == "" {
		return errors.New("-disco-key must not be empty")
	}
	return nil
}

// validateLimits checks timeouts, sizes and levels.
func (c *Config) validateLimits() error {
	if c.JoinAttempts < 1 {
		return errors.New("-join-attempts must be at least 1")
	}
	if c.RaftReapNodeTimeout < 0 || c.RaftReapReadOnlyTimeout < 0 {
		return errors.New("-raft-reap-node-timeout and -raft-reap-read-only-node-timeout must not be negative")
	}
	if c.ClusterConnectTimeout <= 0 {
		return errors.New("-cluster-connect-timeout must be positive")
	}
	if c.RaftSnapThreshold == 0 {
		return errors.New("-raft-snap must be at least 1")
	}
	if c.RaftSnapInterval <= 0 {
		return errors.New("-raft-snap-int must be positive")
	}
	if err := c.validateTimeouts(); err != nil {
		return err
	}
	if c.WriteQueueCapacity < 1 || c.WriteQueueBatchSize < 1 {
		return errors.New("-write-queue-capacity and -write-queue-batch-size must be at least 1")
	}
	switch strings.ToUpper(c.RaftLogLevel) {
	case "ERROR", "WARN", "INFO", "DEBUG", "TRACE":
	default:
		return fmt.Errorf("-raft-log-level %q is not one of ERROR, WARN, INFO, DEBUG", c.RaftLogLevel)
	}
	if c.HTTPMaxBody <= 0 {
		return errors.New("-http-max-body must be positive")
	}
	if c.MaxReadConns < 0 {
		return errors.New("-db-max-ro-conns must not be negative")
	}
	if c.MaxSteps < 0 {
		return errors.New("-db-max-steps must not be negative (0 for no limit)")
	}
	if c.MaxResult < 0 {
		return errors.New("-db-max-result-bytes must not be negative (0 for no limit)")
	}
	switch strings.ToUpper(c.LogLevel) {
	case "ERROR", "WARN", "INFO", "DEBUG":
	default:
		return fmt.Errorf("-log-level %q is not one of ERROR, WARN, INFO, DEBUG", c.LogLevel)
	}
	return nil
}

// validateTimeouts checks the Raft and write-queue timeouts' minimums.
func (c *Config) validateTimeouts() error {
	for _, d := range []struct {
		flag string
		val  time.Duration
		min  time.Duration
	}{
		{"-raft-heartbeat-timeout", c.RaftHeartbeat, 5 * time.Millisecond},
		{"-raft-election-timeout", c.RaftElection, 5 * time.Millisecond},
		{"-raft-commit-timeout", c.RaftCommit, time.Microsecond},
		{"-raft-apply-timeout", c.RaftApply, time.Millisecond},
		{"-write-queue-timeout", c.WriteQueueTimeout, time.Microsecond},
	} {
		if d.val < d.min {
			return fmt.Errorf("%s %v is too short (minimum %v)", d.flag, d.val, d.min)
		}
	}
	if c.RaftLeaderLease < 0 {
		return errors.New("-raft-leader-lease-timeout must not be negative")
	}
	return nil
}

// validateSecurity checks the -auth and TLS flags: pairs that go together
// and options that need TLS on.
func (c *Config) validateSecurity() error {
	if (c.HTTPCert == "") != (c.HTTPKey == "") {
		return errors.New("-http-cert and -http-key go together: set both or neither")
	}
	if (c.NodeCert == "") != (c.NodeKey == "") {
		return errors.New("-node-cert and -node-key go together: set both or neither")
	}
	if c.HTTPCert == "" {
		if c.HTTPVerifyClient {
			return errors.New("-http-verify-client needs HTTPS: set -http-cert and -http-key")
		}
	}
	if c.HTTPVerifyCommonName != "" && !c.HTTPVerifyClient {
		return errors.New("-http-verify-common-name needs -http-verify-client")
	}
	if c.NodeCert == "" {
		for _, f := range []struct {
			flag string
			set  bool
		}{
			{"-node-ca-cert", c.NodeCACert != ""}, {"-node-no-verify", c.NodeNoVerify},
			{"-node-verify-client", c.NodeVerifyClient}, {"-node-verify-server-name", c.NodeVerifyServerName != ""},
		} {
			if f.set {
				return fmt.Errorf("%s needs node TLS: set -node-cert and -node-key", f.flag)
			}
		}
	}
	if c.NodeVerifyCommonName != "" && !c.NodeVerifyClient {
		return errors.New("-node-verify-common-name needs -node-verify-client")
	}
	if c.NodeNoVerify && c.NodeVerifyClient {
		return errors.New("-node-no-verify and -node-verify-client contradict each other: verification is either on or off")
	}
	return nil
}

// loadDiscoConfig reads -disco-config (a file or JSON) into
// DiscoConfigJSON, when a discovery mode is set.
func (c *Config) loadDiscoConfig() error {
	if c.DiscoMode == "" {
		return nil
	}
	b, err := disco.LoadConfig(c.DiscoConfig)
	if err != nil {
		return err
	}
	c.DiscoConfigJSON = b
	return nil
}

// checkFiles proves the -auth and certificate files readable now.
func (c *Config) checkFiles() error {
	for _, f := range []struct{ flag, path string }{
		{"-auth", c.AuthFile}, {"-http-cert", c.HTTPCert}, {"-http-key", c.HTTPKey}, {"-http-ca-cert", c.HTTPCACert},
		{"-node-cert", c.NodeCert}, {"-node-key", c.NodeKey}, {"-node-ca-cert", c.NodeCACert},
	} {
		if f.path == "" {
			continue
		}
		fh, err := os.Open(f.path)
		if err != nil {
			return fmt.Errorf("%s: %w", f.flag, err)
		}
		fh.Close()
	}
	return nil
}

// comboWarnings are the flag combinations that work but are likely
// mistakes, in the order the checks meet them.
func (c *Config) comboWarnings() []string {
	var ws []string
	if disco.IsKV(c.DiscoMode) && !c.DiscoAllowLoopback {
		for _, a := range []struct{ flag, val string }{{"-raft-adv-addr", c.RaftAdvAddr}, {"-http-adv-addr", c.HTTPAdvAddr}} {
			if isLocalOnly(a.val) {
				ws = append(ws, fmt.Sprintf("-disco-mode %s would publish %s (%s) to the key-value store, where nodes on other hosts cannot reach it: "+
					"set %s to an address other nodes can reach (or give -disco-allow-loopback to silence this for a single-host setup)", c.DiscoMode, a.val, a.flag, a.flag))
			}
		}
	}
	if c.BootstrapExpect > 0 && c.DiscoMode == "" && len(c.JoinAddrs) < c.BootstrapExpect {
		// Other nodes whose -join lists name this one may still make up
		// the number, so this can work.
		ws = append(ws, fmt.Sprintf("-bootstrap-expect %d with %d addresses in -join: the cluster forms only if the other nodes' -join lists "+
			"name the missing nodes; usually every node lists all %d", c.BootstrapExpect, len(c.JoinAddrs), c.BootstrapExpect))
	}
	if c.JoinAs != "" && c.AuthFile == "" {
		ws = append(ws, fmt.Sprintf("-join-as %s names a user of the -auth file, but -auth is not set: joins and other cluster calls are made anonymously", c.JoinAs))
	}
	return ws
}
