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
/// PostgreSQL, where several nodes' ids interleave and copied history comes late, deletes up
/// to `limit` probes older than the cutoff found through the BRIN index on `ts`, each step its
/// own short transaction, so writers never wait on it.
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
            let before = before.div_euclid(HOUR) * HOUR;
            conn.transaction(|conn| {
                let deleted =
                    diesel::sql_query("DELETE FROM probes WHERE id IN (SELECT id FROM probes WHERE ts < $1 LIMIT $2)")
                        .bind::<diesel::sql_types::BigInt, _>(before)
                        .bind::<diesel::sql_types::BigInt, _>(limit.max(1))
                        .execute(conn)?;
                if deleted as i64 >= limit.max(1) {
                    return Ok(PurgeProgress { deleted, next: Some(from + 1) });
                }
                pg::purge_finish(conn, before)?;
                Ok(PurgeProgress { deleted, next: None })
            })
        }
    }
}
