package cluster

import (
	"context"
	"net"
	"time"

	"github.com/rqlited/rqlited/command"
)

// Func-field fakes of the interfaces this package declares: each method
// calls its field, and a nil field gives the zero answer (no error).

type fakeManager struct {
	IDFn        func() string
	AddrFn      func() string
	LeaderFn    func() (id, addr string)
	ClusterIDFn func() string
	HasStateFn  func() (bool, error)
	JoinFn      func(id, addr string, voter bool, clusterID string) error
	RemoveFn    func(id string) error
	StepdownFn  func(id string) error
	ReadIndexFn func(ctx context.Context, askerID string, askerTerm uint64) (uint64, error)
}

var _ Manager = (*fakeManager)(nil)

func (f *fakeManager) ID() string {
	if f.IDFn == nil {
		return ""
	}
	return f.IDFn()
}

func (f *fakeManager) Addr() string {
	if f.AddrFn == nil {
		return ""
	}
	return f.AddrFn()
}

func (f *fakeManager) Leader() (string, string) {
	if f.LeaderFn == nil {
		return "", ""
	}
	return f.LeaderFn()
}

func (f *fakeManager) ClusterID() string {
	if f.ClusterIDFn == nil {
		return ""
	}
	return f.ClusterIDFn()
}

func (f *fakeManager) HasState() (bool, error) {
	if f.HasStateFn == nil {
		return false, nil
	}
	return f.HasStateFn()
}

func (f *fakeManager) Join(id, addr string, voter bool, clusterID string) error {
	if f.JoinFn == nil {
		return nil
	}
	return f.JoinFn(id, addr, voter, clusterID)
}

func (f *fakeManager) Remove(id string) error {
	if f.RemoveFn == nil {
		return nil
	}
	return f.RemoveFn(id)
}

func (f *fakeManager) Stepdown(id string) error {
	if f.StepdownFn == nil {
		return nil
	}
	return f.StepdownFn(id)
}

func (f *fakeManager) ReadIndex(ctx context.Context, askerID string, askerTerm uint64) (uint64, error) {
	if f.ReadIndexFn == nil {
		return 0, nil
	}
	return f.ReadIndexFn(ctx, askerID, askerTerm)
}

type fakeFormer struct {
	BootstrapFn func(servers []command.Server) error
	LeaderFn    func() (id, addr string)
	HasStateFn  func() (bool, error)
}

var _ Former = (*fakeFormer)(nil)

func (f *fakeFormer) Bootstrap(servers []command.Server) error {
	if f.BootstrapFn == nil {
		return nil
	}
	return f.BootstrapFn(servers)
}

func (f *fakeFormer) Leader() (string, string) {
	if f.LeaderFn == nil {
		return "", ""
	}
	return f.LeaderFn()
}

func (f *fakeFormer) HasState() (bool, error) {
	if f.HasStateFn == nil {
		return false, nil
	}
	return f.HasStateFn()
}

type fakeAddressProvider struct {
	LookupFn func(ctx context.Context) ([]string, error)
}

var _ AddressProvider = (*fakeAddressProvider)(nil)

func (f *fakeAddressProvider) Lookup(ctx context.Context) ([]string, error) {
	if f.LookupFn == nil {
		return nil, nil
	}
	return f.LookupFn(ctx)
}

type fakeDialer struct {
	DialFn func(address string, timeout time.Duration) (net.Conn, error)
}

var _ Dialer = (*fakeDialer)(nil)

func (f *fakeDialer) Dial(address string, timeout time.Duration) (net.Conn, error) {
	if f.DialFn == nil {
		return nil, &net.OpError{Op: "dial", Net: "fake", Err: net.ErrClosed}
	}
	return f.DialFn(address, timeout)
}

type fakeAuthorizer struct {
	AllowedFn func(username, password string, ok bool, perm string) bool
}

var _ Authorizer = (*fakeAuthorizer)(nil)

func (f *fakeAuthorizer) Allowed(username, password string, ok bool, perm string) bool {
	if f.AllowedFn == nil {
		return false
	}
	return f.AllowedFn(username, password, ok, perm)
}

type fakePeerBook struct {
	ClusterIDFn func() string
	LeaderFn    func() (id, addr string)
	LearnPeerFn func(id, addr string) bool
}

var _ PeerBook = (*fakePeerBook)(nil)

func (f *fakePeerBook) ClusterID() string {
	if f.ClusterIDFn == nil {
		return ""
	}
	return f.ClusterIDFn()
}

func (f *fakePeerBook) Leader() (string, string) {
	if f.LeaderFn == nil {
		return "", ""
	}
	return f.LeaderFn()
}

func (f *fakePeerBook) LearnPeer(id, addr string) bool {
	if f.LearnPeerFn == nil {
		return false
	}
	return f.LearnPeerFn(id, addr)
}
