package main

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"testing"
)

func TestWarnOpenInterNode(t *testing.T) {
	tcp := func(ip string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 4002} }
	for _, tc := range []struct {
		name   string
		cfg    Config
		addr   net.Addr
		warned bool
	}{
		{"no -auth", Config{}, tcp("0.0.0.0"), false},
		{"-auth, all interfaces", Config{AuthFile: "a.json"}, tcp("0.0.0.0"), true},
		{"-auth, IPv6 any", Config{AuthFile: "a.json"}, tcp("::"), true},
		{"-auth, private address", Config{AuthFile: "a.json"}, tcp("10.1.2.3"), true},
		{"-auth, node TLS without client verification", Config{AuthFile: "a.json", NodeCert: "n.pem"}, tcp("10.1.2.3"), true},
		{"-auth, loopback", Config{AuthFile: "a.json"}, tcp("127.0.0.1"), false},
		{"-auth, IPv6 loopback", Config{AuthFile: "a.json"}, tcp("::1"), false},
		{"-auth, mutual TLS", Config{AuthFile: "a.json", NodeCert: "n.pem", NodeVerifyClient: true}, tcp("0.0.0.0"), false},
	} {
		var out bytes.Buffer
		warnOpenInterNode(&tc.cfg, tc.addr, slog.New(slog.NewTextHandler(&out, nil)))
		got := out.String()
		if warned := strings.Contains(got, "level=WARN"); warned != tc.warned {
			t.Errorf("%s: warned %v, want %v (%q)", tc.name, warned, tc.warned, got)
		}
		if tc.warned && (strings.Count(got, "\n") != 1 || !strings.Contains(got, "-node-verify-client") ||
			!strings.Contains(got, "act as a cluster member")) {
			t.Errorf("%s: want one line naming the risk and -node-verify-client, got %q", tc.name, got)
		}
	}
}
