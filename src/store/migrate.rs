//! `llm-monitor migrate-store`: a SQLite history copied into PostgreSQL, so a single-node user
//! can grow to several nodes. The copied probes become node `node`'s; their rollups and latest
//! pointers are computed as the daemon computes them, so every `/api/status` answer reads the
//! same from both stores. Copied in slices of [`SLICE`] probes, each in one transaction with
//! the position reached (kept in the target's `meta`): run it again after an interruption and
//! it resumes; run it again after it finished and it copies nothing.

use std::collections::HashMap;
use std::path::Path;

use super::db::{self, Row, StoreError, WriteCache, Writing};
use super::sql::{pg, sqlite};
use crate::config::{MonitorKey, PgUrl};
use diesel::Connection;

pub const SLICE: i64 = 5_000;

/// What a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    pub probes: u64,
    /// Probes an earlier run had copied already.
    pub skipped: u64,
    pub events: u64,
}

/// Copies `from` (a SQLite file) into `to`, as node `node`; `progress(done, total)` after each
/// slice (probes).
pub fn migrate_store(
    from: &Path,
    to: &PgUrl,
    node: &str,
    mut progress: impl FnMut(u64, u64),
) -> Result<Copied, StoreError> {
    if !from.is_file() {
        return Err(StoreError::Other(format!("{}: no such SQLite database", from.display())));
    }
    let mut source = db::open(from)?;
    let mut target = db::open_postgres(to, node)?;
    let node_id = pg::claim_node(&mut target, node)?;
    let canonical = from.canonicalize().unwrap_or_else(|_| from.to_path_buf());
    let key = format!("migrate-store:{}:{node}", canonical.display());
    let mut after: i64 = pg::meta_get(&mut target, &key)?.and_then(|v| v.parse().ok()).unwrap_or(0);

    // Monitors by source id: their ids in the target (given there, however they were spelled).
    let monitors = sqlite::monitors(&mut source)?;
    let keys: Vec<MonitorKey> = monitors.iter().map(|(k, _)| k.clone()).collect();
    let target_ids = pg::monitor_ids(&mut target, &keys)?;
    let ids: HashMap<i32, i32> = monitors.iter().map(|(_, id)| *id).zip(target_ids).collect();

    let total = sqlite::probe_count(&mut source)?.max(0) as u64;
    let skipped = count_up_to(&mut source, after)?;
    let mut done = skipped;
    progress(done, total);
    let mut cache = WriteCache::default();
    let mut seq = pg::last_seq(&mut target, node_id)?;
    loop {
        let slice = sqlite::probes_after(&mut source, after, SLICE)?;
        let Some((last, _)) = slice.last() else { break };
        let last = *last;
        let rows: Vec<Row> = slice
            .into_iter()
            .filter_map(|(_, row)| Some(Row { monitor_id: *ids.get(&row.monitor_id)?, ..row }))
            .collect();
        seq += 1;
        let writing = Writing { node: node_id, seq };
        let staged = target.transaction(|conn| {
            let staged = pg::insert_staged(conn, &rows, &cache, writing)?;
            pg::meta_set(conn, &key, &last.to_string())?;
            Ok::<_, StoreError>(staged)
        })?;
        cache.apply(staged);
        after = last;
        done += rows.len() as u64;
        progress(done.min(total), total);
    }
    // Events (incidents, maintenance) keep their ids; the target's own are left alone.
    let mut events = 0;
    let mut since = 0;
    loop {
        let page = sqlite::read_events(&mut source, since, 1_000)?;
        let Some(last) = page.last() else { break };
        since = last.id;
        events += pg::insert_events(&mut target, &page)? as u64;
    }
    Ok(Copied { probes: done - skipped, skipped, events })
}

/// How many source probes have an id up to `after` (copied by an earlier run).
fn count_up_to(source: &mut diesel::SqliteConnection, after: i64) -> Result<u64, StoreError> {
    use super::schema::probes;
    use diesel::prelude::*;
    let n: i64 = probes::table.filter(probes::id.le(after)).count().get_result(source)?;
    Ok(n.max(0) as u64)
}
