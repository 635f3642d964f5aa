package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/bits"
	"time"

	"github.com/hashicorp/raft"
)

// An entry is encoded once, when it is appended, and the same bytes go into
// the journal frame and later into bbolt:
//
//	index uvarint | term uvarint | type byte | appended-at varint (Unix ns, 0 if unset)
//	| len(data) uvarint | data | len(extensions) uvarint | extensions
//
// A journal frame holds the entries of one StoreLogs call:
//
//	magic u32 | generation u64 | payload length u32 | CRC-32C u32 | payload
//
// The CRC covers the generation, the length and the payload. The payload is
// a count followed by that many (uvarint length, entry) pairs.

const (
	frameMagic  = 0x726c6a31 // "rlj1"
	frameHeader = 20
)

var (
	crcTable = crc32.MakeTable(crc32.Castagnoli)

	errCorrupt = errors.New("corrupt log entry")
)

// appendEntry appends the encoding of l to b.
func appendEntry(b []byte, l *raft.Log) []byte {
	b = binary.AppendUvarint(b, l.Index)
	b = binary.AppendUvarint(b, l.Term)
	b = append(b, byte(l.Type))
	b = binary.AppendVarint(b, appendedAt(l))
	b = binary.AppendUvarint(b, uint64(len(l.Data)))
	b = append(b, l.Data...)
	b = binary.AppendUvarint(b, uint64(len(l.Extensions)))
	return append(b, l.Extensions...)
}

// entryLen is the exact encoded size of l.
func entryLen(l *raft.Log) int {
	return uvarintLen(l.Index) + uvarintLen(l.Term) + 1 + varintLen(appendedAt(l)) +
		uvarintLen(uint64(len(l.Data))) + len(l.Data) + uvarintLen(uint64(len(l.Extensions))) + len(l.Extensions)
}

func appendedAt(l *raft.Log) int64 {
	if l.AppendedAt.IsZero() {
		return 0
	}
	return l.AppendedAt.UnixNano()
}

func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

func varintLen(v int64) int { return uvarintLen(uint64(v<<1) ^ uint64(v>>63)) }

// encodeEntry returns the encoding of l in a buffer of exactly its size.
func encodeEntry(l *raft.Log) []byte {
	return appendEntry(make([]byte, 0, entryLen(l)), l)
}

// decodeEntry fills l from b. Data and Extensions share b's memory, so b
// must never change afterwards.
func decodeEntry(b []byte, l *raft.Log) error {
	var n int
	next := func() uint64 {
		if n < 0 {
			return 0
		}
		v, k := binary.Uvarint(b[n:])
		if k <= 0 {
			n = -1
			return 0
		}
		n += k
		return v
	}
	bytesOf := func() []byte {
		size := next()
		if n < 0 || size > uint64(len(b)-n) {
			n = -1
			return nil
		}
		v := b[n : n+int(size) : n+int(size)]
		n += int(size)
		if size == 0 {
			return nil
		}
		return v
	}
	l.Index = next()
	l.Term = next()
	if n < 0 || n >= len(b) {
		return errCorrupt
	}
	l.Type = raft.LogType(b[n])
	n++
	at, k := binary.Varint(b[n:])
	if k <= 0 {
		return errCorrupt
	}
	n += k
	l.AppendedAt = time.Time{}
	if at != 0 {
		l.AppendedAt = time.Unix(0, at)
	}
	l.Data = bytesOf()
	l.Extensions = bytesOf()
	if n != len(b) {
		return errCorrupt
	}
	return nil
}

// frameSize is the exact size of the journal frame holding logs.
func frameSize(logs []*raft.Log) int {
	size := frameHeader + uvarintLen(uint64(len(logs)))
	for _, l := range logs {
		n := entryLen(l)
		size += uvarintLen(uint64(n)) + n
	}
	return size
}

// encodeFrame returns a journal frame of generation gen holding logs, and
// the encoded entries, which are slices of the frame. The frame is one
// allocation of exactly its size, and each entry's data is copied once,
// into it.
func encodeFrame(gen uint64, logs []*raft.Log) ([]byte, [][]byte) {
	b := make([]byte, frameHeader, frameSize(logs))
	b = binary.AppendUvarint(b, uint64(len(logs)))
	entries := make([][]byte, len(logs))
	for i, l := range logs {
		b = binary.AppendUvarint(b, uint64(entryLen(l)))
		start := len(b)
		b = appendEntry(b, l)
		entries[i] = b[start:len(b):len(b)]
	}
	binary.LittleEndian.PutUint32(b[0:], frameMagic)
	binary.LittleEndian.PutUint32(b[12:], uint32(len(b)-frameHeader))
	setFrameGen(b, gen)
	return b, entries
}

// setFrameGen stamps an encoded frame with generation gen and its CRC.
func setFrameGen(frame []byte, gen uint64) {
	binary.LittleEndian.PutUint64(frame[4:], gen)
	crc := crc32.Update(0, crcTable, frame[4:16])
	crc = crc32.Update(crc, crcTable, frame[frameHeader:])
	binary.LittleEndian.PutUint32(frame[16:], crc)
}

// frameAt reads the frame header at the start of b: its generation and
// total length. ok is false if b does not start with a whole, intact frame.
func frameAt(b []byte) (gen uint64, size int, ok bool) {
	if len(b) < frameHeader || binary.LittleEndian.Uint32(b) != frameMagic {
		return 0, 0, false
	}
	gen = binary.LittleEndian.Uint64(b[4:])
	n := binary.LittleEndian.Uint32(b[12:])
	if uint64(n) > uint64(len(b)-frameHeader) {
		return 0, 0, false
	}
	crc := crc32.Update(0, crcTable, b[4:16])
	crc = crc32.Update(crc, crcTable, b[frameHeader:frameHeader+int(n)])
	if crc != binary.LittleEndian.Uint32(b[16:]) {
		return 0, 0, false
	}
	return gen, frameHeader + int(n), true
}

// frameEntries splits the payload of an intact frame into its entries.
func frameEntries(frame []byte) ([][]byte, error) {
	p := frame[frameHeader:]
	count, k := binary.Uvarint(p)
	if k <= 0 || count > uint64(len(p)) {
		return nil, fmt.Errorf("%w: bad frame entry count", errCorrupt)
	}
	p = p[k:]
	entries := make([][]byte, 0, count)
	for range count {
		size, k := binary.Uvarint(p)
		if k <= 0 || size > uint64(len(p)-k) {
			return nil, fmt.Errorf("%w: bad frame entry length", errCorrupt)
		}
		entries = append(entries, p[k:k+int(size):k+int(size)])
		p = p[k+int(size):]
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("%w: %d stray bytes after the frame's entries", errCorrupt, len(p))
	}
	return entries, nil
}

// entryIndex reads the index at the start of an encoded entry.
func entryIndex(e []byte) (uint64, error) {
	i, k := binary.Uvarint(e)
	if k <= 0 {
		return 0, errCorrupt
	}
	return i, nil
}

func uint64Key(i uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), i)
}
