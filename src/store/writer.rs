//! The Writer: the one place diesel runs, on a thread of its own (a `SyncArbiter` of one).
//! The StoreActor hands it one piece of work at a time (a batch of results, a purge step, a
//! probe of writability) and goes on answering queries while the database works or waits for a
//! lock. Each attempt waits for another process's lock only briefly ([`BUSY_TIMEOUT_MS`]): a
//! refused attempt comes back as an error and the StoreActor tries again later.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::SqliteConnection;

use super::alerts::{self, AlertsLoaded, DeliveryUpdate, OutboxRow};
use super::db::{self, PurgeProgress, Row};
use super::rollup::Agg;
use crate::alert::engine::{Engine, Event, Observed};
use crate::alert::AlertConfig;
use crate::domain::MonitorKey;
use crate::domain::{Reason, Status};

/// How long one attempt waits for another process's lock (an operator's `sqlite3`, a backup).
pub const BUSY_TIMEOUT_MS: u32 = 200;

pub struct Writer {
    conn: Option<SqliteConnection>,
    /// Monitor ids already known to the database.
    ids: HashMap<MonitorKey, i32>,
    /// Recent rollups and model ids as stored, so a batch needs no reads.
    cache: db::WriteCache,
    /// The alert state machine: run in each batch's transaction, kept once it commits.
    engine: Engine,
}

impl Writer {
    pub fn new(mut conn: SqliteConnection, alerts: Arc<AlertConfig>) -> Self {
        if let Err(e) = conn.batch_execute(&format!("PRAGMA busy_timeout = {BUSY_TIMEOUT_MS};")) {
            log::warn!("store: cannot shorten the busy timeout: {e}");
        }
        Writer { conn: Some(conn), ids: HashMap::new(), cache: db::WriteCache::default(), engine: Engine::new(alerts) }
    }

    fn conn(&mut self) -> Result<&mut SqliteConnection, String> {
        self.conn.as_mut().ok_or_else(|| "the database is closed".to_string())
    }
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
    pub monitors: Vec<(MonitorKey, i32)>,
    pub rollups: Vec<(i32, i64, Agg)>,
    pub latest: Vec<Row>,
    /// The alert state, the outbox's pending messages and the newest events.
    pub alerts: AlertsLoaded,
    pub next_due: Option<i64>,
}

impl Handler<Load> for Writer {
    type Result = Result<Loaded, String>;

    fn handle(&mut self, msg: Load, _: &mut SyncContext<Self>) -> Self::Result {
        let conn = self.conn()?;
        let monitors = db::monitors(conn).map_err(|e| e.to_string())?;
        let rollups = db::rollups_since(conn, msg.first_hour).map_err(|e| e.to_string())?;
        let latest = db::latest_rows(conn).map_err(|e| e.to_string())?;
        let mut alerts = alerts::load(conn, RECENT_EVENTS).map_err(|e| e.to_string())?;
        let writable = try_write(conn);
        self.ids.extend(monitors.iter().cloned());
        self.engine.load(std::mem::take(&mut alerts.states), alerts.global.clone(), alerts.last_event);
        let next_due = self.engine.next_due(msg.now);
        Ok(Loaded { writable, monitors, rollups, latest, alerts, next_due })
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
        let observed: Vec<Observed<'_>> = rows
            .iter()
            .map(|(key, row)| Observed {
                key,
                ts: row.ts,
                status: Status::from_i16(row.status).unwrap_or(Status::Red),
                reason: Reason::parse(&row.reason).unwrap_or(Reason::ServerError),
                detail: row.detail.as_deref(),
                in_maintenance: row.maintenance,
            })
            .collect();
        let decided = self.engine.decide(&observed, msg.now);
        drop(observed);
        let Writer { conn, ids: known, cache, .. } = self;
        let conn = conn.as_mut().ok_or_else(|| "the database is closed".to_string())?;
        let now = msg.now;
        let written = conn
            .transaction::<_, db::StoreError, _>(|conn| {
                let mut wanted = unknown.clone();
                for key in decided.states.keys() {
                    if !known.contains_key(key) && !wanted.contains(key) {
                        wanted.push(key.clone());
                    }
                }
                let new_ids = db::monitor_ids(conn, &wanted)?;
                let ids: Vec<(MonitorKey, i32)> = wanted.iter().cloned().zip(new_ids).collect();
                let id_of = |key: &MonitorKey| {
                    known.get(key).copied().or_else(|| ids.iter().find(|(k, _)| k == key).map(|(_, id)| *id))
                };
                let rows: Vec<Row> = rows
                    .into_iter()
                    .map(|(key, row)| Row { monitor_id: id_of(&key).unwrap_or_default(), ..row })
                    .collect();
                let staged = db::insert_staged(conn, &rows, cache)?;
                let outbox = alerts::write_decided(conn, &decided, &id_of, now)?;
                alerts::record_deliveries(conn, &msg.deliveries)?;
                let written = Written {
                    rows,
                    ids,
                    events: decided.events.clone(),
                    outbox,
                    suppressed: decided.suppress.clone(),
                    next_due: None,
                };
                Ok((written, staged))
            })
            .map_err(|e| e.to_string())?;
        // Committed: the cache and the engine may say so now.
        let (mut written, staged) = written;
        cache.apply(staged);
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
        alerts::read_events(self.conn()?, msg.since_id, msg.limit).map_err(|e| e.to_string())
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
    pub rest_of_day: Vec<(i32, i64, Agg)>,
}

impl Handler<PurgeStep> for Writer {
    type Result = Result<Purged, String>;

    fn handle(&mut self, msg: PurgeStep, _: &mut SyncContext<Self>) -> Self::Result {
        // A purge deletes rollups and may delete model names: what the cache holds of them
        // is read again.
        self.cache.clear();
        let conn = self.conn()?;
        let progress = db::purge_step(conn, msg.before, msg.from, msg.limit).map_err(|e| e.to_string())?;
        let rest_of_day = if progress.next.is_none() {
            db::rollups_between(conn, msg.cutoff_hours.0, msg.cutoff_hours.1).map_err(|e| e.to_string())?
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
        try_write(self.conn()?)
    }
}

fn try_write(conn: &mut SqliteConnection) -> Result<(), String> {
    conn.batch_execute("BEGIN IMMEDIATE; ROLLBACK;").map_err(|e| {
        // A failed BEGIN leaves no transaction; a failed ROLLBACK after a BEGIN would.
        let _ = conn.batch_execute("ROLLBACK;");
        format!("database query failed: {e}")
    })
}

/// Close the database (a WAL checkpoint into the main file); nothing is written after.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseDatabase;

impl Handler<CloseDatabase> for Writer {
    type Result = ();

    fn handle(&mut self, _: CloseDatabase, _: &mut SyncContext<Self>) {
        self.conn = None;
    }
}
