package db

import (
	"regexp"
	"strings"

	"github.com/rqlited/rqlited/command"
)

// breakingPragma matches PRAGMAs that would let a client change how the
// database is journaled, synced or checkpointed underneath replication, or
// cap its size (a full database looks like a full disk, which stops a node).
var breakingPragma = regexp.MustCompile(`(?is)\bpragma\s+(?:["'\x60\[]?\w+["'\x60\]]?\s*\.\s*)?["'\x60\[]?(?:` +
	`(?:journal_mode|wal_autocheckpoint|synchronous|query_only|locking_mode|max_page_count)["'\x60\]]?\s*[=(]` +
	`|wal_checkpoint)`)

// CheckPragmas returns ErrDisallowedPragma if any statement of req contains
// a PRAGMA that must not run on a replicated database.
func CheckPragmas(req *command.Request) error {
	for i := range req.Statements {
		q := req.Statements[i].SQL
		if containsFoldPragma(q) && breakingPragma.MatchString(q) {
			return ErrDisallowedPragma
		}
	}
	return nil
}

// containsFoldPragma is a fast pre-check: most statements never mention
// PRAGMA, and for them the regular expression need not run.
func containsFoldPragma(q string) bool {
	for i := 0; i+6 <= len(q); i++ {
		if c := q[i] | 0x20; c == 'p' && strings.EqualFold(q[i:i+6], "pragma") {
			return true
		}
	}
	return false
}
