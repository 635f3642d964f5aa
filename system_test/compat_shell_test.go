//go:build system

package system_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestCompatShell makes, against a three-node cluster of rqlited, the HTTP
// requests that rqlite's own shell (rqlite/rqlite cmd/rqlite, v10) makes for
// every dot-command and for plain SQL, as the shell makes them (paths,
// parameters, headers, bodies, Basic credentials, its handling of 301), and
// checks what the shell relies on in each answer: the status codes it
// accepts, the JSON it decodes and into which types, the headers it reads.
// testdata/rqlite-shell-requests.md lists those requests and why each check
// is there. The cluster runs with -auth, as the shell's -u flag needs.
func TestCompatShell(t *testing.T) {
	const admin, adminPW = "shell-admin", "shell-admin-pw"
	file := writeAuthFile(t, "", []authUser{
		{Username: admin, Password: adminPW, Perms: []string{"all"}},
		{Username: "joiner", Password: "joiner-pw", Perms: []string{"join"}},
	})
	c := newBootstrapCluster(t, 3, "-auth", file, "-join-as", "joiner")
	for _, n := range c {
		n.User, n.Pass = admin, adminPW
	}
	c.startAll()
	single := startNode(t) // for .boot, which rqlite serves on single-node clusters only
	c.waitOneCluster(t, 30*time.Second)
	for _, n := range c {
		n.WaitReady(30 * time.Second)
	}
	// The node lookups run inside subtests, so they fail nothing
	// themselves: nil is "no leader", which the case reports.
	leader := func() *Node { return shellLeader(c) }
	follower := func() *Node {
		if l := leader(); l != nil {
			return c.followers(l)[0]
		}
		return nil
	}
	all := func() []*Node { return c }
	one := func(f func() *Node) func() []*Node { return func() []*Node { return []*Node{f()} } }

	// The data the dot-commands look at, written outside the shell's path.
	for _, sql := range []string{
		`CREATE TABLE shell_t (id INTEGER PRIMARY KEY, name TEXT)`,
		`CREATE INDEX shell_t_name ON shell_t(name)`,
		`CREATE TABLE shell_other (id INTEGER PRIMARY KEY, v TEXT)`,
		`CREATE TABLE shell_blob (id INTEGER PRIMARY KEY, b BLOB)`,
		`INSERT INTO shell_t(id, name) VALUES(1, 'fiona')`,
		`INSERT INTO shell_other(v) VALUES('other')`,
		`INSERT INTO shell_blob(b) VALUES(X'0102')`,
	} {
		body, _ := json.Marshal([]string{sql})
		s, b := leader().Execute("", string(body))
		if s != 200 || strings.Contains(b, `"error"`) {
			t.Fatalf("seed %q: %d %s", sql, s, b)
		}
	}

	sh := newShell(admin, adminPW)
	countIs := func(n *Node, table string, want int64) error { return sh.countIs(n, table, want) }
	var backupCopy []byte // the leader's .backup, for .restore and .boot
	var backupRows int64  // COUNT(*) of shell_t in backupCopy

	cases := []shellCase{
		// Start-up: the banner's version.
		{cmd: "(start-up) version banner", nodes: all,
			req: func(*Node) shellReq { return shellReq{method: "GET", path: "/status"} },
			check: func(r *shellResp) error {
				v := r.header.Values("X-Rqlite-Version")
				if len(v) != 1 || v[0] == "" {
					return fmt.Errorf("X-Rqlite-Version header %q: the shell needs exactly one value (else it says version \"unknown\")", v)
				}
				return nil
			}},

		// Plain SQL: POST /db/request, body ["<line>"], no Content-Type.
		{cmd: "CREATE TABLE (plain SQL)", nodes: all,
			req: func(n *Node) shellReq {
				return shellSQL(fmt.Sprintf("CREATE TABLE made_%s (id INTEGER PRIMARY KEY, v TEXT)", n.nodeID()), false, false)
			},
			check: func(r *shellResp) error {
				res, err := shellOneResult(r)
				if err != nil {
					return err
				}
				if res.Error != "" {
					return fmt.Errorf("result error %q", res.Error)
				}
				if res.isQuery() {
					return fmt.Errorf("a DDL result carries columns/types/values, so the shell prints it as a table, not as \"N rows affected\": %s", r.body)
				}
				return nil
			}},
		{cmd: "INSERT (plain SQL)", nodes: all,
			req: func(n *Node) shellReq {
				return shellSQL(fmt.Sprintf("INSERT INTO shell_t(name) VALUES('from-%s')", n.nodeID()), false, false)
			},
			check: func(r *shellResp) error {
				res, err := shellOneResult(r)
				if err != nil {
					return err
				}
				if res.Error != "" || res.isQuery() || res.RowsAffected != 1 || res.LastInsertID < 2 {
					return fmt.Errorf("want an execute result with rows_affected 1 and last_insert_id > 1: %s", r.body)
				}
				return nil
			}},
		{cmd: "SELECT (plain SQL, unified endpoint)", nodes: all,
			req: func(*Node) shellReq { return shellSQL("SELECT id, name FROM shell_t WHERE id = 1", false, false) },
			check: func(r *shellResp) error {
				res, err := shellOneResult(r)
				if err != nil {
					return err
				}
				if res.Error != "" || !res.isQuery() {
					return fmt.Errorf("want a query result: %s", r.body)
				}
				if strings.Join(res.Columns, ",") != "id,name" || len(res.Types) != 2 ||
					len(res.Values) != 1 || fmt.Sprint(res.Values[0]) != "[1 fiona]" {
					return fmt.Errorf("want columns [id name], 2 types, values [[1 fiona]]: %s", r.body)
				}
				return nil
			}},
		{cmd: "SELECT with no rows (plain SQL)", nodes: one(follower),
			req: func(*Node) shellReq { return shellSQL("SELECT id, name FROM shell_t WHERE id < 0", false, false) },
			check: func(r *shellResp) error {
				res, err := shellOneResult(r)
				if err != nil {
					return err
				}
				if res.Error != "" || res.Columns == nil || len(res.Values) != 0 {
					return fmt.Errorf("an empty SELECT needs its columns (without them the shell prints \"0 row affected\"): %s", r.body)
				}
				return nil
			}},
		{cmd: "INSERT ... RETURNING (plain SQL)", nodes: one(follower),
			req: func(*Node) shellReq {
				return shellSQL("INSERT INTO shell_other(v) VALUES('ret') RETURNING id", false, false)
			},
			check: func(r *shellResp) error {
				res, err := shellOneResult(r)
				if err != nil {
					return err
				}
				if res.Error != "" || strings.Join(res.Columns, ",") != "id" || len(res.Values) != 1 {
					return fmt.Errorf("RETURNING rows need columns [id] and one row of values: %s", r.body)
				}
				return nil
			}},
		{cmd: "SQL error (plain SQL)", nodes: all,
			req: func(*Node) shellReq { return shellSQL("SELECT * FROM no_such_table", false, false) },
			check: func(r *shellResp) error {
				res, err := shellOneResult(r)
				if err != nil {
					return err
				}
				if res.Error == "" {
					return fmt.Errorf("want the SQL error in results[0].error (status 200): %s", r.body)
				}
				return nil
			}},
		{cmd: ".timer on + plain SQL", nodes: one(follower),
			req: func(*Node) shellReq { return shellSQL("SELECT COUNT(*) FROM shell_t", true, false) },
			check: func(r *shellResp) error {
				if _, err := shellOneResult(r); err != nil {
					return err
				}
				return shellTimeFields(r)
			}},
		{cmd: ".forcewrites on + INSERT", nodes: all,
			req: func(n *Node) shellReq {
				return shellSQL(fmt.Sprintf("INSERT INTO shell_other(v) VALUES('forced-%s')", n.nodeID()), false, true)
			},
			check: func(r *shellResp) error {
				res, err := shellOneResult(r)
				if err != nil {
					return err
				}
				if res.Error != "" || res.isQuery() || res.RowsAffected != 1 {
					return fmt.Errorf("want an execute result with rows_affected 1: %s", r.body)
				}
				return nil
			}},
		{cmd: ".forcewrites on + .timer on + INSERT", nodes: one(follower),
			req: func(*Node) shellReq { return shellSQL("INSERT INTO shell_other(v) VALUES('timed')", true, true) },
			check: func(r *shellResp) error {
				if _, err := shellOneResult(r); err != nil {
					return err
				}
				return shellTimeFields(r)
			}},

		// .tables, .indexes, .schema: GET /db/query?level=<consistency>&q=...
		{cmd: ".tables", nodes: all,
			req:   func(*Node) shellReq { return shellQuery("weak", shellTablesSQL, false, false) },
			check: shellQueryHas("shell_t")},
		{cmd: ".indexes", nodes: all,
			req:   func(*Node) shellReq { return shellQuery("weak", shellIndexesSQL, false, false) },
			check: shellQueryHas("CREATE INDEX shell_t_name ON shell_t(name)")},
		{cmd: ".schema", nodes: all,
			req:   func(*Node) shellReq { return shellQuery("weak", shellSchemaSQL, false, false) },
			check: shellQueryHas("CREATE TABLE shell_t (id INTEGER PRIMARY KEY, name TEXT)")},
		{cmd: ".consistency none + .tables", nodes: all, poll: true,
			req:   func(*Node) shellReq { return shellQuery("none", shellTablesSQL, false, false) },
			check: shellQueryHas("shell_t")},
		{cmd: ".consistency weak + .tables", nodes: all,
			req:   func(*Node) shellReq { return shellQuery("weak", shellTablesSQL, false, false) },
			check: shellQueryHas("shell_t")},
		{cmd: ".consistency linearizable + .tables", nodes: all,
			req:   func(*Node) shellReq { return shellQuery("linearizable", shellTablesSQL, false, false) },
			check: shellQueryHas("shell_t")},
		{cmd: ".consistency strong + .tables", nodes: all,
			req:   func(*Node) shellReq { return shellQuery("strong", shellTablesSQL, false, false) },
			check: shellQueryHas("shell_t")},
		{cmd: ".timer on + .tables", nodes: one(follower),
			req: func(*Node) shellReq { return shellQuery("weak", shellTablesSQL, true, false) },
			check: func(r *shellResp) error {
				if err := shellQueryHas("shell_t")(r); err != nil {
					return err
				}
				return shellTimeFields(r)
			}},
		{cmd: ".blobarray on + .tables", nodes: one(follower),
			req:   func(*Node) shellReq { return shellQuery("weak", shellTablesSQL, false, true) },
			check: shellQueryHas("shell_blob")},

		// .status, .nodes, .leader, .ready, .expvar, .extensions, .sysdump.
		{cmd: ".status", nodes: all,
			req: func(*Node) shellReq { return shellReq{method: "GET", path: "/status"} },
			check: func(r *shellResp) error {
				m, err := shellJSONObject(r)
				if err != nil {
					return err
				}
				var errs []error
				for _, k := range []string{"build", "cluster", "http", "node", "os", "runtime", "store"} {
					if _, ok := m[k].(map[string]any); !ok {
						errs = append(errs, fmt.Errorf("\".status %s\" shows nothing: no object under key %q", k, k))
					}
				}
				return errors.Join(errs...)
			}},
		{cmd: ".restore/.boot pre-check: GET /status store.sqlite3.fk_constraints", nodes: all,
			req: func(*Node) shellReq { return shellReq{method: "GET", path: "/status"} },
			check: func(r *shellResp) error {
				if err := shellStatus(r, 200); err != nil {
					return err
				}
				var st struct {
					Store *struct {
						SQLite struct {
							FK string `json:"fk_constraints"`
						} `json:"sqlite3"`
					} `json:"store"`
				}
				if err := shellDecode(r.body, &st); err != nil {
					return fmt.Errorf("the shell cannot decode /status into its pre-check type (store.sqlite3.fk_constraints must be a string): %v", err)
				}
				if st.Store == nil {
					return errors.New("no \"store\" object: the shell refuses .restore and .boot (\"store status not found\")")
				}
				var m map[string]any
				shellDecode(r.body, &m)
				sq, _ := m["store"].(map[string]any)["sqlite3"].(map[string]any)
				if fk, ok := sq["fk_constraints"].(string); !ok || (fk != "enabled" && fk != "disabled") {
					return fmt.Errorf("store.sqlite3.fk_constraints = %#v, want \"enabled\" or \"disabled\" (the shell appends PRAGMA foreign_keys=ON/OFF to a restored dump from it); store.sqlite3 is %v", sq["fk_constraints"], sq)
				}
				return nil
			}},
		{cmd: ".nodes", nodes: all,
			req:   func(*Node) shellReq { return shellReq{method: "GET", path: "/nodes"} },
			check: shellNodesCheck(3)},
		{cmd: ".nodes all", nodes: all,
			req:   func(*Node) shellReq { return shellReq{method: "GET", path: "/nodes?nonvoters"} },
			check: shellNodesCheck(3)},
		{cmd: ".leader", nodes: all,
			req: func(*Node) shellReq { return shellReq{method: "GET", path: "/nodes"} },
			check: func(r *shellResp) error {
				m, err := shellJSONObject(r)
				if err != nil {
					return err
				}
				var leaders []string
				for id, v := range m {
					if e, ok := v.(map[string]any); ok {
						if l, ok := e["leader"].(bool); ok && l {
							leaders = append(leaders, id)
						}
					}
				}
				l := leader()
				if l == nil {
					return errors.New("the cluster has no leader to compare with")
				}
				if len(leaders) != 1 || leaders[0] != l.nodeID() {
					return fmt.Errorf("entries with \"leader\": true: %v, want exactly [%s]: %s", leaders, l.nodeID(), r.body)
				}
				return nil
			}},
		{cmd: ".ready", nodes: all,
			req: func(*Node) shellReq { return shellReq{method: "GET", path: "/readyz"} },
			check: func(r *shellResp) error {
				return errors.Join(shellStatus(r, 200), shellContentType(r, "text/plain"))
			}},
		{cmd: ".expvar", nodes: all,
			req: func(*Node) shellReq { return shellReq{method: "GET", path: "/debug/vars"} },
			check: func(r *shellResp) error {
				m, err := shellJSONObject(r)
				if err != nil {
					return err
				}
				if _, ok := m["cmdline"].([]any); !ok {
					return fmt.Errorf("no expvar \"cmdline\" array: %.300s", r.body)
				}
				if _, ok := m["memstats"].(map[string]any); !ok {
					return fmt.Errorf("no expvar \"memstats\" object (\".expvar memstats\" shows nothing): %.300s", r.body)
				}
				return nil
			}},
		{cmd: ".extensions", nodes: all,
			req: func(*Node) shellReq { return shellReq{method: "GET", path: "/status?key=extensions"} },
			check: func(r *shellResp) error {
				if r.status == http.StatusNotFound {
					return nil // the shell prints nothing
				}
				m, err := shellJSONObject(r)
				if err != nil {
					return err
				}
				names, ok := m["names"]
				if !ok {
					return nil
				}
				list, ok := names.([]any)
				if !ok {
					return fmt.Errorf("\"names\" is %T, the shell asserts an array (it would panic): %s", names, r.body)
				}
				for _, x := range list {
					if _, ok := x.(string); !ok {
						return fmt.Errorf("a name is %T, the shell asserts a string (it would panic): %s", x, r.body)
					}
				}
				return nil
			}},
		{cmd: ".sysdump", nodes: all,
			req: func(*Node) shellReq { return shellReq{method: "GET", path: "/nodes"} },
			check: func(r *shellResp) error {
				if err := shellStatus(r, 200); err != nil {
					return err
				}
				var nodes map[string]struct {
					APIAddr string `json:"api_addr"`
				}
				if err := shellDecode(r.body, &nodes); err != nil {
					return fmt.Errorf("the shell cannot decode /nodes into map[id]{api_addr string}: %v: %s", err, r.body)
				}
				if len(nodes) != 3 {
					return fmt.Errorf("%d nodes, want 3: %s", len(nodes), r.body)
				}
				var errs []error
				for id, nd := range nodes {
					if err := shellAbsURL(nd.APIAddr); err != nil {
						errs = append(errs, fmt.Errorf("node %s: %v", id, err))
						continue
					}
					for _, p := range []string{"/status?pretty", "/nodes?pretty", "/readyz", "/debug/vars"} {
						d, err := sh.do(shellReq{method: "GET", path: nd.APIAddr + p, direct: true})
						if err != nil {
							errs = append(errs, fmt.Errorf("node %s: GET %s%s: %v", id, nd.APIAddr, p, err))
							continue
						}
						if d.status != 200 {
							errs = append(errs, fmt.Errorf("node %s: GET %s%s: status %d, the sysdump file gets no body: %.200s", id, nd.APIAddr, p, d.status, d.body))
						}
					}
				}
				return errors.Join(errs...)
			}},

		// .backup, .dump.
		{cmd: ".backup", nodes: all,
			req: func(*Node) shellReq { return shellReq{method: "GET", path: "/db/backup"} },
			check: func(r *shellResp) error {
				if err := shellStatus(r, 200); err != nil {
					return err
				}
				if !bytes.HasPrefix(r.body, []byte("SQLite format 3\x00")) {
					return fmt.Errorf("the backup file is not a SQLite database: %.64q", r.body)
				}
				if r.node == leader() {
					n, err := sh.count(r.node, "shell_t")
					if err != nil {
						return err
					}
					backupCopy, backupRows = r.body, n
				}
				return shellContentType(r, "application/octet-stream")
			}},
		{cmd: ".dump FILE", nodes: all,
			req: func(*Node) shellReq { return shellReq{method: "GET", path: "/db/backup?" + shellDumpQuery(nil)} },
			check: func(r *shellResp) error {
				if err := shellStatus(r, 200); err != nil {
					return err
				}
				d := string(r.body)
				for _, want := range []string{"CREATE TABLE shell_t", "INSERT INTO", "shell_other", "shell_blob"} {
					if !strings.Contains(d, want) {
						return fmt.Errorf("the SQL text has no %q: %.500s", want, d)
					}
				}
				return nil
			}},
		{cmd: ".dump FILE shell_t,shell_blob", nodes: all,
			req: func(*Node) shellReq {
				return shellReq{method: "GET", path: "/db/backup?" + shellDumpQuery([]string{"shell_t", "shell_blob"})}
			},
			check: func(r *shellResp) error {
				if err := shellStatus(r, 200); err != nil {
					return err
				}
				d := string(r.body)
				if !strings.Contains(d, "shell_t") || !strings.Contains(d, "shell_blob") || strings.Contains(d, "shell_other") {
					return fmt.Errorf("want shell_t and shell_blob and not shell_other in the SQL text: %.800s", d)
				}
				return nil
			}},

		// .restore: GET /status (above), then POST /db/load.
		{cmd: ".restore DUMP.sql", nodes: all,
			req: func(n *Node) shellReq {
				tbl := "restored_" + n.nodeID()
				dump := "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n" +
					"CREATE TABLE " + tbl + " (id INTEGER PRIMARY KEY, v TEXT);\n" +
					"INSERT INTO " + tbl + " VALUES(1,'a');\nINSERT INTO " + tbl + " VALUES(2,'b');\nCOMMIT;\n"
				return shellRestoreSQL(dump)
			},
			check: shellRestoreResult(func(r *shellResp) error {
				return countIs(r.node, "restored_"+r.node.nodeID(), 2)
			})},
		{cmd: ".restore DUMP.sql whose last line has no newline", nodes: one(follower),
			req: func(*Node) shellReq {
				return shellRestoreSQL("BEGIN TRANSACTION;\nCREATE TABLE restored_nonl (id INTEGER PRIMARY KEY);\n" +
					"INSERT INTO restored_nonl VALUES(1);\nCOMMIT;")
			},
			check: shellRestoreResult(func(r *shellResp) error { return countIs(r.node, "restored_nonl", 1) })},
		{cmd: ".restore BACKUP.sqlite", nodes: one(follower),
			req: func(*Node) shellReq {
				return shellReq{method: "POST", path: "/db/load", body: backupCopy,
					header: http.Header{"Content-Type": {"application/octet-stream"}}}
			},
			check: func(r *shellResp) error {
				if len(backupCopy) == 0 {
					return errors.New("no .backup copy from the leader to restore (see .backup)")
				}
				if err := shellStatus(r, 200); err != nil {
					return err
				}
				var res struct {
					Results []shellResult `json:"results"`
				}
				if err := shellDecode(r.body, &res); err != nil {
					return fmt.Errorf("the shell cannot decode the answer to a SQLite restore: %v: %q", err, r.body)
				}
				return errors.Join(countIs(r.node, "shell_t", backupRows),
					countIs(r.node, "sqlite_master WHERE name LIKE 'restored_%'", 0))
			}},

		// .snapshot, .reap.
		{cmd: ".snapshot", nodes: all,
			req: func(*Node) shellReq { return shellReq{method: "POST", path: "/snapshot?trailing_logs=0"} },
			check: func(r *shellResp) error {
				return shellStatus(r, http.StatusOK, http.StatusNoContent)
			}},
		{cmd: ".reap", nodes: all,
			req: func(*Node) shellReq { return shellReq{method: "POST", path: "/reap"} },
			check: func(r *shellResp) error {
				if err := shellStatus(r, 200); err != nil {
					return err
				}
				var m map[string]int
				if err := shellDecode(r.body, &m); err != nil {
					return fmt.Errorf("the shell cannot decode the answer into map[string]int: %v: %s", err, r.body)
				}
				for _, k := range []string{"snapshots_reaped", "wals_checkpointed"} {
					if _, ok := m[k]; !ok {
						return fmt.Errorf("no %q count: %s", k, r.body)
					}
				}
				return nil
			}},

		// .boot: GET /status (above), then POST /boot with the SQLite file.
		{cmd: ".boot BACKUP.sqlite on a cluster member", nodes: one(leader),
			req: func(*Node) shellReq { return shellReq{method: "POST", path: "/boot", body: backupCopy} },
			check: func(r *shellResp) error {
				switch {
				case r.status == 200:
					return errors.New("a node of a 3-node cluster accepted /boot: rqlite boots single-node clusters only")
				case r.status != http.StatusServiceUnavailable:
					return fmt.Errorf("status %d, want rqlite's 503 (\"not single-node\"): %.200s", r.status, r.body)
				case len(bytes.TrimSpace(r.body)) == 0:
					return errors.New("503 with no reason: the shell prints the body after \"boot failed\"")
				}
				return nil
			}},
		{cmd: ".boot BACKUP.sqlite on a single node", nodes: func() []*Node { return []*Node{single} },
			req: func(*Node) shellReq { return shellReq{method: "POST", path: "/boot", body: backupCopy} },
			check: func(r *shellResp) error {
				if len(backupCopy) == 0 {
					return errors.New("no .backup copy from the leader to boot with (see .backup)")
				}
				if err := shellStatus(r, 200); err != nil {
					return err
				}
				return countIs(r.node, "shell_t", backupRows)
			}},

		// Flags: redirect following, --alternatives, -u.
		{cmd: "redirect following (a 301 from ?redirect)", nodes: one(follower), redirectOK: true,
			req: func(*Node) shellReq {
				return shellReq{method: "GET", path: "/db/query?level=weak&redirect&q=" + url.QueryEscape("SELECT COUNT(*) FROM shell_t")}
			},
			check: func(r *shellResp) error {
				if len(r.redirects) == 0 {
					return errors.New("no 301: the test needs one to follow")
				}
				for _, loc := range r.redirects {
					if err := shellAbsURL(loc); err != nil {
						return fmt.Errorf("Location %q: %v (the shell requests the Location value as it is)", loc, err)
					}
				}
				_, err := shellOneResult(r)
				return err
			}},
		{cmd: "--alternatives DOWN,FOLLOWER + INSERT", nodes: one(follower),
			req: func(n *Node) shellReq {
				q := shellSQL("INSERT INTO shell_other(v) VALUES('alt')", false, false)
				q.hosts = []string{"http://" + freePort(t), n.URL("")}
				return q
			},
			check: func(r *shellResp) error {
				if r.host == "" || !strings.HasSuffix(r.host, r.node.HTTPAddr) {
					return fmt.Errorf("answered by %q, want the alternative %s", r.host, r.node.HTTPAddr)
				}
				res, err := shellOneResult(r)
				if err != nil {
					return err
				}
				if res.RowsAffected != 1 {
					return fmt.Errorf("rows_affected %d, want 1: %s", res.RowsAffected, r.body)
				}
				return nil
			}},
	}

	// -u: every request the shell makes answers 401 to a caller without
	// credentials, or with a wrong password; the shell then says
	// "unauthorized". (Requests that change the cluster are sent with an
	// id or body that would be refused anyway.)
	for _, ep := range []struct{ method, path string }{
		{"GET", "/status"}, {"GET", "/status?key=extensions"}, {"GET", "/nodes"}, {"GET", "/readyz"},
		{"GET", "/debug/vars"}, {"GET", "/db/backup"}, {"GET", "/db/backup?fmt=sql"},
		{"GET", "/db/query?" + url.Values{"level": {"weak"}, "q": {shellTablesSQL}}.Encode()},
		{"POST", "/db/request"}, {"POST", "/db/execute"}, {"POST", "/db/load"}, {"POST", "/boot"},
		{"POST", "/reap"}, {"POST", "/snapshot?trailing_logs=0"}, {"POST", "/leader?wait=true"}, {"DELETE", "/remove"},
	} {
		for _, cred := range []struct{ name, user, pass string }{
			{"no -u", "", ""}, {"-u with a wrong password", admin, "wrong"},
		} {
			ep, cred := ep, cred
			cases = append(cases, shellCase{
				cmd: fmt.Sprintf("%s: %s %s", cred.name, ep.method, ep.path), nodes: one(follower),
				client: newShell(cred.user, cred.pass),
				req: func(*Node) shellReq {
					q := shellReq{method: ep.method, path: ep.path}
					if ep.method != "GET" {
						q.body = []byte(`["SELECT 1"]`)
					}
					return q
				},
				check: func(r *shellResp) error { return shellStatus(r, http.StatusUnauthorized) },
			})
		}
	}

	// Last, as they change the cluster: .stepdown, then .remove.
	var before string
	cases = append(cases,
		shellCase{cmd: ".stepdown", nodes: func() []*Node {
			n := leader()
			if n != nil {
				before = n.nodeID()
			}
			return []*Node{n}
		},
			req: func(*Node) shellReq { return shellReq{method: "POST", path: "/leader?wait=true"} },
			check: func(r *shellResp) error {
				if err := shellStatus(r, 200); err != nil {
					return err
				}
				if now := leader(); now == nil || now.nodeID() == before {
					return fmt.Errorf("leader is %v, want one other than %s", now, before)
				}
				return nil
			}},
		shellCase{cmd: ".stepdown NODEID (through a follower)", nodes: one(follower),
			req: func(n *Node) shellReq {
				body, _ := json.Marshal(map[string]string{"id": n.nodeID()})
				return shellReq{method: "POST", path: "/leader?wait=true", body: body,
					header: http.Header{"Content-Type": {"application/json"}}}
			},
			check: func(r *shellResp) error {
				if err := shellStatus(r, 200); err != nil {
					return err
				}
				if now := leader(); now != r.node {
					return fmt.Errorf("leader is %v, want %s", now, r.node.nodeID())
				}
				return nil
			}},
		shellCase{cmd: ".remove NODEID (through a follower)", nodes: one(follower),
			req: func(n *Node) shellReq {
				victim := "none"
				for _, x := range c.followers(leader()) {
					if x != n {
						victim = x.nodeID()
					}
				}
				body, _ := json.Marshal(map[string]string{"id": victim})
				return shellReq{method: "DELETE", path: "/remove", body: body}
			},
			check: func(r *shellResp) error {
				if err := shellStatus(r, 200); err != nil {
					return err
				}
				deadline := time.Now().Add(10 * time.Second)
				for {
					var left map[string]any
					q, err := sh.do(shellReq{method: "GET", path: "/nodes", hosts: []string{r.node.URL("")}})
					if err == nil && q.status == 200 && shellDecode(q.body, &left) == nil && len(left) == 2 {
						return nil
					}
					if time.Now().After(deadline) {
						return fmt.Errorf("/nodes after .remove: %v %v, want 2 nodes", err, left)
					}
					time.Sleep(20 * time.Millisecond)
				}
			}},
	)

	for _, tc := range cases {
		t.Run(tc.cmd, func(t *testing.T) {
			for _, n := range tc.nodes() {
				if n == nil {
					t.Error("the cluster has no leader: no node to point the shell at")
					continue
				}
				t.Run(n.nodeID(), func(t *testing.T) { tc.run(t, sh, n) })
			}
		})
	}
}

// The shell's queries for .tables, .indexes and .schema.
const (
	shellTablesSQL  = `SELECT name FROM sqlite_master WHERE type="table" ORDER BY name ASC`
	shellIndexesSQL = `SELECT sql FROM sqlite_master WHERE type="index"`
	shellSchemaSQL  = `SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid ASC`
)

// shellCase is one request of the shell and what the shell needs from its
// answer.
type shellCase struct {
	cmd   string         // what the user types
	nodes func() []*Node // the nodes the shell is pointed at (-H/-p, or reached through --alternatives)
	req   func(*Node) shellReq
	check func(*shellResp) error
	// poll repeats the request until check passes or 10 s pass (state that
	// reaches a node asynchronously, such as a read at level none).
	poll bool
	// redirectOK allows a 301 on the way: rqlite answers the shell's
	// requests itself, forwarding to the leader, and the shell would send
	// a request body again after a 301 from a drained reader.
	redirectOK bool
	client     *shell // nil: the shell with the admin's -u
}

func (tc shellCase) run(t *testing.T, def *shell, n *Node) {
	sh := tc.client
	if sh == nil {
		sh = def
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		q := tc.req(n)
		if q.hosts == nil {
			q.hosts = []string{n.URL("")}
		}
		r, err := sh.do(q)
		if err == nil {
			r.node = n
			if len(r.redirects) > 0 && !tc.redirectOK {
				err = fmt.Errorf("answered with 301 to %v: rqlite answers the shell's requests itself", r.redirects)
			} else {
				err = tc.check(r)
			}
		}
		if err == nil {
			return
		}
		if !tc.poll || time.Now().After(deadline) {
			t.Errorf("%s %s on %s: %v", q.method, q.path, n.nodeID(), err)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// shellReq is one HTTP request as the shell builds it.
type shellReq struct {
	method string
	path   string      // path and query after the default prefix "/"; a whole URL if direct
	header http.Header // besides Authorization, which -u sets
	body   []byte
	hosts  []string // base URLs tried in order on transport errors: -H/-p, then --alternatives
	direct bool     // .sysdump's requests to each node's api_addr: no host list
}

// shellResp is what the shell gets back.
type shellResp struct {
	node      *Node
	host      string // base URL that answered
	status    int
	header    http.Header
	body      []byte
	redirects []string // Location values followed
}

// shell sends requests the way rqlite's shell does: Basic credentials from
// -u on every request, no automatic redirects but its own loop that follows
// 301 (only) to Location's first value, at most 21 times, and a fall-back
// to the next host of --alternatives when a host cannot be reached.
type shell struct {
	hc         *http.Client
	user, pass string
}

func newShell(user, pass string) *shell {
	return &shell{user: user, pass: pass, hc: &http.Client{
		Timeout: 30 * time.Second, // the shell's --http-timeout default
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

func (s *shell) do(q shellReq) (*shellResp, error) {
	if q.direct {
		return s.follow(q, q.path)
	}
	var errs []error
	for _, h := range q.hosts {
		r, err := s.follow(q, h+q.path)
		if err == nil {
			r.host = h
			return r, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("no host available to perform the request: %w", errors.Join(errs...))
}

func (s *shell) follow(q shellReq, u string) (*shellResp, error) {
	out := &shellResp{}
	for {
		var body io.Reader
		if q.body != nil {
			body = bytes.NewReader(q.body)
		}
		req, err := http.NewRequest(q.method, u, body)
		if err != nil {
			return nil, err
		}
		for k, v := range q.header {
			req.Header[k] = v
		}
		if s.user != "" {
			req.SetBasicAuth(s.user, s.pass)
		}
		resp, err := s.hc.Do(req)
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if resp.StatusCode == http.StatusMovedPermanently {
			loc := resp.Header.Values("Location")
			if len(loc) == 0 {
				return nil, errors.New("301 without Location: the shell indexes the first value and would panic")
			}
			out.redirects = append(out.redirects, loc[0])
			if len(out.redirects) > 21 {
				return nil, errors.New("maximum leader redirect limit exceeded")
			}
			u = loc[0]
			continue
		}
		out.status, out.header, out.body = resp.StatusCode, resp.Header, b
		return out, nil
	}
}

// shellSQL is a plain SQL line: POST /db/request (/db/execute with
// .forcewrites on), ?timings with .timer on, body ["<line>"], no
// Content-Type.
func shellSQL(line string, timer, force bool) shellReq {
	path := "/db/request"
	if force {
		path = "/db/execute"
	}
	if timer {
		path += "?" + url.Values{"timings": {""}}.Encode()
	}
	body, _ := json.Marshal([]string{line})
	return shellReq{method: "POST", path: path, body: body}
}

// shellQuery is .tables, .indexes or .schema: GET /db/query with level and
// q, and timings and blob_array when .timer and .blobarray are on.
func shellQuery(level, sql string, timer, blobArray bool) shellReq {
	v := url.Values{"level": {level}, "q": {sql}}
	if timer {
		v.Set("timings", "")
	}
	if blobArray {
		v.Set("blob_array", "")
	}
	return shellReq{method: "GET", path: "/db/query?" + v.Encode()}
}

func shellDumpQuery(tables []string) string {
	v := url.Values{"fmt": {"sql"}}
	if len(tables) > 0 {
		v.Set("tables", strings.Join(tables, ","))
	}
	return v.Encode()
}

// shellRestoreSQL is .restore of a SQL text file: the file with
// "PRAGMA foreign_keys=OFF;" appended as it is (no newline), as the shell
// does when store.sqlite3.fk_constraints is "disabled", sent as text/plain.
func shellRestoreSQL(file string) shellReq {
	return shellReq{method: "POST", path: "/db/load", body: []byte(file + "PRAGMA foreign_keys=OFF;"),
		header: http.Header{"Content-Type": {"text/plain"}}}
}

// shellResult is one element of "results" as the shell decodes it (its
// query, request and restore types together).
type shellResult struct {
	Columns      []string `json:"columns,omitempty"`
	Types        []string `json:"types,omitempty"`
	Values       [][]any  `json:"values,omitempty"`
	LastInsertID int      `json:"last_insert_id,omitempty"`
	RowsAffected int      `json:"rows_affected,omitempty"`
	Time         float64  `json:"time,omitempty"`
	Error        string   `json:"error,omitempty"`
}

// isQuery is the shell's test for printing a result as a table.
func (r *shellResult) isQuery() bool { return r.Columns != nil || r.Types != nil || r.Values != nil }

// shellDecode decodes JSON as the shell does (numbers kept as json.Number).
func shellDecode(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return d.Decode(v)
}

func shellStatus(r *shellResp, codes ...int) error {
	for _, c := range codes {
		if r.status == c {
			return nil
		}
	}
	return fmt.Errorf("status %d, the shell needs %v: %.300s", r.status, codes, r.body)
}

func shellContentType(r *shellResp, want string) error {
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, want) {
		return fmt.Errorf("Content-Type %q, want %s", ct, want)
	}
	return nil
}

// shellJSONObject is cliJSON's reading: 200 (401 is "unauthorized"), a
// JSON object.
func shellJSONObject(r *shellResp) (map[string]any, error) {
	if err := errors.Join(shellStatus(r, 200), shellContentType(r, "application/json")); err != nil {
		return nil, err
	}
	m := map[string]any{}
	if err := shellDecode(r.body, &m); err != nil {
		return nil, fmt.Errorf("the shell cannot decode a JSON object: %v: %.300s", err, r.body)
	}
	return m, nil
}

// shellOneResult is the shell's reading of /db/query, /db/request and
// /db/execute: 200, JSON decoding into its types, no top-level error,
// exactly one result.
func shellOneResult(r *shellResp) (*shellResult, error) {
	if err := errors.Join(shellStatus(r, 200), shellContentType(r, "application/json")); err != nil {
		return nil, err
	}
	var res struct {
		Results []shellResult `json:"results"`
		Error   string        `json:"error,omitempty"`
		Time    float64       `json:"time,omitempty"`
	}
	if err := shellDecode(r.body, &res); err != nil {
		return nil, fmt.Errorf("the shell cannot decode the answer: %v: %s", err, r.body)
	}
	if res.Error != "" {
		return nil, fmt.Errorf("top-level error %q", res.Error)
	}
	if len(res.Results) != 1 {
		return nil, fmt.Errorf("%d results, the shell needs exactly 1: %s", len(res.Results), r.body)
	}
	return &res.Results[0], nil
}

// shellTimeFields: with .timer on the shell prints results[0].time.
func shellTimeFields(r *shellResp) error {
	var m struct {
		Results []map[string]any `json:"results"`
	}
	if err := shellDecode(r.body, &m); err != nil || len(m.Results) != 1 {
		return fmt.Errorf("undecodable: %s", r.body)
	}
	if _, ok := m.Results[0]["time"].(json.Number); !ok {
		return fmt.Errorf("no numeric results[0].time with ?timings (.timer on prints it): %s", r.body)
	}
	return nil
}

// shellQueryHas is .tables, .indexes and .schema: one result, no error, a
// table whose cells include want.
func shellQueryHas(want string) func(*shellResp) error {
	return func(r *shellResp) error {
		res, err := shellOneResult(r)
		if err != nil {
			return err
		}
		if res.Error != "" {
			return fmt.Errorf("result error %q", res.Error)
		}
		if len(res.Columns) != 1 {
			return fmt.Errorf("want one column: %s", r.body)
		}
		for _, row := range res.Values {
			for _, v := range row {
				if s, ok := v.(string); ok && s == want {
					return nil
				}
			}
		}
		return fmt.Errorf("no cell %q: %s", want, r.body)
	}
}

// shellNodesCheck is .nodes: a JSON object of n nodes; the shell prints
// it, .sysdump reads api_addr (a base URL) and .leader the "leader" bool.
func shellNodesCheck(n int) func(*shellResp) error {
	return func(r *shellResp) error {
		m, err := shellJSONObject(r)
		if err != nil {
			return err
		}
		if len(m) != n {
			return fmt.Errorf("%d nodes, want %d: %s", len(m), n, r.body)
		}
		var errs []error
		for id, v := range m {
			e, ok := v.(map[string]any)
			if !ok {
				errs = append(errs, fmt.Errorf("node %s is %T, not an object", id, v))
				continue
			}
			api, _ := e["api_addr"].(string)
			if err := shellAbsURL(api); err != nil {
				errs = append(errs, fmt.Errorf("node %s api_addr: %v", id, err))
			}
			if _, ok := e["addr"].(string); !ok {
				errs = append(errs, fmt.Errorf("node %s: no addr string", id))
			}
			for _, k := range []string{"leader", "voter", "reachable"} {
				if _, ok := e[k].(bool); !ok {
					errs = append(errs, fmt.Errorf("node %s: no %s bool", id, k))
				}
			}
			if e["reachable"] != true {
				errs = append(errs, fmt.Errorf("node %s not reachable: %v", id, e))
			}
		}
		return errors.Join(errs...)
	}
}

// shellAbsURL: the shell requests api_addr and Location values as they are.
func shellAbsURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	return nil
}

// shellRestoreResult is .restore of SQL text: 200, at least one result,
// results[0].error empty (else the shell prints it and stops), ints for
// last_insert_id and rows_affected; then after checks the data.
func shellRestoreResult(after func(*shellResp) error) func(*shellResp) error {
	return func(r *shellResp) error {
		if err := shellStatus(r, 200); err != nil {
			return err
		}
		var res struct {
			Results []shellResult `json:"results"`
		}
		if err := shellDecode(r.body, &res); err != nil {
			return fmt.Errorf("the shell cannot decode the answer: %v: %s", err, r.body)
		}
		if len(res.Results) < 1 {
			return fmt.Errorf("no results (\"unexpected results length\"): %s", r.body)
		}
		if res.Results[0].Error != "" {
			return fmt.Errorf("the shell prints \"Error: %s\"", res.Results[0].Error)
		}
		return after(r)
	}
}

// count returns COUNT(*) FROM from on n, read at level strong. (The Node
// helpers fail the whole test on a transport error; these run in
// subtests.)
func (s *shell) count(n *Node, from string) (int64, error) {
	r, err := s.do(shellReq{method: "GET", hosts: []string{n.URL("")},
		path: "/db/query?" + url.Values{"level": {"strong"}, "q": {"SELECT COUNT(*) FROM " + from}}.Encode()})
	if err != nil {
		return 0, err
	}
	res, err := shellOneResult(r)
	if err != nil {
		return 0, err
	}
	if res.Error != "" || len(res.Values) != 1 || len(res.Values[0]) != 1 {
		return 0, fmt.Errorf("COUNT(*) FROM %s: %s", from, r.body)
	}
	num, ok := res.Values[0][0].(json.Number)
	if !ok {
		return 0, fmt.Errorf("COUNT(*) FROM %s: %s", from, r.body)
	}
	return num.Int64()
}

// countIs polls, up to 10 s, until count(n, from) is want.
func (s *shell) countIs(n *Node, from string, want int64) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := s.count(n, from)
		if err == nil && got == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("COUNT(*) FROM %s on %s: %d (%v), want %d", from, n.nodeID(), got, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// shellLeader returns the node that a majority of c reports as leader and
// that reports itself so, waiting up to 30 s; nil if there is none.
func shellLeader(c Cluster) *Node {
	deadline := time.Now().Add(30 * time.Second)
	for {
		votes := map[string]int{}
		for _, n := range c {
			if id := n.leaderID(); id != "" {
				votes[id]++
			}
		}
		for _, n := range c {
			if votes[n.nodeID()] >= 2 && n.leaderID() == n.nodeID() {
				return n
			}
		}
		if time.Now().After(deadline) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}
