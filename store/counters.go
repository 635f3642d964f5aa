package store

import (
	"expvar"
	"time"

	"github.com/rqlited/rqlited/command"
)

// Counters published at /debug/vars under rqlite's names. expvar's registry
// is global, so the maps are created once per process; every Store in the
// process adds to the same counters, as in rqlite.
var (
	storeVars    = newVarMap("store", storeVarNames)
	dbVars       = newVarMap("db", dbVarNames)
	snapshotVars = newVarMap("snapshot", snapshotVarNames)
)

// Keys of the "store" map (rqlite's store package). Counters for events
// rqlited does not have (WAL and incremental snapshots, auto-vacuum,
// compressed commands, CDC, provider checks) stay 0.
var storeVarNames = []string{
	"num_snapshots", "num_snapshots_failed", "num_user_snapshots", "num_user_snapshots_failed",
	"num_wal_snapshots", "num_wal_snapshots_failed", "num_snapshots_full", "num_snapshots_incremental",
	"num_auto_vacuums", "num_auto_vacuums_failed", "auto_vacuum_duration",
	"num_auto_optimizes", "num_auto_optimizes_failed", "auto_optimize_duration",
	"num_boots", "num_backups", "num_loads", "num_restores", "num_restores_failed",
	"num_restores_start", "num_restores_start_skipped", "num_auto_restores",
	"num_auto_restores_skipped", "num_auto_restores_failed", "num_recoveries",
	"num_provider_checks", "num_provider_provides", "num_provider_provides_fail",
	"num_uncompressed_commands", "num_compressed_commands", "num_joins", "num_ignored_joins",
	"num_removed_before_joins", "num_db_stats_errors", "num_verify_leader", "num_verify_leader_failed",
	"verify_leader_duration", "fsm_apply_duration_us", "snapshot_create_duration",
	"snapshot_sync_duration", "num_snapshot_persists", "num_snapshot_persists_failed",
	"snapshot_persist_duration", "snapshot_crc32_create_duration", "leader_changes_observed",
	"leader_changes_dropped", "failed_heartbeat_observed", "nodes_reaped_ok", "nodes_reaped_failed",
}

// Keys of the "db" map (rqlite's db package). Only statements applied from
// the log are counted (countApplied); reads served from the read-only pool
// and the checkpoint, hook and backup counters stay 0.
var dbVarNames = []string{
	"open_duration_ms", "checkpoints", "checkpoint_errors", "checkpointed_moves",
	"checkpoint_duration_ms", "create_compacted_wal_duration_ms", "precompact_wal_size",
	"compacted_wal_size", "checkpoint_total", "checkpoint_busy_errors", "checkpoint_invariant_errors",
	"checkpoint_partial", "checkpoint_wal_truncated", "executions", "execution_errors",
	"executions_force_queries", "queries", "query_errors", "requests", "execute_transactions",
	"query_transactions", "request_transactions", "backup_step_errors", "backup_step_dones",
	"backup_sleeps", "preupdates", "preupdates_errors", "preupdates_callback_errors",
	"update_hooks", "update_hooks_callback_errors", "update_hooks_errors", "commit_hooks",
	"dropped_cdc_events",
}

// Keys of the "snapshot" map (rqlite's snapshot store).
var snapshotVarNames = []string{
	"latest_persist_size", "persist_duration_ms", "sink_full_total", "sink_incremental_total",
	"sink_errors", "sink_full_crc32_duration_ms", "auto_reap_duration_ms", "reap_execute_duration_ms",
	"reap_total", "reap_errors", "reap_snapshots", "reap_wals", "reap_plan_recovered",
	"upgrade_ok", "upgrade_fail",
}

// newVarMap publishes a map named name with every key at 0.
func newVarMap(name string, keys []string) *expvar.Map {
	m := expvar.NewMap(name)
	for _, k := range keys {
		m.Add(k, 0)
	}
	return m
}

// setDuration records d in the map's key, in the unit the key names
// (milliseconds unless it ends in _us).
func setDuration(m *expvar.Map, key string, d time.Duration) {
	v := d.Milliseconds()
	if len(key) > 3 && key[len(key)-3:] == "_us" {
		v = d.Microseconds()
	}
	if i, ok := m.Get(key).(*expvar.Int); ok {
		i.Set(v)
	}
}

// varValue returns the value of an integer counter of m.
func varValue(m *expvar.Map, key string) int64 {
	if i, ok := m.Get(key).(*expvar.Int); ok {
		return i.Value()
	}
	return 0
}

// countOutcome adds one to ok when err is nil, and to failed otherwise.
func countOutcome(m *expvar.Map, ok, failed string, err error) {
	if err != nil {
		m.Add(failed, 1)
		return
	}
	m.Add(ok, 1)
}

// countApplied counts a request applied from the log the way rqlite's db
// layer counts it: statements, transactions and failed statements per kind,
// and how long the apply took.
func countApplied(t command.Type, req *command.Request, res []command.Result, d time.Duration) {
	setDuration(storeVars, "fsm_apply_duration_us", d)
	total, tx, failed := "executions", "execute_transactions", "execution_errors"
	switch t {
	case command.TypeQuery:
		total, tx, failed = "queries", "query_transactions", "query_errors"
	case command.TypeRequest:
		total, tx = "requests", "request_transactions"
	}
	dbVars.Add(total, int64(len(req.Statements)))
	if req.Transaction {
		dbVars.Add(tx, 1)
	}
	for i := range res {
		if res[i].Error != "" {
			dbVars.Add(failed, 1)
		}
	}
}

// countPersist counts a snapshot written to the snapshot store: every
// rqlited snapshot is a full copy of the database.
func countPersist(size int64, d time.Duration, err error) {
	countOutcome(storeVars, "num_snapshot_persists", "num_snapshot_persists_failed", err)
	if err != nil {
		snapshotVars.Add("sink_errors", 1)
		return
	}
	storeVars.Add("num_snapshots_full", 1)
	setDuration(storeVars, "snapshot_persist_duration", d)
	snapshotVars.Add("sink_full_total", 1)
	setDuration(snapshotVars, "persist_duration_ms", d)
	if i, ok := snapshotVars.Get("latest_persist_size").(*expvar.Int); ok {
		i.Set(size)
	}
}
