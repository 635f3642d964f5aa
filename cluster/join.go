package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/rqlited/rqlited/command"
)

// Self describes the node that joins or bootstraps.
type Self struct {
	ID    string
	Addr  string // advertised Raft address
	Voter bool
	// ClusterID returns the node's cluster ID, empty if it has none.
	ClusterID func() string
}

func (s Self) clusterID() string {
	if s.ClusterID == nil {
		return ""
	}
	return s.ClusterID()
}

// ErrJoinSelf is returned when the only join targets are this node.
var ErrJoinSelf = errors.New("the join list names only this node: a node cannot join itself")

// IsHTTPTarget reports whether a join target is an HTTP(S) URL (the form of
// rqlite 7 and of many auto-clustering guides) rather than a Raft address.
func IsHTTPTarget(t string) bool {
	return strings.HasPrefix(t, "http://") || strings.HasPrefix(t, "https://")
}

// ResolveTarget turns a join target into a Raft address. A host:port is
// returned as it is; for an HTTP URL the node there is asked for its
// advertised Raft address.
func ResolveTarget(ctx context.Context, hc *http.Client, target string) (string, error) {
	if !IsHTTPTarget(target) {
		return target, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(target, "/")+"/status?key=store.addr", nil)
	if err != nil {
		return "", fmt.Errorf("join target %s: %w", target, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("join target %s: %w", target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var addr string
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &addr) != nil || addr == "" {
		return "", fmt.Errorf("join target %s did not report its Raft address (HTTP %d)", target, resp.StatusCode)
	}
	return addr, nil
}

// servesHTTP reports whether addr answers HTTP, which explains a failed
// cluster call: the operator gave an HTTP address where a Raft one belongs.
func servesHTTP(ctx context.Context, hc *http.Client, addr string) bool {
	if hc == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		return false
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

// Joiner joins an existing cluster through a list of targets.
type Joiner struct {
	Client   *Client
	HTTP     *http.Client
	Self     Self
	Attempts int
	Interval time.Duration
	Logger   *slog.Logger
}

// Join tries every target in order, Attempts times with Interval between
// attempts, and returns the target that accepted the join.
func (j *Joiner) Join(ctx context.Context, targets []string) (string, error) {
	var lastErr error
	attempts := max(j.Attempts, 1)
	for a := 0; a < attempts; a++ {
		if a > 0 {
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(j.Interval):
			}
		}
		others := 0
		for _, t := range targets {
			via, err := j.try(ctx, t)
			if errors.Is(err, ErrJoinSelf) {
				continue
			}
			others++
			if err == nil {
				return via, nil
			}
			lastErr = err
			if errors.Is(err, errNotCluster) || errors.Is(err, ErrUnauthorized) {
				return "", fmt.Errorf("join address %s: %w", t, err)
			}
		}
		if others == 0 {
			return "", ErrJoinSelf
		}
		j.Logger.Warn("join attempt failed", "attempt", a+1, "of", attempts, "error", lastErr)
	}
	return "", fmt.Errorf("failed to join cluster through %s after %d attempts: %w", strings.Join(targets, ","), attempts, lastErr)
}

// try sends one join through target.
func (j *Joiner) try(ctx context.Context, target string) (string, error) {
	addr, err := ResolveTarget(ctx, j.HTTP, target)
	if err != nil {
		return "", err
	}
	if addr == j.Self.Addr {
		return "", ErrJoinSelf
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := j.Client.Join(cctx, addr, j.Self.ID, j.Self.Addr, j.Self.Voter, j.Self.clusterID()); err != nil {
		if !errors.Is(err, command.ErrNotLeader) && !errors.Is(err, command.ErrClusterMismatch) && !errors.Is(err, ErrUnauthorized) && servesHTTP(ctx, j.HTTP, addr) {
			return "", fmt.Errorf("%w: %s speaks HTTP: give the Raft address (-raft-adv-addr) of that node, or http://%s", errNotCluster, addr, addr)
		}
		return "", fmt.Errorf("join through %s: %w", target, err)
	}
	j.Logger.Info("joined cluster", "through", target)
	return target, nil
}
