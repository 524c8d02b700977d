//! The two backends: SQLite (the default, a file) and PostgreSQL (shared by several probing
//! nodes). `ops.rs` holds every statement once and is compiled into both modules below, each
//! with its own connection type; [`Db`] is an open connection of either kind, and dispatches.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

pub mod pg;
pub mod sqlite;

/// An open database connection.
pub enum Db {
    Sqlite(diesel::SqliteConnection),
    Pg(diesel::PgConnection),
}

/// Runs `$f` of the backend's module on the connection: `dispatch!(db, f(a, b))`.
#[macro_export]
#[doc(hidden)]
macro_rules! dispatch {
    ($db:expr, $f:ident ( $($arg:expr),* $(,)? )) => {
        match $db {
            $crate::store::sql::Db::Sqlite(conn) => $crate::store::sql::sqlite::$f(conn, $($arg),*),
            $crate::store::sql::Db::Pg(conn) => $crate::store::sql::pg::$f(conn, $($arg),*),
        }
    };
}

impl Db {
    /// The id of each monitor, given in the database if new (see `ops::monitor_ids`).
    pub fn monitor_ids(
        &mut self,
        keys: &[crate::domain::MonitorKey],
    ) -> Result<Vec<i32>, crate::store::db::StoreError> {
        crate::dispatch!(self, monitor_ids(keys))
    }

    /// Stores probes as the first node's (what tests and tools prepare).
    pub fn insert(&mut self, rows: &[crate::store::db::Row]) -> Result<(), crate::store::db::StoreError> {
        crate::dispatch!(self, insert(rows))
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Pg(_) => "postgres",
        }
    }

    /// Whether the database takes writes now. SQLite: takes the write lock and lets it go.
    /// PostgreSQL: a round trip on a primary (a standby in recovery refuses writes).
    pub fn try_write(&mut self) -> Result<(), String> {
        match self {
            Db::Sqlite(conn) => conn.batch_execute("BEGIN IMMEDIATE; ROLLBACK;").map_err(|e| {
                // A failed BEGIN leaves no transaction; a failed ROLLBACK after a BEGIN would.
                let _ = conn.batch_execute("ROLLBACK;");
                format!("database query failed: {e}")
            }),
            Db::Pg(conn) => {
                let standby: bool = diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>("pg_is_in_recovery()"))
                    .get_result(conn)
                    .map_err(|e| format!("database query failed: {e}"))?;
                if standby {
                    Err("the database is a standby in recovery (read-only)".to_string())
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// One step of the retention purge. SQLite walks the id range (see `ops::purge_step`);
/// PostgreSQL, where several nodes' ids interleave and copied history comes late, walks the
/// B-tree on `ts` in time order: a step deletes the `limit` oldest probes older than the cutoff
/// from `from` (a time; 0 at the start) on and returns the newest time it deleted as the next
/// `from`, so no step reads what an earlier one deleted. Each step is its own short
/// transaction; the last (fewer than `limit`) also purges rollups, events and the rest.
pub fn purge_step(
    db: &mut Db,
    before: i64,
    from: i64,
    limit: i64,
) -> Result<crate::store::db::PurgeProgress, crate::store::db::StoreError> {
    use crate::store::db::PurgeProgress;
    use crate::store::rollup::HOUR;
    match db {
        Db::Sqlite(conn) => sqlite::purge_step(conn, before, from, limit),
        Db::Pg(conn) => {
            #[derive(QueryableByName)]
            struct Deleted {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
                #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
                newest: Option<i64>,
            }
            let before = before.div_euclid(HOUR) * HOUR;
            let limit = limit.max(1);
            conn.transaction(|conn| {
                // `ts >= from`, not `>`: probes of the same second as the newest deleted may
                // remain (the limit fell between them).
                let done: Deleted = diesel::sql_query(
                    "WITH d AS (DELETE FROM probes WHERE id IN \
                     (SELECT id FROM probes WHERE ts >= $1 AND ts < $2 ORDER BY ts LIMIT $3) RETURNING ts) \
                     SELECT count(*) AS n, max(ts) AS newest FROM d",
                )
                .bind::<diesel::sql_types::BigInt, _>(from)
                .bind::<diesel::sql_types::BigInt, _>(before)
                .bind::<diesel::sql_types::BigInt, _>(limit)
                .get_result(conn)?;
                let deleted = done.n as usize;
                if done.n >= limit {
                    return Ok(PurgeProgress { deleted, next: Some(done.newest.unwrap_or(from)) });
                }
                pg::purge_finish(conn, before)?;
                Ok(PurgeProgress { deleted, next: None })
            })
        }
    }
}
