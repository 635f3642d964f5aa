package store

import (
	"context"

	"github.com/rqlited/rqlited/command"
)

// ColumnTables returns, for each statement of req, the table each of its
// first ncols[i] result columns comes from (see db.DB.ColumnTables), for
// rqlite's ?qualify_columns. It asks the local database, whatever the
// level the statements were served at: only the schema matters.
func (s *Store) ColumnTables(ctx context.Context, req *command.Request, ncols []int) ([][]string, error) {
	d, err := s.database()
	if err != nil {
		return nil, err
	}
	return d.ColumnTables(ctx, req, ncols)
}
