//! The Reader: threads of their own, each with its own read connection, for the queries the
//! read model cannot answer (incidents, monthly reports, raw exports). They never wait on the
//! Writer: SQLite's WAL lets readers go on beside the one writer, PostgreSQL has its own
//! connections. A connection is opened at the first query and again after it fails.

use actix::prelude::*;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use super::db::{ExportAfter, RollupEntry, Row, StoreError};
use super::sql::{pg, sqlite, Db};
use crate::config::{Database, MonitorKey};

/// Threads serving reads at once; more queries wait for one.
pub const READER_THREADS: usize = 2;

pub struct Reader {
    database: Database,
    conn: Option<Db>,
}

impl Actor for Reader {
    type Context = SyncContext<Self>;
}

/// Starts the reader threads for `database`.
pub fn start(database: Database) -> Addr<Reader> {
    SyncArbiter::start(READER_THREADS, move || Reader { database: database.clone(), conn: None })
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

fn names(db: &mut Db) -> Result<Names, StoreError> {
    Ok(Names { monitors: crate::dispatch!(db, monitors())?, nodes: crate::dispatch!(db, nodes())? })
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
    let runs = crate::dispatch!(db, red_runs_between(range, min_reds.max(1), MAX_RUNS))?;
    Ok(Runs { truncated: runs.len() as i64 >= MAX_RUNS, runs })
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
        self.with(|db| Ok((read_runs(db, (msg.from, msg.to), msg.min_reds)?, names(db)?)))
    }
}

/// A month's report: every node's hourly rollups of the hours of `[from, to)`, and the runs of
/// at least `min_reds` red probes overlapping it.
#[derive(Message)]
#[rtype(result = "Result<(Vec<RollupEntry>, Runs, Names), StoreError>")]
pub struct ReadReport {
    pub from: i64,
    pub to: i64,
    pub min_reds: i64,
}

impl Handler<ReadReport> for Reader {
    type Result = Result<(Vec<RollupEntry>, Runs, Names), StoreError>;

    fn handle(&mut self, msg: ReadReport, _: &mut Self::Context) -> Self::Result {
        use super::rollup::HOUR;
        let (first, last) = (msg.from.div_euclid(HOUR), (msg.to - 1).div_euclid(HOUR));
        self.with(|db| {
            let rollups = crate::dispatch!(db, rollups_between(first, last))?;
            let runs = read_runs(db, (msg.from, msg.to), msg.min_reds)?;
            Ok((rollups, runs, names(db)?))
        })
    }
}

/// A page of raw probes made in `[from, to)` (see `ops::export_page`).
#[derive(Message)]
#[rtype(result = "Result<(Vec<(i64, Row)>, Names, bool), StoreError>")]
pub struct ReadExport {
    pub from: i64,
    pub to: i64,
    pub after: ExportAfter,
    pub limit: i64,
}

impl Handler<ReadExport> for Reader {
    /// The probes, the names, and whether they are in time order (PostgreSQL) or id order.
    type Result = Result<(Vec<(i64, Row)>, Names, bool), StoreError>;

    fn handle(&mut self, msg: ReadExport, _: &mut Self::Context) -> Self::Result {
        self.with(|db| {
            let by_time = matches!(db, Db::Pg(_));
            let range = (msg.from, msg.to);
            let rows = match db {
                Db::Sqlite(conn) => sqlite::export_page(conn, range, msg.after, msg.limit, false)?,
                Db::Pg(conn) => pg::export_page(conn, range, msg.after, msg.limit, true)?,
            };
            Ok((rows, names(db)?, by_time))
        })
    }
}
