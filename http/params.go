package http

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/rqlited/rqlited/command"
)

// params holds the parsed query string of a request. Presence-only flags
// are true when the key appears, whatever its value, as in rqlite.
type params struct {
	v url.Values
	// body is the request body, read once so a forwarded request can send
	// it again.
	body []byte

	pretty, timings, transaction, associative, blobArray  bool
	queue, wait, raftIndex, redirect, noLeader, nonVoters bool
	freshnessStrict, vacuum, compress, sync               bool
	qualifyColumns                                        bool

	level               command.Level
	freshness           time.Duration
	timeout             time.Duration
	dbTimeout           time.Duration
	linearizableTimeout time.Duration
	retries             int
	trailingLogs        uint64
}

// parseParams validates the query string. Its errors are the 400 texts
// rqlite returns.
func parseParams(raw string) (*params, error) {
	v, err := url.ParseQuery(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid query string: %w", err)
	}
	p := &params{v: v, timeout: 30 * time.Second, linearizableTimeout: 10 * time.Second}
	has := func(k string) bool { _, ok := v[k]; return ok }
	p.pretty, p.timings, p.transaction = has("pretty"), has("timings"), has("transaction")
	p.associative, p.blobArray = has("associative"), has("blob_array")
	p.queue, p.wait, p.raftIndex, p.redirect = has("queue"), has("wait"), has("raft_index"), has("redirect")
	p.noLeader, p.nonVoters, p.freshnessStrict = has("noleader"), has("nonvoters"), has("freshness_strict")
	p.vacuum, p.compress, p.sync = has("vacuum"), has("compress"), has("sync")
	p.qualifyColumns = has("qualify_columns")
	p.level = command.ParseLevel(v.Get("level"))

	for _, d := range []struct {
		key string
		dst *time.Duration
	}{
		{"timeout", &p.timeout}, {"freshness", &p.freshness}, {"db_timeout", &p.dbTimeout},
		{"linearizable_timeout", &p.linearizableTimeout},
	} {
		if !has(d.key) {
			continue
		}
		x, err := time.ParseDuration(v.Get(d.key))
		if err != nil || x < 0 {
			return nil, fmt.Errorf("%s is not a valid duration", d.key)
		}
		*d.dst = x
	}
	if has("retries") {
		n, err := strconv.Atoi(v.Get("retries"))
		if err != nil || n < 0 {
			return nil, errors.New("retries is not a valid integer")
		}
		p.retries = n
	}
	if has("trailing_logs") {
		n, err := strconv.ParseUint(v.Get("trailing_logs"), 10, 64)
		if err != nil {
			return nil, errors.New("trailing_logs is not a valid integer")
		}
		p.trailingLogs = n
	}
	if p.freshnessStrict && !has("freshness") {
		return nil, errors.New("freshness_strict requires freshness")
	}
	return p, nil
}

func (p *params) queryOptions() command.QueryOptions {
	return command.QueryOptions{
		Level:               p.level,
		Freshness:           p.freshness,
		FreshnessStrict:     p.freshnessStrict,
		DBTimeout:           p.dbTimeout,
		LinearizableTimeout: p.linearizableTimeout,
	}
}

func (p *params) format(request bool) resultFormat {
	return resultFormat{associative: p.associative, blobArray: p.blobArray, timings: p.timings, request: request}
}
