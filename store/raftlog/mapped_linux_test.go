package raftlog

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
)

// mappedKB is how much of path is resident in this process's maps, from
// /proc/self/smaps.
func mappedKB(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer f.Close()
	var kb int64
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if strings.Contains(fields[0], "-") && len(fields) >= 5 { // a mapping's first line
			in = len(fields) >= 6 && fields[len(fields)-1] == path
			continue
		}
		if in && fields[0] == "Rss:" {
			n, _ := strconv.ParseInt(fields[1], 10, 64)
			kb += n
		}
	}
	return kb
}

// TestMappedPagesReleased: compacting large entries away leaves few of
// raft.db's pages in the process's resident set (bbolt reads through a
// map, and without the release every page the compaction touched stayed
// resident: 48 MB here), and the entries left read back intact.
func TestMappedPagesReleased(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.JournalSize, cfg.FlushBytes = 4<<20, 1<<20
	s := mustOpen(t, cfg)
	defer s.Close()
	const n, size = 1200, 40 << 10 // 48 MB of entries
	for i := uint64(1); i <= n; i += 8 {
		var batch []*raft.Log
		for j := i; j < i+8 && j <= n; j++ {
			batch = append(batch, entry(j, size))
		}
		if err := s.StoreLogs(batch); err != nil {
			t.Fatal(err)
		}
		if i%200 == 1 {
			if err := s.flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.flush(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, BoltName)
	checkLog(t, s, entry(n/2, size)) // read through the map again
	if err := s.DeleteRange(1, n-100); err != nil {
		t.Fatal(err)
	}
	if kb := mappedKB(t, path); kb > 8<<10 {
		t.Fatalf("after compacting 1100 entries, %d kB of raft.db is resident (want under 8 MB)", kb)
	}
	checkBounds(t, s, n-99, n)
	for i := uint64(n - 99); i <= n; i += 33 {
		checkLog(t, s, entry(i, size))
	}
}

// TestBboltMapStillInUpdate pins what releaseMappedInUpdate relies on: a
// write transaction moves bbolt's map only when it commits, never while
// its callback puts and deletes (checked with a map that must grow).
func TestBboltMapStillInUpdate(t *testing.T) {
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "t.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	before := db.Info().Data
	err = db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		for i := 0; i < 256; i++ { // 16 MB, far past the first map
			if err := b.Put(uint64Key(uint64(i)), make([]byte, 64<<10)); err != nil {
				return err
			}
			if db.Info().Data != before {
				t.Errorf("bbolt moved its map during Put %d, before the commit", i)
				return nil
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if db.Info().Data == before {
		t.Fatal("the commit did not move the map: the test no longer makes bbolt grow it")
	}
}
