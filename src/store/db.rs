//! Blocking database access (diesel + SQLite). Only the StoreActor calls these at run time;
//! tests and benchmarks use them to prepare a database directly.

use std::path::Path;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, SmallInt};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::schema::{monitors, results};
use super::timeline::{Tally, Window};
use crate::config::MonitorKey;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {message}")]
    Open { path: String, message: String },
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
}

/// Opens (creating if needed) the database at `path`: WAL, `synchronous=NORMAL`, a busy
/// timeout, and every embedded migration applied.
pub fn open(path: &Path) -> Result<SqliteConnection, StoreError> {
    let shown = path.display().to_string();
    let fail = |message: String| StoreError::Open {
        path: shown.clone(),
        message,
    };
    let text = path
        .to_str()
        .ok_or_else(|| fail("path is not valid UTF-8".to_string()))?;
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
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;",
    )
    .map_err(|e| fail(format!("setting up: {e}")))?;
    conn.run_pending_migrations(MIGRATIONS)
        .map_err(|e| fail(format!("migrating: {e}")))?;
    Ok(conn)
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

/// One stored probe result.
#[derive(Debug, Clone, PartialEq, Insertable, Queryable)]
#[diesel(table_name = results)]
pub struct Row {
    pub monitor_id: i32,
    pub ts: i64,
    pub status: i16,
    pub latency_ms: i32,
    pub reason: String,
    pub http_code: i32,
    pub detail: Option<String>,
}

/// Inserts `rows` in one transaction.
pub fn insert(conn: &mut SqliteConnection, rows: &[Row]) -> Result<(), StoreError> {
    conn.transaction(|conn| {
        // SQLite limits bound variables per statement; 7 columns x 4,000 rows stays below it.
        for chunk in rows.chunks(4_000) {
            diesel::insert_into(results::table).values(chunk).execute(conn)?;
        }
        Ok(())
    })
}

/// The latest result of a monitor.
pub fn latest(conn: &mut SqliteConnection, monitor_id: i32) -> Result<Option<Row>, StoreError> {
    results::table
        .filter(results::monitor_id.eq(monitor_id))
        .order((results::ts.desc(), results::id.desc()))
        .select((
            results::monitor_id,
            results::ts,
            results::status,
            results::latency_ms,
            results::reason,
            results::http_code,
            results::detail,
        ))
        .first::<Row>(conn)
        .optional()
        .map_err(StoreError::from)
}

#[derive(QueryableByName)]
struct TallyRow {
    #[diesel(sql_type = BigInt)]
    bucket: i64,
    #[diesel(sql_type = SmallInt)]
    status: i16,
    #[diesel(sql_type = BigInt)]
    count: i64,
    #[diesel(sql_type = BigInt)]
    latency_sum: i64,
}

/// Per bucket and status of `window`: how many results and their summed latency.
pub fn tallies(conn: &mut SqliteConnection, monitor_id: i32, window: &Window) -> Result<Vec<Tally>, StoreError> {
    let rows: Vec<TallyRow> = diesel::sql_query(
        "SELECT (ts - ?1) / ?2 AS bucket, status, COUNT(*) AS count, COALESCE(SUM(latency_ms), 0) AS latency_sum \
         FROM results WHERE monitor_id = ?3 AND ts >= ?1 AND ts < ?4 GROUP BY bucket, status",
    )
    .bind::<BigInt, _>(window.first_start)
    .bind::<BigInt, _>(window.size)
    .bind::<Integer, _>(monitor_id)
    .bind::<BigInt, _>(window.end())
    .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| Tally {
            bucket: r.bucket as usize,
            status: r.status,
            count: r.count,
            latency_sum: r.latency_sum,
        })
        .collect())
}

/// Deletes up to `limit` results older than `before`; returns how many went.
pub fn purge_step(conn: &mut SqliteConnection, before: i64, limit: i64) -> Result<usize, StoreError> {
    diesel::sql_query("DELETE FROM results WHERE id IN (SELECT id FROM results WHERE ts < ?1 LIMIT ?2)")
        .bind::<BigInt, _>(before)
        .bind::<BigInt, _>(limit)
        .execute(conn)
        .map_err(StoreError::from)
}

/// A cheap round trip that fails when the database cannot be read.
pub fn ping(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    diesel::sql_query("SELECT 1")
        .execute(conn)
        .map(|_| ())
        .map_err(StoreError::from)
}

#[cfg(test)]
mod tests {
    use super::super::timeline::Period;
    use super::*;

    fn row(monitor_id: i32, ts: i64, status: i16, latency_ms: i32) -> Row {
        Row {
            monitor_id,
            ts,
            status,
            latency_ms,
            reason: "ok".into(),
            http_code: 200,
            detail: None,
        }
    }

    #[test]
    fn roundtrip_ids_insert_latest_tallies_purge() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open(&dir.path().join("t.db")).unwrap();
        let a = MonitorKey::new("A", "chat", "");
        let ids = monitor_ids(&mut conn, &[a.clone(), MonitorKey::new("b", "chat", "vip")]).unwrap();
        // Same key in another case: same id.
        assert_eq!(
            monitor_ids(&mut conn, &[MonitorKey::new("a", "CHAT", "")]).unwrap(),
            vec![ids[0]]
        );
        assert_ne!(ids[0], ids[1]);

        let now = 1_735_559_160;
        let window = Period::Day.window(now);
        let rows = vec![
            row(ids[0], now - 10, 1, 100),
            row(ids[0], now - 5, 0, 9_000),
            row(ids[0], now - 3_600, 2, 700),
            row(ids[0], window.first_start - 1, 1, 1),
            row(ids[1], now, 1, 50),
        ];
        insert(&mut conn, &rows).unwrap();
        assert_eq!(latest(&mut conn, ids[0]).unwrap().unwrap().ts, now - 5);
        let mut t = tallies(&mut conn, ids[0], &window).unwrap();
        t.sort_by_key(|t| (t.bucket, t.status));
        assert_eq!(
            t,
            vec![
                Tally {
                    bucket: 22,
                    status: 2,
                    count: 1,
                    latency_sum: 700
                },
                Tally {
                    bucket: 23,
                    status: 0,
                    count: 1,
                    latency_sum: 9_000
                },
                Tally {
                    bucket: 23,
                    status: 1,
                    count: 1,
                    latency_sum: 100
                },
            ]
        );
        assert_eq!(purge_step(&mut conn, now - 3_600, 1).unwrap(), 1);
        assert_eq!(purge_step(&mut conn, now - 3_600, 10).unwrap(), 0);
        assert_eq!(latest(&mut conn, ids[1]).unwrap().unwrap().latency_ms, 50);
    }

    #[test]
    fn refuses_uris_and_missing_directories() {
        for bad in [":memory:", "file:x.db?mode=ro", "/nonexistent-dir/x.db"] {
            assert!(open(Path::new(bad)).is_err(), "{bad}");
        }
    }
}
