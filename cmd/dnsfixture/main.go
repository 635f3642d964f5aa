// Command dnsfixture is an authoritative DNS server for container tests: it
// serves the A and SRV records given on its command line.
//
//	dnsfixture -addr :53 -a rq1.test=10.0.0.11 -srv _raft._tcp.test=10:5:4002:rq1.test
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/rqlited/rqlited/internal/dnstest"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, " ") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	addr := flag.String("addr", ":53", "address to serve on (UDP and TCP)")
	var as, srvs list
	flag.Var(&as, "a", "name=ip[,ip...]: A/AAAA records (repeatable)")
	flag.Var(&srvs, "srv", "name=priority:weight:port:target[,...]: SRV records (repeatable)")
	flag.Parse()
	s := dnstest.New()
	for _, a := range as {
		name, ips, ok := strings.Cut(a, "=")
		if !ok {
			fail(fmt.Errorf("-a %q: want name=ip[,ip...]", a))
		}
		s.SetA(name, strings.Split(ips, ",")...)
	}
	for _, r := range srvs {
		name, recs, ok := strings.Cut(r, "=")
		if !ok {
			fail(fmt.Errorf("-srv %q: want name=priority:weight:port:target", r))
		}
		var out []dnstest.SRV
		for _, rec := range strings.Split(recs, ",") {
			f := strings.Split(rec, ":")
			if len(f) != 4 {
				fail(fmt.Errorf("-srv record %q: want priority:weight:port:target", rec))
			}
			var n [3]uint16
			for i := range n {
				v, err := strconv.ParseUint(f[i], 10, 16)
				if err != nil {
					fail(fmt.Errorf("-srv record %q: %w", rec, err))
				}
				n[i] = uint16(v)
			}
			out = append(out, dnstest.SRV{Priority: n[0], Weight: n[1], Port: n[2], Target: f[3]})
		}
		s.SetSRV(name, out...)
	}
	fail(s.ListenAndServe(*addr))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "dnsfixture:", err)
	os.Exit(1)
}
