package store

import (
	"os"
	"path/filepath"
	"strconv"

	"github.com/rqlited/rqlited/db"
)

// Stats returns the store's section of /status. Keys follow rqlite's.
func (s *Store) Stats() (map[string]any, error) {
	r, err := s.raftNode()
	if err != nil {
		return nil, err
	}
	d, err := s.database()
	if err != nil {
		return nil, err
	}
	leaderID, leaderAddr := s.Leader()
	raftStats := map[string]any{}
	for k, v := range r.Stats() {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			raftStats[k] = n
		} else {
			raftStats[k] = v
		}
	}
	applied, _ := s.fsm.appliedIndex()
	raftStats["fsm_index"] = applied
	servers, _ := s.Servers()
	dbSize, _ := d.Size()
	walSize := int64(0)
	if fi, err := os.Stat(d.Path() + "-wal"); err == nil {
		walSize = fi.Size()
	}
	raftSize := int64(0)
	if fi, err := os.Stat(filepath.Join(s.cfg.Dir, raftDBName)); err == nil {
		raftSize = fi.Size()
	}
	snaps, _ := s.snaps.List()
	return map[string]any{
		"node_id": s.cfg.NodeID,
		"addr":    s.cfg.Addr,
		"leader": map[string]any{
			"node_id": leaderID,
			"addr":    leaderAddr,
		},
		"ready":              leaderAddr != "",
		"nodes":              len(servers),
		"dir":                s.cfg.Dir,
		"dir_size":           dbSize + walSize + raftSize,
		"raft":               raftStats,
		"apply_timeout":      s.cfg.ApplyTimeout.String(),
		"heartbeat_timeout":  s.cfg.HeartbeatTimeout.String(),
		"election_timeout":   s.cfg.ElectionTimeout.String(),
		"snapshot_threshold": s.cfg.SnapshotThreshold,
		"snapshot_interval":  s.cfg.SnapshotInterval.String(),
		"trailing_logs":      s.cfg.TrailingLogs,
		"snapshot_store": map[string]any{
			"dir":       filepath.Join(s.cfg.Dir, "snapshots"),
			"snapshots": len(snaps),
		},
		"sqlite3": map[string]any{
			"version":       db.Version(),
			"path":          d.Path(),
			"db_size":       dbSize,
			"wal_size":      walSize,
			"fk_constraint": s.cfg.ForeignKeys,
		},
		"raft_db_size":       raftSize,
		"follower_reads":     s.followerReadStats(),
		"read_confirmations": s.readConfirmStats(),
	}, nil
}
