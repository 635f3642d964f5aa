package db

import (
	"errors"
	"fmt"
	"slices"
)

// settingPragmas are the writer connection's settings that change what
// later statements do (which constraints hold, which triggers fire, which
// rows an unordered query gives first). A client may set them, as in
// rqlite; they live on the connection, not in the database file, so a node
// that restores a snapshot would lose them and then apply later entries
// differently. The snapshot carries them (Settings, ApplySettings).
var settingPragmas = []string{
	"foreign_keys", "recursive_triggers", "reverse_unordered_selects", "ignore_check_constraints",
	"legacy_alter_table", "automatic_index", "trusted_schema", "analysis_limit",
}

// Setting is one connection setting and its value.
type Setting struct {
	Name  string
	Value int64
}

// Settings returns the writer's settings that differ from those of a
// freshly opened writer. Call it where no write is in progress (in the FSM,
// next to BeginSnapshot).
func (d *DB) Settings() ([]Setting, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return nil, ErrClosed
	}
	now, err := readSettings(d.writer)
	if err != nil {
		return nil, err
	}
	var diff []Setting
	for i, s := range now {
		if s != d.fresh[i] {
			diff = append(diff, s)
		}
	}
	return diff, nil
}

// ApplySettings sets the writer's settings (after a snapshot is restored).
// Unknown names are an error: the snapshot comes from a newer node.
func (d *DB) ApplySettings(ss []Setting) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return ErrClosed
	}
	for _, s := range ss {
		if !slices.Contains(settingPragmas, s.Name) {
			return fmt.Errorf("unknown connection setting %q", s.Name)
		}
		if err := d.execRaw(fmt.Sprintf("PRAGMA %s=%d", s.Name, s.Value)); err != nil {
			return fmt.Errorf("set %s: %w", s.Name, err)
		}
	}
	return nil
}

func readSettings(w *conn) ([]Setting, error) {
	out := make([]Setting, 0, len(settingPragmas))
	err := w.internal(func() error {
		for _, name := range settingPragmas {
			var v int64
			found := false
			if err := eachRow(w, "PRAGMA "+name, func(row []any) {
				v, found = row[0].(int64)
			}); err != nil {
				return fmt.Errorf("read PRAGMA %s: %w", name, err)
			}
			if !found {
				return errors.New("read PRAGMA " + name + ": no integer value")
			}
			out = append(out, Setting{Name: name, Value: v})
		}
		return nil
	})
	return out, err
}
