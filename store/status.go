package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/raft"

	"github.com/rqlited/rqlited/command"
	"github.com/rqlited/rqlited/db"
)

// statsTimeout bounds the SQLite queries the store section runs.
const statsTimeout = 5 * time.Second

// Stats returns the store's section of /status, with rqlite's keys,
// nesting and JSON types (rqlite's store.Stats), plus a few of ours. A
// store that is not open reports only {"open": false}, as rqlite's does.
func (s *Store) Stats() (map[string]any, error) {
	r, err := s.raftNode()
	if errors.Is(err, ErrNotOpen) {
		return map[string]any{"open": false}, nil
	}
	if err != nil {
		return nil, err
	}
	d, err := s.database()
	if err != nil {
		return map[string]any{"open": false}, nil
	}
	m, err := s.members()
	if err != nil {
		return nil, fmt.Errorf("store stats: %w", err)
	}
	st := s.configStats()
	for k, v := range s.stateStats(r, m) {
		st[k] = v
	}
	st["raft"] = s.raftStats(r, m)
	st["sqlite3"] = sqliteStats(d)
	st["snapshot_store"] = s.snapshotStoreStats()
	dirSize := dirBytes(s.cfg.Dir)
	st["dir_size"], st["dir_size_friendly"] = dirSize, friendlyBytes(dirSize)
	st["raft_db_size"] = fileBytes(filepath.Join(s.cfg.Dir, raftDBName))
	return st, nil
}

// configStats is the part of the store section that comes from the
// configuration.
func (s *Store) configStats() map[string]any {
	return map[string]any{
		"open":                   true,
		"node_id":                s.cfg.NodeID,
		"addr":                   s.cfg.Addr,
		"dir":                    s.cfg.Dir,
		"apply_timeout":          s.cfg.ApplyTimeout.String(),
		"heartbeat_timeout":      s.cfg.HeartbeatTimeout.String(),
		"election_timeout":       s.cfg.ElectionTimeout.String(),
		"commit_timeout":         s.cfg.CommitTimeout.String(),
		"snapshot_threshold":     s.cfg.SnapshotThreshold,
		"snapshot_interval":      s.cfg.SnapshotInterval.String(),
		"reap_timeout":           s.cfg.ReapTimeout.String(),
		"reap_read_only_timeout": s.cfg.ReapReadOnlyTimeout.String(),
		"trailing_logs":          s.cfg.TrailingLogs,
		// rqlited has no bbolt freelist option, no request compression,
		// no CDC and no snapshot lock: these report what rqlite reports
		// with those features off.
		"no_freelist_sync":  false,
		"request_marshaler": map[string]any{"compression_size": 0, "compression_batch": 0, "force_compression": false},
		"cdc":               map[string]any{"enabled": false, "registered": false},
		"snapshot_cas":      map[string]any{"owner": nil},
		"db_conf":           map[string]any{"fk_constraints": s.cfg.ForeignKeys},
	}
}

// stateStats is the part of the store section that describes the node's
// state: leader, applied indexes, members.
func (s *Store) stateStats(r *raft.Raft, m membership) map[string]any {
	leaderID, leaderAddr := s.Leader()
	applied, updated := s.fsm.appliedIndex()
	var last raft.Log
	if applied > 0 {
		// The applied entry gives the term and the leader's append time;
		// a compacted entry leaves them at zero.
		_ = s.boltLog.GetLog(applied, &last)
	}
	servers := m.list()
	nodes := make([]map[string]any, len(servers))
	for i, srv := range servers {
		suffrage := "Voter"
		if !srv.Voter {
			suffrage = "Nonvoter"
		}
		nodes[i] = map[string]any{"id": srv.ID, "addr": srv.Addr, "suffrage": suffrage}
	}
	return map[string]any{
		"leader":                  map[string]string{"node_id": leaderID, "addr": leaderAddr},
		"ready":                   s.Ready(),
		"fsm_index":               applied,
		"fsm_term":                last.Term,
		"fsm_update_time":         updated,
		"db_applied_index":        applied,
		"leader_appended_at_time": last.AppendedAt,
		// rqlited has no strong-read term: strong reads go through the log.
		"strong_read_term": uint64(0),
		"observer": map[string]int64{
			"observed": varValue(storeVars, "leader_changes_observed") + varValue(storeVars, "failed_heartbeat_observed"),
			"dropped":  0,
		},
		"nodes":              nodes,
		"follower_reads":     s.followerReadStats(),
		"read_confirmations": s.readConfirmStats(),
	}
}

// raftStats is store.raft: hashicorp/raft's stats with numbers as numbers,
// and rqlite's additions.
func (s *Store) raftStats(r *raft.Raft, m membership) map[string]any {
	st := map[string]any{}
	for k, v := range r.Stats() {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			st[k] = n
		} else {
			st[k] = v
		}
	}
	applied, _ := s.fsm.appliedIndex()
	st["fsm_index"] = applied
	logSize := fileBytes(filepath.Join(s.cfg.Dir, raftDBName))
	st["log_size"], st["log_size_friendly"] = logSize, friendlyBytes(logSize)
	st["voter"] = m.isVoter(s.cfg.NodeID)
	first, _ := s.boltLog.FirstIndex()
	last, _ := s.boltLog.LastIndex()
	st["bolt"] = map[string]any{"first_index": first, "last_index": last}
	st["transport"] = map[string]any{
		"last_append_entries_time": r.LastContact(),
		"command_commit_index":     applied,
		"leader_commit_index":      r.CommitIndex(),
		"compress_snap":            false,
	}
	st["config"] = s.raftConfigStats()
	return st
}

// raftConfigStats mirrors rqlite's RaftConfigAsJSON: durations in
// nanoseconds, under raft.Config's field names.
func (s *Store) raftConfigStats() map[string]any {
	lease := s.cfg.LeaderLeaseTimeout
	if lease == 0 {
		lease = raft.DefaultConfig().LeaderLeaseTimeout
	}
	return map[string]any{
		"LocalID":                  s.cfg.NodeID,
		"HeartbeatTimeout":         s.cfg.HeartbeatTimeout.Nanoseconds(),
		"ElectionTimeout":          s.cfg.ElectionTimeout.Nanoseconds(),
		"LeaderLeaseTimeout":       min(lease, s.cfg.HeartbeatTimeout).Nanoseconds(),
		"CommitTimeout":            s.cfg.CommitTimeout.Nanoseconds(),
		"SnapshotInterval":         s.cfg.SnapshotInterval.Nanoseconds(),
		"SnapshotThreshold":        s.cfg.SnapshotThreshold,
		"MaxAppendEntries":         256,
		"ShutdownOnRemove":         false,
		"LogLevel":                 s.cfg.RaftLogLevel,
		"NoSnapshotRestoreOnStart": false,
	}
}

// snapshotStoreStats is store.snapshot_store: the snapshot IDs, oldest
// first, and the data file of the newest one.
func (s *Store) snapshotStoreStats() map[string]any {
	dir := filepath.Join(s.cfg.Dir, "snapshots")
	ids := []string{}
	dbPath := ""
	if metas, err := s.snaps.List(); err == nil {
		// List returns newest first.
		for i := len(metas) - 1; i >= 0; i-- {
			ids = append(ids, metas[i].ID)
		}
		if len(metas) > 0 {
			dbPath = filepath.Join(dir, metas[0].ID, "state.bin")
		}
	}
	return map[string]any{"dir": dir, "snapshots": ids, "db_path": dbPath}
}

// sqliteStats is store.sqlite3, with rqlite's keys. The read-only
// connection's pragmas are read from SQLite; the writer's are the settings
// it is opened with (it belongs to the log and is not borrowed here).
func sqliteStats(d *db.DB) map[string]any {
	ctx, cancel := context.WithTimeout(context.Background(), statsTimeout)
	defer cancel()
	dbSize := fileBytes(d.Path())
	walSize := fileBytes(d.Path() + "-wal")
	mem := pragmaInts(ctx, d, "max_page_count", "page_count", "page_size", "hard_heap_limit",
		"soft_heap_limit", "cache_size", "freelist_count")
	logical := mem["page_count"] * mem["page_size"]
	ro := pragmaStrings(ctx, d, "synchronous", "journal_mode", "foreign_keys", "wal_autocheckpoint", "busy_timeout")
	fk := "0"
	if ro["foreign_keys"] == "1" {
		fk = "1"
	}
	st := map[string]any{
		"version":          db.Version(),
		"path":             d.Path(),
		"size":             dbSize,
		"wal_size":         walSize,
		"db_size":          logical,
		"db_size_friendly": friendlyBytes(logical),
		"extensions":       []string{},
		"compile_options":  compileOptions(ctx, d),
		"mem_stats":        mem,
		"rw_dsn":           "file:" + d.Path() + "?_journal=WAL&_sync=0&_busy_timeout=5000",
		"ro_dsn":           "file:" + d.Path() + "?mode=ro&_query_only=1&_busy_timeout=5000",
		"conn_pool_stats":  map[string]any{"rw": map[string]any{}, "ro": map[string]any{}},
		"pragmas": map[string]any{
			"rw": map[string]string{"synchronous": "0", "journal_mode": "wal", "foreign_keys": fk,
				"wal_autocheckpoint": "1000", "busy_timeout": "5000"},
			"ro": ro,
		},
		"transaction": map[string]bool{"rw": false, "ro": false},
		// Ours: the older names of the sizes.
		"fk_constraint": fk == "1",
		// What rqlite's shell reads before .restore and .boot to decide
		// the PRAGMA foreign_keys it appends ("enabled"/"disabled").
		"fk_constraints": map[bool]string{true: "enabled", false: "disabled"}[fk == "1"],
	}
	st["last_modified"] = lastModified(d.Path(), d.Path()+"-wal")
	return st
}

// pragmaInts reads integer PRAGMAs on a read-only connection; one that
// fails reads as 0.
func pragmaInts(ctx context.Context, d *db.DB, names ...string) map[string]int64 {
	out := make(map[string]int64, len(names))
	for i, res := range runPragmas(ctx, d, names) {
		out[names[i]] = 0
		if v, ok := firstCell(res).(int64); ok {
			out[names[i]] = v
		}
	}
	return out
}

// pragmaStrings reads PRAGMAs as text, as rqlite reports them.
func pragmaStrings(ctx context.Context, d *db.DB, names ...string) map[string]string {
	out := make(map[string]string, len(names))
	for i, res := range runPragmas(ctx, d, names) {
		switch v := firstCell(res).(type) {
		case int64:
			out[names[i]] = strconv.FormatInt(v, 10)
		case string:
			out[names[i]] = v
		default:
			out[names[i]] = ""
		}
	}
	return out
}

// runPragmas runs "PRAGMA name" for each name, returning one result per
// name (empty results if the request failed).
func runPragmas(ctx context.Context, d *db.DB, names []string) []command.Result {
	req := &command.Request{Statements: make([]command.Statement, len(names))}
	for i, n := range names {
		req.Statements[i].SQL = "PRAGMA " + n
	}
	res, err := d.Query(ctx, db.ModeQuery, req)
	if err != nil || len(res) != len(names) {
		return make([]command.Result, len(names))
	}
	return res
}

func firstCell(r command.Result) any {
	if r.Error != "" || len(r.Values) == 0 || len(r.Values[0]) == 0 {
		return nil
	}
	return r.Values[0][0]
}

func compileOptions(ctx context.Context, d *db.DB) []string {
	opts := []string{}
	res := runPragmas(ctx, d, []string{"compile_options"})
	for _, row := range res[0].Values {
		if len(row) > 0 {
			if s, ok := row[0].(string); ok {
				opts = append(opts, s)
			}
		}
	}
	return opts
}

// lastModified is the latest modification time of the files that exist.
func lastModified(paths ...string) time.Time {
	var t time.Time
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && fi.ModTime().After(t) {
			t = fi.ModTime()
		}
	}
	return t
}

func fileBytes(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// dirBytes is the total size of the regular files under dir.
func dirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil {
			return nil //nolint:nilerr // a file that vanished while walking counts as 0
		}
		if e.Type().IsRegular() {
			if fi, err := e.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// friendlyBytes formats n with SI units, as rqlite's *_friendly fields do
// ("832 B", "1.5 kB", "27 MB").
func friendlyBytes(n int64) string {
	if n < 10 {
		return fmt.Sprintf("%d B", n)
	}
	units := []string{"B", "kB", "MB", "GB", "TB", "PB", "EB"}
	e := math.Floor(math.Log(float64(n)) / math.Log(1000))
	e = min(e, float64(len(units)-1))
	v := math.Floor(float64(n)/math.Pow(1000, e)*10+0.5) / 10
	if v < 10 {
		return fmt.Sprintf("%.1f %s", v, units[int(e)])
	}
	return fmt.Sprintf("%.0f %s", v, units[int(e)])
}
