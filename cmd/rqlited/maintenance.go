package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/rqlited/rqlited/command"
)

// maintenanceStore is what periodic maintenance needs of the store.
type maintenanceStore interface {
	IsLeader() bool
	Execute(ctx context.Context, req *command.Request) ([]command.Result, uint64, error)
}

// maintenanceTask is one statement run every interval (-auto-vacuum-int,
// -auto-optimize-int).
type maintenanceTask struct {
	flag     string
	sql      string
	interval time.Duration
}

// maintenanceTasks returns the tasks the configuration enables.
func maintenanceTasks(cfg *Config) []maintenanceTask {
	var tasks []maintenanceTask
	if cfg.AutoVacuumInterval > 0 {
		tasks = append(tasks, maintenanceTask{flag: "-auto-vacuum-int", sql: "VACUUM", interval: cfg.AutoVacuumInterval})
	}
	if cfg.AutoOptimizeInterval > 0 {
		tasks = append(tasks, maintenanceTask{flag: "-auto-optimize-int", sql: "PRAGMA optimize", interval: cfg.AutoOptimizeInterval})
	}
	return tasks
}

// maintenance runs each task's statement every interval through the Raft
// log, so every node applies it at the same point of the log, and only
// while this node is the leader: followers skip the tick. Close stops it.
type maintenance struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startMaintenance starts one goroutine per task. timeout bounds each
// statement (the Raft apply timeout).
func startMaintenance(str maintenanceStore, tasks []maintenanceTask, timeout time.Duration, logger *slog.Logger) *maintenance {
	ctx, cancel := context.WithCancel(context.Background())
	m := &maintenance{cancel: cancel}
	for _, t := range tasks {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			tick := time.NewTicker(t.interval)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				if !str.IsLeader() {
					continue
				}
				if err := runMaintenance(ctx, str, t, timeout); err != nil && ctx.Err() == nil {
					logger.Error("periodic maintenance failed", "flag", t.flag, "statement", t.sql, "error", err)
				} else if err == nil {
					logger.Info("periodic maintenance done", "flag", t.flag, "statement", t.sql)
				}
			}
		}()
	}
	return m
}

// runMaintenance executes the task's statement once through the log.
func runMaintenance(ctx context.Context, str maintenanceStore, t maintenanceTask, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, _, err := str.Execute(ctx, &command.Request{Statements: []command.Statement{{SQL: t.sql}}})
	if err != nil {
		return fmt.Errorf("execute %s: %w", t.sql, err)
	}
	for _, r := range res {
		if r.Error != "" {
			return fmt.Errorf("execute %s: %w", t.sql, errors.New(r.Error))
		}
	}
	return nil
}

// Close stops the goroutines and waits for them; a statement being applied
// is abandoned (the log entry, if committed, is applied regardless).
func (m *maintenance) Close() {
	m.cancel()
	m.wg.Wait()
}
