package disco

import "context"

// Func-field fakes of the interfaces this package declares: each method
// calls its field, and a nil field gives the zero answer (no error).

type fakeKV struct {
	GetFn       func(ctx context.Context) (Entry, error)
	CreateFn    func(ctx context.Context, r Record) (bool, error)
	ReplaceFn   func(ctx context.Context, r Record, version uint64) (bool, error)
	WatchFn     func(ctx context.Context, version uint64) error
	PutMemberFn func(ctx context.Context, r Record) error
	MembersFn   func(ctx context.Context) ([]Record, error)
	CloseFn     func() error
}

var _ KV = (*fakeKV)(nil)

func (f *fakeKV) Get(ctx context.Context) (Entry, error) {
	if f.GetFn == nil {
		return Entry{}, nil
	}
	return f.GetFn(ctx)
}

func (f *fakeKV) Create(ctx context.Context, r Record) (bool, error) {
	if f.CreateFn == nil {
		return false, nil
	}
	return f.CreateFn(ctx, r)
}

func (f *fakeKV) Replace(ctx context.Context, r Record, version uint64) (bool, error) {
	if f.ReplaceFn == nil {
		return false, nil
	}
	return f.ReplaceFn(ctx, r, version)
}

func (f *fakeKV) Watch(ctx context.Context, version uint64) error {
	if f.WatchFn == nil {
		<-ctx.Done()
		return ctx.Err()
	}
	return f.WatchFn(ctx, version)
}

func (f *fakeKV) PutMember(ctx context.Context, r Record) error {
	if f.PutMemberFn == nil {
		return nil
	}
	return f.PutMemberFn(ctx, r)
}

func (f *fakeKV) Members(ctx context.Context) ([]Record, error) {
	if f.MembersFn == nil {
		return nil, nil
	}
	return f.MembersFn(ctx)
}

func (f *fakeKV) Close() error {
	if f.CloseFn == nil {
		return nil
	}
	return f.CloseFn()
}

type fakeNode struct {
	IDFn            func() string
	AddrFn          func() string
	IsLeaderFn      func() bool
	TermFn          func() uint64
	ClusterIDFn     func() string
	LeaderFn        func() (id, addr string)
	BootstrapSelfFn func() error
}

var _ Node = (*fakeNode)(nil)

func (f *fakeNode) ID() string {
	if f.IDFn == nil {
		return ""
	}
	return f.IDFn()
}

func (f *fakeNode) Addr() string {
	if f.AddrFn == nil {
		return ""
	}
	return f.AddrFn()
}

func (f *fakeNode) IsLeader() bool {
	if f.IsLeaderFn == nil {
		return false
	}
	return f.IsLeaderFn()
}

func (f *fakeNode) Term() uint64 {
	if f.TermFn == nil {
		return 0
	}
	return f.TermFn()
}

func (f *fakeNode) ClusterID() string {
	if f.ClusterIDFn == nil {
		return ""
	}
	return f.ClusterIDFn()
}

func (f *fakeNode) Leader() (string, string) {
	if f.LeaderFn == nil {
		return "", ""
	}
	return f.LeaderFn()
}

func (f *fakeNode) BootstrapSelf() error {
	if f.BootstrapSelfFn == nil {
		return nil
	}
	return f.BootstrapSelfFn()
}
