package raftlog

import (
	"testing"

	"github.com/hashicorp/raft"
)

// FuzzReplay feeds arbitrary journal contents to the replay path: it must
// never panic, and every frame it accepts must decode or be refused with
// an error.
func FuzzReplay(f *testing.F) {
	frame, _ := encodeFrame(7, []*raft.Log{entry(1, 10), entry(2, 0), {Index: 3, Extensions: []byte("e")}})
	f.Add(frame)
	f.Add(append(append([]byte(nil), frame...), frame[:30]...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		// The same bytes as one entry (as read from bbolt) and as a
		// payload whose CRC passed.
		var l raft.Log
		decodeEntry(data, &l)
		frameEntries(append(make([]byte, frameHeader), data...))
		_, frames := scanJournal(data)
		for _, fr := range frames {
			entries, err := frameEntries(fr)
			if err != nil {
				continue
			}
			for _, e := range entries {
				var l raft.Log
				if decodeEntry(e, &l) == nil {
					if _, err := entryIndex(e); err != nil {
						t.Fatalf("decoded entry without an index: %v", err)
					}
				}
			}
		}
	})
}
