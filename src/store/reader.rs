//! The Reader: threads of their own, each with its own read connection, for the queries the
//! read model cannot answer (incidents, monthly reports, raw exports). They never wait on the
//! Writer: SQLite's WAL lets readers go on beside the one writer, PostgreSQL has its own
//! connections. A connection is opened at the first query and again after it fails.

use actix::prelude::*;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use super::db::{ExportAfter, Row, StoreError};
use super::sql::{pg, sqlite, Db};
use crate::config::{Database, MonitorKey};

/// Threads serving reads at once; more queries wait for one.
pub const READER_THREADS: usize = 2;

pub struct Reader {
    database: Database,
    /// This daemon's node name: the name of SQLite's one node (stored unnamed).
    node: String,
    conn: Option<Db>,
}

impl Actor for Reader {
    type Context = SyncContext<Self>;
}

/// Starts the reader threads for `database`, read as node `node`.
pub fn start(database: Database, node: String) -> Addr<Reader> {
    SyncArbiter::start(READER_THREADS, move || Reader { database: database.clone(), node: node.clone(), conn: None })
}

/// Opens a connection that only reads: SQLite with `query_only` (its schema is the Writer's
/// business), PostgreSQL in a read-only session with a statement timeout.
fn open(database: &Database) -> Result<Db, StoreError> {
    match database {
        Database::Sqlite(path) => {
            let shown = path.display().to_string();
            let fail = |message: String| StoreError::Open { path: shown.clone(), message };
            let text = path.to_str().ok_or_else(|| fail("path is not valid UTF-8".to_string()))?;
            let mut conn = diesel::SqliteConnection::establish(text).map_err(|e| fail(e.to_string()))?;
            conn.batch_execute("PRAGMA busy_timeout = 5000; PRAGMA query_only = ON;")
                .map_err(|e| fail(format!("setting up: {e}")))?;
            Ok(Db::Sqlite(conn))
        }
        Database::Postgres(url) => {
            let fail = |message: String| StoreError::Open { path: url.shown(), message: url.redact(&message) };
            let mut conn = diesel::PgConnection::establish(&url.expose()).map_err(|e| fail(e.to_string()))?;
            conn.batch_execute(
                "SET application_name = 'llm-monitor/reader'; SET statement_timeout = '30s'; \
                 SET default_transaction_read_only = on;",
            )
            .map_err(|e| fail(format!("setting up: {e}")))?;
            Ok(Db::Pg(conn))
        }
    }
}

impl Reader {
    /// Runs `f` on the connection, opening it first if needed; a failed query drops it, so the
    /// next one connects again (PostgreSQL may have restarted).
    fn with<T>(&mut self, f: impl FnOnce(&mut Db) -> Result<T, StoreError>) -> Result<T, StoreError> {
        if self.conn.is_none() {
            self.conn = Some(open(&self.database)?);
        }
        let conn = self.conn.as_mut().expect("opened above");
        let result = f(conn);
        if result.is_err() {
            self.conn = None;
        }
        result
    }
}

/// What every answer needs to name what it read: monitors and nodes by id.
#[derive(Debug, Default)]
pub struct Names {
    pub monitors: Vec<(MonitorKey, i32)>,
    pub nodes: Vec<(i32, String)>,
}

/// The monitors and nodes by id; a node stored without a name (SQLite's one node, whose name
/// the writer keeps in memory) is called `node`.
fn names(db: &mut Db, node: &str) -> Result<Names, StoreError> {
    let mut nodes = crate::dispatch!(db, nodes())?;
    for (_, name) in nodes.iter_mut().filter(|(_, name)| name.is_empty()) {
        *name = node.to_string();
    }
    Ok(Names { monitors: crate::dispatch!(db, monitors())?, nodes })
}

/// The most runs of red probes one query reads (newest first): a monitor that flaps for a
/// month cannot make an answer hold millions.
pub const MAX_RUNS: i64 = 50_000;

/// Runs of red probes read for a query, and whether [`MAX_RUNS`] cut them.
#[derive(Debug, Default)]
pub struct Runs {
    pub runs: Vec<super::incidents::Run>,
    pub truncated: bool,
}

fn read_runs(db: &mut Db, range: (i64, i64), min_reds: i64) -> Result<Runs, StoreError> {
    let mut runs = crate::dispatch!(db, red_runs_between(range, min_reds.max(1), MAX_RUNS + 1))?;
    let truncated = runs.len() as i64 > MAX_RUNS;
    runs.truncate(MAX_RUNS as usize);
    Ok(Runs { truncated, runs })
}

/// Every node's runs of at least `min_reds` red probes overlapping `[from, to)`.
#[derive(Message)]
#[rtype(result = "Result<(Runs, Names), StoreError>")]
pub struct ReadRuns {
    pub from: i64,
    pub to: i64,
    pub min_reds: i64,
}

impl Handler<ReadRuns> for Reader {
    type Result = Result<(Runs, Names), StoreError>;

    fn handle(&mut self, msg: ReadRuns, _: &mut Self::Context) -> Self::Result {
        let node = self.node.clone();
        self.with(|db| Ok((read_runs(db, (msg.from, msg.to), msg.min_reds)?, names(db, &node)?)))
    }
}

/// A report's figures: each monitor's probes of `[from, to)` summed hour by hour (the nodes of
/// an hour combined under `quorum`, or one node's with `only`), and the runs of at least
/// `min_reds` red probes overlapping it. Read a monitor at a time (through the rollups' primary
/// key), so a month of many monitors and nodes never sits in memory at once.
#[derive(Message)]
#[rtype(result = "Result<Report, StoreError>")]
pub struct ReadReport {
    pub from: i64,
    pub to: i64,
    pub min_reds: i64,
    pub quorum: crate::config::Quorum,
    /// One node's probes (by name).
    pub only: Option<String>,
}

#[derive(Debug, Default)]
pub struct Report {
    pub totals: std::collections::HashMap<i32, super::rollup::Agg>,
    pub runs: Runs,
    pub names: Names,
    /// The node asked for is not a node of this database (nothing was read).
    pub unknown_node: bool,
    /// The id of the node asked for.
    pub only: Option<i32>,
}

impl Handler<ReadReport> for Reader {
    type Result = Result<Report, StoreError>;

    fn handle(&mut self, msg: ReadReport, _: &mut Self::Context) -> Self::Result {
        use super::rollup::{Agg, HOUR};
        use std::collections::HashMap;
        let node = self.node.clone();
        let (first, last) = (msg.from.div_euclid(HOUR), (msg.to - 1).div_euclid(HOUR));
        self.with(|db| {
            let names = names(db, &node)?;
            let only = match &msg.only {
                Some(name) => match names.nodes.iter().find(|(_, n)| n == name) {
                    Some((id, _)) => Some(*id),
                    None => return Ok(Report { names, unknown_node: true, ..Report::default() }),
                },
                None => None,
            };
            let mut totals: HashMap<i32, Agg> = HashMap::new();
            for monitor in names.monitors.iter().map(|(_, id)| *id) {
                let mut hours: HashMap<i64, Vec<Agg>> = HashMap::new();
                for (_, node_id, hour, agg) in crate::dispatch!(db, rollups_of(monitor, first, last))? {
                    if only.is_none_or(|n| n == node_id) {
                        hours.entry(hour).or_default().push(agg);
                    }
                }
                if hours.is_empty() {
                    continue;
                }
                let total = totals.entry(monitor).or_default();
                for aggs in hours.values() {
                    match aggs.as_slice() {
                        // One node's hour needs no combining.
                        [only] => total.merge(only),
                        _ => {
                            let refs: Vec<&Agg> = aggs.iter().collect();
                            total.merge(&super::combine::bucket(&refs, msg.quorum));
                        }
                    }
                }
            }
            let runs = read_runs(db, (msg.from, msg.to), msg.min_reds)?;
            Ok(Report { totals, runs, names, unknown_node: false, only })
        })
    }
}

/// A page of raw probes made in `[from, to)` (see `ops::export_page`): in time order on
/// PostgreSQL, in id order on SQLite.
#[derive(Message)]
#[rtype(result = "Result<(Vec<(i64, Row)>, Names), StoreError>")]
pub struct ReadExport {
    pub from: i64,
    pub to: i64,
    pub after: ExportAfter,
    pub limit: i64,
}

impl Handler<ReadExport> for Reader {
    type Result = Result<(Vec<(i64, Row)>, Names), StoreError>;

    fn handle(&mut self, msg: ReadExport, _: &mut Self::Context) -> Self::Result {
        let node = self.node.clone();
        self.with(|db| {
            let range = (msg.from, msg.to);
            let rows = match db {
                Db::Sqlite(conn) => sqlite::export_page(conn, range, msg.after, msg.limit, false)?,
                Db::Pg(conn) => pg::export_page(conn, range, msg.after, msg.limit, true)?,
            };
            Ok((rows, names(db, &node)?))
        })
    }
}
