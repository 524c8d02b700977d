//! The Writer: the one place diesel runs, on a thread of its own (a `SyncArbiter` of one).
//! The StoreActor hands it one piece of work at a time (a batch of results, a purge step, a
//! probe of writability) and goes on answering queries while the database works or waits for a
//! lock. Each attempt waits for another process's lock only briefly ([`BUSY_TIMEOUT_MS`]): a
//! refused attempt comes back as an error and the StoreActor tries again later.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use diesel::connection::SimpleConnection;

use super::alerts::{AlertsLoaded, DeliveryUpdate, OutboxRow};
use super::db::{self, Batch, Db, PurgeProgress, RollupEntry, Row, Writing};
use crate::alert::engine::{Decided, Engine, Event, Observed};
use crate::alert::AlertConfig;
use crate::config::Database;
use crate::dispatch;
use crate::domain::MonitorKey;
use crate::domain::{Reason, Status};
use std::collections::BTreeMap;

/// How long one attempt waits for another process's lock (an operator's `sqlite3`, a backup).
pub const BUSY_TIMEOUT_MS: u32 = 200;

pub struct Writer {
    conn: Option<Db>,
    /// Where to connect again after PostgreSQL dropped the connection (`None`: never).
    reconnect: Option<Database>,
    closed: bool,
    /// This daemon's node: its name, its id in the database, its write counter.
    node: String,
    node_id: i32,
    seq: i64,
    /// Monitor ids already known to the database.
    ids: HashMap<MonitorKey, i32>,
    /// Recent rollups and model ids as stored, so a batch needs no reads.
    cache: db::WriteCache,
    /// The alert state machine: run in each batch's transaction, kept once it commits (only
    /// on the leader).
    engine: Engine,
    /// Whether this node runs the single-writer duties (SQLite: always).
    leader: bool,
    /// What each node last saw of each monitor, for the combined status the engine follows.
    seen: HashMap<MonitorKey, BTreeMap<i32, Seen>>,
    /// A monitor of several models: each model's combined status as last seen (by model name,
    /// under the monitor's key without a model).
    models_seen: HashMap<MonitorKey, BTreeMap<String, Seen>>,
}

/// A node's latest probe of a monitor, as the combined status needs it.
#[derive(Debug, Clone)]
struct Seen {
    ts: i64,
    status: Status,
    reason: Reason,
    detail: Option<String>,
    interval: Option<i64>,
}

/// An observation for the engine, owned (the engine borrows).
struct Combined {
    key: MonitorKey,
    ts: i64,
    status: Status,
    reason: Reason,
    detail: Option<String>,
    in_maintenance: bool,
}

impl Writer {
    pub fn new(mut conn: Db, database: Database, node: String, alerts: Arc<AlertConfig>) -> Self {
        if let Db::Sqlite(conn) = &mut conn {
            if let Err(e) = conn.batch_execute(&format!("PRAGMA busy_timeout = {BUSY_TIMEOUT_MS};")) {
                log::warn!("store: cannot shorten the busy timeout: {e}");
            }
        }
        let reconnect = matches!(database, Database::Postgres(_)).then_some(database);
        let leader = reconnect.is_none();
        Writer {
            leader,
            seen: HashMap::new(),
            models_seen: HashMap::new(),
            conn: Some(conn),
            reconnect,
            closed: false,
            node,
            node_id: db::LOCAL_NODE,
            seq: 0,
            ids: HashMap::new(),
            cache: db::WriteCache::default(),
            engine: Engine::new(alerts),
        }
    }

    /// The connection; after PostgreSQL dropped it, a new one (the error names the database,
    /// never its password).
    fn conn(&mut self) -> Result<&mut Db, String> {
        if self.closed {
            return Err("the database is closed".to_string());
        }
        if self.conn.is_none() {
            let database = self.reconnect.as_ref().ok_or_else(|| "the database is closed".to_string())?;
            let db = db::connect(database, &self.node).map_err(|e| e.to_string())?;
            log::info!("store: connected to {} again", database.shown());
            self.conn = Some(db);
        }
        self.conn.as_mut().ok_or_else(|| "the database is closed".to_string())
    }

    /// After a failed statement: a PostgreSQL connection that no longer answers is let go, so
    /// the next attempt connects again. Returns the error, password removed.
    fn failed(&mut self, error: String) -> String {
        if let (Some(Db::Pg(_)), Some(Database::Postgres(url))) = (&mut self.conn, &self.reconnect) {
            let url = url.clone();
            let alive = self.conn.as_mut().is_some_and(|db| dispatch!(db, ping()).is_ok());
            if !alive {
                self.conn = None;
                // What the writer caches mirrors a database it can no longer see for certain.
                self.cache.clear();
            }
            return url.redact(&error);
        }
        error
    }
}

impl Writer {
    /// Takes a node's probe into what each node last saw, and gives the monitor's combined
    /// status at the probe's time under `quorum` (see `store::combine`): with one node, that
    /// node's own result.
    fn observe(&mut self, key: &MonitorKey, node: i32, row: &Row, quorum: crate::config::Quorum) -> Combined {
        let status = Status::from_i16(row.status).unwrap_or(Status::Red);
        let reason = Reason::parse(&row.reason).unwrap_or(Reason::ServerError);
        let nodes = self.seen.entry(key.clone()).or_default();
        nodes.insert(
            node,
            Seen { ts: row.ts, status, reason, detail: row.detail.clone(), interval: row.interval_s.map(i64::from) },
        );
        let t = row.ts;
        let live: Vec<&Seen> = nodes
            .values()
            .filter(|s| s.interval.is_none_or(|i| s.ts >= t - super::combine::STALE_INTERVALS * i.max(1)))
            .collect();
        let statuses: Vec<(i16, i64)> = live.iter().map(|s| (s.status.into(), s.ts)).collect();
        // The node's own probe is among them, so there is always one to pick.
        let chosen: &Seen = super::combine::pick(&statuses, quorum).map_or(live[0], |i| live[i]);
        let chosen = chosen.clone();
        Combined {
            key: key.clone(),
            ts: row.ts,
            status: chosen.status,
            reason: chosen.reason,
            detail: chosen.detail,
            in_maintenance: row.maintenance,
        }
    }

    /// One model's combined status, as its monitor's: the models not stale (3 intervals, as
    /// nodes) combined under `rule`; when that is red, the detail names every failing model.
    /// `None` when the engine is not to count this probe: the monitor is red, and this model
    /// is not one of those failing (so `failure_threshold` counts the failing models' own
    /// probes, and one failed probe of one model is not counted again by every other model's).
    fn observe_model(
        &mut self,
        series: Combined,
        interval: Option<i64>,
        rule: crate::config::Quorum,
    ) -> Option<Combined> {
        let key = series.key.monitor();
        let models = self.models_seen.entry(key.clone()).or_default();
        let seen = Seen {
            ts: series.ts,
            status: series.status,
            reason: series.reason,
            detail: series.detail.clone(),
            interval,
        };
        // A foreign row older than what was seen of the model changes nothing.
        if models.get(&series.key.model).is_none_or(|s| s.ts <= seen.ts) {
            models.insert(series.key.model.clone(), seen);
        }
        let (chosen, detail) = models_combined(models, series.ts, rule);
        if chosen.status == Status::Red && series.status != Status::Red {
            return None;
        }
        Some(Combined {
            key,
            ts: series.ts,
            status: chosen.status,
            reason: chosen.reason,
            detail,
            in_maintenance: series.in_maintenance,
        })
    }
}

/// The models of one monitor as seen at `t`: those not stale (3 of their intervals) combined
/// under `rule` (see `combine::pick`); when that is red, a detail naming every failing model.
fn models_combined(models: &BTreeMap<String, Seen>, t: i64, rule: crate::config::Quorum) -> (Seen, Option<String>) {
    let live: Vec<(&String, &Seen)> = models
        .iter()
        .filter(|(_, s)| s.interval.is_none_or(|i| s.ts >= t - super::combine::STALE_INTERVALS * i.max(1)))
        .collect();
    let statuses: Vec<(i16, i64)> = live.iter().map(|(_, s)| (s.status.into(), s.ts)).collect();
    let Some(chosen) = super::combine::pick(&statuses, rule).map(|i| live[i].1.clone()) else {
        // Only when nothing is live, which the model just seen always is.
        let any = models.values().max_by_key(|s| s.ts).cloned();
        return (
            any.unwrap_or(Seen {
                ts: t,
                status: Status::Red,
                reason: Reason::ServerError,
                detail: None,
                interval: None,
            }),
            None,
        );
    };
    let detail = if chosen.status == Status::Red {
        let failing: Vec<String> = live
            .iter()
            .filter(|(_, s)| s.status == Status::Red)
            .map(|(model, s)| match &s.detail {
                Some(detail) => format!("{model}: {} ({detail})", s.reason.as_str()),
                None => format!("{model}: {}", s.reason.as_str()),
            })
            .collect();
        Some(crate::secret::prefix(&format!("failing models: {}", failing.join("; ")), 1_000).to_string())
    } else {
        chosen.detail.clone()
    };
    (chosen, detail)
}

impl Actor for Writer {
    type Context = SyncContext<Self>;
}

/// What the store has when it starts: the hourly rollups from `first_hour` on, every monitor's
/// latest probe, and the ids of the monitors the database knows.
#[derive(Message)]
#[rtype(result = "Result<Loaded, String>")]
pub struct Load {
    pub first_hour: i64,
    pub now: i64,
}

/// How many of the newest events the store keeps in memory for `/api/events`.
pub const RECENT_EVENTS: i64 = 10_000;

pub struct Loaded {
    /// Whether the database takes writes (a write lock taken and let go).
    pub writable: Result<(), String>,
    /// The database is shared (PostgreSQL): leadership comes from the lock.
    pub shared: bool,
    /// This node's id, and every node's (id, name).
    pub node_id: i32,
    pub nodes: Vec<(i32, String)>,
    /// Where reading other nodes' changes starts (their write counters as loaded).
    pub seqs: HashMap<i32, i64>,
    pub monitors: Vec<(MonitorKey, i32)>,
    pub rollups: Vec<RollupEntry>,
    pub latest: Vec<Row>,
    /// The alert state, the outbox's pending messages and the newest events.
    pub alerts: AlertsLoaded,
    pub next_due: Option<i64>,
}

impl Handler<Load> for Writer {
    type Result = Result<Loaded, String>;

    fn handle(&mut self, msg: Load, _: &mut SyncContext<Self>) -> Self::Result {
        let node = self.node.clone();
        let conn = self.conn()?;
        // SQLite has one node (its file is this daemon's alone): all of its history is this
        // node's, whatever it is called now. A shared PostgreSQL database names its nodes.
        let (node_id, nodes) = match conn {
            Db::Sqlite(_) => (db::LOCAL_NODE, vec![(db::LOCAL_NODE, node)]),
            Db::Pg(pg) => {
                let id = db::sql::pg::claim_node(pg, &node).map_err(|e| e.to_string())?;
                (id, db::sql::pg::nodes(pg).map_err(|e| e.to_string())?)
            }
        };
        let seq = dispatch!(conn, last_seq(node_id)).map_err(|e| e.to_string())?;
        // Other nodes' counters before their rows: what they write meanwhile is read again
        // (a rollup read twice is the same rollup), never missed.
        let mut seqs = HashMap::new();
        for (id, _) in nodes.iter().filter(|(id, _)| *id != node_id) {
            seqs.insert(*id, dispatch!(conn, last_seq(*id)).map_err(|e| e.to_string())?);
        }
        let monitors = dispatch!(conn, monitors()).map_err(|e| e.to_string())?;
        let rollups = dispatch!(conn, rollups_since(msg.first_hour)).map_err(|e| e.to_string())?;
        let latest = dispatch!(conn, latest_rows()).map_err(|e| e.to_string())?;
        let mut alerts = dispatch!(conn, load(RECENT_EVENTS)).map_err(|e| e.to_string())?;
        let writable = conn.try_write();
        self.node_id = node_id;
        self.seq = seq;
        self.ids.extend(monitors.iter().cloned());
        // What each model of a monitor of several models last was here, so the first probe
        // after a restart is combined with the others' (not judged alone: no false recovery).
        let key_of: HashMap<i32, &MonitorKey> = monitors.iter().map(|(k, id)| (*id, k)).collect();
        for row in latest.iter().filter(|r| r.node_id == node_id) {
            let Some(key) = key_of.get(&row.monitor_id).filter(|k| !k.model.is_empty()) else { continue };
            let seen = Seen {
                ts: row.ts,
                status: Status::from_i16(row.status).unwrap_or(Status::Red),
                reason: Reason::parse(&row.reason).unwrap_or(Reason::ServerError),
                detail: row.detail.clone(),
                interval: row.interval_s.map(i64::from),
            };
            self.models_seen.entry(key.monitor()).or_default().insert(key.model.clone(), seen);
        }
        self.engine.load(std::mem::take(&mut alerts.states), alerts.global.clone(), alerts.last_event);
        let next_due = self.engine.next_due(msg.now);
        let shared = self.reconnect.is_some();
        Ok(Loaded { writable, shared, node_id, nodes, seqs, monitors, rollups, latest, alerts, next_due })
    }
}

/// Results to store, in the order their probes ended: each with its monitor's key (ids are
/// given here, in the same transaction, to monitors the database does not know yet).
#[derive(Message)]
#[rtype(result = "Result<Written, String>")]
pub struct WriteBatch {
    pub rows: Vec<(MonitorKey, Row)>,
    /// What delivery did since the last batch.
    pub deliveries: Vec<DeliveryUpdate>,
    /// The time of the batch: what the alert engine's clock says (reminders, windows).
    pub now: i64,
    /// Other nodes' latest probes since the last batch (the leader's engine follows the
    /// combined status), and the quorum rule.
    pub foreign: Vec<(MonitorKey, Row)>,
    pub quorum: crate::config::Quorum,
    /// The other probing nodes as the leader sees them (lost and back).
    pub nodes: Vec<crate::alert::engine::NodeSeen>,
    /// Each monitor of several models (by its key without a model): its `model_rule`. The
    /// engine follows such a monitor as one, its models combined under the rule.
    pub model_rules: Arc<HashMap<MonitorKey, crate::config::Quorum>>,
}

/// A committed batch: its rows with their monitor ids, and the ids it gave out.
pub struct Written {
    pub rows: Vec<Row>,
    pub ids: Vec<(MonitorKey, i32)>,
    /// The events it recorded.
    pub events: Vec<Event>,
    /// The messages it put in the outbox.
    pub outbox: Vec<OutboxRow>,
    /// Events whose pending messages it withdrew.
    pub suppressed: Vec<i64>,
    /// When the engine next needs a look without a probe.
    pub next_due: Option<i64>,
}

impl Handler<WriteBatch> for Writer {
    type Result = Result<Written, String>;

    fn handle(&mut self, msg: WriteBatch, _: &mut SyncContext<Self>) -> Self::Result {
        let mut unknown: Vec<MonitorKey> = Vec::new();
        for (key, _) in &msg.rows {
            if !self.ids.contains_key(key) && !unknown.contains(key) {
                unknown.push(key.clone());
            }
        }
        // Probes inside a maintenance window are marked, then the engine runs over them.
        let mut rows = msg.rows;
        for (key, row) in &mut rows {
            row.maintenance = self.engine.in_maintenance(key, row.ts);
        }
        let decided = if self.leader {
            // Own results and other nodes' in time order, each as the combined status then.
            let me = self.node_id;
            let mut all: Vec<(i32, &MonitorKey, &Row)> = rows.iter().map(|(key, row)| (me, key, row)).collect();
            all.extend(msg.foreign.iter().map(|(key, row)| (row.node_id, key, row)));
            all.sort_by_key(|(_, _, row)| row.ts);
            let all: Vec<(i32, MonitorKey, Row)> =
                all.into_iter().map(|(node, key, row)| (node, key.clone(), row.clone())).collect();
            let combined: Vec<Combined> = all
                .iter()
                .filter_map(|(node, key, row)| {
                    let combined = self.observe(key, *node, row, msg.quorum);
                    if key.model.is_empty() {
                        return Some(combined);
                    }
                    match msg.model_rules.get(&key.monitor()) {
                        Some(rule) => self.observe_model(combined, row.interval_s.map(i64::from), *rule),
                        None => Some(combined),
                    }
                })
                .collect();
            let observed: Vec<Observed<'_>> = combined
                .iter()
                .map(|c| Observed {
                    key: &c.key,
                    ts: c.ts,
                    status: c.status,
                    reason: c.reason,
                    detail: c.detail.as_deref(),
                    in_maintenance: c.in_maintenance,
                })
                .collect();
            self.engine.decide_with_nodes(&observed, &msg.nodes, msg.now)
        } else {
            Decided::default()
        };
        let mut wanted = unknown;
        for key in decided.states.keys() {
            if !self.ids.contains_key(key) && !wanted.contains(key) {
                wanted.push(key.clone());
            }
        }
        let now = msg.now;
        let writing = Writing { node: self.node_id, seq: self.seq + 1 };
        self.conn()?;
        let Writer { conn, ids: known, cache, .. } = self;
        let conn = conn.as_mut().ok_or_else(|| "the database is closed".to_string())?;
        let batch =
            Batch { rows, wanted, known, cache, decided: Some(&decided), deliveries: &msg.deliveries, now, writing };
        let done = match dispatch!(conn, write_batch(batch)) {
            Ok(done) => done,
            Err(e) => return Err(self.failed(e.to_string())),
        };
        self.seq = writing.seq;
        let mut written = Written {
            rows: done.rows,
            ids: done.ids,
            events: decided.events.clone(),
            outbox: done.outbox,
            suppressed: decided.suppress.clone(),
            next_due: None,
        };
        let staged = done.staged;
        // Committed: the cache and the engine may say so now.
        self.cache.apply(staged);
        self.engine.apply(&decided);
        self.ids.extend(written.ids.iter().cloned());
        written.next_due = self.engine.next_due(now);
        Ok(written)
    }
}

/// A new alert configuration (thresholds, channels, windows), for the next batch on.
#[derive(Message)]
#[rtype(result = "Option<i64>")]
pub struct ConfigureAlerts {
    pub config: Arc<AlertConfig>,
    pub now: i64,
}

impl Handler<ConfigureAlerts> for Writer {
    type Result = Option<i64>;

    fn handle(&mut self, msg: ConfigureAlerts, _: &mut SyncContext<Self>) -> Option<i64> {
        self.engine.configure(msg.config);
        self.engine.next_due(msg.now)
    }
}

/// Events after `since_id`, oldest first, from the database (older than memory holds).
#[derive(Message)]
#[rtype(result = "Result<Vec<Event>, String>")]
pub struct ReadEvents {
    pub since_id: i64,
    pub limit: i64,
}

impl Handler<ReadEvents> for Writer {
    type Result = Result<Vec<Event>, String>;

    fn handle(&mut self, msg: ReadEvents, _: &mut SyncContext<Self>) -> Self::Result {
        let conn = self.conn()?;
        dispatch!(conn, read_events(msg.since_id, msg.limit)).map_err(|e| e.to_string())
    }
}

/// One step of the retention purge. When the purge is complete, also the rollups of the day
/// the cutoff falls in (so the StoreActor can sum that day again).
#[derive(Message)]
#[rtype(result = "Result<Purged, String>")]
pub struct PurgeStep {
    pub before: i64,
    pub from: i64,
    pub limit: i64,
    /// The hours whose rollups the last step returns.
    pub cutoff_hours: (i64, i64),
}

pub struct Purged {
    pub progress: PurgeProgress,
    pub rest_of_day: Vec<RollupEntry>,
}

impl Handler<PurgeStep> for Writer {
    type Result = Result<Purged, String>;

    fn handle(&mut self, msg: PurgeStep, _: &mut SyncContext<Self>) -> Self::Result {
        // A purge deletes rollups and may delete model names: what the cache holds of them
        // is read again.
        self.cache.clear();
        let conn = self.conn()?;
        let step = super::sql::purge_step(conn, msg.before, msg.from, msg.limit).map_err(|e| e.to_string());
        let progress = match step {
            Ok(progress) => progress,
            Err(e) => return Err(self.failed(e)),
        };
        let conn = self.conn()?;
        let rest_of_day = if progress.next.is_none() {
            dispatch!(conn, rollups_between(msg.cutoff_hours.0, msg.cutoff_hours.1)).map_err(|e| e.to_string())?
        } else {
            Vec::new()
        };
        Ok(Purged { progress, rest_of_day })
    }
}

/// Whether the database takes writes now: takes the write lock and lets it go.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct TryWrite;

impl Handler<TryWrite> for Writer {
    type Result = Result<(), String>;

    fn handle(&mut self, _: TryWrite, _: &mut SyncContext<Self>) -> Self::Result {
        let result = self.conn()?.try_write();
        result.map_err(|e| self.failed(e))
    }
}

/// Close the database (a WAL checkpoint into the main file); nothing is written after.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseDatabase;

impl Handler<CloseDatabase> for Writer {
    type Result = ();

    fn handle(&mut self, _: CloseDatabase, _: &mut SyncContext<Self>) {
        self.conn = None;
        self.closed = true;
    }
}

/// What the other nodes wrote since their write counters were `seqs` (nodes missing from
/// `seqs` are read from the start).
#[derive(Message)]
#[rtype(result = "Result<Changes, String>")]
pub struct ReadChanges {
    pub seqs: HashMap<i32, i64>,
    /// Events after this id (the leader's, for `/api/events` on every node).
    pub events_after: i64,
}

pub struct Changes {
    pub nodes: Vec<(i32, String)>,
    /// Every monitor of the database, when the changes name one this node did not know.
    pub monitors: Vec<(MonitorKey, i32)>,
    pub rollups: Vec<RollupEntry>,
    pub latest: Vec<Row>,
    pub seqs: HashMap<i32, i64>,
    pub events: Vec<Event>,
}

impl Handler<ReadChanges> for Writer {
    type Result = Result<Changes, String>;

    fn handle(&mut self, msg: ReadChanges, _: &mut SyncContext<Self>) -> Self::Result {
        let me = self.node_id;
        let conn = self.conn()?;
        if let Db::Sqlite(_) = conn {
            return Ok(Changes {
                nodes: vec![(me, self.node.clone())],
                monitors: Vec::new(),
                rollups: Vec::new(),
                latest: Vec::new(),
                seqs: msg.seqs,
                events: Vec::new(),
            });
        }
        let read = (|| {
            let nodes = dispatch!(conn, nodes())?;
            let events = dispatch!(conn, read_events(msg.events_after, 1_000))?;
            let mut changes = Changes {
                nodes,
                monitors: Vec::new(),
                rollups: Vec::new(),
                latest: Vec::new(),
                seqs: msg.seqs,
                events,
            };
            for (node, _) in changes.nodes.iter().filter(|(id, _)| *id != me) {
                let since = changes.seqs.get(node).copied().unwrap_or(0);
                let (rollups, latest, seq) = dispatch!(conn, changes_since(*node, since))?;
                changes.rollups.extend(rollups);
                changes.latest.extend(latest);
                changes.seqs.insert(*node, seq);
            }
            Ok::<_, db::StoreError>(changes)
        })();
        let mut changes = read.map_err(|e| self.failed(e.to_string()))?;
        let known: std::collections::HashSet<i32> = self.ids.values().copied().collect();
        let mut named = changes.rollups.iter().map(|r| r.0).chain(changes.latest.iter().map(|r| r.monitor_id));
        if named.any(|id| !known.contains(&id)) {
            let conn = self.conn()?;
            changes.monitors = dispatch!(conn, monitors()).map_err(|e| e.to_string())?;
            self.ids.extend(changes.monitors.iter().cloned());
        }
        Ok(changes)
    }
}

/// This node became the leader: the alert state as the last leader left it is loaded, and
/// what waits in the outbox is handed over.
#[derive(Message)]
#[rtype(result = "Result<(AlertsLoaded, Option<i64>), String>")]
pub struct TakeLead {
    pub now: i64,
}

impl Handler<TakeLead> for Writer {
    type Result = Result<(AlertsLoaded, Option<i64>), String>;

    fn handle(&mut self, msg: TakeLead, _: &mut SyncContext<Self>) -> Self::Result {
        let conn = self.conn()?;
        let loaded = dispatch!(conn, load(RECENT_EVENTS)).map_err(|e| e.to_string());
        let mut alerts = loaded.map_err(|e| self.failed(e))?;
        self.engine.load(std::mem::take(&mut alerts.states), alerts.global.clone(), alerts.last_event);
        self.leader = true;
        Ok((alerts, self.engine.next_due(msg.now)))
    }
}

/// Another node leads now: the engine stops deciding.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StepDown;

impl Handler<StepDown> for Writer {
    type Result = ();

    fn handle(&mut self, _: StepDown, _: &mut SyncContext<Self>) {
        self.leader = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Quorum;

    fn seen(ts: i64, status: Status, detail: Option<&str>) -> Seen {
        let reason = if status == Status::Red { Reason::ServerError } else { Reason::Ok };
        Seen { ts, status, reason, detail: detail.map(str::to_string), interval: Some(60) }
    }

    #[test]
    fn models_combine_under_the_rule_leave_stale_ones_out_and_name_the_failing() {
        let mut models = BTreeMap::new();
        models.insert("a".to_string(), seen(1_000, Status::Green, None));
        models.insert("b".to_string(), seen(1_010, Status::Red, Some("HTTP 503")));
        models.insert("c".to_string(), seen(1_020, Status::Yellow, None));
        let (chosen, detail) = models_combined(&models, 1_020, Quorum::One);
        assert_eq!(
            (chosen.status, detail.as_deref()),
            (Status::Red, Some("failing models: b: server_error (HTTP 503)"))
        );
        // Majority: one red of three is not red; the worst of the others is yellow.
        let (chosen, detail) = models_combined(&models, 1_020, Quorum::Majority);
        assert_eq!((chosen.status, detail), (Status::Yellow, None));
        // A model not seen for 3 intervals (removed, say) no longer counts.
        models.insert("old".to_string(), seen(700, Status::Red, None));
        models.insert("d".to_string(), seen(1_020, Status::Red, None));
        let (chosen, detail) = models_combined(&models, 1_020, Quorum::Majority);
        assert_eq!(chosen.status, Status::Yellow, "b and d of a, b, c, d: not a majority");
        assert_eq!(detail, None);
        let (_, detail) = models_combined(&models, 1_020, Quorum::One);
        assert_eq!(detail.as_deref(), Some("failing models: b: server_error (HTTP 503); d: server_error"));
    }
}
