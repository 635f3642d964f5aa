package main

import (
	"cmp"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/rqlited/rqlited/cluster"
	"github.com/rqlited/rqlited/disco"
	httpd "github.com/rqlited/rqlited/http"
	"github.com/rqlited/rqlited/mux"
	"github.com/rqlited/rqlited/store"
)

// muxHeaderTimeout is the time the inter-node port gives a connection to
// send its header byte (the mux package's, reported in /status "mux").
const muxHeaderTimeout = 10 * time.Second

// addStatusSections adds rqlite's /status sections that only main knows
// of: "cluster" (the cluster service: addr, https, api_addr, and ours),
// "http.cluster" (the cluster client), "http.tls" (certificate files),
// "mux" and "extensions" (rqlited loads none).
func addStatusSections(hs *httpd.Service, cfg *Config, str *store.Store, dir string, httpTLS, nodeTLS bool) {
	hs.AddStatus("cluster", func() map[string]any {
		return map[string]any{"addr": cfg.RaftAdvAddr, "https": strconv.FormatBool(httpTLS), "api_addr": cfg.HTTPAdvAddr,
			"cluster_id": str.ClusterID(), "join": cfg.JoinAddrs, "non_voter": cfg.RaftNonVoter,
			"node_tls": nodeTLS, "join_as": cfg.JoinAs}
	})
	hs.AddStatus("http.cluster", func() map[string]any {
		return map[string]any{"timeout": cfg.ClusterConnectTimeout.String(), "local_node_addr": cfg.RaftAdvAddr}
	})
	if httpTLS {
		hs.AddStatus("http.tls", func() map[string]any {
			return map[string]any{"cert_file": cfg.HTTPCert, "key_file": cfg.HTTPKey, "ca_file": cfg.HTTPCACert}
		})
	}
	tlsState := "disabled"
	if nodeTLS {
		tlsState = "enabled"
	}
	hs.AddStatus("mux", func() map[string]any {
		return map[string]any{"addr": cfg.RaftAdvAddr, "timeout": muxHeaderTimeout.String(), "tls": tlsState,
			"handlers": string([]byte{mux.HeaderRaft, mux.HeaderCluster})}
	})
	hs.AddStatus("extensions", func() map[string]any {
		return map[string]any{"dir": filepath.Join(dir, "extensions"), "names": []string{}}
	})
}

// kvDiscoStatus is the "disco" section in the key-value modes: ours, with
// rqlite's intervals as nanoseconds (its JSON of a time.Duration). A
// refused registration is retried after at most 2 s (rqlite: every 3 s).
func kvDiscoStatus(d *disco.Service) func() map[string]any {
	return func() map[string]any {
		m := d.Stats()
		if s, ok := m["report_interval"].(string); ok {
			m["report_interval_s"] = s
			if v, err := time.ParseDuration(s); err == nil {
				m["report_interval"] = v.Nanoseconds()
			}
		}
		m["register_interval"] = (2 * time.Second).Nanoseconds()
		return m
	}
}

// dnsDiscoStatus is the "disco" section in the DNS modes: rqlite's keys
// (mode, name, port or service and "dns_name:", last_contact and
// last_addresses once looked up, last_error), and the bootstrap progress.
func dnsDiscoStatus(cfg *Config, lookedUp string, boot *cluster.Bootstrapper) func() map[string]any {
	var dc struct {
		Name    string `json:"name"`
		Port    int    `json:"port"`
		Service string `json:"service"`
	}
	disco.Decode(cfg.DiscoConfigJSON, &dc) //nolint:errcheck // checked by addressProvider
	return func() map[string]any {
		m := map[string]any{"mode": cfg.DiscoMode, "name": cmp.Or(dc.Name, "rqlite")}
		if cfg.DiscoMode == disco.ModeDNSSRV {
			m["service"] = cmp.Or(dc.Service, "rqlite")
			m["dns_name:"] = lookedUp + "."
		} else {
			_, port, _ := net.SplitHostPort(cfg.RaftAdvAddr)
			p, _ := strconv.Atoi(port)
			m["port"] = cmp.Or(dc.Port, p)
		}
		if boot == nil {
			m["phase"] = "joined"
			return m
		}
		for k, v := range boot.Stats() {
			m[k] = v
		}
		if e, _ := m["last_error"].(string); e == "" {
			delete(m, "last_error") // rqlite reports it only after a failure
		}
		return m
	}
}

// readyExplain returns, for /readyz, why the node is not ready yet: the
// discovery or bootstrap phase and its last error, if any.
func readyExplain(kvDisco *disco.Service, boot *cluster.Bootstrapper) func() string {
	return func() string {
		var st map[string]any
		switch {
		case kvDisco != nil:
			st = kvDisco.Stats()
		case boot != nil:
			st = boot.Stats()
		default:
			return ""
		}
		why, _ := st["phase"].(string)
		if e, _ := st["last_error"].(string); e != "" {
			why += " (" + e + ")"
		}
		return why
	}
}
