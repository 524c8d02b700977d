//! The Writer: the one place diesel runs, on a thread of its own (a `SyncArbiter` of one).
//! The StoreActor hands it one piece of work at a time (a batch of results, a purge step, a
//! probe of writability) and goes on answering queries while the database works or waits for a
//! lock. Each attempt waits for another process's lock only briefly ([`BUSY_TIMEOUT_MS`]): a
//! refused attempt comes back as an error and the StoreActor tries again later.

use std::collections::HashMap;

use actix::prelude::*;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::SqliteConnection;

use super::db::{self, PurgeProgress, Row};
use super::rollup::Agg;
use crate::domain::MonitorKey;

/// How long one attempt waits for another process's lock (an operator's `sqlite3`, a backup).
pub const BUSY_TIMEOUT_MS: u32 = 200;

pub struct Writer {
    conn: Option<SqliteConnection>,
    /// Monitor ids already known to the database.
    ids: HashMap<MonitorKey, i32>,
    /// Recent rollups and model ids as stored, so a batch needs no reads.
    cache: db::WriteCache,
}

impl Writer {
    pub fn new(mut conn: SqliteConnection) -> Self {
        if let Err(e) = conn.batch_execute(&format!("PRAGMA busy_timeout = {BUSY_TIMEOUT_MS};")) {
            log::warn!("store: cannot shorten the busy timeout: {e}");
        }
        Writer { conn: Some(conn), ids: HashMap::new(), cache: db::WriteCache::default() }
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
}

pub struct Loaded {
    /// Whether the database takes writes (a write lock taken and let go).
    pub writable: Result<(), String>,
    pub monitors: Vec<(MonitorKey, i32)>,
    pub rollups: Vec<(i32, i64, Agg)>,
    pub latest: Vec<Row>,
}

impl Handler<Load> for Writer {
    type Result = Result<Loaded, String>;

    fn handle(&mut self, msg: Load, _: &mut SyncContext<Self>) -> Self::Result {
        let conn = self.conn()?;
        let monitors = db::monitors(conn).map_err(|e| e.to_string())?;
        let rollups = db::rollups_since(conn, msg.first_hour).map_err(|e| e.to_string())?;
        let latest = db::latest_rows(conn).map_err(|e| e.to_string())?;
        let writable = try_write(conn);
        self.ids.extend(monitors.iter().cloned());
        Ok(Loaded { writable, monitors, rollups, latest })
    }
}

/// Results to store, in the order their probes ended: each with its monitor's key (ids are
/// given here, in the same transaction, to monitors the database does not know yet).
#[derive(Message)]
#[rtype(result = "Result<Written, String>")]
pub struct WriteBatch {
    pub rows: Vec<(MonitorKey, Row)>,
}

/// A committed batch: its rows with their monitor ids, and the ids it gave out.
pub struct Written {
    pub rows: Vec<Row>,
    pub ids: Vec<(MonitorKey, i32)>,
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
        let Writer { conn, ids: known, cache } = self;
        let conn = conn.as_mut().ok_or_else(|| "the database is closed".to_string())?;
        let written = conn
            .transaction::<_, db::StoreError, _>(|conn| {
                let new_ids = db::monitor_ids(conn, &unknown)?;
                let ids: Vec<(MonitorKey, i32)> = unknown.iter().cloned().zip(new_ids).collect();
                let id_of = |key: &MonitorKey| {
                    known.get(key).copied().or_else(|| ids.iter().find(|(k, _)| k == key).map(|(_, id)| *id))
                };
                let rows: Vec<Row> = msg
                    .rows
                    .into_iter()
                    .map(|(key, row)| Row { monitor_id: id_of(&key).unwrap_or_default(), ..row })
                    .collect();
                let staged = db::insert_staged(conn, &rows, cache)?;
                Ok((Written { rows, ids }, staged))
            })
            .map_err(|e| e.to_string())?;
        // Committed: the cache may say so now.
        let (written, staged) = written;
        cache.apply(staged);
        self.ids.extend(written.ids.iter().cloned());
        Ok(written)
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
