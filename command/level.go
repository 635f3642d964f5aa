package command

import "strings"

// Level is a read consistency level.
type Level uint8

// Read consistency levels, as in rqlite. The zero value is Weak.
const (
	// Weak reads locally on the leader; followers forward to it.
	Weak Level = iota
	// None reads locally on any node, with no leader check.
	None
	// Strong sends the read through the Raft log.
	Strong
	// Linearizable confirms leadership with a quorum round (read index) and
	// waits for the local state machine to catch up before reading.
	Linearizable
	// Auto is Weak on voters and None on read-only nodes.
	Auto
)

// ParseLevel maps a query-string value to a Level. As in rqlite, an absent or
// unknown value means Weak; matching is case-insensitive.
func ParseLevel(s string) Level {
	switch strings.ToLower(s) {
	case "none":
		return None
	case "strong":
		return Strong
	case "linearizable":
		return Linearizable
	case "auto":
		return Auto
	default:
		return Weak
	}
}

// String returns the query-string name of the level.
func (l Level) String() string {
	switch l {
	case None:
		return "none"
	case Strong:
		return "strong"
	case Linearizable:
		return "linearizable"
	case Auto:
		return "auto"
	default:
		return "weak"
	}
}
