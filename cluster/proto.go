// Package cluster is the intra-cluster service: join, notify (for
// -bootstrap-expect), remove, step-down and node metadata, carried on the
// inter-node port next to Raft. It also has the client side of each call,
// the Joiner and the Bootstrapper.
package cluster

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// maxFrame bounds one message, so a hostile peer cannot make a node
// allocate much.
const maxFrame = 1 << 20

// Message types.
const (
	typeJoin      = "join"
	typeNotify    = "notify"
	typeRemove    = "remove"
	typeMeta      = "meta"
	typeStepdown  = "stepdown"
	typeReadIndex = "read-index"
)

// request is one call. Fields not used by a type stay empty.
type request struct {
	Type string `json:"type"`
	// Join, notify, remove, stepdown: the node concerned.
	ID   string `json:"id,omitempty"`
	Addr string `json:"addr,omitempty"`
	// Join: whether the node votes. Notify: always a voter.
	Voter bool `json:"voter,omitempty"`
	// ClusterID is the sender's cluster, empty for a node without state.
	ClusterID string `json:"cluster_id,omitempty"`
	// Notify: the sender's -bootstrap-expect and its bootstrap set (the
	// join addresses it will form a cluster from).
	Expect int      `json:"expect,omitempty"`
	Set    []string `json:"set,omitempty"`
	// Read-index: the asking node's current Raft term, read after the
	// reads it serves arrived (ID names the asking node). A leader of
	// that same term may count the asker as one confirmation of its
	// leadership (see store.Store.ReadIndex).
	Term uint64 `json:"term,omitempty"`
	// Credentials of the -join-as user, checked against the receiver's
	// -auth file.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
}

// response answers a request.
type response struct {
	Error string `json:"error,omitempty"`
	// Code classifies Error for the caller (see the code* constants).
	Code string `json:"code,omitempty"`
	// Leader is the leader's Raft address, when known.
	Leader string `json:"leader,omitempty"`
	// The responding node.
	ID        string `json:"id,omitempty"`
	Addr      string `json:"addr,omitempty"`
	ClusterID string `json:"cluster_id,omitempty"`
	// HasState is true when the responder already belongs to a cluster.
	HasState bool `json:"has_state,omitempty"`
	// Formed is true when the responder's state comes from bootstrapping
	// the set it reports, in this run: the same cluster this node would form.
	Formed bool     `json:"formed,omitempty"`
	Expect int      `json:"expect,omitempty"`
	Set    []string `json:"set,omitempty"`
	// Read-index: the leader's confirmed commit index.
	Index uint64 `json:"index,omitempty"`
	// Meta.
	APIURL  string `json:"api_url,omitempty"`
	Version string `json:"version,omitempty"`
}

// Error codes in responses.
const (
	codeNotLeader       = "not-leader"
	codeClusterMismatch = "cluster-mismatch"
	codeNotFound        = "not-found"
	codeUnauthorized    = "unauthorized"
)

// ErrUnauthorized is returned when the receiving node's -auth file does not
// give the -join-as user the permission a call needs.
var ErrUnauthorized = errors.New("not authorized")

// errNotCluster is returned when the peer answered with something other
// than our framing, typically because the address is an HTTP port.
var errNotCluster = errors.New("peer did not answer as a cluster service")

func writeFrame(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	buf := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(b)), uint32(len(b)))
	_, err = w.Write(append(buf, b...))
	return err
}

func readFrame(r io.Reader, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	if string(hdr[:]) == "HTTP" {
		return fmt.Errorf("%w: it speaks HTTP (is this an HTTP address where a Raft address belongs?)", errNotCluster)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxFrame {
		return fmt.Errorf("%w: frame of %d bytes", errNotCluster, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %v", errNotCluster, err)
	}
	return nil
}

// Dialer opens connections to the cluster service of other nodes;
// mux.Layer satisfies it.
type Dialer interface {
	Dial(address string, timeout time.Duration) (net.Conn, error)
}
