//! Blocking database access (diesel + SQLite). Only the StoreActor calls these at run time;
//! tests and benchmarks use them to prepare a database directly.

use std::path::Path;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::schema::{monitors, results};
use super::timeline::{Sample, Window};
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
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;",
    )
    .map_err(|e| fail(format!("setting up: {e}")))?;
    conn.run_pending_migrations(MIGRATIONS).map_err(|e| fail(format!("migrating: {e}")))?;
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
#[derive(Debug, Clone, Default, PartialEq, Insertable, Queryable, Selectable)]
#[diesel(table_name = results)]
pub struct Row {
    pub monitor_id: i32,
    pub ts: i64,
    pub status: i16,
    pub latency_ms: i32,
    pub reason: String,
    pub http_code: i32,
    pub detail: Option<String>,
    pub ttfb_ms: Option<i32>,
    pub ttft_ms: Option<i32>,
    pub tokens_per_s: Option<f64>,
    pub model: Option<String>,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
}

/// Inserts `rows` in one transaction.
pub fn insert(conn: &mut SqliteConnection, rows: &[Row]) -> Result<(), StoreError> {
    conn.transaction(|conn| {
        // SQLite limits bound variables per statement (32,766): 13 columns x 2,000 rows is below.
        for chunk in rows.chunks(2_000) {
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
        .select(Row::as_select())
        .first::<Row>(conn)
        .optional()
        .map_err(StoreError::from)
}

/// Every result of a monitor within `window`, as the timeline needs them.
pub fn samples(conn: &mut SqliteConnection, monitor_id: i32, window: &Window) -> Result<Vec<Sample>, StoreError> {
    let rows: Vec<(i64, i16, i32, Option<i32>)> = results::table
        .filter(results::monitor_id.eq(monitor_id))
        .filter(results::ts.ge(window.first_start))
        .filter(results::ts.lt(window.end()))
        .select((results::ts, results::status, results::latency_ms, results::ttft_ms))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(ts, status, latency, ttft)| Sample {
            ts,
            status,
            latency_ms: i64::from(latency),
            ttft_ms: ttft.map(i64::from),
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
    diesel::sql_query("SELECT 1").execute(conn).map(|_| ()).map_err(StoreError::from)
}

#[cfg(test)]
mod tests {
    use super::super::timeline::Period;
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
            row(ids[0], now - 5, 0, 9_000),
            row(ids[0], now - 3_600, 2, 700),
            row(ids[0], window.first_start - 1, 1, 1),
            row(ids[1], now, 1, 50),
        ];
        insert(&mut conn, &rows).unwrap();
        assert_eq!(latest(&mut conn, ids[0]).unwrap().unwrap().ts, now - 5);
        let mut got = samples(&mut conn, ids[0], &window).unwrap();
        got.sort_by_key(|s| s.ts);
        let expected: Vec<(i64, i16, i64)> = vec![(now - 3_600, 2, 700), (now - 10, 1, 100), (now - 5, 0, 9_000)];
        assert_eq!(got.iter().map(|s| (s.ts, s.status, s.latency_ms)).collect::<Vec<_>>(), expected);
        let full = Row {
            ttft_ms: Some(120),
            tokens_per_s: Some(42.5),
            model: Some("m-1".into()),
            completion_tokens: Some(7),
            ..row(ids[1], now + 1, 1, 60)
        };
        insert(&mut conn, std::slice::from_ref(&full)).unwrap();
        assert_eq!(latest(&mut conn, ids[1]).unwrap().unwrap(), full);
        assert_eq!(purge_step(&mut conn, now - 3_600, 1).unwrap(), 1);
        assert_eq!(purge_step(&mut conn, now - 3_600, 10).unwrap(), 0);
        assert_eq!(latest(&mut conn, ids[1]).unwrap().unwrap().latency_ms, 60);
    }

    #[test]
    fn refuses_uris_and_missing_directories() {
        for bad in [":memory:", "file:x.db?mode=ro", "/nonexistent-dir/x.db"] {
            assert!(open(Path::new(bad)).is_err(), "{bad}");
        }
    }
}
