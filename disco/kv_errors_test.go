package disco

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rqlited/rqlited/command"
)

var errKV = errors.New("kv: connection refused")

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// leaderNode is a fakeNode that leads cluster c1 in term 5.
func leaderNode() *fakeNode {
	return &fakeNode{
		IDFn: func() string { return "n1" }, AddrFn: func() string { return "a:1" },
		ClusterIDFn: func() string { return "c1" }, TermFn: func() uint64 { return 5 },
		IsLeaderFn: func() bool { return true },
	}
}

// TestReportOnKVErrors: what one report writes, returns and records when
// the KV store fails or answers each way.
func TestReportOnKVErrors(t *testing.T) {
	mine := Record{ID: "n1", APIAddr: "http://a", Addr: "a:1", ClusterID: "c1", Term: 5}
	older := Record{ID: "n0", Addr: "z:1", ClusterID: "c1", Term: 4}
	type ret struct {
		ok  bool
		err error
	}
	cases := []struct {
		name        string
		get         Entry
		getErr      error
		create      ret
		replace     ret
		wantErr     string // "" for success
		wantWrites  []string
		wantReports uint64
		wantPhase   string
	}{
		{name: "get fails", getErr: errKV, wantErr: errKV.Error(), wantPhase: "starting"},
		{name: "create fails", create: ret{false, errKV}, wantErr: errKV.Error(), wantWrites: []string{"create"}, wantPhase: "starting"},
		{name: "create loses a race", create: ret{false, nil}, wantErr: "changed while it was being written",
			wantWrites: []string{"create"}, wantPhase: "starting"},
		{name: "create wins", create: ret{true, nil}, wantWrites: []string{"create"}, wantReports: 1, wantPhase: "leader"},
		{name: "replace fails", get: Entry{Record: &older, Version: 3, Held: true}, replace: ret{false, errKV},
			wantErr: errKV.Error(), wantWrites: []string{"replace 3"}, wantPhase: "starting"},
		{name: "replace wins", get: Entry{Record: &older, Version: 3, Held: true}, replace: ret{true, nil},
			wantWrites: []string{"replace 3"}, wantReports: 1, wantPhase: "leader"},
		{name: "already ours", get: Entry{Record: &mine, Version: 8, Held: true}, wantPhase: "leader"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var writes []string
			kv := &fakeKV{
				GetFn: func(context.Context) (Entry, error) { return c.get, c.getErr },
				CreateFn: func(_ context.Context, r Record) (bool, error) {
					if r != mine {
						t.Errorf("created %+v, want %+v", r, mine)
					}
					writes = append(writes, "create")
					return c.create.ok, c.create.err
				},
				ReplaceFn: func(_ context.Context, r Record, v uint64) (bool, error) {
					if r != mine {
						t.Errorf("replaced with %+v, want %+v", r, mine)
					}
					writes = append(writes, fmt.Sprintf("replace %d", v))
					return c.replace.ok, c.replace.err
				},
			}
			s := NewService(Config{Mode: ModeEtcdKV, Key: "k", Voter: true, APIURL: "http://a", Timeout: time.Second},
				kv, leaderNode(), nil, quiet())
			err := s.report()
			if c.wantErr == "" && err != nil || c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
				t.Fatalf("report: %v, want %q", err, c.wantErr)
			}
			if !slices.Equal(writes, c.wantWrites) {
				t.Fatalf("writes %q, want %q", writes, c.wantWrites)
			}
			st := s.Stats()
			if st["leader_key_writes"] != c.wantReports || st["phase"] != c.wantPhase {
				t.Fatalf("leader_key_writes %v, phase %v; want %d, %q", st["leader_key_writes"], st["phase"], c.wantReports, c.wantPhase)
			}
		})
	}
}

// TestRegisterOnKVErrors: Register retries KV failures, claims or joins as
// the key says, and gives up at the timeout naming the last problem.
func TestRegisterOnKVErrors(t *testing.T) {
	other := Record{ID: "n2", Addr: "b:1", ClusterID: "c1", Term: 3}
	cases := []struct {
		name string
		// step answers the i-th Get (from 0); claim the i-th Create;
		// join the i-th join.
		get   func(i int) (Entry, error)
		claim func(i int) (bool, error)
		join  func(i int) error
		// wantErr is "" for success.
		wantErr        string
		wantBootstraps int
		wantJoins      []string
		wantWatches    []uint64
	}{
		{name: "store down until the timeout",
			get:     func(int) (Entry, error) { return Entry{}, errKV },
			wantErr: errKV.Error()},
		{name: "claim fails, then wins",
			get: func(int) (Entry, error) { return Entry{Version: 1}, nil },
			claim: func(i int) (bool, error) {
				if i == 0 {
					return false, errKV
				}
				return true, nil
			},
			wantBootstraps: 1},
		{name: "claim lost to a live leader: join it",
			get: func(i int) (Entry, error) {
				if i == 0 {
					return Entry{Version: 1}, nil
				}
				return Entry{Record: &other, Version: 2, Held: true}, nil
			},
			claim:     func(int) (bool, error) { return false, nil },
			join:      func(int) error { return nil },
			wantJoins: []string{"b:1"}},
		{name: "join fails, watch, join again",
			get: func(int) (Entry, error) { return Entry{Record: &other, Version: 7, Held: true}, nil },
			join: func(i int) error {
				if i == 0 {
					return errors.New("not leader")
				}
				return nil
			},
			wantJoins: []string{"b:1", "b:1"}, wantWatches: []uint64{7}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var gets, claims, bootstraps int
			var joins []string
			var watches []uint64
			kv := &fakeKV{
				GetFn: func(context.Context) (Entry, error) { gets++; return c.get(gets - 1) },
				CreateFn: func(context.Context, Record) (bool, error) {
					claims++
					if c.claim == nil {
						t.Error("claimed the key")
						return false, nil
					}
					return c.claim(claims - 1)
				},
				ReplaceFn: func(context.Context, Record, uint64) (bool, error) {
					t.Error("replaced the key")
					return false, nil
				},
				WatchFn: func(_ context.Context, v uint64) error { watches = append(watches, v); return nil },
			}
			node := &fakeNode{
				IDFn: func() string { return "n1" }, AddrFn: func() string { return "a:1" },
				LeaderFn: func() (string, string) {
					if bootstraps > 0 {
						return "n1", "a:1"
					}
					return "", ""
				},
				BootstrapSelfFn: func() error { bootstraps++; return nil },
			}
			join := func(_ context.Context, addr string) error {
				joins = append(joins, addr)
				if c.join == nil {
					t.Error("joined " + addr)
					return errors.New("unexpected join")
				}
				return c.join(len(joins) - 1)
			}
			s := NewService(Config{Mode: ModeEtcdKV, Key: "k", Voter: true, Timeout: 400 * time.Millisecond}, kv, node, join, quiet())
			err := s.Register(context.Background())
			if c.wantErr == "" && err != nil {
				t.Fatalf("Register: %v", err)
			}
			if c.wantErr != "" && (!errors.Is(err, command.ErrBootTimeout) || !strings.Contains(err.Error(), c.wantErr)) {
				t.Fatalf("Register: %v, want ErrBootTimeout naming %q", err, c.wantErr)
			}
			if c.wantErr != "" && gets < 2 {
				t.Fatalf("the store was asked %d times, want retries", gets)
			}
			if bootstraps != c.wantBootstraps || !slices.Equal(joins, c.wantJoins) || !slices.Equal(watches, c.wantWatches) {
				t.Fatalf("bootstraps %d, joins %q, watches %v; want %d, %q, %v",
					bootstraps, joins, watches, c.wantBootstraps, c.wantJoins, c.wantWatches)
			}
		})
	}
}

// TestReportLoopRetriesKVErrors: while the node leads, the reporting loop
// retries a failing store on its next tick until the key names the node,
// writes it once per interval, and Close stops it and closes the store.
func TestReportLoopRetriesKVErrors(t *testing.T) {
	var mu sync.Mutex
	var gets, creates int
	var closes atomic.Int32
	written := make(chan struct{})
	kv := &fakeKV{
		GetFn: func(context.Context) (Entry, error) {
			mu.Lock()
			defer mu.Unlock()
			gets++
			if gets <= 2 {
				return Entry{}, errKV
			}
			return Entry{}, nil
		},
		CreateFn: func(context.Context, Record) (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			creates++
			if creates == 1 {
				close(written)
			}
			return true, nil
		},
		CloseFn: func() error { closes.Add(1); return nil },
	}
	s := NewService(Config{Mode: ModeEtcdKV, Key: "k", Voter: true, ReportInterval: time.Hour}, kv, leaderNode(), nil, quiet())
	s.Start()
	select {
	case <-written:
	case <-time.After(10 * time.Second):
		s.Close()
		t.Fatal("the key was never written after the store recovered")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil || closes.Load() != 1 {
		t.Fatalf("second Close: %v; store closed %d times, want 1", err, closes.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	if gets != 3 || creates != 1 {
		t.Fatalf("%d gets and %d creates, want 3 (two failures, then success) and 1 (once per interval)", gets, creates)
	}
	if st := s.Stats(); st["phase"] != "leader" || st["last_error"] != "" || st["leader_key_writes"] != uint64(1) {
		t.Fatalf("stats after recovery: %v", st)
	}
}

// TestPublishRetriesAndLookupFails: Publish retries a failing store until
// the node's entry is written (without a term), and Lookup passes the
// store's error on.
func TestPublishRetriesAndLookupFails(t *testing.T) {
	var puts []Record
	kv := &fakeKV{
		PutMemberFn: func(_ context.Context, r Record) error {
			puts = append(puts, r)
			if len(puts) == 1 {
				return errKV
			}
			return nil
		},
		MembersFn: func(context.Context) ([]Record, error) { return nil, errKV },
	}
	s := NewService(Config{Mode: ModeEtcdKV, Key: "k", APIURL: "http://a"}, kv, leaderNode(), nil, quiet())
	s.Publish(context.Background())
	want := Record{ID: "n1", APIAddr: "http://a", Addr: "a:1", ClusterID: "c1"}
	if len(puts) != 2 || puts[1] != want {
		t.Fatalf("puts %+v, want a failure then %+v", puts, want)
	}
	if got, err := s.Lookup(context.Background()); !errors.Is(err, errKV) || got != nil {
		t.Fatalf("Lookup: %v, %v; want the store's error", got, err)
	}
}
