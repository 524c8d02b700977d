//! Every statement the store runs, written once and compiled for each backend: this file is
//! the body of both `sql::sqlite` and `sql::pg` (see `sql/mod.rs`), where `Conn` is that
//! backend's connection. Only what the two dialects share is used here; what differs (opening,
//! the write test, the leader's lock) is in `sql/mod.rs`.

use std::collections::{BTreeMap, HashMap};

use diesel::prelude::*;

use super::Conn;
use crate::alert::engine::{Decided, Event, MonitorState};
use crate::domain::MonitorKey;
use crate::probe::Reason;
use crate::store::alerts::{
    Abandoned, AlertsLoaded, DeliveryUpdate, EventRow, OutboxRow, GLOBAL_KEY, PENDING, SUPPRESSED,
};
use crate::store::db::{
    row_of, ExportAfter, ProbeColumns, PurgeProgress, RollupEntry, RollupRow, Row, Staged, StoreError, WriteCache,
    Writing, LOCAL_NODE, MAX_DISORDER_SECS,
};
use crate::store::incidents::{self, Run};
use crate::store::rollup::Reasons;
use crate::store::rollup::{self as rollup_mod, Agg, HOUR};
use crate::store::schema::{
    alert_state, events, latest, meta, models, monitors, nodes, outbox, probes, red_runs, rollups,
};
use crate::store::timeline::{Sample, Window};

diesel::define_sql_function! {
    /// SQL's lower(): ASCII folding in SQLite, the database's own in PostgreSQL.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// The id of the node called `name`. A database made before nodes existed holds one unnamed
/// node (its history): the first node to open it takes that one's name.
pub fn claim_node(conn: &mut Conn, name: &str) -> Result<i32, StoreError> {
    conn.transaction(|conn| {
        let found: Option<i32> = nodes::table.filter(nodes::name.eq(name)).select(nodes::id).first(conn).optional()?;
        if let Some(id) = found {
            return Ok(id);
        }
        let renamed =
            diesel::update(nodes::table.filter(nodes::name.eq(""))).set(nodes::name.eq(name)).execute(conn)?;
        if renamed == 0 {
            diesel::insert_into(nodes::table).values(nodes::name.eq(name)).on_conflict_do_nothing().execute(conn)?;
        }
        Ok(nodes::table.filter(nodes::name.eq(name)).select(nodes::id).first(conn)?)
    })
}

/// Every node the database knows: (id, name).
pub fn nodes(conn: &mut Conn) -> Result<Vec<(i32, String)>, StoreError> {
    Ok(nodes::table.select((nodes::id, nodes::name)).order(nodes::id).load(conn)?)
}

/// The highest write counter node `node` has used (0 when it has written nothing).
pub fn last_seq(conn: &mut Conn, node: i32) -> Result<i64, StoreError> {
    let rollup: Option<i64> =
        rollups::table.filter(rollups::node_id.eq(node)).select(diesel::dsl::max(rollups::seq)).first(conn)?;
    let latest: Option<i64> =
        latest::table.filter(latest::node_id.eq(node)).select(diesel::dsl::max(latest::seq)).first(conn)?;
    Ok(rollup.unwrap_or(0).max(latest.unwrap_or(0)))
}

/// What node `node` wrote after its write counter was `seq`: the rollups it changed (whole, as
/// they stand) and its latest probes, and the counter they bring it to.
pub fn changes_since(conn: &mut Conn, node: i32, seq: i64) -> Result<(Vec<RollupEntry>, Vec<Row>, i64), StoreError> {
    let rows: Vec<RollupRow> = rollups::table
        .filter(rollups::node_id.eq(node))
        .filter(rollups::seq.gt(seq))
        .select(RollupRow::as_select())
        .load(conn)?;
    let newest = rows.iter().map(|r| r.seq).max().unwrap_or(seq);
    let latest = latest_where(conn, Some((node, seq)))?;
    Ok((rows.iter().map(RollupRow::entry).collect(), latest, newest))
}

/// id, monitor, ts, status, latency, ttft, maintenance, node, reason, cost.
type RebuildColumns = (i64, i32, i64, i16, i32, Option<i32>, i16, i32, i16, Option<i64>);

/// Recomputes every rollup, latest pointer and run of red probes from the raw probes (after a
/// schema migration).
pub fn rebuild_rollups(conn: &mut Conn) -> Result<(), StoreError> {
    conn.transaction(|conn| {
        let mut hourly: BTreeMap<(i32, i32, i64), Agg> = BTreeMap::new();
        let mut newest: HashMap<(i32, i32), (i64, i64)> = HashMap::new();
        let mut open: HashMap<(i32, i32), Option<Run>> = HashMap::new();
        let mut runs: Vec<Run> = Vec::new();
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
                    probes::node_id,
                    probes::reason,
                    probes::cost_nanos,
                ))
                .load(conn)?;
            let Some(last) = rows.last() else { break };
            after = last.0;
            for (rowid, monitor, ts, status, latency, ttft, maintenance, node, reason, cost) in rows {
                let status = if maintenance != 0 { rollup_mod::MAINTENANCE } else { status };
                let agg = hourly.entry((monitor, node, ts.div_euclid(HOUR))).or_default();
                agg.add(status, latency.into(), ttft.map(i64::from));
                agg.add_reason(status, reason);
                agg.add_cost(cost);
                // Stored rows keep no interval: a gap of 15 minutes ends a run.
                let seen = incidents::Seen { ts, red: status == 0, reason, interval_s: None };
                let (closed, _) = incidents::step(open.entry((monitor, node)).or_default(), monitor, node, seen);
                runs.extend(closed);
                let entry = newest.entry((monitor, node)).or_insert((ts, rowid));
                if (ts, rowid) > *entry {
                    *entry = (ts, rowid);
                }
            }
        }
        diesel::delete(rollups::table).execute(conn)?;
        for ((monitor, node, hour), agg) in &hourly {
            write_rollup(conn, (*monitor, *node, *hour), agg, 0)?;
        }
        diesel::delete(latest::table).execute(conn)?;
        for ((monitor, node), (ts, rowid)) in newest {
            diesel::insert_into(latest::table)
                .values((
                    latest::monitor_id.eq(monitor),
                    latest::node_id.eq(node),
                    latest::ts.eq(ts),
                    latest::probe_id.eq(rowid),
                ))
                .execute(conn)?;
        }
        diesel::delete(red_runs::table).execute(conn)?;
        runs.extend(open.into_values().flatten());
        for run in &runs {
            write_run(conn, run)?;
        }
        diesel::delete(meta::table.filter(meta::key.eq("rebuild_rollups"))).execute(conn)?;
        log::info!("store: rollups rebuilt for {} monitor-hours, {} runs of red probes", hourly.len(), runs.len());
        Ok(())
    })
}

/// The columns [`row_of`] reads ([`ProbeColumns`]), from `probes` left-joined to `models`.
macro_rules! probe_columns {
    () => {
        (
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
            probes::cost_nanos,
        )
    };
}

/// The id of each monitor, inserting the ones the database has not seen yet.
pub fn monitor_ids(conn: &mut Conn, keys: &[MonitorKey]) -> Result<Vec<i32>, StoreError> {
    conn.transaction(|conn| {
        keys.iter()
            .map(|key| {
                diesel::insert_into(monitors::table)
                    .values((
                        monitors::provider.eq(&key.provider),
                        monitors::service.eq(&key.service),
                        monitors::channel.eq(&key.channel),
                        monitors::model.eq(&key.model),
                    ))
                    .on_conflict_do_nothing()
                    .execute(conn)?;
                // However it was spelled (SQLite's columns are COLLATE NOCASE; PostgreSQL has a
                // unique index on the lowered names).
                monitors::table
                    .filter(lower(monitors::provider).eq(key.provider.to_ascii_lowercase()))
                    .filter(lower(monitors::service).eq(key.service.to_ascii_lowercase()))
                    .filter(lower(monitors::channel).eq(key.channel.to_ascii_lowercase()))
                    .filter(lower(monitors::model).eq(key.model.to_ascii_lowercase()))
                    .select(monitors::id)
                    .first::<i32>(conn)
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .map_err(StoreError::from)
}

/// Every monitor the database knows, with its id.
pub fn monitors(conn: &mut Conn) -> Result<Vec<(MonitorKey, i32)>, StoreError> {
    let rows: Vec<(i32, String, String, String, String)> = monitors::table
        .select((monitors::id, monitors::provider, monitors::service, monitors::channel, monitors::model))
        .load(conn)?;
    Ok(rows.into_iter().map(|(id, p, s, c, m)| (MonitorKey::new(&p, &s, &c).with_model(&m), id)).collect())
}

fn model_id(conn: &mut Conn, name: &str, cache: &mut HashMap<String, i32>) -> QueryResult<i32> {
    if let Some(id) = cache.get(name) {
        return Ok(*id);
    }
    diesel::insert_into(models::table).values(models::name.eq(name)).on_conflict_do_nothing().execute(conn)?;
    let id = models::table.filter(models::name.eq(name)).select(models::id).first(conn)?;
    cache.insert(name.to_string(), id);
    Ok(id)
}

fn read_rollup(conn: &mut Conn, (monitor, node, hour): (i32, i32, i64)) -> QueryResult<Option<Agg>> {
    let row: Option<RollupRow> =
        rollups::table.find((monitor, node, hour)).select(RollupRow::as_select()).first(conn).optional()?;
    Ok(row.map(|r| r.agg()))
}

fn write_rollup(conn: &mut Conn, (monitor, node, hour): (i32, i32, i64), agg: &Agg, seq: i64) -> QueryResult<usize> {
    let values = (
        rollups::green.eq(agg.green as i64),
        rollups::yellow.eq(agg.yellow as i64),
        rollups::red.eq(agg.red as i64),
        rollups::latency_sum.eq(agg.latency_sum as i64),
        rollups::latency_sketch.eq(agg.latency.encode()),
        rollups::ttft_sketch.eq(agg.ttft.encode()),
        rollups::maintenance.eq(agg.maintenance as i64),
        rollups::seq.eq(seq),
        rollups::reasons.eq(agg.reasons.encode()),
        rollups::cost_nanos.eq(agg.cost_nanos.map(|c| i64::try_from(c).unwrap_or(i64::MAX))),
    );
    diesel::insert_into(rollups::table)
        .values((rollups::monitor_id.eq(monitor), rollups::node_id.eq(node), rollups::hour.eq(hour), values.clone()))
        .on_conflict((rollups::monitor_id, rollups::node_id, rollups::hour))
        .do_update()
        .set(values)
        .execute(conn)
}

/// Inserts `rows` in one transaction, with their rollups and latest pointers. `rows` come in
/// the order their probes ended: each monitor's latest is its last row here, whatever its time
/// (after the clock steps back, the current probe has an older time than the one before). They
/// are stored in time order, which purging relies on (give or take 15 minutes, as live probes
/// are); a row much older than those stored before it is purged only once retention has passed
/// since it was written.
pub fn insert(conn: &mut Conn, rows: &[Row]) -> Result<(), StoreError> {
    insert_staged(conn, rows, &WriteCache::default(), Writing { node: LOCAL_NODE, seq: 0 }).map(drop)
}

/// [`insert`], with what earlier batches left in `cache`. Every statement is one diesel
/// prepares once per connection and reuses: one INSERT per row, one rollup and one latest
/// pointer per monitor and hour touched. The caller applies the result to `cache` once the
/// outermost transaction has committed (a failed commit must leave the cache as it was).
pub fn insert_staged(
    conn: &mut Conn,
    rows: &[Row],
    cache: &WriteCache,
    Writing { node, seq }: Writing,
) -> Result<Staged, StoreError> {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| rows[i].ts);
    let last_of: HashMap<i32, usize> = rows.iter().enumerate().map(|(i, r)| (r.monitor_id, i)).collect();
    conn.transaction(|conn| {
        let mut models = HashMap::new();
        let mut newest: HashMap<i32, (i64, i64, Option<i32>)> = HashMap::new();
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
                    probes::node_id.eq(node),
                    probes::cost_nanos.eq(row.cost_nanos),
                ))
                .returning(probes::id)
                .get_result(conn)?;
            if last_of.get(&row.monitor_id) == Some(&i) {
                newest.insert(row.monitor_id, (row.ts, id, row.interval_s));
            }
        }
        let runs = write_runs(conn, rows, &order, node, cache)?;
        let mut hourly: BTreeMap<(i32, i64), Agg> = BTreeMap::new();
        for row in rows {
            let agg = hourly.entry((row.monitor_id, row.ts.div_euclid(HOUR))).or_default();
            agg.add(row.agg_status(), row.latency_ms.into(), row.ttft_ms.map(i64::from));
            agg.add_reason(row.agg_status(), row.reason_code());
            agg.add_cost(row.cost_nanos);
        }
        let mut written = Vec::with_capacity(hourly.len());
        for ((monitor, hour), delta) in hourly {
            let mut agg = match cache.rollups.get(&(monitor, hour)) {
                Some(agg) => agg.clone(),
                None => read_rollup(conn, (monitor, node, hour))?.unwrap_or_default(),
            };
            agg.merge(&delta);
            write_rollup(conn, (monitor, node, hour), &agg, seq)?;
            written.push(((monitor, hour), agg));
        }
        for (monitor, (ts, id, interval)) in newest {
            // The last written, not the latest timestamp: after the clock steps back, the newest
            // probe has an older time than the one before it, and is still the current one.
            let values =
                (latest::ts.eq(ts), latest::probe_id.eq(id), latest::seq.eq(seq), latest::interval_s.eq(interval));
            diesel::insert_into(latest::table)
                .values((latest::monitor_id.eq(monitor), latest::node_id.eq(node), values))
                .on_conflict((latest::monitor_id, latest::node_id))
                .do_update()
                .set(values)
                .execute(conn)?;
        }
        Ok(Staged { rollups: written, models, runs })
    })
}

/// Moves each monitor's run of red probes forward by `rows` (in time order, `order`): takes
/// its open run from `cache` (or the database, for a monitor the cache has not seen), writes
/// back every run the batch started, changed or ended, and gives each monitor's open run after
/// the batch, for the cache.
fn write_runs(
    conn: &mut Conn,
    rows: &[Row],
    order: &[usize],
    node: i32,
    cache: &WriteCache,
) -> QueryResult<Vec<(i32, Option<Run>)>> {
    struct Runs {
        open: Option<Run>,
        dirty: bool,
        closed: Vec<Run>,
    }
    let mut by_monitor: HashMap<i32, Runs> = HashMap::new();
    for &i in order {
        let row = &rows[i];
        let runs = match by_monitor.entry(row.monitor_id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let open = match cache.runs.get(&row.monitor_id) {
                    Some(open) => open.clone(),
                    None => open_run(conn, row.monitor_id, node)?,
                };
                e.insert(Runs { open, dirty: false, closed: Vec::new() })
            }
        };
        let seen = incidents::Seen {
            ts: row.ts,
            red: row.agg_status() == 0,
            reason: row.reason_code(),
            interval_s: row.interval_s,
        };
        let (closed, changed) = incidents::step(&mut runs.open, row.monitor_id, node, seen);
        runs.dirty |= changed;
        runs.closed.extend(closed);
    }
    for runs in by_monitor.values() {
        for run in &runs.closed {
            write_run(conn, run)?;
        }
        if let Some(run) = runs.open.as_ref().filter(|_| runs.dirty) {
            write_run(conn, run)?;
        }
    }
    Ok(by_monitor.into_iter().map(|(monitor, runs)| (monitor, runs.open)).collect())
}

/// The monitor's run of red probes on `node` that has not ended, if any (the newest such).
fn open_run(conn: &mut Conn, monitor: i32, node: i32) -> QueryResult<Option<Run>> {
    let newest: Option<RunColumns> = red_runs::table
        .filter(red_runs::monitor_id.eq(monitor))
        .filter(red_runs::node_id.eq(node))
        .filter(red_runs::end_ts.is_null())
        .order(red_runs::start_ts.desc())
        .select(RUN_COLUMNS)
        .first(conn)
        .optional()?;
    Ok(newest.map(run_of))
}

type RunColumns = (i32, i32, i64, Option<i64>, i64, i64, String, Option<i32>);
const RUN_COLUMNS: (
    red_runs::monitor_id,
    red_runs::node_id,
    red_runs::start_ts,
    red_runs::end_ts,
    red_runs::last_ts,
    red_runs::reds,
    red_runs::reasons,
    red_runs::interval_s,
) = (
    red_runs::monitor_id,
    red_runs::node_id,
    red_runs::start_ts,
    red_runs::end_ts,
    red_runs::last_ts,
    red_runs::reds,
    red_runs::reasons,
    red_runs::interval_s,
);

fn run_of((monitor_id, node_id, start, end, last, reds, reasons, interval_s): RunColumns) -> Run {
    Run { monitor_id, node_id, start, end, last, reds, reasons: Reasons::decode(&reasons), interval_s }
}

fn write_run(conn: &mut Conn, run: &Run) -> QueryResult<usize> {
    let values = (
        red_runs::end_ts.eq(run.end),
        red_runs::last_ts.eq(run.last),
        red_runs::reds.eq(run.reds),
        red_runs::reasons.eq(run.reasons.encode()),
        red_runs::interval_s.eq(run.interval_s),
    );
    diesel::insert_into(red_runs::table)
        .values((
            red_runs::monitor_id.eq(run.monitor_id),
            red_runs::node_id.eq(run.node_id),
            red_runs::start_ts.eq(run.start),
            values.clone(),
        ))
        .on_conflict((red_runs::monitor_id, red_runs::node_id, red_runs::start_ts))
        .do_update()
        .set(values)
        .execute(conn)
}

/// Every node's runs of at least `min_reds` red probes that overlap `[from, to)` (the ones
/// still going included), newest first, at most `limit` of them. Three reads, each through an
/// index, so the cost follows the runs of the range, not every run retention keeps: those that
/// start inside it, those that started before and ended inside or after it, and those going on.
pub fn red_runs_between(
    conn: &mut Conn,
    (from, to): (i64, i64),
    min_reds: i64,
    limit: i64,
) -> Result<Vec<Run>, StoreError> {
    let mut rows: Vec<RunColumns> = red_runs::table
        .filter(red_runs::start_ts.ge(from))
        .filter(red_runs::start_ts.lt(to))
        .filter(red_runs::reds.ge(min_reds))
        .order(red_runs::start_ts.desc())
        .limit(limit)
        .select(RUN_COLUMNS)
        .load(conn)?;
    rows.extend(
        red_runs::table
            .filter(red_runs::end_ts.gt(from))
            .filter(red_runs::start_ts.lt(from))
            .filter(red_runs::reds.ge(min_reds))
            .limit(limit)
            .select(RUN_COLUMNS)
            .load::<RunColumns>(conn)?,
    );
    rows.extend(
        red_runs::table
            .filter(red_runs::end_ts.is_null())
            .filter(red_runs::start_ts.lt(from))
            .filter(red_runs::reds.ge(min_reds))
            .limit(limit)
            .select(RUN_COLUMNS)
            .load::<RunColumns>(conn)?,
    );
    rows.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1)));
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(rows.into_iter().map(run_of).collect())
}

/// The newest probe of every monitor and node that has one, with `node_id` set.
pub fn latest_rows(conn: &mut Conn) -> Result<Vec<Row>, StoreError> {
    latest_where(conn, None)
}

/// [`latest_rows`] of one node, only those written after its `seq` (what another node reads).
fn latest_where(conn: &mut Conn, changed: Option<(i32, i64)>) -> Result<Vec<Row>, StoreError> {
    let mut query = latest::table
        .inner_join(probes::table.on(probes::id.eq(latest::probe_id)))
        .left_join(models::table.on(probes::model_id.eq(models::id.nullable())))
        .select((probe_columns!(), latest::node_id, latest::interval_s))
        .into_boxed();
    if let Some((node, seq)) = changed {
        query = query.filter(latest::node_id.eq(node)).filter(latest::seq.gt(seq));
    }
    let rows: Vec<(ProbeColumns, i32, Option<i32>)> = query.load(conn)?;
    Ok(rows.into_iter().map(|(c, node_id, interval_s)| Row { node_id, interval_s, ..row_of(c) }).collect())
}

/// The newest probe of one monitor.
pub fn latest(conn: &mut Conn, monitor_id: i32) -> Result<Option<Row>, StoreError> {
    Ok(latest_rows(conn)?.into_iter().find(|r| r.monitor_id == monitor_id && r.node_id == LOCAL_NODE))
}

/// Every hourly rollup from `first_hour` on (hours since the epoch), of every node.
pub fn rollups_since(conn: &mut Conn, first_hour: i64) -> Result<Vec<RollupEntry>, StoreError> {
    rollups_between(conn, first_hour, i64::MAX)
}

/// One monitor's hourly rollups of hours `first_hour..=last_hour`, of every node (through the
/// primary key: what a report reads, a monitor at a time).
pub fn rollups_of(
    conn: &mut Conn,
    monitor: i32,
    first_hour: i64,
    last_hour: i64,
) -> Result<Vec<RollupEntry>, StoreError> {
    let rows: Vec<RollupRow> = rollups::table
        .filter(rollups::monitor_id.eq(monitor))
        .filter(rollups::hour.ge(first_hour))
        .filter(rollups::hour.le(last_hour))
        .select(RollupRow::as_select())
        .load(conn)?;
    Ok(rows.iter().map(RollupRow::entry).collect())
}

/// The hourly rollups of hours `first_hour..=last_hour`, of every node.
pub fn rollups_between(conn: &mut Conn, first_hour: i64, last_hour: i64) -> Result<Vec<RollupEntry>, StoreError> {
    let rows: Vec<RollupRow> = rollups::table
        .filter(rollups::hour.ge(first_hour))
        .filter(rollups::hour.le(last_hour))
        .select(RollupRow::as_select())
        .load(conn)?;
    Ok(rows.iter().map(RollupRow::entry).collect())
}

/// Raw samples of a monitor within `window`. A full scan (raw probes have no index): for tests
/// and checks, not for serving.
pub fn samples(conn: &mut Conn, monitor_id: i32, window: &Window) -> Result<Vec<Sample>, StoreError> {
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
            status: if maintenance != 0 { rollup_mod::MAINTENANCE } else { status },
            latency_ms: i64::from(latency),
            ttft_ms: ttft.map(i64::from),
        })
        .collect())
}

/// The first rowid whose probe is at or after `ts` (probes are appended in near time order),
/// found by binary search over the rowid b-tree; one past the last rowid if there is none.
fn first_rowid_at(conn: &mut Conn, ts: i64) -> QueryResult<i64> {
    // Two queries: SQLite answers a lone min() or max() from the b-tree, but scans the whole
    // table for both in one statement.
    let min: Option<i64> = probes::table.select(diesel::dsl::min(probes::id)).first(conn)?;
    let max: Option<i64> = probes::table.select(diesel::dsl::max(probes::id)).first(conn)?;
    let (Some(mut low), Some(max)) = (min, max) else { return Ok(0) };
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

/// One step of purging probes older than `before` (rounded down to the hour, so that the
/// hourly rollups and the raw rows always cover the same probes): looks at up to `limit`
/// rowids from `from` on. The last step also deletes the rollups of the purged hours.
pub fn purge_step(conn: &mut Conn, before: i64, from: i64, limit: i64) -> Result<PurgeProgress, StoreError> {
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
        purge_finish(conn, before)?;
        Ok(PurgeProgress { deleted, next: None })
    })
}

/// The last step of a purge of everything before `before` (a whole hour): the rollups of the
/// purged hours, latest pointers to purged probes, old events and sent messages, and (when
/// suspiciously many) model names no probe refers to.
pub fn purge_finish(conn: &mut Conn, before: i64) -> Result<(), StoreError> {
    diesel::delete(rollups::table.filter(rollups::hour.lt(before / HOUR))).execute(conn)?;
    // Runs that ended before the cutoff, and open ones whose last red probe is before it (a
    // node gone while a monitor was red).
    diesel::delete(
        red_runs::table
            .filter(red_runs::end_ts.lt(before).or(red_runs::end_ts.is_null().and(red_runs::last_ts.lt(before)))),
    )
    .execute(conn)?;
    // Pointers to purged probes would dangle (and rowids can be reused once a table empties).
    diesel::delete(latest::table.filter(latest::ts.lt(before))).execute(conn)?;
    purge_alerts(conn, before)?;
    // Model names no probe refers to any more; only checked when there are suspiciously many
    // (an upstream inventing a name per reply), as it reads the whole table.
    let models: i64 = models::table.count().get_result(conn)?;
    if models > 1_000 {
        diesel::sql_query(
            "DELETE FROM models WHERE id NOT IN (SELECT DISTINCT model_id FROM probes WHERE model_id IS NOT NULL)",
        )
        .execute(conn)?;
    }
    Ok(())
}

/// Purges everything older than `before` in one go (for tests and tools; the StoreActor steps).
pub fn purge(conn: &mut Conn, before: i64) -> Result<usize, StoreError> {
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
pub fn ping(conn: &mut Conn) -> Result<(), StoreError> {
    diesel::sql_query("SELECT 1").execute(conn).map(|_| ()).map_err(StoreError::from)
}

pub fn load(conn: &mut Conn, recent: i64) -> Result<AlertsLoaded, StoreError> {
    let rows: Vec<(String, String, String, String, String)> = alert_state::table
        .inner_join(monitors::table.on(monitors::id.eq(alert_state::monitor_id)))
        .select((monitors::provider, monitors::service, monitors::channel, monitors::model, alert_state::state))
        .load(conn)?;
    let states = rows
        .into_iter()
        .filter_map(|(p, s, c, m, json)| match serde_json::from_str::<MonitorState>(&json) {
            Ok(state) => Some((MonitorKey::new(&p, &s, &c).with_model(&m), state)),
            Err(e) => {
                log::warn!("alerts: the stored state of {p}/{s}/{c} is unreadable ({e}); starting it afresh");
                None
            }
        })
        .collect();
    let global: Option<String> =
        meta::table.filter(meta::key.eq(GLOBAL_KEY)).select(meta::value).first(conn).optional()?;
    let global = global.and_then(|g| serde_json::from_str(&g).ok()).unwrap_or_default();
    let last_event: Option<i64> = events::table.select(diesel::dsl::max(events::id)).first(conn)?;
    let pending = outbox::table
        .filter(outbox::state.eq(PENDING))
        .order(outbox::id)
        .select((
            outbox::id,
            outbox::channel,
            outbox::message,
            outbox::created_at,
            outbox::not_before,
            outbox::attempts,
        ))
        .load::<(i64, String, String, i64, i64, i32)>(conn)?
        .into_iter()
        .filter_map(|(id, channel, message, created_at, not_before, attempts)| {
            let message = serde_json::from_str(&message).ok()?;
            Some(OutboxRow { id, channel, message, created_at, not_before, attempts })
        })
        .collect();
    let mut events = read_events_before(conn, i64::MAX, recent)?;
    events.reverse();
    let abandoned = diesel::sql_query(
        "SELECT o.channel AS channel, o.event_id AS event_id FROM outbox o JOIN events e ON e.id = o.event_id \
         WHERE o.state = 2 AND e.kind IN ('down', 'storm_down')",
    )
    .load::<Abandoned>(conn)?
    .into_iter()
    .map(|a| (a.channel, a.event_id))
    .collect();
    Ok(AlertsLoaded { states, global, last_event: last_event.unwrap_or(0), pending, events, abandoned })
}

/// Up to `limit` events after `since_id`, oldest first.
pub fn read_events(conn: &mut Conn, since_id: i64, limit: i64) -> Result<Vec<Event>, StoreError> {
    let rows: Vec<EventRow> = events::table
        .filter(events::id.gt(since_id))
        .order(events::id)
        .limit(limit)
        .select(EventRow::as_select())
        .load(conn)?;
    Ok(rows.into_iter().map(Event::from).collect())
}

/// Up to `limit` events before `before_id`, newest first.
fn read_events_before(conn: &mut Conn, before_id: i64, limit: i64) -> Result<Vec<Event>, StoreError> {
    let rows: Vec<EventRow> = events::table
        .filter(events::id.lt(before_id))
        .order(events::id.desc())
        .limit(limit)
        .select(EventRow::as_select())
        .load(conn)?;
    Ok(rows.into_iter().map(Event::from).collect())
}

/// Writes what the engine decided (inside the caller's transaction); gives the outbox rows it
/// added, with their ids.
pub fn write_decided(
    conn: &mut Conn,
    decided: &Decided,
    id_of: &dyn Fn(&MonitorKey) -> Option<i32>,
    now: i64,
) -> Result<Vec<OutboxRow>, StoreError> {
    for (key, state) in &decided.states {
        let Some(monitor_id) = id_of(key) else { continue };
        let json = serde_json::to_string(state).unwrap_or_default();
        diesel::insert_into(alert_state::table)
            .values((alert_state::monitor_id.eq(monitor_id), alert_state::state.eq(&json)))
            .on_conflict(alert_state::monitor_id)
            .do_update()
            .set(alert_state::state.eq(&json))
            .execute(conn)?;
    }
    for event in &decided.events {
        diesel::insert_into(events::table)
            .values((
                events::id.eq(event.id),
                events::time.eq(event.time),
                events::kind.eq(event.kind.as_str()),
                events::provider.eq(&event.provider),
                events::service.eq(&event.service),
                events::channel.eq(&event.channel),
                events::reason.eq(&event.reason),
                events::detail.eq(&event.detail),
                events::node.eq(&event.node),
            ))
            .execute(conn)?;
    }
    if !decided.suppress.is_empty() {
        diesel::update(
            outbox::table.filter(outbox::event_id.eq_any(&decided.suppress)).filter(outbox::state.eq(PENDING)),
        )
        .set((outbox::state.eq(SUPPRESSED), outbox::done_at.eq(now)))
        .execute(conn)?;
    }
    let mut added = Vec::with_capacity(decided.outbox.len());
    for outgoing in &decided.outbox {
        let json = serde_json::to_string(&outgoing.message).unwrap_or_default();
        let id: i64 = diesel::insert_into(outbox::table)
            .values((
                outbox::event_id.eq(outgoing.message.id),
                outbox::channel.eq(&outgoing.channel),
                outbox::message.eq(json),
                outbox::created_at.eq(now),
                outbox::not_before.eq(outgoing.not_before),
            ))
            .returning(outbox::id)
            .get_result(conn)?;
        added.push(OutboxRow {
            id,
            channel: outgoing.channel.clone(),
            message: outgoing.message.clone(),
            created_at: now,
            not_before: outgoing.not_before,
            attempts: 0,
        });
    }
    if let Some(global) = &decided.global {
        let json = serde_json::to_string(global).unwrap_or_default();
        diesel::insert_into(meta::table)
            .values((meta::key.eq(GLOBAL_KEY), meta::value.eq(&json)))
            .on_conflict(meta::key)
            .do_update()
            .set(meta::value.eq(&json))
            .execute(conn)?;
    }
    Ok(added)
}

pub fn record_deliveries(conn: &mut Conn, updates: &[DeliveryUpdate]) -> Result<(), StoreError> {
    for update in updates {
        let done_at = (update.state != PENDING).then_some(update.at);
        // Only a pending row moves: one withdrawn meanwhile (folded into a storm) stays so.
        diesel::update(outbox::table.find(update.id).filter(outbox::state.eq(PENDING)))
            .set((
                outbox::state.eq(update.state),
                outbox::attempts.eq(update.attempts),
                outbox::last_error.eq(&update.error),
                outbox::done_at.eq(done_at),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Forgets events, and finished outbox rows, older than `before`.
pub fn purge_alerts(conn: &mut Conn, before: i64) -> Result<(), StoreError> {
    diesel::delete(events::table.filter(events::time.lt(before))).execute(conn)?;
    diesel::delete(outbox::table.filter(outbox::state.ne(PENDING)).filter(outbox::created_at.lt(before)))
        .execute(conn)?;
    Ok(())
}

/// Event counts by kind (for tests and tools).
pub fn event_kinds(conn: &mut Conn) -> Result<HashMap<String, i64>, StoreError> {
    let rows: Vec<String> = events::table.select(events::kind).load(conn)?;
    let mut out = HashMap::new();
    for kind in rows {
        *out.entry(kind).or_default() += 1;
    }
    Ok(out)
}

/// One batch of the writer, in one transaction: ids for monitors new to the database, the
/// results with their rollups and latest pointers, what the alert engine decided, and what
/// delivery did since the last batch.
pub fn write_batch(
    conn: &mut Conn,
    batch: crate::store::db::Batch<'_>,
) -> Result<crate::store::db::BatchWritten, StoreError> {
    let crate::store::db::Batch { rows, wanted, known, cache, decided, deliveries, now, writing } = batch;
    conn.transaction(|conn| {
        let new_ids = monitor_ids(conn, &wanted)?;
        let ids: Vec<(MonitorKey, i32)> = wanted.iter().cloned().zip(new_ids).collect();
        let id_of = |key: &MonitorKey| {
            known.get(key).copied().or_else(|| ids.iter().find(|(k, _)| k == key).map(|(_, id)| *id))
        };
        let rows: Vec<Row> = rows
            .into_iter()
            .map(|(key, row)| Row { monitor_id: id_of(&key).unwrap_or_default(), node_id: writing.node, ..row })
            .collect();
        let staged = insert_staged(conn, &rows, cache, writing)?;
        let outbox = match decided {
            Some(decided) => write_decided(conn, decided, &id_of, now)?,
            None => Vec::new(),
        };
        record_deliveries(conn, deliveries)?;
        Ok(crate::store::db::BatchWritten { rows, ids, outbox, staged })
    })
}

/// Up to `limit` probes of every node made in `[from, to)`, after `after`, each with its id
/// and node. `by_time`: in (time, id) order through the index on `ts` (PostgreSQL, where
/// several nodes' ids interleave and copied history comes late); otherwise in id order, read
/// only between the ids that can hold such times (SQLite appends in near time order).
pub fn export_page(
    conn: &mut Conn,
    (from, to): (i64, i64),
    after: ExportAfter,
    limit: i64,
    by_time: bool,
) -> Result<Vec<(i64, Row)>, StoreError> {
    let mut query = probes::table
        .left_join(models::table.on(probes::model_id.eq(models::id.nullable())))
        .filter(probes::ts.ge(from))
        .filter(probes::ts.lt(to))
        .select((probes::id, probes::node_id, probe_columns!()))
        .limit(limit)
        .into_boxed();
    if by_time {
        if let ExportAfter::Time(ts, id) = after {
            // `ts >= ts` as well: a bound the index on `ts` can start from.
            query =
                query.filter(probes::ts.ge(ts)).filter(probes::ts.gt(ts).or(probes::ts.eq(ts).and(probes::id.gt(id))));
        }
        query = query.order((probes::ts, probes::id));
    } else {
        let low = first_rowid_at(conn, from.saturating_sub(MAX_DISORDER_SECS))?;
        let high = first_rowid_at(conn, to.saturating_add(MAX_DISORDER_SECS))?;
        let start = match after {
            ExportAfter::Id(id) => low.max(id.saturating_add(1)),
            _ => low,
        };
        query = query.filter(probes::id.ge(start)).filter(probes::id.lt(high)).order(probes::id);
    }
    let rows: Vec<(i64, i32, ProbeColumns)> = query.load(conn)?;
    Ok(rows.into_iter().map(|(id, node_id, c)| (id, Row { node_id, ..row_of(c) })).collect())
}

/// Up to `limit` probes with an id above `after`, in id order, with their ids (what
/// `migrate-store` copies).
pub fn probes_after(conn: &mut Conn, after: i64, limit: i64) -> Result<Vec<(i64, Row)>, StoreError> {
    let rows: Vec<(i64, ProbeColumns)> = probes::table
        .left_join(models::table.on(probes::model_id.eq(models::id.nullable())))
        .filter(probes::id.gt(after))
        .order(probes::id)
        .limit(limit)
        .select((probes::id, probe_columns!()))
        .load(conn)?;
    Ok(rows.into_iter().map(|(id, c)| (id, row_of(c))).collect())
}

/// How many probes the database holds.
pub fn probe_count(conn: &mut Conn) -> Result<i64, StoreError> {
    Ok(probes::table.count().get_result(conn)?)
}

/// Stores events as they are (ids kept; an id already there is left alone).
pub fn insert_events(conn: &mut Conn, list: &[Event]) -> Result<usize, StoreError> {
    let mut added = 0;
    for event in list {
        added += diesel::insert_into(events::table)
            .values((
                events::id.eq(event.id),
                events::time.eq(event.time),
                events::kind.eq(event.kind.as_str()),
                events::provider.eq(&event.provider),
                events::service.eq(&event.service),
                events::channel.eq(&event.channel),
                events::reason.eq(&event.reason),
                events::detail.eq(&event.detail),
                events::node.eq(&event.node),
            ))
            .on_conflict_do_nothing()
            .execute(conn)?;
    }
    Ok(added)
}

pub fn meta_get(conn: &mut Conn, key: &str) -> Result<Option<String>, StoreError> {
    Ok(meta::table.filter(meta::key.eq(key)).select(meta::value).first(conn).optional()?)
}

pub fn meta_set(conn: &mut Conn, key: &str, value: &str) -> Result<(), StoreError> {
    diesel::insert_into(meta::table)
        .values((meta::key.eq(key), meta::value.eq(value)))
        .on_conflict(meta::key)
        .do_update()
        .set(meta::value.eq(value))
        .execute(conn)?;
    Ok(())
}
