package store

// Manual recovery of a cluster that lost its quorum for good, or whose
// nodes all came back at new addresses: the operator stops the nodes,
// writes the same peers.json (the configuration the cluster is to have)
// into the data directory of each node that is to stay, and starts them.
// Open rewrites the node's Raft configuration from the file with
// hashicorp/raft's RecoverCluster before Raft starts, then renames the
// file to peers.info so that it is applied once.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hashicorp/raft"

	"github.com/rqlited/rqlited/db"
)

// Names of the recovery files. rqlite documents <data>/raft/peers.json;
// rqlited keeps its Raft files directly in the data directory, so
// <data>/peers.json is accepted too (never both at once).
const (
	peersDirName  = "raft"
	peersJSONName = "peers.json"
	peersInfoName = "peers.info"
)

// ErrPeersFile is wrapped by every refusal of a peers.json file. A refused
// file is left where it is, and nothing in the data directory is changed.
var ErrPeersFile = errors.New("cannot recover from peers file")

// Reasons a peers.json file is refused (wrapped, with details, by the
// error Open returns).
var (
	errPeersUnreadable = errors.New("cannot read the file")
	errPeersTwoFiles   = errors.New("there are two peers files")
	errPeersJSON       = errors.New("the file is not valid JSON")
	errPeersShape      = errors.New(`the file must be a JSON list of {"id": ..., "address": ..., "non_voter": ...} objects`)
	errPeersOldFormat  = errors.New("the file is in the old list-of-addresses format, which has no node IDs")
	errPeersEmpty      = errors.New("the file lists no nodes")
	errPeersNoID       = errors.New(`an entry has no "id"`)
	errPeersAddress    = errors.New("an address is not a Raft host:port")
	errPeersDupID      = errors.New("a node ID is listed twice")
	errPeersDupAddr    = errors.New("an address is listed twice")
	errPeersNoVoter    = errors.New("no node in the file is a voter")
	errPeersNotListed  = errors.New("this node is not in the file")
	errPeersNoState    = errors.New("this node has no Raft state to recover")
)

// peersFormat is the format reminder of the refusal messages.
const peersFormat = `[{"id": "<node ID>", "address": "<Raft host:port>", "non_voter": false}, ...]`

// peersError is a refusal of the peers file at path.
type peersError struct {
	path    string
	problem error
	advice  string
}

func (e *peersError) Error() string {
	return fmt.Sprintf("%v %s: %v (nothing was changed; %s)", ErrPeersFile, e.path, e.problem, e.advice)
}

func (e *peersError) Unwrap() []error { return []error{ErrPeersFile, e.problem} }

// fixAdvice is the advice for a file whose content is wrong.
const fixAdvice = "correct the file and start the node again, or remove it to start without recovery. The format is " +
	peersFormat + ", one entry for every node that is to stay in the cluster (this one included), " +
	"the same file on each of those nodes"

// peersFile is a parsed and checked peers.json.
type peersFile struct {
	path string
	conf raft.Configuration
	// warnings are problems that do not stop the recovery (unknown keys).
	warnings []string
}

// peersCandidates returns the places a peers file is looked for in dir.
func peersCandidates(dir string) []string {
	return []string{filepath.Join(dir, peersDirName, peersJSONName), filepath.Join(dir, peersJSONName)}
}

// findPeersFile returns the path of the peers file in dir, "" if there is
// none. Anything at a candidate path counts, a dangling link included, so
// a file that cannot be read is reported rather than ignored.
func findPeersFile(dir string) (string, error) {
	var found []string
	for _, p := range peersCandidates(dir) {
		_, err := os.Lstat(p)
		switch {
		case err == nil:
			found = append(found, p)
		case !errors.Is(err, fs.ErrNotExist):
			return "", &peersError{path: p, problem: fmt.Errorf("%w: %w", errPeersUnreadable, err),
				advice: "make it readable by this user, or remove it, and start the node again"}
		}
	}
	switch len(found) {
	case 0:
		return "", nil
	case 1:
		return found[0], nil
	}
	return "", &peersError{path: found[0], problem: fmt.Errorf("%w: %s and %s", errPeersTwoFiles, found[0], found[1]),
		advice: "keep only one of them (" + filepath.Join(peersDirName, peersJSONName) + " is where rqlite looks) and start the node again"}
}

// readPeersFile finds, reads and checks the peers file of dir for node
// selfID. It returns nil if there is no file.
func readPeersFile(dir, selfID string) (*peersFile, error) {
	path, err := findPeersFile(dir)
	if err != nil || path == "" {
		return nil, err
	}
	const unreadableAdvice = "make it a readable file, or remove it, and start the node again"
	fi, err := os.Stat(path)
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("it is not a regular file (mode %v)", fi.Mode().Type())
	}
	if err != nil {
		return nil, &peersError{path: path, problem: fmt.Errorf("%w: %w", errPeersUnreadable, err), advice: unreadableAdvice}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &peersError{path: path, problem: fmt.Errorf("%w: %w", errPeersUnreadable, err), advice: unreadableAdvice}
	}
	// Some editors start a UTF-8 file with a byte order mark.
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	conf, warnings, err := parsePeers(b, selfID)
	if err != nil {
		return nil, &peersError{path: path, problem: err, advice: fixAdvice}
	}
	return &peersFile{path: path, conf: conf, warnings: warnings}, nil
}

// peerEntry is one node of a peers.json file: hashicorp/raft's version-3
// format, the one rqlite documents.
type peerEntry struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	NonVoter bool   `json:"non_voter"`
}

// parsePeers parses and checks a peers file for node selfID. It refuses
// what hashicorp/raft refuses (no voter, a blank or repeated ID or
// address) and, more than rqlite, what cannot be meant: data after the
// list, the old format, an address that is not host:port, and a list
// without this node. Keys it does not know are only warned about, as
// rqlite ignores them.
func parsePeers(b []byte, selfID string) (raft.Configuration, []string, error) {
	var conf raft.Configuration
	if len(bytes.TrimSpace(b)) == 0 {
		return conf, nil, fmt.Errorf("%w: the file is empty", errPeersEmpty)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var raw []json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return conf, nil, fmt.Errorf("%w (found a JSON %s)", errPeersShape, typeErr.Value)
		}
		return conf, nil, fmt.Errorf("%w: %w", errPeersJSON, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return conf, nil, fmt.Errorf("%w: there is more after the list (at byte %d)", errPeersJSON, dec.InputOffset())
	}
	if len(raw) == 0 {
		return conf, nil, fmt.Errorf("%w: the list is empty", errPeersEmpty)
	}
	var warnings []string
	ids := map[string]int{}
	addrs := map[string]int{}
	voters := 0
	self := false
	for i, r := range raw {
		n := i + 1 // entries are numbered from 1 in messages
		var e peerEntry
		switch r = bytes.TrimSpace(r); {
		case len(r) > 0 && r[0] == '"':
			return conf, nil, fmt.Errorf("%w: entry %d is %s; write each node as {\"id\": \"<its -node-id>\", \"address\": %s}",
				errPeersOldFormat, n, r, r)
		case len(r) == 0 || r[0] != '{':
			return conf, nil, fmt.Errorf("%w: entry %d is %s", errPeersShape, n, r)
		}
		var keys map[string]json.RawMessage
		if err := json.Unmarshal(r, &keys); err != nil {
			return conf, nil, fmt.Errorf("%w: entry %d: %w", errPeersShape, n, err)
		}
		if err := json.Unmarshal(r, &e); err != nil {
			var typeErr *json.UnmarshalTypeError
			if errors.As(err, &typeErr) {
				want := "a string, in double quotes"
				if typeErr.Field == "non_voter" {
					want = "true or false, without quotes"
				}
				return conf, nil, fmt.Errorf("%w: entry %d: %q must be %s, not a JSON %s", errPeersShape, n, typeErr.Field, want, typeErr.Value)
			}
			return conf, nil, fmt.Errorf("%w: entry %d: %w", errPeersShape, n, err)
		}
		for k := range keys {
			switch strings.ToLower(k) {
			case "id", "address", "non_voter":
			default:
				warnings = append(warnings, fmt.Sprintf("entry %d: unknown key %q ignored (the keys are id, address and non_voter)", n, k))
			}
		}
		if e.ID == "" {
			return conf, nil, fmt.Errorf("%w: entry %d (give the node's -node-id)", errPeersNoID, n)
		}
		if err := checkRaftAddr(e.Address); err != nil {
			return conf, nil, fmt.Errorf("%w: entry %d (id %q): %w", errPeersAddress, n, e.ID, err)
		}
		if prev, ok := ids[e.ID]; ok {
			return conf, nil, fmt.Errorf("%w: %q (entries %d and %d)", errPeersDupID, e.ID, prev, n)
		}
		if prev, ok := addrs[e.Address]; ok {
			return conf, nil, fmt.Errorf("%w: %s (entries %d and %d)", errPeersDupAddr, e.Address, prev, n)
		}
		ids[e.ID], addrs[e.Address] = n, n
		srv := raft.Server{ID: raft.ServerID(e.ID), Address: raft.ServerAddress(e.Address), Suffrage: raft.Voter}
		if e.NonVoter {
			srv.Suffrage = raft.Nonvoter
		} else {
			voters++
		}
		self = self || e.ID == selfID
		conf.Servers = append(conf.Servers, srv)
	}
	if voters == 0 {
		return conf, nil, fmt.Errorf(`%w: at least one entry needs "non_voter": false`, errPeersNoVoter)
	}
	if !self {
		listed := make([]string, 0, len(conf.Servers))
		for _, s := range conf.Servers {
			listed = append(listed, strconv.Quote(string(s.ID)))
		}
		return conf, nil, fmt.Errorf("%w: no entry has this node's ID %q (the file lists %s). A node outside the configuration it "+
			"recovers could never vote nor lead; if this node is to leave the cluster, remove the file from its data directory",
			errPeersNotListed, selfID, strings.Join(listed, ", "))
	}
	return conf, warnings, nil
}

// checkRaftAddr checks that a is host:port with a port number, as the
// Raft transport dials it.
func checkRaftAddr(a string) error {
	if a == "" {
		return errors.New(`no "address"`)
	}
	if strings.Contains(a, "://") || strings.Contains(a, "/") {
		return fmt.Errorf("%q is a URL; give the Raft address as host:port (the -raft-adv-addr), without a scheme", a)
	}
	host, port, err := splitHostPort(a)
	if err != nil {
		return err
	}
	if host == "" {
		return fmt.Errorf("%q has no host", a)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("%q has no valid port", a)
	}
	return nil
}

func splitHostPort(a string) (host, port string, err error) {
	i := strings.LastIndexByte(a, ':')
	if i < 0 {
		return "", "", fmt.Errorf("%q has no port (the Raft port, 4002 by default)", a)
	}
	host, port = a[:i], a[i+1:]
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	} else if strings.Contains(host, ":") {
		return "", "", fmt.Errorf("%q: write an IPv6 address in brackets, as [::1]:4002", a)
	}
	return host, port, nil
}

// hasRaftFiles reports whether dir may hold Raft state: a log file or a
// snapshot. It touches nothing, so a node without state is refused before
// Open creates any file.
func hasRaftFiles(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, raftDBName)); err == nil {
		return true
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "snapshots"))
	return len(entries) > 0
}

// noStateError is the refusal of a peers file on a node without state.
func noStateError(path string) error {
	return &peersError{path: path, problem: fmt.Errorf("%w (its data directory holds no Raft log or snapshot)", errPeersNoState),
		advice: "peers.json only rewrites the configuration of a node that has data. Remove the file; to add this node to the " +
			"recovered cluster, start it with -join once the cluster has a leader"}
}

// recoveryFSM is the FSM RecoverCluster replays the snapshot and the log
// into: an fsm over a scratch database. An entry that cannot be applied
// for a reason of this node (disk full) fails the recovery before anything
// is written, instead of stopping the process.
type recoveryFSM struct {
	*fsm
	failed error
	snap   raft.FSMSnapshot
}

// Snapshot implements raft.FSM.
func (r *recoveryFSM) Snapshot() (raft.FSMSnapshot, error) {
	if r.failed != nil {
		return nil, r.failed
	}
	s, err := r.fsm.Snapshot()
	r.snap = s
	return s, err
}

// recoverFromPeers rewrites the node's Raft configuration to pf's with
// raft.RecoverCluster: the latest snapshot and the log after it are
// replayed into a scratch database, which becomes a new snapshot carrying
// the new configuration, and the log is emptied. All entries of the log
// count as committed from then on. It then renames the file to peers.info.
func (s *Store) recoverFromPeers(pf *peersFile, rc *raft.Config, tmp string, logs raft.LogStore, stable raft.StableStore,
	snaps raft.SnapshotStore, trans raft.Transport) error {
	has, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		return fmt.Errorf("recover from %s: %w", pf.path, err)
	}
	if !has {
		return noStateError(pf.path)
	}
	for _, w := range pf.warnings {
		s.logger.Warn("peers file: "+w, "file", pf.path)
	}
	old, err := lastConfiguration(logs, snaps)
	if err != nil {
		// Only the warnings below need it; recovery does not.
		s.logger.Warn("cannot read the configuration in the Raft log; recovering anyway", "file", pf.path, "error", err)
	}
	s.warnPeersChanges(pf, old)
	first, _ := logs.FirstIndex()
	last, _ := logs.LastIndex()
	s.logger.Info("recovering the Raft configuration from a peers file: every entry of this node's log is taken as committed",
		"file", pf.path, "servers", formatServers(pf.conf), "previous", formatServers(old), "log-first", first, "log-last", last)

	dbPath := filepath.Join(tmp, "recovery.sqlite")
	d, err := db.Open(db.Config{Path: dbPath, ForeignKeys: s.cfg.ForeignKeys, MaxReadConns: 1, MaxSteps: s.cfg.MaxSteps,
		MaxResultBytes: s.cfg.MaxResultBytes})
	if err != nil {
		return fmt.Errorf("recover from %s: open scratch database: %w", pf.path, err)
	}
	// The scratch fsm keeps its cluster ID in tmp, starting from this
	// node's: a snapshot or the log set it again as they are replayed.
	idPath := filepath.Join(tmp, "recovery-"+clusterIDName)
	if b, err := os.ReadFile(filepath.Join(s.cfg.Dir, clusterIDName)); err == nil {
		if err := os.WriteFile(idPath, b, 0o644); err != nil {
			d.Close()
			return fmt.Errorf("recover from %s: %w", pf.path, err)
		}
	}
	rf := &recoveryFSM{fsm: newFSM(d, tmp, logs, idPath)}
	rf.fatal = func(err error) {
		if rf.failed == nil {
			rf.failed = err
		}
	}
	rcc := *rc
	err = raft.RecoverCluster(&rcc, rf, logs, stable, snaps, trans, pf.conf)
	if rf.snap != nil {
		rf.snap.Release() // RecoverCluster does not; the database waits for it
	}
	d.Close()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(dbPath + suffix)
	}
	os.Remove(idPath)
	if err != nil {
		return fmt.Errorf("recover from %s: %w (the file was left in place: the recovery runs again at the next start)", pf.path, err)
	}
	info := filepath.Join(filepath.Dir(pf.path), peersInfoName)
	if err := os.Rename(pf.path, info); err != nil {
		return fmt.Errorf("recovered from %s, but cannot rename it to %s (rename or remove it, then start the node again; "+
			"the recovery is simply done again if the file is still there): %w", pf.path, peersInfoName, err)
	}
	storeVars.Add("num_recoveries", 1)
	attrs := []any{"file", pf.path, "renamed-to", info, "servers", formatServers(pf.conf)}
	if list, err := snaps.List(); err == nil && len(list) > 0 {
		attrs = append(attrs, "snapshot-index", list[0].Index, "snapshot-term", list[0].Term)
	}
	s.logger.Info("recovered the Raft configuration from the peers file", attrs...)
	return nil
}

// warnPeersChanges logs what in pf differs from the configuration old and
// from this node's own flags. None of it stops the recovery: rqlite
// accepts it all, and each can be meant (a new node, new addresses).
func (s *Store) warnPeersChanges(pf *peersFile, old raft.Configuration) {
	known, listed := membership{servers: old.Servers}, membership{servers: pf.conf.Servers}
	var unknown []string
	for _, srv := range listed.servers {
		prev, ok := known.server(string(srv.ID))
		switch {
		case len(old.Servers) > 0 && !ok:
			unknown = append(unknown, string(srv.ID))
		case ok && prev.Address != srv.Address:
			s.logger.Info("peers file moves a node to a new address", "file", pf.path, "id", srv.ID, "from", prev.Address, "to", srv.Address)
		}
		if srv.ID != raft.ServerID(s.cfg.NodeID) {
			continue
		}
		if string(srv.Address) != s.cfg.Addr {
			s.logger.Warn("peers file gives this node an address other than the one it advertises; other nodes dial the file's "+
				"address until a leader corrects it", "file", pf.path, "file-address", srv.Address, "advertised", s.cfg.Addr)
		}
		if (srv.Suffrage == raft.Nonvoter) != s.cfg.NonVoter {
			s.logger.Warn("peers file makes this node a voter or not, unlike -raft-non-voter; the file wins", "file", pf.path,
				"voter-in-file", srv.Suffrage == raft.Voter, "raft-non-voter", s.cfg.NonVoter)
		}
	}
	if len(unknown) > 0 {
		s.logger.Warn("peers file names nodes that were not in this node's last configuration; they become members as listed "+
			"(check that each ID is that node's -node-id)", "file", pf.path, "ids", unknown)
	}
	var dropped []string
	for _, srv := range known.servers {
		if !listed.has(string(srv.ID)) {
			dropped = append(dropped, string(srv.ID))
		}
	}
	if len(dropped) > 0 {
		s.logger.Warn("peers file leaves nodes out of the configuration; to come back they must join again with an empty data directory",
			"file", pf.path, "ids", dropped)
	}
}

// lastConfiguration returns the newest configuration this node knows:
// the last configuration entry of the log, or else the latest snapshot's.
func lastConfiguration(logs raft.LogStore, snaps raft.SnapshotStore) (raft.Configuration, error) {
	var conf raft.Configuration
	var floor uint64
	list, err := snaps.List()
	if err != nil {
		return conf, err
	}
	if len(list) > 0 {
		conf, floor = list[0].Configuration, list[0].Index
	}
	first, err := logs.FirstIndex()
	if err != nil {
		return conf, err
	}
	last, err := logs.LastIndex()
	if err != nil {
		return conf, err
	}
	for i := last; i > 0 && i >= first && i > floor; i-- {
		var l raft.Log
		if err := logs.GetLog(i, &l); err != nil {
			return conf, fmt.Errorf("read log entry %d: %w", i, err)
		}
		if l.Type == raft.LogConfiguration {
			return decodeConfiguration(l.Data)
		}
	}
	return conf, nil
}

// decodeConfiguration is raft.DecodeConfiguration, which panics on bad
// input, returning an error instead.
func decodeConfiguration(b []byte) (conf raft.Configuration, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("decode configuration entry: %v", r)
		}
	}()
	return raft.DecodeConfiguration(b), nil
}

// formatServers renders a configuration for the log: id=address, with
// "(non-voter)" after read replicas.
func formatServers(c raft.Configuration) string {
	parts := make([]string, 0, len(c.Servers))
	for _, s := range c.Servers {
		p := string(s.ID) + "=" + string(s.Address)
		if s.Suffrage != raft.Voter {
			p += " (non-voter)"
		}
		parts = append(parts, p)
	}
	return "[" + strings.Join(parts, " ") + "]"
}
