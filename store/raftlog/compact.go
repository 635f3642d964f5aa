package raftlog

import (
	"encoding/binary"
	"fmt"

	"go.etcd.io/bbolt"
)

// Deleting entries, and keeping bbolt's map of raft.db out of the
// process's resident set.

// DeleteRange implements raft.LogStore.
//
// Compaction after a snapshot (the oldest entries, all already in bbolt)
// runs in transactions of deleteChunk entries while appends go on: one
// transaction for thousands of large entries mapped a page of each into
// the process at its commit (bbolt reads each freed page's header), tens
// of MB at 1000-row batches. Any other range (a follower's conflicting
// suffix, everything before an installed snapshot) is deleted in one
// transaction with appends stopped.
func (s *Store) DeleteRange(min, max uint64) error {
	if s.flushedPrefix(min, max) {
		return s.deletePrefix(min, max)
	}
	return s.rewrite(func(b *bbolt.Bucket) error {
		_, err := s.deleteKeys(b, min, max, 0)
		return err
	}, nil)
}

// deleteChunk is how many entries one compaction transaction deletes.
const deleteChunk = 256

// flushedPrefix reports whether min..max are the oldest entries, with
// entries after them, and none of them is still in a journal.
func (s *Store) flushedPrefix(min, max uint64) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed || s.first == 0 || min > s.first || max >= s.last {
		return false
	}
	for idx := range s.pending {
		if idx <= max {
			return false
		}
	}
	return true
}

// deletePrefix deletes the flushed entries min..max, deleteChunk at a
// time, and moves the first index along after each transaction. Appends
// go on meanwhile (they only add entries after max).
func (s *Store) deletePrefix(min, max uint64) error {
	for {
		n, err := s.deletePrefixChunk(min, max)
		if err != nil || n < deleteChunk {
			return err
		}
	}
}

// deletePrefixChunk deletes up to deleteChunk of the entries min..max in
// one transaction and returns how many it deleted. It holds flushMu only
// for that transaction, so a flush (or an append waiting for one) gets in
// between chunks; what they add lies after max.
func (s *Store) deletePrefixChunk(min, max uint64) (int, error) {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	var n int
	var next uint64 // the first entry left in bbolt, 0 if none
	err := s.bolt.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketLog)
		var err error
		if n, err = s.deleteKeys(b, min, max, deleteChunk); err != nil {
			return err
		}
		if k, _ := b.Cursor().First(); k != nil {
			next = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("delete Raft log entries %d-%d from %s: %w", min, max, BoltName, err)
	}
	s.releaseMapped()
	s.mu.Lock()
	defer s.mu.Unlock()
	if next != 0 {
		s.first = next
		return n, nil
	}
	s.first = 0 // every entry left is in a journal
	for idx := range s.pending {
		if s.first == 0 || idx < s.first {
			s.first = idx
		}
	}
	return n, nil
}

// deleteKeys deletes the keys of entries min..max in b, at most limit of
// them (0: all), and returns how many it deleted. Reading each key maps
// the page it sits on (with large entries, one page per entry): the pages
// are released as the walk goes.
func (s *Store) deleteKeys(b *bbolt.Bucket, min, max uint64, limit int) (int, error) {
	// Collect first: a bbolt cursor that deletes as it goes skips keys.
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(uint64Key(min)); k != nil && binary.BigEndian.Uint64(k) <= max; k, _ = c.Next() {
		keys = append(keys, append([]byte(nil), k...))
		if len(keys)%releaseEvery == 0 {
			s.releaseMappedInUpdate(b.Tx())
		}
		if limit > 0 && len(keys) == limit {
			break
		}
	}
	for i, k := range keys {
		if err := b.Delete(k); err != nil {
			return i, err
		}
		if i%releaseEvery == releaseEvery-1 {
			s.releaseMappedInUpdate(b.Tx())
		}
	}
	return len(keys), nil
}

// releaseMapped drops bbolt's map of raft.db from this process's resident
// set. bbolt reads the file through that map, and every page a flush
// touches (the last leaf it rewrites, pages it reuses) stays resident: at
// large entries that grew the process by tens of MB of a log that is only
// read again for a follower that falls behind. The pages stay in the page
// cache. Done in a read transaction, which holds bbolt's map lock, so the
// map cannot move while it is dropped.
func (s *Store) releaseMapped() {
	err := s.bolt.View(func(tx *bbolt.Tx) error {
		return dropMapped(s.bolt.Info().Data, tx.Size())
	})
	s.warnDrop(err)
}

// releaseEvery is how many keys DeleteRange walks between releases of the
// mapped pages. The kernel maps up to 64 KiB around each page a read
// touches, so at large entries each key costs about that much until the
// next release; one release (a madvise call) costs microseconds.
const releaseEvery = 16

// releaseMappedInUpdate is releaseMapped from inside the write transaction
// tx, between its reads: only a write transaction moves bbolt's map (when
// it grows the file, at commit), and this one is busy here, so the map
// stays where it is. Pages the transaction still refers to are mapped
// again when it reads them.
func (s *Store) releaseMappedInUpdate(tx *bbolt.Tx) {
	s.warnDrop(dropMapped(s.bolt.Info().Data, tx.Size()))
}

func (s *Store) warnDrop(err error) {
	if err != nil && !s.dropWarned {
		s.dropWarned = true
		s.cfg.Logger.Warn("cannot release the mapped pages of the Raft log (memory use stays higher; nothing else changes)", "err", err)
	}
}
