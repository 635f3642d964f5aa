// Command rqlited runs one node of a distributed SQLite database: SQLite
// under Raft, behind rqlite's HTTP API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"github.com/rqlited/rqlited/command"
	"github.com/rqlited/rqlited/db"
)

// exitBootTimeout is the exit status when no cluster was formed or joined
// within -bootstrap-expect-timeout, so supervisors can tell it apart from a
// configuration error (status 1).
const exitBootTimeout = 3

// exitFatal is the exit status of a node that stopped because it could not
// apply a committed write as the other nodes did (disk full, I/O error).
const exitFatal = 4

// Build information, set with -ldflags "-X main.version=...".
var (
	version   = "v0.1.0-dev"
	commit    = "unknown"
	buildTime = "unknown"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the exit, so tests can call it.
func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr, os.Getenv)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "rqlited: %v\n", err)
		return 1
	}
	if cfg.ShowVersion {
		fmt.Fprintf(stdout, "rqlited %s (commit %s, built %s) %s %s/%s, SQLite %s\n",
			version, commit, buildTime, runtime.Version(), runtime.GOOS, runtime.GOARCH, db.Version())
		return 0
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: parseLevel(cfg.LogLevel)}))
	for _, w := range cfg.Warnings {
		logger.Warn(w)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, logger, stderr); err != nil {
		logger.Error("rqlited failed", "error", err)
		fmt.Fprintf(stderr, "rqlited: %v\n", err)
		if errors.Is(err, command.ErrBootTimeout) {
			return exitBootTimeout
		}
		return 1
	}
	return 0
}

func parseLevel(s string) slog.Level {
	var l slog.Level
	l.UnmarshalText([]byte(strings.ToUpper(s)))
	return l
}

// serve runs the node until ctx ends: it builds the node from the
// configuration (newNode), gets it into its cluster and serves (run), then
// closes it in reverse order of start-up (Close). Close errors that do not
// fail the node are logged; the store's are returned with run's error.
func serve(ctx context.Context, cfg *Config, logger *slog.Logger, stderr io.Writer) error {
	n, err := newNode(cfg, logger, stderr)
	if err == nil {
		err = n.run(ctx)
	}
	if closeErr := logShutdownWarnings(n.Close(), logger); closeErr != nil {
		err = errors.Join(err, closeErr)
	}
	return err
}
