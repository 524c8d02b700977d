//! Blocking database access (diesel; SQLite or PostgreSQL). Only the Writer calls these at run
//! time; tests and benchmarks use them to prepare a database directly. The statements are in
//! `sql/ops.rs`, compiled for both backends; this module opens databases and holds the types.
//! The free functions re-exported here are SQLite's (what tests and benchmarks prepare).
//!
//! Layout: `probes` is an append-only table without indexes (about 30 bytes a probe); every
//! insert also updates the hourly `rollups` and the `latest` pointer of each monitor in the
//! same transaction, so queries and start-up never scan raw history.

use std::collections::HashMap;
use std::path::Path;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::alerts::{DeliveryUpdate, OutboxRow};
use super::rollup::Agg;
use super::schema::{meta, rollups};
use super::sketch::Sketch;
pub use super::sql::sqlite::{
    insert, insert_staged, latest, latest_rows, monitor_ids, monitors, ping, purge, purge_step, red_runs_between,
    rollups_between, rollups_since, samples,
};
pub use super::sql::{self as sql, Db};
use crate::alert::engine::Decided;
use crate::config::{Database, MonitorKey};
use crate::probe::Reason;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");
pub const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations_postgres");

/// Probes reach the store out of time order by at most a probe's timeout (5 min) plus a batch;
/// purging looks this far past its cutoff so no old row is left behind.
pub const MAX_DISORDER_SECS: i64 = 900;

/// The node a database made before nodes existed holds its history under (SQLite's only node,
/// until the daemon names it), and the node test helpers write as.
pub const LOCAL_NODE: i32 = 1;

/// Which node writes, and its write counter for this batch (see `rollups.seq`).
#[derive(Debug, Clone, Copy)]
pub struct Writing {
    pub node: i32,
    pub seq: i64,
}

/// Where a page of exported probes starts: after this id (probes in id order, SQLite's), or
/// after this (time, id) (probes in time order, PostgreSQL's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportAfter {
    Start,
    Id(i64),
    Time(i64, i64),
}

/// An hourly rollup as stored: (monitor, node, hour, aggregate).
pub type RollupEntry = (i32, i32, i64, Agg);

/// What one writer batch holds (see `sql::ops::write_batch`).
pub struct Batch<'a> {
    pub rows: Vec<(MonitorKey, Row)>,
    /// Monitors to give ids to first.
    pub wanted: Vec<MonitorKey>,
    pub known: &'a HashMap<MonitorKey, i32>,
    pub cache: &'a WriteCache,
    pub decided: Option<&'a Decided>,
    pub deliveries: &'a [DeliveryUpdate],
    pub now: i64,
    pub writing: Writing,
}

pub struct BatchWritten {
    pub rows: Vec<Row>,
    pub ids: Vec<(MonitorKey, i32)>,
    pub outbox: Vec<OutboxRow>,
    pub staged: Staged,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {message}")]
    Open { path: String, message: String },
    #[error("{0}")]
    Other(String),
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
}

/// Opens (creating if needed) the database at `path`: WAL, `synchronous=NORMAL`, a busy
/// timeout, every embedded migration applied (and the rollups of migrated rows computed).
pub fn open(path: &Path) -> Result<SqliteConnection, StoreError> {
    let shown = path.display().to_string();
    let fail = |message: String| StoreError::Open { path: shown.clone(), message };
    let text = path.to_str().ok_or_else(|| fail("path is not valid UTF-8".to_string()))?;
    if text.starts_with("file:") || text == ":memory:" || text.is_empty() {
        return Err(fail("must be a file path (not a URI or :memory:)".to_string()));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            return Err(fail(format!("directory {} does not exist", parent.display())));
        }
    }
    let mut conn = SqliteConnection::establish(text).map_err(|e| fail(e.to_string()))?;
    conn.batch_execute(
        // The busy timeout first: switching to WAL waits for another process's lock too.
        "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
    )
    .map_err(|e| fail(format!("setting up: {e}")))?;
    conn.run_pending_migrations(MIGRATIONS).map_err(|e| fail(format!("migrating: {e}")))?;
    let rebuild: Option<String> =
        meta::table.filter(meta::key.eq("rebuild_rollups")).select(meta::value).first(&mut conn).optional()?;
    if rebuild.is_some() {
        super::sql::sqlite::rebuild_rollups(&mut conn)?;
    }
    Ok(conn)
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    pub monitor_id: i32,
    pub ts: i64,
    pub status: i16,
    pub latency_ms: i32,
    pub reason: String,
    pub http_code: i32,
    pub detail: Option<String>,
    pub connect_ms: Option<i32>,
    pub ttfb_ms: Option<i32>,
    pub ttft_ms: Option<i32>,
    pub tokens_per_s: Option<f64>,
    pub model: Option<String>,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    /// What the probe cost, nano-USD (1e-9 USD); `None` without a price or a reported usage.
    pub cost_nanos: Option<i64>,
    /// Made inside a maintenance window.
    pub maintenance: bool,
    /// The node that made it (set on rows read back; a batch is written as the writer's node).
    pub node_id: i32,
    /// The monitor's interval on that node, seconds (kept with the latest probe only).
    pub interval_s: Option<i32>,
}

impl Row {
    /// The stored code of its reason (an unknown name counts as `server_error`).
    pub fn reason_code(&self) -> i16 {
        Reason::parse(&self.reason).unwrap_or(Reason::ServerError).code()
    }

    /// The status the aggregates count this probe under.
    pub fn agg_status(&self) -> i16 {
        if self.maintenance {
            super::rollup::MAINTENANCE
        } else {
            self.status
        }
    }
}

/// What the writer remembers between batches, so a batch is writes only: the recent hourly
/// rollups as stored (no read before each update) and model ids. It must only ever hold what
/// the database holds: it is updated after a commit, and cleared by anything else that changes
/// those tables (a purge).
#[derive(Debug, Default)]
pub struct WriteCache {
    pub(crate) rollups: HashMap<(i32, i64), Agg>,
    newest_hour: i64,
    pub(crate) models: HashMap<String, i32>,
    /// Each monitor's run of red probes still open on this node (`None`: none), as last
    /// written: a batch reads the database only for monitors it has not seen yet.
    pub(crate) runs: HashMap<i32, Option<super::incidents::Run>>,
}

impl WriteCache {
    /// Hours before the newest minus this are let go (late results read theirs back).
    const KEEP_HOURS: i64 = 2;

    pub fn clear(&mut self) {
        self.rollups.clear();
        self.models.clear();
        self.runs.clear();
    }

    /// What a committed batch wrote (only after the outermost transaction committed).
    pub fn apply(&mut self, Staged { rollups, models, runs }: Staged) {
        let newest = rollups.iter().map(|((_, hour), _)| *hour).max().unwrap_or(i64::MIN);
        self.rollups.extend(rollups);
        self.models.extend(models);
        self.runs.extend(runs);
        if newest > self.newest_hour {
            self.newest_hour = newest;
            let keep_from = newest - Self::KEEP_HOURS;
            self.rollups.retain(|(_, hour), _| *hour >= keep_from);
        }
        // An upstream inventing a model name per reply must not grow this without bound.
        if self.models.len() > 10_000 {
            self.models.clear();
        }
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = rollups)]
pub(crate) struct RollupRow {
    monitor_id: i32,
    node_id: i32,
    hour: i64,
    green: i64,
    yellow: i64,
    red: i64,
    latency_sum: i64,
    latency_sketch: Vec<u8>,
    ttft_sketch: Vec<u8>,
    maintenance: i64,
    pub(crate) seq: i64,
    reasons: String,
    cost_nanos: Option<i64>,
}

impl RollupRow {
    pub(crate) fn entry(&self) -> RollupEntry {
        (self.monitor_id, self.node_id, self.hour, self.agg())
    }

    pub(crate) fn agg(&self) -> Agg {
        Agg {
            green: self.green.max(0) as u64,
            yellow: self.yellow.max(0) as u64,
            red: self.red.max(0) as u64,
            maintenance: self.maintenance.max(0) as u64,
            latency_sum: self.latency_sum.max(0) as u64,
            latency: Sketch::decode(&self.latency_sketch),
            ttft: Sketch::decode(&self.ttft_sketch),
            reasons: super::rollup::Reasons::decode(&self.reasons),
            cost_nanos: self.cost_nanos.map(|c| c.max(0) as u64),
        }
    }
}

#[derive(Debug, Default)]
pub struct Staged {
    pub(crate) rollups: Vec<((i32, i64), Agg)>,
    pub(crate) models: HashMap<String, i32>,
    /// Each monitor's open run of red probes after the batch.
    pub(crate) runs: Vec<(i32, Option<super::incidents::Run>)>,
}

pub(crate) type ProbeColumns = (
    i32,
    i64,
    i16,
    i32,
    i16,
    i32,
    Option<i32>,
    Option<i32>,
    Option<i32>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<i32>,
    i16,
    Option<i64>,
);

pub(crate) fn row_of(c: ProbeColumns) -> Row {
    let (
        monitor_id,
        ts,
        status,
        latency_ms,
        reason,
        http_code,
        ttfb_ms,
        ttft_ms,
        tps_x10,
        model,
        prompt,
        completion,
        detail,
        connect_ms,
        maintenance,
        cost_nanos,
    ) = c;
    Row {
        monitor_id,
        ts,
        status,
        latency_ms,
        reason: Reason::from_code(reason).unwrap_or(Reason::ServerError).as_str().to_string(),
        http_code,
        detail,
        connect_ms,
        ttfb_ms,
        ttft_ms,
        tokens_per_s: tps_x10.map(|t| f64::from(t) / 10.0),
        model,
        prompt_tokens: prompt,
        completion_tokens: completion,
        cost_nanos,
        maintenance: maintenance != 0,
        node_id: 0,
        interval_s: None,
    }
}

/// Opens the configured database: a SQLite file ([`open`]) or a PostgreSQL server
/// ([`open_postgres`]).
pub fn connect(database: &Database, node: &str) -> Result<Db, StoreError> {
    match database {
        Database::Sqlite(path) => open(path).map(Db::Sqlite),
        Database::Postgres(url) => open_postgres(url, node).map(Db::Pg),
    }
}

/// Connects to PostgreSQL at `url` as node `node` (its `application_name` is
/// `llm-monitor/<node>`), creating the schema in an empty database. Errors never show the
/// password.
pub fn open_postgres(url: &crate::config::PgUrl, node: &str) -> Result<diesel::PgConnection, StoreError> {
    let fail = |message: String| StoreError::Open { path: url.shown(), message: url.redact(&message) };
    let mut conn = diesel::PgConnection::establish(&url.expose()).map_err(|e| fail(e.to_string()))?;
    let name = format!("llm-monitor/{node}").replace('\'', "''");
    conn.batch_execute(&format!(
        "SET application_name = '{name}'; SET statement_timeout = '60s'; SET lock_timeout = '10s';"
    ))
    .map_err(|e| fail(format!("setting up: {e}")))?;
    // Two nodes starting at once must not both create the schema.
    // Waiting as long as it takes: the node holding it may be computing what a migration left
    // (rollups and runs rebuilt from every probe), which outlasts the usual timeouts.
    conn.batch_execute(
        "SET lock_timeout = 0; SET statement_timeout = 0; SELECT pg_advisory_lock(7406350612); \
         SET lock_timeout = '10s'; SET statement_timeout = '60s';",
    )
    .map_err(|e| fail(format!("migrating: {e}")))?;
    let migrated = conn.run_pending_migrations(PG_MIGRATIONS).map(drop).map_err(|e| fail(format!("migrating: {e}")));
    // What a migration left to compute in Rust, done once, by the node holding the lock.
    let migrated = migrated.and_then(|()| {
        let rebuild: Option<String> = meta::table
            .filter(meta::key.eq("rebuild_rollups"))
            .select(meta::value)
            .first(&mut conn)
            .optional()
            .map_err(|e| fail(format!("migrating: {e}")))?;
        match rebuild {
            Some(_) => super::sql::pg::rebuild_rollups(&mut conn).map_err(|e| fail(format!("migrating: {e}"))),
            None => Ok(()),
        }
    });
    let unlocked = conn.batch_execute("SELECT pg_advisory_unlock(7406350612)");
    migrated?;
    unlocked.map_err(|e| fail(format!("migrating: {e}")))?;
    Ok(conn)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeProgress {
    pub deleted: usize,
    /// Where the next step starts; `None` when the purge is complete.
    pub next: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::super::rollup::History;
    use super::super::schema::probes;
    use super::super::timeline::{build, Period};
    use super::*;

    fn row(monitor_id: i32, ts: i64, status: i16, latency_ms: i32) -> Row {
        Row { monitor_id, ts, status, latency_ms, reason: "ok".into(), http_code: 200, ..Row::default() }
    }

    /// Runs of red probes and per-hour reasons kept batch by batch are what a rebuild from the
    /// raw probes (after a migration) computes; purging drops the runs that ended before it.
    #[test]
    fn red_runs_and_reasons_kept_live_equal_a_rebuild_from_raw_probes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut conn = open(&path).unwrap();
        let ids =
            monitor_ids(&mut conn, &[MonitorKey::new("a", "chat", ""), MonitorKey::new("b", "chat", "")]).unwrap();
        let t0 = 1_735_516_800;
        let mut rows = Vec::new();
        for i in 0..600i64 {
            for (n, id) in ids.iter().enumerate() {
                // Monitor a: red runs of 1..=4 probes now and then; b: slow and rate-limited spells.
                let status = match (i + n as i64 * 7) % 40 {
                    3 if n == 0 => 0,
                    10..=11 if n == 0 => 0,
                    20..=23 if n == 0 => 0,
                    30..=32 => 2,
                    _ => 1,
                };
                let reason = match (status, i % 3) {
                    (0, 0) => "timeout",
                    (0, _) => "server_error",
                    (2, 0) => "rate_limited",
                    (2, _) => "slow",
                    _ => "ok",
                };
                let mut r = row(*id, t0 + i * 60 + n as i64, status, 100);
                r.reason = reason.into();
                r.maintenance = (300..310).contains(&i);
                // Monitor b has a price; a few of its replies (red ones too) report no usage.
                r.cost_nanos = (n == 1 && i % 9 != 0).then_some(40_000 + i);
                rows.push(r);
            }
        }
        // In batches of uneven size, as the writer makes them.
        for chunk in rows.chunks(37) {
            insert(&mut conn, chunk).unwrap();
        }
        let all = |conn: &mut SqliteConnection| {
            let mut runs = red_runs_between(conn, (0, i64::MAX), 1, i64::MAX).unwrap();
            runs.reverse();
            runs
        };
        let live_runs = all(&mut conn);
        let live_rollups = rollups_between(&mut conn, 0, i64::MAX).unwrap();
        assert!(live_runs.len() > 30, "{}", live_runs.len());
        assert!(live_runs.iter().any(|r| r.reds == 4) && live_runs.iter().all(|r| r.monitor_id == ids[0]));
        assert!(live_rollups.iter().any(|(_, _, _, agg)| agg.reasons.named().contains_key("rate_limited")));
        let reds: u64 = live_rollups.iter().map(|(_, _, _, agg)| agg.red).sum();
        let counted: u64 = live_rollups
            .iter()
            .map(|(_, _, _, agg)| {
                agg.reasons.named().get("timeout").copied().unwrap_or(0)
                    + agg.reasons.named().get("server_error").copied().unwrap_or(0)
            })
            .sum();
        assert_eq!(reds, counted, "every red probe's reason is counted once");
        let cost = |v: &[RollupEntry], id: i32| -> Option<u64> {
            v.iter().filter(|(m, ..)| *m == id).filter_map(|(.., a)| a.cost_nanos).reduce(|a, b| a + b)
        };
        let expected: i64 = rows.iter().filter_map(|r| r.cost_nanos).sum();
        assert_eq!(cost(&live_rollups, ids[1]), Some(expected as u64), "maintenance probes cost too");
        assert_eq!(cost(&live_rollups, ids[0]), None, "no price: no cost, not a cost of 0");

        conn.batch_execute("DELETE FROM red_runs; UPDATE rollups SET reasons = '', cost_nanos = NULL; INSERT INTO meta (key, value) VALUES ('rebuild_rollups', '1');").unwrap();
        drop(conn);
        let mut conn = open(&path).unwrap();
        assert_eq!(all(&mut conn), live_runs);
        let rebuilt = rollups_between(&mut conn, 0, i64::MAX).unwrap();
        let reasons =
            |v: &[RollupEntry]| v.iter().map(|(m, n, h, a)| (*m, *n, *h, a.reasons.encode())).collect::<Vec<_>>();
        assert_eq!(reasons(&rebuilt), reasons(&live_rollups));
        let costs = |v: &[RollupEntry]| v.iter().map(|(m, n, h, a)| (*m, *n, *h, a.cost_nanos)).collect::<Vec<_>>();
        assert_eq!(costs(&rebuilt), costs(&live_rollups));

        // Purging the first half keeps only the runs that end after the cutoff.
        let cutoff = t0 + 300 * 60;
        purge(&mut conn, cutoff).unwrap();
        let left = all(&mut conn);
        let long = red_runs_between(&mut conn, (0, i64::MAX), 3, 2).unwrap();
        assert!(long.len() == 2 && long[0].start > long[1].start && long.iter().all(|r| r.reds >= 3), "{long:?}");
        let hour_cut = cutoff / 3_600 * 3_600;
        assert_eq!(left, live_runs.iter().filter(|r| r.end.is_none_or(|e| e >= hour_cut)).cloned().collect::<Vec<_>>());
    }

    #[test]
    fn roundtrip_ids_insert_latest_samples_purge() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open(&dir.path().join("t.db")).unwrap();
        let a = MonitorKey::new("A", "chat", "");
        let ids = monitor_ids(&mut conn, &[a.clone(), MonitorKey::new("b", "chat", "vip")]).unwrap();
        // Same key in another case: same id.
        assert_eq!(monitor_ids(&mut conn, &[MonitorKey::new("a", "CHAT", "")]).unwrap(), vec![ids[0]]);
        assert_ne!(ids[0], ids[1]);

        let now = 1_735_559_160;
        let window = Period::Day.window(now);
        let rows = vec![
            row(ids[0], now - 10, 1, 100),
            row(ids[0], now - 3_600, 2, 700),
            row(ids[0], window.first_start - 1, 1, 1),
            row(ids[0], now - 5, 0, 9_000),
            row(ids[1], now, 1, 50),
        ];
        insert(&mut conn, &rows).unwrap();
        assert_eq!(latest(&mut conn, ids[0]).unwrap().unwrap().ts, now - 5);
        // The latest is the last written: after the clock steps back, it has the older time.
        insert(&mut conn, &[row(ids[1], now - 7_200, 0, 1)]).unwrap();
        assert_eq!(latest(&mut conn, ids[1]).unwrap().unwrap().ts, now - 7_200);
        let mut got = samples(&mut conn, ids[0], &window).unwrap();
        got.sort_by_key(|s| s.ts);
        let expected: Vec<(i64, i16, i64)> = vec![(now - 3_600, 2, 700), (now - 10, 1, 100), (now - 5, 0, 9_000)];
        assert_eq!(got.iter().map(|s| (s.ts, s.status, s.latency_ms)).collect::<Vec<_>>(), expected);
        let full = Row {
            ttft_ms: Some(120),
            tokens_per_s: Some(42.5),
            model: Some("m-1".into()),
            completion_tokens: Some(7),
            cost_nanos: Some(1_234),
            reason: "wrong_answer".into(),
            detail: Some("asked for 3".into()),
            ..row(ids[1], now + 1, 0, 60)
        };
        insert(&mut conn, std::slice::from_ref(&full)).unwrap();
        assert_eq!(latest(&mut conn, ids[1]).unwrap().unwrap(), Row { node_id: LOCAL_NODE, ..full });
    }

    fn timeline_from_rollups(conn: &mut SqliteConnection, monitor: i32, period: Period, now: i64) -> Vec<String> {
        let mut history = History::default();
        for (m, _, hour, agg) in rollups_since(conn, 0).unwrap() {
            if m == monitor {
                history.add_hour(hour, &agg, now);
            }
        }
        history
            .timeline(period, now, 0.7)
            .0
            .iter()
            .map(|b| format!("{} {:?} {} {}", b.timestamp, b.counts, b.latency, b.status))
            .collect()
    }

    fn timeline_from_raw(conn: &mut SqliteConnection, monitor: i32, period: Period, now: i64) -> Vec<String> {
        let window = period.window(now);
        let raw = samples(conn, monitor, &window).unwrap();
        build(&window, &raw, 0.7)
            .0
            .iter()
            .map(|b| format!("{} {:?} {} {}", b.timestamp, b.counts, b.latency, b.status))
            .collect()
    }

    /// Stored rollups agree with the raw rows across batches, hour and day boundaries, purges
    /// and a reopen of the database.
    #[test]
    fn stored_rollups_agree_with_raw_rows_through_purges_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let mut conn = open(&path).unwrap();
        let ids = monitor_ids(&mut conn, &[MonitorKey::new("a", "b", ""), MonitorKey::new("c", "d", "")]).unwrap();
        let now = 1_735_559_160;
        let mut rows = Vec::new();
        for i in 0..6_000i64 {
            // Every 7 minutes or so over 30 days, a little out of order, both monitors.
            let ts = now - 30 * 86_400 + i * 431 + (i % 5) * 13;
            rows.push(row(ids[(i % 2) as usize], ts, [1, 1, 2, 0][(i % 4) as usize], (i % 900) as i32));
        }
        for batch in rows.chunks(777) {
            insert(&mut conn, batch).unwrap();
        }
        for period in [Period::Day, Period::Week, Period::Month] {
            for id in &ids {
                assert_eq!(
                    timeline_from_rollups(&mut conn, *id, period, now),
                    timeline_from_raw(&mut conn, *id, period, now),
                    "{period:?}"
                );
            }
        }
        // Purge everything older than 10 days, in small steps; the cutoff is mid-hour.
        let cutoff = now - 10 * 86_400 + 1_234;
        let mut from = 0;
        while let Some(next) = purge_step(&mut conn, cutoff, from, 500).unwrap().next {
            from = next;
        }
        let oldest: i64 =
            probes::table.select(diesel::dsl::min(probes::ts)).first::<Option<i64>>(&mut conn).unwrap().unwrap();
        assert!(oldest >= cutoff / 3_600 * 3_600, "a row older than the cutoff survived");
        assert!(oldest < cutoff / 3_600 * 3_600 + 3_600, "rows newer than the cutoff hour went");
        drop(conn);
        let mut conn = open(&path).unwrap();
        for period in [Period::Week, Period::Month] {
            for id in &ids {
                assert_eq!(
                    timeline_from_rollups(&mut conn, *id, period, now),
                    timeline_from_raw(&mut conn, *id, period, now),
                    "{period:?} after purge"
                );
            }
        }
    }

    /// The writer's cache of recent rollups saves the reads, and never makes the stored
    /// rollups differ from the raw rows: not across hours, nor after a transaction that did
    /// not commit (its batch is written again later, and counted once).
    #[test]
    fn the_write_cache_keeps_rollups_equal_to_raw_rows_even_after_a_failed_commit() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open(&dir.path().join("c.db")).unwrap();
        let ids = monitor_ids(&mut conn, &[MonitorKey::new("a", "b", ""), MonitorKey::new("c", "d", "")]).unwrap();
        let now = 1_735_559_160;
        let mut cache = WriteCache::default();
        let batch = |k: i64| -> Vec<Row> {
            (0..40)
                .map(|i| {
                    row(
                        ids[(i % 2) as usize],
                        now - 3 * 3_600 + k * 600 + i * 7,
                        [1, 2, 0][(i % 3) as usize],
                        (k * 40 + i) as i32,
                    )
                })
                .collect()
        };
        let write = |conn: &mut SqliteConnection, rows: &[Row], cache: &mut WriteCache, commit: bool| {
            let staged = conn.transaction(|conn| {
                let staged = insert_staged(conn, rows, cache, Writing { node: LOCAL_NODE, seq: 0 })?;
                if commit {
                    Ok(staged)
                } else {
                    Err(StoreError::Query(diesel::result::Error::RollbackTransaction))
                }
            });
            if let Ok(staged) = staged {
                cache.apply(staged);
            }
        };
        for k in 0..12 {
            write(&mut conn, &batch(k), &mut cache, true);
            if k == 5 {
                // Refused at commit: nothing of it stays, in the database or the cache.
                write(&mut conn, &batch(k + 1), &mut cache, false);
            }
        }
        assert!(!cache.rollups.is_empty(), "the cache was used");
        for id in &ids {
            assert_eq!(
                timeline_from_rollups(&mut conn, *id, Period::Day, now),
                timeline_from_raw(&mut conn, *id, Period::Day, now)
            );
        }
        let stored: i64 = probes::table.count().get_result(&mut conn).unwrap();
        assert_eq!(stored, 12 * 40);
        // The runs of red probes kept through the cache (the refused batch left nothing in it)
        // are the ones the raw probes give.
        assert!(!cache.runs.is_empty(), "the cache was used");
        let kept = red_runs_between(&mut conn, (0, i64::MAX), 1, i64::MAX).unwrap();
        super::super::sql::sqlite::rebuild_rollups(&mut conn).unwrap();
        assert_eq!(red_runs_between(&mut conn, (0, i64::MAX), 1, i64::MAX).unwrap(), kept);
        assert!(kept.len() > 100, "{}", kept.len());
    }

    /// A database from before the compact schema keeps its history: rows move to `probes`,
    /// rollups and latest pointers are computed at the first open.
    #[test]
    fn migrating_an_older_database_keeps_and_rolls_up_its_history() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        conn.run_next_migration(MIGRATIONS).unwrap();
        conn.run_next_migration(MIGRATIONS).unwrap();
        let now = 1_735_559_160i64;
        conn.batch_execute(&format!(
            "INSERT INTO monitors (id, provider, service, channel) VALUES (1, 'a', 'b', '');
             INSERT INTO results (monitor_id, ts, status, latency_ms, reason, http_code, model, tokens_per_s)
             VALUES (1, {}, 1, 100, 'ok', 200, 'm-1', 12.5), (1, {}, 0, 50, 'wrong_answer', 200, 'm-1', NULL),
                    (1, {}, 2, 900, 'slow', 200, NULL, NULL);",
            now - 7_200,
            now - 60,
            now - 3_700
        ))
        .unwrap();
        drop(conn);
        let mut conn = open(&path).unwrap();
        let latest = latest(&mut conn, 1).unwrap().unwrap();
        assert_eq!(
            (latest.ts, latest.reason.as_str(), latest.model.as_deref()),
            (now - 60, "wrong_answer", Some("m-1"))
        );
        assert_eq!(
            timeline_from_rollups(&mut conn, 1, Period::Day, now),
            timeline_from_raw(&mut conn, 1, Period::Day, now)
        );
        let greens: Vec<i64> = rollups::table.select(rollups::green).load(&mut conn).unwrap();
        assert_eq!(greens.iter().sum::<i64>(), 1);
        // The flag is gone: the next open does not rebuild again.
        let flag: Option<String> = meta::table.select(meta::value).first(&mut conn).optional().unwrap();
        assert_eq!(flag, None);
    }

    #[test]
    fn refuses_uris_and_missing_directories() {
        for bad in [":memory:", "file:x.db?mode=ro", "/nonexistent-dir/x.db"] {
            assert!(open(Path::new(bad)).is_err(), "{bad}");
        }
    }
}
