package main

import (
	"io"
	"os"
	"strings"
	"testing"
)

func TestEnvDefaultsAndAdvertisedHostname(t *testing.T) {
	env := map[string]string{"HTTP_ADDR": "0.0.0.0:4001", "RAFT_ADDR": "0.0.0.0:4002", "DATA_DIR": "/rqlite/file/data"}
	getenv := func(k string) string { return env[k] }
	c, err := parseFlags([]string{"-raft-addr", ":5002"}, io.Discard, getenv)
	if err != nil {
		t.Fatal(err)
	}
	host := mustHostname(t)
	if c.HTTPAddr != "0.0.0.0:4001" || c.RaftAddr != ":5002" || c.DataDir != "/rqlite/file/data" {
		t.Fatalf("env defaults or flag precedence wrong: %+v", c)
	}
	if c.HTTPAdvAddr != host+":4001" || c.RaftAdvAddr != host+":5002" || c.NodeID != host {
		t.Fatalf("advertised: %s %s id %s", c.HTTPAdvAddr, c.RaftAdvAddr, c.NodeID)
	}
	env["NODE_ID"], env["RAFT_ADV_ADDR"] = "n1", "n1.example:4002"
	c, err = parseFlags(nil, io.Discard, getenv)
	if err != nil || c.NodeID != "n1" || c.RaftAdvAddr != "n1.example:4002" {
		t.Fatalf("NODE_ID/RAFT_ADV_ADDR: %+v %v", c, err)
	}
	env["HTTP_ADDR"] = "http://x"
	if _, err := parseFlags(nil, io.Discard, getenv); err == nil {
		t.Fatal("bad HTTP_ADDR accepted")
	}
}

func mustHostname(t *testing.T) string {
	t.Helper()
	h, err := advertise("", "0.0.0.0:1", func() (string, error) { return "h", nil })
	if err != nil || h != "h:1" {
		t.Fatalf("advertise: %q %v", h, err)
	}
	name, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return name
}

// TestSecurityFlagsValidated: pairs that go together, options that need
// TLS or -auth, and unreadable files are refused with the flag named.
func TestSecurityFlagsValidated(t *testing.T) {
	dir := t.TempDir()
	pem := dir + "/x.pem"
	if err := os.WriteFile(pem, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(string) string { return "" }
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-http-cert", pem}, "-http-cert and -http-key"},
		{[]string{"-node-key", pem}, "-node-cert and -node-key"},
		{[]string{"-http-verify-client"}, "-http-verify-client needs HTTPS"},
		{[]string{"-http-cert", pem, "-http-key", pem, "-http-verify-common-name", "x"}, "needs -http-verify-client"},
		{[]string{"-node-ca-cert", pem}, "-node-ca-cert needs node TLS"},
		{[]string{"-node-cert", pem, "-node-key", pem, "-node-no-verify", "-node-verify-client"}, "contradict"},
		{[]string{"-auth", dir + "/missing.json"}, "-auth:"},
		{[]string{"-node-cert", dir + "/missing.pem", "-node-key", pem}, "-node-cert:"},
	} {
		_, err := parseFlags(append(c.args, dir+"/data"), io.Discard, getenv)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want it to mention %q", c.args, err, c.want)
		}
	}
	if _, err := parseFlags([]string{"-http-cert", pem, "-http-key", pem, "-http-verify-client", dir + "/data"}, io.Discard, getenv); err != nil {
		t.Errorf("valid HTTPS flags refused: %v", err)
	}
}
