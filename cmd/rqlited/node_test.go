package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestLogShutdownWarnings: Close errors that do not fail the node are
// logged at their level, with their message; the others are returned.
func TestLogShutdownWarnings(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	closeErr := errors.Join(
		warning("HTTP shutdown", errors.New("deadline")),
		nil,
		errors.Join(warning("-cpu-profile", errors.New("bad fd"))),
		&shutdownWarning{msg: "-mem-profile", level: slog.LevelError, err: errors.New("no space")},
		errors.Join(errors.New("close store: disk gone"), nil),
	)
	rest := logShutdownWarnings(closeErr, logger)
	if rest == nil || rest.Error() != "close store: disk gone" {
		t.Fatalf("returned %v, want only the store's error", rest)
	}
	out := buf.String()
	for _, want := range []string{
		`level=WARN msg="HTTP shutdown" error=deadline`,
		`level=WARN msg=-cpu-profile error="bad fd"`,
		`level=ERROR msg=-mem-profile error="no space"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if logShutdownWarnings(nil, logger) != nil || logShutdownWarnings(warning("x", errors.New("y")), logger) != nil {
		t.Error("only warnings, or none, should return nil")
	}
}

// TestValidateChangesNothing: Validate only checks; filling in addresses,
// loading -disco-config and the warnings are finish's other steps.
func TestValidateChangesNothing(t *testing.T) {
	dir := t.TempDir()
	discoFile := filepath.Join(dir, "disco.json")
	if err := os.WriteFile(discoFile, []byte(`{"name":"rqlite.example"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := parseFlags([]string{"-http-addr", "0.0.0.0:4001", "-raft-addr", ":4002", "-disco-mode", "dns",
		"-bootstrap-expect", "3", "-disco-config", discoFile, "-join-as", "x", filepath.Join(dir, "data")}, io.Discard, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.DiscoConfigJSON) == 0 || len(c.Warnings) != 1 {
		t.Fatalf("finish's steps did not run: disco config %q, warnings %q", c.DiscoConfigJSON, c.Warnings)
	}
	before := *c
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, *c) {
		t.Fatalf("Validate changed the config:\nbefore %+v\nafter  %+v", before, *c)
	}
}

// TestServeClosesInReverse: a single node bootstraps, and on cancel closes
// every part it started with no error; a node that cannot listen on
// -raft-addr closes what it opened and reports the listen error.
func TestServeClosesInReverse(t *testing.T) {
	ports := freeAddrs(t, 2)
	dir := t.TempDir()
	c, err := parseFlags([]string{"-http-addr", ports[0], "-raft-addr", ports[1],
		"-mem-profile", filepath.Join(dir, "mem"), filepath.Join(dir, "data")}, io.Discard, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&log, nil))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := serve(ctx, c, logger, io.Discard); err != nil {
		t.Fatalf("serve: %v\n%s", err, log.String())
	}
	for _, want := range []string{"rqlited started", "bootstrapping a single-node cluster", "shutting down"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
	if strings.Contains(log.String(), "level=WARN") || strings.Contains(log.String(), "level=ERROR") {
		t.Errorf("clean shutdown logged a problem:\n%s", log.String())
	}
	if fi, err := os.Stat(filepath.Join(dir, "mem")); err != nil || fi.Size() == 0 {
		t.Errorf("-mem-profile not written at Close: %v", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c.RaftAddr = ln.Addr().String()
	err = serve(context.Background(), c, logger, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "(-raft-addr)") {
		t.Fatalf("serve with -raft-addr in use: %v", err)
	}
}

// freeAddrs returns n loopback addresses nothing listens on.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, ln.Addr().String())
		ln.Close()
	}
	return addrs
}
