package db

import (
	"regexp"

	"github.com/rqlited/rqlited/command"
)

// breakingPragma matches PRAGMAs that would let a client change how the
// database is journaled, synced or checkpointed underneath replication.
var breakingPragma = regexp.MustCompile(`(?is)\bpragma\s+(?:["'\x60\[]?\w+["'\x60\]]?\s*\.\s*)?["'\x60\[]?(?:` +
	`(?:journal_mode|wal_autocheckpoint|synchronous|query_only|locking_mode)["'\x60\]]?\s*[=(]` +
	`|wal_checkpoint)`)

// CheckPragmas returns ErrDisallowedPragma if any statement of req contains
// a PRAGMA that must not run on a replicated database.
func CheckPragmas(req *command.Request) error {
	for i := range req.Statements {
		if breakingPragma.MatchString(req.Statements[i].SQL) {
			return ErrDisallowedPragma
		}
	}
	return nil
}
