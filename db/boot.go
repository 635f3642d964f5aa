package db

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// headerSize is the size of a SQLite file's header.
const headerSize = 100

// CheckFile verifies that the file at path is a whole, intact SQLite
// database before it replaces anything: the header, a size that agrees
// with the header's page size and page count, and SQLite's own
// PRAGMA quick_check. A file that fails has errors that wrap ErrNotSQLite.
// It reads the file with SQLite's page cache only, so its memory does not
// grow with the file.
func CheckFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	var hdr [headerSize]byte
	_, err = io.ReadFull(f, hdr[:])
	f.Close()
	if err != nil || !IsSQLiteFile(hdr[:]) {
		return ErrNotSQLite
	}
	if err := checkHeaderSize(hdr[:], st.Size()); err != nil {
		return err
	}
	return checkSQLiteFile(path)
}

// checkHeaderSize checks a file's size against its header: a whole number
// of pages of the header's page size and, when the header's page count is
// valid (its version-valid-for number matches the change counter, as
// SQLite requires), at least that many pages. A file cut short in transit
// fails here even where quick_check would not read the missing pages.
func checkHeaderSize(hdr []byte, size int64) error {
	pageSize := int64(binary.BigEndian.Uint16(hdr[16:18]))
	if pageSize == 1 {
		pageSize = 65536
	}
	if pageSize < 512 || pageSize&(pageSize-1) != 0 {
		return fmt.Errorf("%w: page size %d in the header", ErrNotSQLite, pageSize)
	}
	if size%pageSize != 0 {
		return fmt.Errorf("%w: file size %d is not a whole number of %d-byte pages (truncated?)", ErrNotSQLite, size, pageSize)
	}
	changeCounter := binary.BigEndian.Uint32(hdr[24:28])
	pages := int64(binary.BigEndian.Uint32(hdr[28:32]))
	validFor := binary.BigEndian.Uint32(hdr[92:96])
	if validFor == changeCounter && pages > 0 && size < pages*pageSize {
		return fmt.Errorf("%w: file has %d bytes, its header says %d pages of %d bytes (truncated?)",
			ErrNotSQLite, size, pages, pageSize)
	}
	return nil
}
