package main

import (
	"io"
	"os"
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
