package http

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/rqlited/rqlited/command"
)

// booter is the part of the store that serves /boot (store.Store.Boot):
// it replaces the database of a single-node cluster with a SQLite file
// read from r, without the Raft log, and returns the bytes it read.
type booter interface {
	Boot(ctx context.Context, r io.Reader) (int64, error)
}

// bootHead is how much of a /boot body is looked at before the store is
// asked: a SQLite file's header.
const bootHead = 100

// handleBoot serves /boot, as rqlite: POST a SQLite file to load it into a
// single-node cluster without the Raft log. 200 with an empty body on
// success; 400 "invalid SQLite data" for a body that is not a whole, intact
// SQLite file (the database is unchanged); 503 with the store's error
// otherwise ("not leader" on a follower, "not single-node" on the leader
// of a larger cluster). The body is streamed to the data directory at any
// size, under the minimum rate of other bodies (bodyReader).
func (s *Service) handleBoot(w http.ResponseWriter, r *http.Request, p *params) {
	b, ok := s.store.(booter)
	if !ok {
		w.Header().Set("Connection", "close")
		http.Error(w, "boot is not supported by this store", http.StatusNotImplemented)
		return
	}
	var body io.Reader = s.newBodyReader(w, r.Body)
	if p.body != nil {
		body = bytes.NewReader(p.body)
	}
	head := make([]byte, bootHead)
	k, err := io.ReadFull(body, head)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		readError(w, err)
		return
	}
	if k < bootHead || string(head[:len(sqliteMagic)]) != sqliteMagic {
		w.Header().Set("Connection", "close")
		http.Error(w, command.ErrNotSQLite.Error(), http.StatusBadRequest)
		return
	}
	s.logger.Info("boot requested", "remote", r.RemoteAddr, "content_length", r.ContentLength)
	src := &capReader{r: io.MultiReader(bytes.NewReader(head), body), max: 1<<63 - 2}
	_, err = b.Boot(r.Context(), src)
	if err == nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	s.logger.Warn("boot failed", "error", err)
	if src.n < bootHead {
		w.Header().Set("Connection", "close") // refused before reading: the rest is unread
	}
	var rerr bodyReadError
	switch {
	case errors.As(err, &rerr):
		readError(w, rerr.err)
	case errors.Is(err, command.ErrNotSQLite):
		http.Error(w, strings.TrimPrefix(err.Error(), "boot: "), http.StatusBadRequest)
	default:
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	}
}
