//! Blocking database access (diesel + SQLite). Only the StoreActor calls these at run time;
//! tests and benchmarks use them to prepare a database directly.
//!
//! Layout: `probes` is an append-only table without indexes (about 30 bytes a probe); every
//! insert also updates the hourly `rollups` and the `latest` pointer of each monitor in the
//! same transaction, so queries and start-up never scan raw history.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::rollup::{Agg, HOUR};
use super::schema::{latest, meta, models, monitors, probes, rollups};
use super::sketch::Sketch;
use super::timeline::{Sample, Window};
use crate::config::MonitorKey;
use crate::probe::Reason;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Probes reach the store out of time order by at most a probe's timeout (5 min) plus a batch;
/// purging looks this far past its cutoff so no old row is left behind.
const MAX_DISORDER_SECS: i64 = 900;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {message}")]
    Open { path: String, message: String },
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
        rebuild_rollups(&mut conn)?;
    }
    Ok(conn)
}

/// id, monitor, ts, status, latency, ttft, maintenance.
type RebuildColumns = (i64, i32, i64, i16, i32, Option<i32>, i16);

/// Recomputes every rollup and latest pointer from the raw probes (after a schema migration).
fn rebuild_rollups(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    conn.transaction(|conn| {
        let mut hourly: BTreeMap<(i32, i64), Agg> = BTreeMap::new();
        let mut newest: HashMap<i32, (i64, i64)> = HashMap::new();
        // In slices of the rowid range: memory stays bounded by the aggregates, not the rows.
        let mut after = i64::MIN;
        loop {
            let rows: Vec<RebuildColumns> = probes::table
                .filter(probes::id.gt(after))
                .order(probes::id)
                .limit(100_000)
                .select((
                    probes::id,
                    probes::monitor_id,
                    probes::ts,
                    probes::status,
                    probes::latency_ms,
                    probes::ttft_ms,
                    probes::maintenance,
                ))
                .load(conn)?;
            let Some(last) = rows.last() else { break };
            after = last.0;
            for (rowid, monitor, ts, status, latency, ttft, maintenance) in rows {
                hourly.entry((monitor, ts.div_euclid(HOUR))).or_default().add(
                    if maintenance != 0 { super::rollup::MAINTENANCE } else { status },
                    latency.into(),
                    ttft.map(i64::from),
                );
                let entry = newest.entry(monitor).or_insert((ts, rowid));
                if (ts, rowid) > *entry {
                    *entry = (ts, rowid);
                }
            }
        }
        diesel::delete(rollups::table).execute(conn)?;
        for ((monitor, hour), agg) in &hourly {
            write_rollup(conn, *monitor, *hour, agg)?;
        }
        diesel::delete(latest::table).execute(conn)?;
        for (monitor, (ts, rowid)) in newest {
            diesel::insert_into(latest::table)
                .values((latest::monitor_id.eq(monitor), latest::ts.eq(ts), latest::probe_id.eq(rowid)))
                .execute(conn)?;
        }
        diesel::delete(meta::table.filter(meta::key.eq("rebuild_rollups"))).execute(conn)?;
        log::info!("store: rollups rebuilt for {} monitor-hours", hourly.len());
        Ok(())
    })
}

/// The id of each monitor, inserting the ones the database has not seen yet.
pub fn monitor_ids(conn: &mut SqliteConnection, keys: &[MonitorKey]) -> Result<Vec<i32>, StoreError> {
    conn.transaction(|conn| {
        keys.iter()
            .map(|key| {
                diesel::insert_into(monitors::table)
                    .values((
                        monitors::provider.eq(&key.provider),
                        monitors::service.eq(&key.service),
                        monitors::channel.eq(&key.channel),
                    ))
                    .on_conflict_do_nothing()
                    .execute(conn)?;
                // The columns are COLLATE NOCASE, so this finds the row however it was spelled.
                monitors::table
                    .filter(monitors::provider.eq(&key.provider))
                    .filter(monitors::service.eq(&key.service))
                    .filter(monitors::channel.eq(&key.channel))
                    .select(monitors::id)
                    .first::<i32>(conn)
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .map_err(StoreError::from)
}

/// Every monitor the database knows, with its id.
pub fn monitors(conn: &mut SqliteConnection) -> Result<Vec<(MonitorKey, i32)>, StoreError> {
    let rows: Vec<(i32, String, String, String)> =
        monitors::table.select((monitors::id, monitors::provider, monitors::service, monitors::channel)).load(conn)?;
    Ok(rows.into_iter().map(|(id, p, s, c)| (MonitorKey::new(&p, &s, &c), id)).collect())
}

/// One probe result, as the rest of the daemon speaks of it.
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
    /// Made inside a maintenance window.
    pub maintenance: bool,
}

impl Row {
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
    rollups: HashMap<(i32, i64), Agg>,
    newest_hour: i64,
    models: HashMap<String, i32>,
}

impl WriteCache {
    /// Hours before the newest minus this are let go (late results read theirs back).
    const KEEP_HOURS: i64 = 2;

    pub fn clear(&mut self) {
        self.rollups.clear();
        self.models.clear();
    }

    /// What a committed batch wrote (only after the outermost transaction committed).
    pub fn apply(&mut self, Staged { rollups, models }: Staged) {
        let newest = rollups.iter().map(|((_, hour), _)| *hour).max().unwrap_or(i64::MIN);
        self.rollups.extend(rollups);
        self.models.extend(models);
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

fn model_id(conn: &mut SqliteConnection, name: &str, cache: &mut HashMap<String, i32>) -> QueryResult<i32> {
    if let Some(id) = cache.get(name) {
        return Ok(*id);
    }
    diesel::insert_into(models::table).values(models::name.eq(name)).on_conflict_do_nothing().execute(conn)?;
    let id = models::table.filter(models::name.eq(name)).select(models::id).first(conn)?;
    cache.insert(name.to_string(), id);
    Ok(id)
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = rollups)]
struct RollupRow {
    monitor_id: i32,
    hour: i64,
    green: i64,
    yellow: i64,
    red: i64,
    latency_sum: i64,
    latency_sketch: Vec<u8>,
    ttft_sketch: Vec<u8>,
    maintenance: i64,
}

impl RollupRow {
    fn agg(&self) -> Agg {
        Agg {
            green: self.green.max(0) as u64,
            yellow: self.yellow.max(0) as u64,
            red: self.red.max(0) as u64,
            maintenance: self.maintenance.max(0) as u64,
            latency_sum: self.latency_sum.max(0) as u64,
            latency: Sketch::decode(&self.latency_sketch),
            ttft: Sketch::decode(&self.ttft_sketch),
        }
    }
}

fn read_rollup(conn: &mut SqliteConnection, monitor: i32, hour: i64) -> QueryResult<Option<Agg>> {
    let row: Option<RollupRow> =
        rollups::table.find((monitor, hour)).select(RollupRow::as_select()).first(conn).optional()?;
    Ok(row.map(|r| r.agg()))
}

fn write_rollup(conn: &mut SqliteConnection, monitor: i32, hour: i64, agg: &Agg) -> QueryResult<usize> {
    diesel::replace_into(rollups::table)
        .values((
            rollups::monitor_id.eq(monitor),
            rollups::hour.eq(hour),
            rollups::green.eq(agg.green as i64),
            rollups::yellow.eq(agg.yellow as i64),
            rollups::red.eq(agg.red as i64),
            rollups::latency_sum.eq(agg.latency_sum as i64),
            rollups::latency_sketch.eq(agg.latency.encode()),
            rollups::ttft_sketch.eq(agg.ttft.encode()),
            rollups::maintenance.eq(agg.maintenance as i64),
        ))
        .execute(conn)
}

/// Inserts `rows` in one transaction, with their rollups and latest pointers. `rows` come in
/// the order their probes ended: each monitor's latest is its last row here, whatever its time
/// (after the clock steps back, the current probe has an older time than the one before). They
/// are stored in time order, which purging relies on (give or take 15 minutes, as live probes
/// are); a row much older than those stored before it is purged only once retention has passed
/// since it was written.
pub fn insert(conn: &mut SqliteConnection, rows: &[Row]) -> Result<(), StoreError> {
    insert_staged(conn, rows, &WriteCache::default()).map(drop)
}

/// What a batch wrote that a [`WriteCache`] keeps, to [`WriteCache::apply`] once it committed.
#[derive(Debug, Default)]
pub struct Staged {
    rollups: Vec<((i32, i64), Agg)>,
    models: HashMap<String, i32>,
}

/// [`insert`], with what earlier batches left in `cache`. Every statement is one diesel
/// prepares once per connection and reuses: one INSERT per row, one rollup and one latest
/// pointer per monitor and hour touched. The caller applies the result to `cache` once the
/// outermost transaction has committed (a failed commit must leave the cache as it was).
pub fn insert_staged(conn: &mut SqliteConnection, rows: &[Row], cache: &WriteCache) -> Result<Staged, StoreError> {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| rows[i].ts);
    let last_of: HashMap<i32, usize> = rows.iter().enumerate().map(|(i, r)| (r.monitor_id, i)).collect();
    conn.transaction(|conn| {
        let mut models = HashMap::new();
        let mut newest: HashMap<i32, (i64, i64)> = HashMap::new();
        for &i in &order {
            let row = &rows[i];
            let reason = Reason::parse(&row.reason).unwrap_or(Reason::ServerError).code();
            let model_id = match row.model.as_deref() {
                Some(name) => match cache.models.get(name) {
                    Some(id) => Some(*id),
                    None => Some(model_id(conn, name, &mut models)?),
                },
                None => None,
            };
            let tps_x10 = row.tokens_per_s.map(|t| (t * 10.0).round().clamp(0.0, f64::from(i32::MAX)) as i32);
            let id: i64 = diesel::insert_into(probes::table)
                .values((
                    probes::monitor_id.eq(row.monitor_id),
                    probes::ts.eq(row.ts),
                    probes::status.eq(row.status),
                    probes::latency_ms.eq(row.latency_ms),
                    probes::reason.eq(reason),
                    probes::http_code.eq(row.http_code),
                    probes::ttfb_ms.eq(row.ttfb_ms),
                    probes::ttft_ms.eq(row.ttft_ms),
                    probes::tps_x10.eq(tps_x10),
                    probes::model_id.eq(model_id),
                    probes::prompt_tokens.eq(row.prompt_tokens),
                    probes::completion_tokens.eq(row.completion_tokens),
                    probes::detail.eq(row.detail.as_deref()),
                    probes::connect_ms.eq(row.connect_ms),
                    probes::maintenance.eq(i16::from(row.maintenance)),
                ))
                .returning(probes::id)
                .get_result(conn)?;
            if last_of.get(&row.monitor_id) == Some(&i) {
                newest.insert(row.monitor_id, (row.ts, id));
            }
        }
        let mut hourly: BTreeMap<(i32, i64), Agg> = BTreeMap::new();
        for row in rows {
            hourly.entry((row.monitor_id, row.ts.div_euclid(HOUR))).or_default().add(
                row.agg_status(),
                row.latency_ms.into(),
                row.ttft_ms.map(i64::from),
            );
        }
        let mut written = Vec::with_capacity(hourly.len());
        for ((monitor, hour), delta) in hourly {
            let mut agg = match cache.rollups.get(&(monitor, hour)) {
                Some(agg) => agg.clone(),
                None => read_rollup(conn, monitor, hour)?.unwrap_or_default(),
            };
            agg.merge(&delta);
            write_rollup(conn, monitor, hour, &agg)?;
            written.push(((monitor, hour), agg));
        }
        for (monitor, (ts, id)) in newest {
            // The last written, not the latest timestamp: after the clock steps back, the newest
            // probe has an older time than the one before it, and is still the current one.
            diesel::insert_into(latest::table)
                .values((latest::monitor_id.eq(monitor), latest::ts.eq(ts), latest::probe_id.eq(id)))
                .on_conflict(latest::monitor_id)
                .do_update()
                .set((latest::ts.eq(ts), latest::probe_id.eq(id)))
                .execute(conn)?;
        }
        Ok(Staged { rollups: written, models })
    })
}

type ProbeColumns = (
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
);

fn row_of(c: ProbeColumns) -> Row {
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
        maintenance: maintenance != 0,
    }
}

/// The newest probe of every monitor that has one.
pub fn latest_rows(conn: &mut SqliteConnection) -> Result<Vec<Row>, StoreError> {
    let rows: Vec<ProbeColumns> = latest::table
        .inner_join(probes::table.on(probes::id.eq(latest::probe_id)))
        .left_join(models::table.on(probes::model_id.eq(models::id.nullable())))
        .select((
            probes::monitor_id,
            probes::ts,
            probes::status,
            probes::latency_ms,
            probes::reason,
            probes::http_code,
            probes::ttfb_ms,
            probes::ttft_ms,
            probes::tps_x10,
            models::name.nullable(),
            probes::prompt_tokens,
            probes::completion_tokens,
            probes::detail,
            probes::connect_ms,
            probes::maintenance,
        ))
        .load(conn)?;
    Ok(rows.into_iter().map(row_of).collect())
}

/// The newest probe of one monitor.
pub fn latest(conn: &mut SqliteConnection, monitor_id: i32) -> Result<Option<Row>, StoreError> {
    Ok(latest_rows(conn)?.into_iter().find(|r| r.monitor_id == monitor_id))
}

/// Every hourly rollup from `first_hour` on (hours since the epoch): (monitor, hour, aggregate).
pub fn rollups_since(conn: &mut SqliteConnection, first_hour: i64) -> Result<Vec<(i32, i64, Agg)>, StoreError> {
    rollups_between(conn, first_hour, i64::MAX)
}

/// The hourly rollups of hours `first_hour..=last_hour`: (monitor, hour, aggregate).
pub fn rollups_between(
    conn: &mut SqliteConnection,
    first_hour: i64,
    last_hour: i64,
) -> Result<Vec<(i32, i64, Agg)>, StoreError> {
    let rows: Vec<RollupRow> = rollups::table
        .filter(rollups::hour.ge(first_hour))
        .filter(rollups::hour.le(last_hour))
        .select(RollupRow::as_select())
        .load(conn)?;
    Ok(rows.iter().map(|r| (r.monitor_id, r.hour, r.agg())).collect())
}

/// Raw samples of a monitor within `window`. A full scan (raw probes have no index): for tests
/// and checks, not for serving.
pub fn samples(conn: &mut SqliteConnection, monitor_id: i32, window: &Window) -> Result<Vec<Sample>, StoreError> {
    let rows: Vec<(i64, i16, i32, Option<i32>, i16)> = probes::table
        .filter(probes::monitor_id.eq(monitor_id))
        .filter(probes::ts.ge(window.first_start))
        .filter(probes::ts.lt(window.end()))
        .select((probes::ts, probes::status, probes::latency_ms, probes::ttft_ms, probes::maintenance))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(ts, status, latency, ttft, maintenance)| Sample {
            ts,
            status: if maintenance != 0 { super::rollup::MAINTENANCE } else { status },
            latency_ms: i64::from(latency),
            ttft_ms: ttft.map(i64::from),
        })
        .collect())
}

/// The first rowid whose probe is at or after `ts` (probes are appended in near time order),
/// found by binary search over the rowid b-tree; one past the last rowid if there is none.
fn first_rowid_at(conn: &mut SqliteConnection, ts: i64) -> QueryResult<i64> {
    let bounds: (Option<i64>, Option<i64>) =
        probes::table.select((diesel::dsl::min(probes::id), diesel::dsl::max(probes::id))).first(conn)?;
    let (Some(mut low), Some(max)) = bounds else { return Ok(0) };
    let mut high = max + 1;
    while low < high {
        let middle = low + (high - low) / 2;
        let row: Option<(i64, i64)> = probes::table
            .filter(probes::id.ge(middle))
            .order(probes::id)
            .select((probes::id, probes::ts))
            .first(conn)
            .optional()?;
        match row {
            Some((_, row_ts)) if row_ts < ts => low = middle + 1,
            _ => high = middle,
        }
    }
    Ok(low)
}

/// How far a purge got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeProgress {
    pub deleted: usize,
    /// Where the next step starts; `None` when the purge is complete.
    pub next: Option<i64>,
}

/// One step of purging probes older than `before` (rounded down to the hour, so that the
/// hourly rollups and the raw rows always cover the same probes): looks at up to `limit`
/// rowids from `from` on. The last step also deletes the rollups of the purged hours.
pub fn purge_step(
    conn: &mut SqliteConnection,
    before: i64,
    from: i64,
    limit: i64,
) -> Result<PurgeProgress, StoreError> {
    let before = before.div_euclid(HOUR) * HOUR;
    conn.transaction(|conn| {
        let end = first_rowid_at(conn, before + MAX_DISORDER_SECS)?;
        let first: Option<i64> = probes::table.select(diesel::dsl::min(probes::id)).first(conn)?;
        let start = first.unwrap_or(end).max(from);
        let stop = end.min(start.saturating_add(limit.max(1)));
        let deleted = if start < stop {
            diesel::delete(
                probes::table.filter(probes::id.ge(start)).filter(probes::id.lt(stop)).filter(probes::ts.lt(before)),
            )
            .execute(conn)?
        } else {
            0
        };
        if stop < end {
            return Ok(PurgeProgress { deleted, next: Some(stop) });
        }
        diesel::delete(rollups::table.filter(rollups::hour.lt(before / HOUR))).execute(conn)?;
        // Pointers to purged probes would dangle (and rowids can be reused once a table empties).
        diesel::delete(latest::table.filter(latest::ts.lt(before))).execute(conn)?;
        super::alerts::purge(conn, before)?;
        // Model names no probe refers to any more; only checked when there are suspiciously many
        // (an upstream inventing a name per reply), as it reads the whole table.
        let models: i64 = models::table.count().get_result(conn)?;
        if models > 1_000 {
            diesel::sql_query(
                "DELETE FROM models WHERE id NOT IN (SELECT DISTINCT model_id FROM probes WHERE model_id IS NOT NULL)",
            )
            .execute(conn)?;
        }
        Ok(PurgeProgress { deleted, next: None })
    })
}

/// Purges everything older than `before` in one go (for tests and tools; the StoreActor steps).
pub fn purge(conn: &mut SqliteConnection, before: i64) -> Result<usize, StoreError> {
    let (mut from, mut total) = (0, 0);
    loop {
        let step = purge_step(conn, before, from, 10_000)?;
        total += step.deleted;
        match step.next {
            Some(next) => from = next,
            None => return Ok(total),
        }
    }
}

/// A cheap round trip that fails when the database cannot be read.
pub fn ping(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    diesel::sql_query("SELECT 1").execute(conn).map(|_| ()).map_err(StoreError::from)
}

#[cfg(test)]
mod tests {
    use super::super::rollup::History;
    use super::super::timeline::{build, Period};
    use super::*;

    fn row(monitor_id: i32, ts: i64, status: i16, latency_ms: i32) -> Row {
        Row { monitor_id, ts, status, latency_ms, reason: "ok".into(), http_code: 200, ..Row::default() }
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
            reason: "wrong_answer".into(),
            detail: Some("asked for 3".into()),
            ..row(ids[1], now + 1, 0, 60)
        };
        insert(&mut conn, std::slice::from_ref(&full)).unwrap();
        assert_eq!(latest(&mut conn, ids[1]).unwrap().unwrap(), full);
    }

    fn timeline_from_rollups(conn: &mut SqliteConnection, monitor: i32, period: Period, now: i64) -> Vec<String> {
        let mut history = History::default();
        for (m, hour, agg) in rollups_since(conn, 0).unwrap() {
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
                let staged = insert_staged(conn, rows, cache)?;
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
