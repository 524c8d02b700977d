//! The StoreActor: the single writer. Runs on an arbiter (thread) of its own, because diesel
//! blocks; buffers probe results and writes them in batched transactions (raw rows, hourly
//! rollups and latest pointers together); keeps the recent rollups and each monitor's latest
//! probe in memory and answers the API's queries from them; purges old history at start-up
//! and every 24 h, in steps that let writes through.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use diesel::SqliteConnection;

use super::db::{self, Row};
use super::rollup::{Agg, History, DAY, HOUR};
use super::timeline::Period;
use super::{CurrentStatus, Meta, MonitorStatus, StatusAnswer, StatusBody};

/// Fast compression: a 600 KB answer shrinks about tenfold in a few milliseconds, once per
/// write at most.
fn gzip(json: &[u8]) -> bytes::Bytes {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(json.len() / 8), flate2::Compression::fast());
    encoder.write_all(json).expect("writing to a Vec cannot fail");
    bytes::Bytes::from(encoder.finish().expect("writing to a Vec cannot fail"))
}
use crate::config::MonitorKey;
use crate::metrics::Metrics;
use crate::probe::measure::Measurements;
use crate::probe::{Reason, Status};

/// Results are written at least this often (the most a crash may lose).
const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// A batch this large is written at once rather than at the next tick.
const FLUSH_AT: usize = 2_000;
/// While the database refuses writes, results wait in memory up to this many; older ones are
/// dropped beyond it (and counted) rather than exhausting memory.
const MAX_PENDING: usize = 100_000;
const PURGE_EVERY: Duration = Duration::from_secs(24 * 3_600);
const PURGE_STEP_ROWS: i64 = 5_000;
const STARTUP_PURGE_DELAY: Duration = Duration::from_secs(2);

/// A probe's classified result, as the ProbeActor hands it over.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct ProbeResult {
    pub key: MonitorKey,
    pub timestamp: i64,
    pub status: Status,
    pub latency_ms: u32,
    pub reason: Reason,
    pub http_code: u16,
    /// Already redacted.
    pub detail: Option<String>,
    pub measured: Measurements,
}

/// The monitors to list, in config order, and how to weigh and keep their history.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), String>")]
pub struct RegisterMonitors {
    pub keys: Vec<MonitorKey>,
    pub degraded_weight: f64,
    pub retention: Duration,
}

/// `/api/status`, serialized: filters compare case-insensitively; `now` is injected (unix
/// seconds); `gzip` asks for the compressed form too.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<StatusAnswer, String>")]
pub struct QueryStatus {
    pub period: Period,
    pub provider: Option<String>,
    pub service: Option<String>,
    pub channel: Option<String>,
    pub now: i64,
    pub gzip: bool,
}

/// What makes two status answers the same: the question and the second it is asked in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct AnswerKey {
    period: &'static str,
    filters: [Option<String>; 3],
    now: i64,
}

impl AnswerKey {
    fn of(q: &QueryStatus) -> Self {
        // ASCII folding, as the filters compare (`eq_ignore_ascii_case`).
        let lower = |f: &Option<String>| f.as_ref().map(|s| s.to_ascii_lowercase());
        AnswerKey {
            period: q.period.as_str(),
            filters: [lower(&q.provider), lower(&q.service), lower(&q.channel)],
            now: q.now,
        }
    }
}

/// Answers kept until the next write (or the next second): never a time-to-live cache, an
/// answer is dropped the moment a batch is stored, so every answer reflects every stored probe.
const MAX_ANSWERS: usize = 64;

/// One monitor's status (for badges): exact provider/service/channel, case-insensitive.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Option<MonitorStatus>")]
pub struct FindMonitor {
    pub provider: String,
    pub service: String,
    pub channel: String,
    pub period: Period,
    pub now: i64,
}

impl Handler<FindMonitor> for StoreActor {
    type Result = MessageResult<FindMonitor>;

    fn handle(&mut self, msg: FindMonitor, _: &mut Context<Self>) -> Self::Result {
        let query = QueryStatus {
            period: msg.period,
            provider: Some(msg.provider),
            service: Some(msg.service),
            channel: Some(msg.channel),
            now: msg.now,
            gzip: false,
        };
        MessageResult(self.query(&query).into_iter().next())
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct StoreHealth {
    pub writable: bool,
    pub pending: usize,
    pub dropped: u64,
    pub last_error: Option<String>,
}

#[derive(Debug, Message)]
#[rtype(result = "StoreHealth")]
pub struct GetStoreHealth;

/// Write everything pending now.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), String>")]
pub struct Flush;

impl Handler<Flush> for StoreActor {
    type Result = Result<(), String>;

    fn handle(&mut self, _: Flush, _: &mut Context<Self>) -> Self::Result {
        self.flush()
    }
}

/// Write everything pending, then close the database. The actor stops afterwards.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), String>")]
pub struct Close;

#[derive(Message)]
#[rtype(result = "()")]
struct PurgeStep {
    before: i64,
    from: i64,
    purged_so_far: usize,
}

pub struct StoreActor {
    conn: Option<SqliteConnection>,
    /// The monitors to list, in config order, with their database ids once they have one.
    listed: Vec<(MonitorKey, Option<i32>)>,
    ids: HashMap<MonitorKey, i32>,
    /// Results of monitors the database has not given an id yet (it refused writes when they
    /// were added): written, with their ids, by the next flush that can write.
    unresolved: Vec<(MonitorKey, Row)>,
    degraded_weight: f64,
    retention: Duration,
    pending: Vec<Row>,
    write_error: Option<String>,
    dropped: u64,
    /// Recent rollups and the latest probe of every monitor, by monitor id: what queries read.
    histories: HashMap<i32, History>,
    latest: HashMap<i32, Row>,
    answers: HashMap<AnswerKey, StatusAnswer>,
    metrics: Arc<Metrics>,
}

impl StoreActor {
    pub fn new(conn: SqliteConnection, retention: Duration, degraded_weight: f64, metrics: Arc<Metrics>) -> Self {
        StoreActor {
            conn: Some(conn),
            listed: Vec::new(),
            ids: HashMap::new(),
            unresolved: Vec::new(),
            degraded_weight,
            retention,
            pending: Vec::new(),
            write_error: None,
            dropped: 0,
            histories: HashMap::new(),
            latest: HashMap::new(),
            answers: HashMap::new(),
            metrics,
        }
    }

    /// (Re)loads the in-memory view from the database: the hourly rollups of the last 31 days
    /// and the latest probes. A few hundred rows per monitor; no raw history is read.
    fn load_memory(&mut self) -> Result<(), String> {
        let conn = self.conn.as_mut().ok_or("database is closed")?;
        let now = crate::clock::unix_now();
        let rollups = db::rollups_since(conn, now.div_euclid(HOUR) - 31 * 24).map_err(|e| e.to_string())?;
        let latest = db::latest_rows(conn).map_err(|e| e.to_string())?;
        self.histories.clear();
        for (monitor, hour, agg) in &rollups {
            self.histories.entry(*monitor).or_default().add_hour(*hour, agg, now);
        }
        self.latest = latest.into_iter().map(|row| (row.monitor_id, row)).collect();
        self.answers.clear();
        log::debug!("store: loaded {} hourly rollups, {} latest probes", rollups.len(), self.latest.len());
        Ok(())
    }

    /// Brings memory in line with a completed purge of everything before `before` (which the
    /// database rounds down to the hour): older hours and days go, and the day holding the
    /// cutoff is summed again from its stored hours. Reads at most a day of rollups.
    fn forget_purged(&mut self, before: i64) -> Result<(), String> {
        let cutoff_hour = before.div_euclid(HOUR);
        let day = (cutoff_hour * HOUR).div_euclid(DAY);
        let conn = self.conn.as_mut().ok_or("database is closed")?;
        let rest_of_day =
            db::rollups_between(conn, cutoff_hour, (day + 1) * DAY / HOUR - 1).map_err(|e| e.to_string())?;
        let mut sums: HashMap<i32, Agg> = HashMap::new();
        for (monitor, _, agg) in &rest_of_day {
            sums.entry(*monitor).or_default().merge(agg);
        }
        for (monitor, history) in self.histories.iter_mut() {
            history.forget_before(cutoff_hour);
            history.replace_day(day, sums.remove(monitor).unwrap_or_default());
        }
        self.latest.retain(|_, row| row.ts >= cutoff_hour * HOUR);
        self.answers.clear();
        Ok(())
    }

    /// What a written batch adds to the in-memory view.
    fn remember(&mut self, rows: &[Row]) {
        self.answers.clear();
        for row in rows {
            self.histories.entry(row.monitor_id).or_default().add(
                row.ts,
                row.status,
                i64::from(row.latency_ms),
                row.ttft_ms.map(i64::from),
            );
            match self.latest.get(&row.monitor_id) {
                Some(current) if current.ts > row.ts => {}
                _ => {
                    self.latest.insert(row.monitor_id, row.clone());
                }
            }
        }
    }

    /// Gives ids to monitors registered while the database refused writes, and moves their
    /// results into the batch.
    fn resolve_ids(&mut self) -> Result<(), String> {
        let conn = self.conn.as_mut().ok_or("database is closed")?;
        let mut keys: Vec<MonitorKey> = self.unresolved.iter().map(|(key, _)| key.clone()).collect();
        keys.extend(self.listed.iter().filter(|(_, id)| id.is_none()).map(|(key, _)| key.clone()));
        let mut seen = std::collections::HashSet::new();
        keys.retain(|key| seen.insert(key.clone()));
        if keys.is_empty() {
            return Ok(());
        }
        let ids = db::monitor_ids(conn, &keys).map_err(|e| e.to_string())?;
        self.ids.extend(keys.into_iter().zip(ids));
        for (key, id) in self.listed.iter_mut() {
            *id = self.ids.get(key).copied();
        }
        for (key, mut row) in std::mem::take(&mut self.unresolved) {
            row.monitor_id = self.ids[&key];
            self.pending.push(row);
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        let resolved = if self.unresolved.is_empty() && self.listed.iter().all(|(_, id)| id.is_some()) {
            Ok(())
        } else {
            self.resolve_ids()
        };
        if self.pending.is_empty() {
            return resolved;
        }
        let conn = self.conn.as_mut().ok_or("database is closed")?;
        match resolved.and_then(|()| db::insert(conn, &self.pending).map_err(|e| e.to_string())) {
            Ok(()) => {
                if self.write_error.take().is_some() {
                    log::info!("store: writes succeed again ({} results written)", self.pending.len());
                }
                let written = std::mem::take(&mut self.pending);
                self.remember(&written);
                self.metrics.store_queue.set(0);
                Ok(())
            }
            Err(message) => {
                if self.write_error.as_deref() != Some(message.as_str()) {
                    log::error!("store: writing {} results failed, will retry: {message}", self.pending.len());
                }
                self.write_error = Some(message.clone());
                self.metrics.store_write_errors.inc();
                if self.pending.len() > MAX_PENDING {
                    let excess = self.pending.len() - MAX_PENDING;
                    self.pending.drain(..excess);
                    self.dropped += excess as u64;
                    log::error!("store: dropped the {excess} oldest unwritten results (buffer full)");
                }
                Err(message)
            }
        }
    }

    fn start_purge(&mut self, ctx: &mut Context<Self>) {
        let before = crate::clock::unix_now() - self.retention.as_secs() as i64;
        ctx.notify(PurgeStep { before, from: 0, purged_so_far: 0 });
    }

    /// Answers from memory: no database read, so it costs the same with 4 million rows as with
    /// none, and reflects every written batch (at most `FLUSH_EVERY` old).
    fn query(&self, q: &QueryStatus) -> Vec<MonitorStatus> {
        let matches =
            |filter: &Option<String>, value: &str| filter.as_deref().is_none_or(|f| f.eq_ignore_ascii_case(value));
        let empty = History::default();
        self.listed
            .iter()
            .filter(|(key, _)| {
                matches(&q.provider, &key.provider)
                    && matches(&q.service, &key.service)
                    && matches(&q.channel, &key.channel)
            })
            .map(|(key, id)| {
                let history = id.and_then(|id| self.histories.get(&id)).unwrap_or(&empty);
                let (timeline, uptime) = history.timeline(q.period, q.now, self.degraded_weight);
                MonitorStatus {
                    provider: key.provider.clone(),
                    service: key.service.clone(),
                    channel: key.channel.clone(),
                    current_status: id.and_then(|id| self.latest.get(&id)).cloned().map(CurrentStatus::from),
                    uptime,
                    timeline,
                }
            })
            .collect()
    }
}

impl Actor for StoreActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Err(e) = self.load_memory() {
            log::error!("store: cannot load history: {e}");
        }
        ctx.run_interval(FLUSH_EVERY, |act, _| {
            let _ = act.flush();
        });
        ctx.run_interval(Duration::from_secs(3_600), |act, _| {
            let now = crate::clock::unix_now();
            act.histories.values_mut().for_each(|h| h.prune(now));
        });
        // The start-up purge waits a moment, so the daemon answers its first requests first.
        ctx.run_later(STARTUP_PURGE_DELAY, |act, ctx| act.start_purge(ctx));
        ctx.run_interval(PURGE_EVERY, |act, ctx| act.start_purge(ctx));
    }
}

impl Handler<ProbeResult> for StoreActor {
    type Result = ();

    fn handle(&mut self, result: ProbeResult, _: &mut Context<Self>) {
        let monitor_id = self.ids.get(&result.key).copied();
        let row = Row {
            monitor_id: monitor_id.unwrap_or_default(),
            ts: result.timestamp,
            status: result.status.into(),
            latency_ms: i32::try_from(result.latency_ms).unwrap_or(i32::MAX),
            reason: result.reason.as_str().to_string(),
            http_code: i32::from(result.http_code),
            detail: result.detail,
            connect_ms: result.measured.connect_ms.map(|v| i32::try_from(v).unwrap_or(i32::MAX)),
            ttfb_ms: result.measured.ttfb_ms.map(|v| i32::try_from(v).unwrap_or(i32::MAX)),
            ttft_ms: result.measured.ttft_ms.map(|v| i32::try_from(v).unwrap_or(i32::MAX)),
            tokens_per_s: result.measured.tokens_per_s,
            model: result.measured.model,
            prompt_tokens: result.measured.prompt_tokens.map(|v| i64::try_from(v).unwrap_or(i64::MAX)),
            completion_tokens: result.measured.completion_tokens.map(|v| i64::try_from(v).unwrap_or(i64::MAX)),
        };
        match monitor_id {
            Some(_) => self.pending.push(row),
            None => self.unresolved.push((result.key, row)),
        }
        self.metrics.store_queue.set((self.pending.len() + self.unresolved.len()) as i64);
        if self.pending.len() >= FLUSH_AT {
            let _ = self.flush();
        }
    }
}

impl Handler<RegisterMonitors> for StoreActor {
    type Result = Result<(), String>;

    fn handle(&mut self, msg: RegisterMonitors, _: &mut Context<Self>) -> Self::Result {
        // Known monitors need no write. New ones get an id now if the database takes writes,
        // else at the next flush that can write: a reload never waits for the database.
        let new: Vec<MonitorKey> = msg.keys.iter().filter(|k| !self.ids.contains_key(*k)).cloned().collect();
        if !new.is_empty() {
            let conn = self.conn.as_mut().ok_or("database is closed")?;
            match db::monitor_ids(conn, &new) {
                // Ids of monitors no longer listed are kept: results still on their way are stored.
                Ok(ids) => self.ids.extend(new.into_iter().zip(ids)),
                Err(e) => {
                    log::warn!("store: {} new monitors get their ids once the database takes writes: {e}", new.len())
                }
            }
        }
        self.listed = msg
            .keys
            .into_iter()
            .map(|key| {
                let id = self.ids.get(&key).copied();
                (key, id)
            })
            .collect();
        self.degraded_weight = msg.degraded_weight;
        self.retention = msg.retention;
        self.answers.clear();
        Ok(())
    }
}

impl Handler<QueryStatus> for StoreActor {
    type Result = Result<StatusAnswer, String>;

    fn handle(&mut self, msg: QueryStatus, _: &mut Context<Self>) -> Self::Result {
        let key = AnswerKey::of(&msg);
        if let Some(answer) = self.answers.get_mut(&key) {
            if msg.gzip && answer.gzip.is_none() {
                answer.gzip = Some(gzip(&answer.json));
            }
            return Ok(answer.clone());
        }
        let data = self.query(&msg);
        let body = StatusBody {
            meta: Meta { period: msg.period.as_str(), count: data.len(), generated_at: msg.now },
            data: &data,
        };
        let json = bytes::Bytes::from(serde_json::to_vec(&body).map_err(|e| e.to_string())?);
        let answer = StatusAnswer { gzip: msg.gzip.then(|| gzip(&json)), json };
        if self.answers.len() >= MAX_ANSWERS || self.answers.keys().any(|k| k.now != msg.now) {
            self.answers.clear();
        }
        self.answers.insert(key, answer.clone());
        Ok(answer)
    }
}

impl Handler<GetStoreHealth> for StoreActor {
    type Result = MessageResult<GetStoreHealth>;

    fn handle(&mut self, _: GetStoreHealth, _: &mut Context<Self>) -> Self::Result {
        let readable = match self.conn.as_mut() {
            Some(conn) => db::ping(conn).map_err(|e| e.to_string()),
            None => Err("database is closed".to_string()),
        };
        let last_error = self.write_error.clone().or(readable.err());
        MessageResult(StoreHealth {
            writable: last_error.is_none(),
            pending: self.pending.len(),
            dropped: self.dropped,
            last_error,
        })
    }
}

impl Handler<Close> for StoreActor {
    type Result = Result<(), String>;

    fn handle(&mut self, _: Close, ctx: &mut Context<Self>) -> Self::Result {
        let flushed = self.flush();
        if let Err(e) = &flushed {
            log::error!("store: {} results could not be written before closing: {e}", self.pending.len());
        }
        // Dropping the last connection checkpoints the WAL into the database file.
        self.conn = None;
        ctx.stop();
        flushed
    }
}

impl Handler<PurgeStep> for StoreActor {
    type Result = ();

    fn handle(&mut self, step: PurgeStep, ctx: &mut Context<Self>) {
        let Some(conn) = self.conn.as_mut() else { return };
        match db::purge_step(conn, step.before, step.from, PURGE_STEP_ROWS) {
            Ok(progress) => {
                let purged = step.purged_so_far + progress.deleted;
                if let Some(from) = progress.next {
                    // More to go: queue the next step behind whatever else is waiting.
                    ctx.notify(PurgeStep { before: step.before, from, purged_so_far: purged });
                } else {
                    if purged > 0 {
                        log::info!(
                            "store: retention purged {purged} results older than {}",
                            crate::config::duration::format(self.retention)
                        );
                    }
                    if let Err(e) = self.forget_purged(step.before) {
                        log::error!("store: cannot update history after the purge: {e}");
                    }
                }
            }
            Err(e) => log::error!("store: retention purge failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::unix_now;

    fn probes_counted(answer: &StatusAnswer) -> i64 {
        let body: serde_json::Value = serde_json::from_slice(&answer.json).unwrap();
        body["data"][0]["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| ["green", "yellow", "red"].iter().map(|c| b["counts"][c].as_i64().unwrap()).sum::<i64>())
            .sum()
    }

    fn result(key: &MonitorKey, timestamp: i64) -> ProbeResult {
        ProbeResult {
            key: key.clone(),
            timestamp,
            status: Status::Green,
            latency_ms: 100,
            reason: Reason::Ok,
            http_code: 200,
            detail: None,
            measured: Measurements::default(),
        }
    }

    /// A reused answer never hides a stored probe: every write drops the answers, even within
    /// the same second; and a purge at start-up leaves memory agreeing with the database.
    #[test]
    fn answers_follow_every_write_and_the_purge() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let key = MonitorKey::new("a", "b", "");
        let now = unix_now();
        {
            let mut conn = db::open(&path).unwrap();
            let id = db::monitor_ids(&mut conn, std::slice::from_ref(&key)).unwrap()[0];
            let old = Row { monitor_id: id, ts: now - 3 * 86_400, status: 1, reason: "ok".into(), ..Row::default() };
            db::insert(&mut conn, &[old]).unwrap();
        }
        actix_rt::System::new().block_on(async move {
            let retention = Duration::from_secs(86_400);
            let conn = db::open(&path).unwrap();
            let store = StoreActor::new(conn, retention, 0.7, Arc::new(Metrics::new())).start();
            store
                .send(RegisterMonitors { keys: vec![key.clone()], degraded_weight: 0.7, retention })
                .await
                .unwrap()
                .unwrap();
            let week = |now| QueryStatus {
                period: Period::Week,
                provider: None,
                service: None,
                channel: None,
                now,
                gzip: true,
            };
            // The start-up purge removes the 3-day-old probe from the database and from memory.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                let answer = store.send(week(now)).await.unwrap().unwrap();
                if probes_counted(&answer) == 0 {
                    assert!(answer.gzip.is_some());
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "the purge did not reach memory");
                actix_rt::time::sleep(Duration::from_millis(20)).await;
            }
            store.do_send(result(&key, now));
            store.send(Flush).await.unwrap().unwrap();
            assert_eq!(probes_counted(&store.send(week(now)).await.unwrap().unwrap()), 1);
            store.do_send(result(&key, now));
            store.send(Flush).await.unwrap().unwrap();
            assert_eq!(probes_counted(&store.send(week(now)).await.unwrap().unwrap()), 2);
        });
    }

    /// After the start-up purge, memory answers what the raw rows left in the database answer,
    /// including the day the cutoff falls in.
    #[test]
    fn memory_after_a_purge_agrees_with_the_raw_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        let key = MonitorKey::new("a", "b", "");
        let now = unix_now();
        let id = {
            let mut conn = db::open(&path).unwrap();
            let id = db::monitor_ids(&mut conn, std::slice::from_ref(&key)).unwrap()[0];
            let rows: Vec<Row> = (0..300)
                .map(|i| Row {
                    monitor_id: id,
                    ts: now - 4 * 86_400 + i * 1_111,
                    status: [1, 2, 0][(i % 3) as usize],
                    latency_ms: 100 + i as i32,
                    reason: "ok".into(),
                    ..Row::default()
                })
                .collect();
            db::insert(&mut conn, &rows).unwrap();
            id
        };
        let retention = Duration::from_secs(36 * 3_600 + 1_234);
        let path2 = path.clone();
        let answer = actix_rt::System::new().block_on(async move {
            let conn = db::open(&path2).unwrap();
            let store = StoreActor::new(conn, retention, 0.7, Arc::new(Metrics::new())).start();
            store.send(RegisterMonitors { keys: vec![key], degraded_weight: 0.7, retention }).await.unwrap().unwrap();
            // Wait for the purge to finish: the oldest probes leave the database.
            let cutoff = now - retention.as_secs() as i64;
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                let mut check = db::open(&path2).unwrap();
                let window = Period::Month.window(now);
                let oldest = db::samples(&mut check, id, &window).unwrap().iter().map(|s| s.ts).min().unwrap();
                if oldest >= cutoff.div_euclid(HOUR) * HOUR {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "no purge");
                actix_rt::time::sleep(Duration::from_millis(20)).await;
            }
            // The purge's last step and its memory update come in one message; one more
            // round trip makes sure it was handled.
            store.send(Flush).await.unwrap().unwrap();
            let query =
                QueryStatus { period: Period::Week, provider: None, service: None, channel: None, now, gzip: false };
            store.send(query).await.unwrap().unwrap()
        });
        let body: serde_json::Value = serde_json::from_slice(&answer.json).unwrap();
        let mut conn = db::open(&path).unwrap();
        let window = Period::Week.window(now);
        let (want, uptime) = super::super::timeline::build(&window, &db::samples(&mut conn, id, &window).unwrap(), 0.7);
        let got = &body["data"][0];
        assert_eq!(got["uptime"].as_f64().unwrap(), uptime);
        for (g, w) in got["timeline"].as_array().unwrap().iter().zip(&want) {
            assert_eq!(g["counts"], serde_json::to_value(w.counts).unwrap(), "{g}");
            assert_eq!(g["latency"], w.latency, "{g}");
        }
    }
}
