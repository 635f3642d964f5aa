package http

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/rqlited/rqlited/command"
)

// The fakes stand at the seams of the Service: the store, the cluster
// client and the authorizer. Each method calls its func field if the test
// set it, and otherwise gives a default answer, so that a test states only
// what matters to it.
var (
	_ Store      = (*fakeStore)(nil)
	_ Cluster    = (*fakeCluster)(nil)
	_ memberMeta = (*fakeCluster)(nil)
	_ Authorizer = (*fakeAuthorizer)(nil)
)

// Who the fake store is, and who it says leads by default: itself.
const (
	fakeID   = "1"
	fakeAddr = "self:4002"
)

// fakeStore is by default a healthy, ready, single-node leader whose
// database answers every query with one row holding 1.
type fakeStore struct {
	ExecuteFn      func(ctx context.Context, req *command.Request) ([]command.Result, uint64, error)
	QueryFn        func(ctx context.Context, req *command.Request, opts command.QueryOptions) ([]command.Result, uint64, error)
	RequestFn      func(ctx context.Context, req *command.Request, opts command.QueryOptions) ([]command.Result, uint64, error)
	LoadFn         func(ctx context.Context, data []byte) (uint64, error)
	BackupFn       func(ctx context.Context, w io.Writer, opts command.BackupOptions) error
	ColumnTablesFn func(ctx context.Context, req *command.Request, ncols []int) ([][]string, error)
	LeaderFn       func() (id, addr string)
	ServersFn      func() ([]command.Server, error)
	StepdownFn     func(id string) error
	SnapshotFn     func(trailing uint64) error
	StatsFn        func() (map[string]any, error)
	ReadyFn        func() bool
	RemoveFn       func(id string) error
	ReapFn         func() (snapshots, wals int, err error)
	CommittedFn    func(ctx context.Context, timeout time.Duration) (uint64, error)
}

func (f *fakeStore) Execute(ctx context.Context, req *command.Request) ([]command.Result, uint64, error) {
	if f.ExecuteFn != nil {
		return f.ExecuteFn(ctx, req)
	}
	return []command.Result{{}}, 1, nil
}

func (f *fakeStore) Query(ctx context.Context, req *command.Request, opts command.QueryOptions) ([]command.Result, uint64, error) {
	if f.QueryFn != nil {
		return f.QueryFn(ctx, req, opts)
	}
	return []command.Result{{IsQuery: true, Columns: []string{"1"}, Types: []string{"integer"}, Values: [][]any{{int64(1)}}}}, 0, nil
}

// Request is Query unless the test sets RequestFn.
func (f *fakeStore) Request(ctx context.Context, req *command.Request, opts command.QueryOptions) ([]command.Result, uint64, error) {
	if f.RequestFn != nil {
		return f.RequestFn(ctx, req, opts)
	}
	return f.Query(ctx, req, opts)
}

func (f *fakeStore) Load(ctx context.Context, data []byte) (uint64, error) {
	if f.LoadFn != nil {
		return f.LoadFn(ctx, data)
	}
	return 1, nil
}

// Backup writes nothing by default.
func (f *fakeStore) Backup(ctx context.Context, w io.Writer, opts command.BackupOptions) error {
	if f.BackupFn != nil {
		return f.BackupFn(ctx, w, opts)
	}
	return nil
}

// ColumnTables knows no tables by default.
func (f *fakeStore) ColumnTables(ctx context.Context, req *command.Request, ncols []int) ([][]string, error) {
	if f.ColumnTablesFn != nil {
		return f.ColumnTablesFn(ctx, req, ncols)
	}
	return nil, errors.New("no column metadata")
}

func (f *fakeStore) ID() string   { return fakeID }
func (f *fakeStore) Addr() string { return fakeAddr }

func (f *fakeStore) Leader() (string, string) {
	if f.LeaderFn != nil {
		return f.LeaderFn()
	}
	return fakeID, fakeAddr
}

func (f *fakeStore) Servers() ([]command.Server, error) {
	if f.ServersFn != nil {
		return f.ServersFn()
	}
	return []command.Server{{ID: fakeID, Addr: fakeAddr, Voter: true}}, nil
}

func (f *fakeStore) Stepdown(id string) error {
	if f.StepdownFn != nil {
		return f.StepdownFn(id)
	}
	return nil
}

func (f *fakeStore) Snapshot(trailing uint64) error {
	if f.SnapshotFn != nil {
		return f.SnapshotFn(trailing)
	}
	return nil
}

func (f *fakeStore) Stats() (map[string]any, error) {
	if f.StatsFn != nil {
		return f.StatsFn()
	}
	return map[string]any{}, nil
}

func (f *fakeStore) Ready() bool {
	if f.ReadyFn != nil {
		return f.ReadyFn()
	}
	return true
}

func (f *fakeStore) Remove(id string) error {
	if f.RemoveFn != nil {
		return f.RemoveFn(id)
	}
	return nil
}

func (f *fakeStore) Reap() (int, int, error) {
	if f.ReapFn != nil {
		return f.ReapFn()
	}
	return 0, 0, nil
}

func (f *fakeStore) Committed(ctx context.Context, timeout time.Duration) (uint64, error) {
	if f.CommittedFn != nil {
		return f.CommittedFn(ctx, timeout)
	}
	return 7, nil
}

// noLeader is a LeaderFn for a node that knows of no leader.
func noLeader() (string, string) { return "", "" }

// leaderAt returns a LeaderFn naming node id at addr as the leader.
func leaderAt(id, addr string) func() (string, string) {
	return func() (string, string) { return id, addr }
}

// failExecute returns an ExecuteFn that fails with err.
func failExecute(err error) func(context.Context, *command.Request) ([]command.Result, uint64, error) {
	return func(context.Context, *command.Request) ([]command.Result, uint64, error) { return nil, 0, err }
}

// failQuery returns a QueryFn (or RequestFn) that fails with err.
func failQuery(err error) func(context.Context, *command.Request, command.QueryOptions) ([]command.Result, uint64, error) {
	return func(context.Context, *command.Request, command.QueryOptions) ([]command.Result, uint64, error) {
		return nil, 0, err
	}
}

// fakeCluster is the cluster client. By default nothing answers.
type fakeCluster struct {
	NodeMetaFn     func(ctx context.Context, raftAddr string) (apiURL, version string, err error)
	MemberAPIURLFn func(ctx context.Context, id, raftAddr string) (string, error)
}

func (c *fakeCluster) NodeMeta(ctx context.Context, raftAddr string) (string, string, error) {
	if c.NodeMetaFn != nil {
		return c.NodeMetaFn(ctx, raftAddr)
	}
	return "", "", errors.New("fakeCluster: nothing answers at " + raftAddr)
}

func (c *fakeCluster) MemberAPIURL(ctx context.Context, id, raftAddr string) (string, error) {
	if c.MemberAPIURLFn != nil {
		return c.MemberAPIURLFn(ctx, id, raftAddr)
	}
	return "", errors.New("fakeCluster: nothing answers at " + raftAddr)
}

// fakeAuthorizer lets everyone in by default.
type fakeAuthorizer struct {
	AuthorizeFn func(client, username, password string, ok bool, perms ...string) error
}

func (a *fakeAuthorizer) Authorize(client, username, password string, ok bool, perms ...string) error {
	if a.AuthorizeFn != nil {
		return a.AuthorizeFn(client, username, password, ok, perms...)
	}
	return nil
}

// askedPerms records the permissions of each Authorize call.
type askedPerms struct {
	mu    sync.Mutex
	calls [][]string
}

// all returns every permission asked for, in order, across calls.
func (a *askedPerms) all() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var all []string
	for _, c := range a.calls {
		all = append(all, c...)
	}
	return all
}

// refuser returns an authorizer that refuses everyone with err (or lets
// everyone in, for nil), and what it was asked.
func refuser(err error) (*fakeAuthorizer, *askedPerms) {
	asked := &askedPerms{}
	return &fakeAuthorizer{AuthorizeFn: func(_, _, _ string, _ bool, perms ...string) error {
		asked.mu.Lock()
		defer asked.mu.Unlock()
		asked.calls = append(asked.calls, append([]string(nil), perms...))
		return err
	}}, asked
}
