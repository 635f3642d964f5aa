package store

import (
	"fmt"
	"os"
	"path/filepath"
)

// snapshotsDir is where raft.FileSnapshotStore keeps snapshots, under the
// data directory.
const snapshotsDir = "snapshots"

// Reap removes every snapshot of this node but the newest, now rather than
// when the next snapshot is taken, and returns how many it removed. The
// second count is rqlite's number of WAL files folded into the snapshot
// store's database: rqlited's snapshots are whole database files, so there
// are none and it is always 0.
//
// Raft needs only the newest snapshot (to restore, or to send a follower
// that is too far behind); the snapshot store keeps the one before it as a
// spare, which this gives up until the next snapshot.
func (s *Store) Reap() (snapshots, wals int, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.open {
		return 0, 0, ErrNotOpen
	}
	metas, err := s.snaps.List()
	if err != nil {
		return 0, 0, fmt.Errorf("list snapshots: %w", err)
	}
	for _, m := range metas[min(1, len(metas)):] {
		dir := filepath.Join(s.cfg.Dir, snapshotsDir, m.ID)
		if err := os.RemoveAll(dir); err != nil {
			return snapshots, 0, fmt.Errorf("remove snapshot %s: %w", m.ID, err)
		}
		snapshots++
		s.logger.Info("reaped snapshot", "id", m.ID, "index", m.Index)
	}
	return snapshots, 0, nil
}
