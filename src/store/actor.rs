//! The StoreActor: the store's one owner, and never blocked. It keeps the read model (each
//! monitor's recent hourly and daily aggregates and its latest probe) and the results waiting
//! to be written, answers every query from memory at once, and hands the [`Writer`] one piece
//! of work at a time: a batch of results, a step of the daily retention purge, a test of
//! writability. The read model moves forward when the writer confirms a commit. A refused
//! write is tried again after a backoff (250 ms doubling to 5 s) while queries, reloads and
//! shutdown go on; results wait in memory up to [`MAX_PENDING`].

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

use super::alerts::{DeliveryUpdate, OutboxRow};
use super::db::RollupEntry;
use super::db::Row;
use super::inbox::{Collect, Queue, COLLECT_AT};
use super::model::{MonitorModel, Nodes, Snapshot};
use super::rollup::{Agg, DAY, HOUR};
use super::writer::{
    CloseDatabase, ConfigureAlerts, Load, PurgeStep, ReadChanges, ReadEvents, TryWrite, WriteBatch, Writer,
    RECENT_EVENTS,
};
use crate::alert::engine::Event;
use crate::alert::AlertConfig;
use crate::clock::SharedClock;
use crate::domain::{MonitorKey, Reason, Status};
use crate::metrics::Metrics;
use crate::probe::measure::Measurements;

/// Results are handed to the writer at least this often (the most a crash may lose).
const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// This many waiting results are handed over at once rather than at the next tick.
const FLUSH_AT: usize = 2_000;
/// The most results one batch (one transaction) holds: after an outage the backlog goes in
/// steps that each finish quickly.
const BATCH_MAX: usize = 5_000;
/// Results waiting (queued and in a batch being written) are kept up to this many; beyond it
/// the oldest are dropped and counted rather than exhausting memory.
pub const MAX_PENDING: usize = 100_000;
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Writability is tested at least this often, even with nothing to write.
const RETEST_EVERY: Duration = Duration::from_secs(15);
/// How often the store looks whether a retest is due: a retest comes when the last write or
/// test is at least `RETEST_EVERY - RETEST_TICK` old, so never more than `RETEST_EVERY` apart.
const RETEST_TICK: Duration = Duration::from_secs(5);
const PURGE_EVERY: Duration = Duration::from_secs(24 * 3_600);
const PURGE_STEP_ROWS: i64 = 5_000;
const STARTUP_PURGE_DELAY: Duration = Duration::from_secs(2);
/// How often what other nodes wrote to a shared database is read (a probe shows on every node
/// within this plus a flush).
const READ_OTHERS_EVERY: Duration = Duration::from_millis(500);
/// A monitor this node does not probe is listed while another node has probed it this recently
/// (seconds).
const OTHERS_LISTED_FOR: i64 = 86_400;

/// A probe's classified result, as the ProbeActor leaves it in the store's
/// [`Inbox`](super::inbox::Inbox).
#[derive(Debug, Clone)]
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

impl ProbeResult {
    fn row(self) -> (MonitorKey, Row) {
        let clamp = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        let row = Row {
            monitor_id: 0,
            ts: self.timestamp,
            status: self.status.into(),
            latency_ms: clamp(self.latency_ms),
            reason: self.reason.as_str().to_string(),
            http_code: i32::from(self.http_code),
            detail: self.detail,
            connect_ms: self.measured.connect_ms.map(clamp),
            ttfb_ms: self.measured.ttfb_ms.map(clamp),
            ttft_ms: self.measured.ttft_ms.map(clamp),
            tokens_per_s: self.measured.tokens_per_s,
            model: self.measured.model,
            prompt_tokens: self.measured.prompt_tokens.map(|v| i64::try_from(v).unwrap_or(i64::MAX)),
            completion_tokens: self.measured.completion_tokens.map(|v| i64::try_from(v).unwrap_or(i64::MAX)),
            cost_nanos: self.measured.cost_nanos.map(|v| i64::try_from(v).unwrap_or(i64::MAX)),
            // Marked by the writer, which knows the maintenance windows.
            maintenance: false,
            // Written as the writer's node.
            node_id: 0,
            // Set by the store, which knows the intervals.
            interval_s: None,
        };
        (self.key, row)
    }
}

/// The monitors to list, in config order, and how to weigh and keep their history. Needs no
/// database: a new monitor gets its id with its first stored result.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RegisterMonitors {
    pub keys: Vec<MonitorKey>,
    pub degraded_weight: f64,
    pub retention: Duration,
    /// Each monitor's interval in seconds (when this node's part of it goes stale).
    pub intervals: HashMap<MonitorKey, i64>,
    pub quorum: crate::config::Quorum,
    /// Each monitor of several models (by its key without a model): its `model_rule`.
    pub model_rules: HashMap<MonitorKey, crate::config::Quorum>,
}

impl RegisterMonitors {
    pub fn of(config: &crate::config::Config) -> Self {
        RegisterMonitors {
            keys: config.monitors.iter().map(|m| m.key.clone()).collect(),
            degraded_weight: config.degraded_weight,
            retention: config.retention,
            intervals: config.monitors.iter().map(|m| (m.key.clone(), m.interval.as_secs() as i64)).collect(),
            quorum: config.quorum,
            model_rules: config.monitors.iter().filter_map(|m| Some((m.key.monitor(), m.model_rule?))).collect(),
        }
    }
}

/// Reads what the database holds into memory (at start-up, before anything is served).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), String>")]
pub struct LoadHistory;

/// The read model as it is now, for the API.
#[derive(Debug, Message)]
#[rtype(result = "Arc<Snapshot>")]
pub struct GetSnapshot;

#[derive(Debug, Clone, serde::Serialize)]
pub struct StoreHealth {
    /// Whether the database took the last write (or write test); `None` before the first.
    pub writable: Option<bool>,
    /// Results waiting to be written.
    pub pending: usize,
    /// Results dropped because too many were waiting.
    pub dropped: u64,
    pub last_error: Option<String>,
    /// This node's name and whether it leads (shown as `/health`'s `node`).
    #[serde(skip)]
    pub node: (String, bool),
}

#[derive(Debug, Message)]
#[rtype(result = "StoreHealth")]
pub struct GetStoreHealth;

/// Write everything waiting, trying until `deadline` from now. Resolves once all is written,
/// or with an error saying how much was not.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), String>")]
pub struct Flush {
    pub deadline: Duration,
}

/// Flush (within `deadline`), then close the database.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), String>")]
pub struct Close {
    pub deadline: Duration,
}

/// What the outbox got and lost in a commit, for the delivery actor.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct OutboxChanged {
    pub added: Vec<OutboxRow>,
    /// Events whose pending messages were withdrawn.
    pub suppressed: Vec<i64>,
    /// (channel, event id) of downs given up before a restart.
    pub abandoned: Vec<(String, i64)>,
}

/// Where committed outbox messages go (the delivery actor), and the alert configuration.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ConfigureAlertsFor {
    pub config: Arc<AlertConfig>,
    pub delivery: Option<Recipient<OutboxChanged>>,
    /// Told whether this node leads (only the leader sends).
    pub lead: Option<Recipient<crate::alert::delivery::Lead>>,
}

/// Delivery's record of an attempt, written with the next batch.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Delivered(pub DeliveryUpdate);

/// `/api/events`: up to `limit` events after `since_id`, oldest first, and whether more follow.
#[derive(Debug, Message)]
#[rtype(result = "Result<(Vec<Event>, bool), String>")]
pub struct QueryEvents {
    pub since_id: i64,
    pub limit: usize,
}

struct Purge {
    before: i64,
    from: i64,
    purged: usize,
}

type Waiter = oneshot::Sender<Result<(), String>>;

pub struct StoreActor {
    writer: Addr<Writer>,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    retention: Duration,
    degraded_weight: f64,
    listed: Vec<MonitorKey>,
    ids: HashMap<MonitorKey, i32>,
    models: HashMap<i32, Arc<MonitorModel>>,
    version: u64,
    snapshot: Option<Arc<Snapshot>>,
    pending: VecDeque<(MonitorKey, Row)>,
    /// The batch at the writer; put back in front of `pending` if it is refused.
    batch: Vec<(MonitorKey, Row)>,
    /// A request is at the writer (one at a time).
    busy: bool,
    /// Results may go at the next chance (the flush tick came, or a flush was asked for).
    due: bool,
    backoff: Duration,
    next_attempt: Instant,
    writable: Option<bool>,
    last_error: Option<String>,
    last_written: Option<Instant>,
    dropped: u64,
    purge: Option<Purge>,
    /// The flush timer is armed (only while results wait: an idle store sleeps).
    flush_armed: bool,
    /// Results to drop at the cap that belong to the batch at the writer (the oldest): dropped
    /// from its rows if they come back refused, needed no more if they are written.
    owed: usize,
    /// The newest result stored before this start (what the start-up purge goes by).
    newest_loaded: Option<i64>,
    flushes: Vec<Waiter>,
    closing: Option<Waiter>,
    /// Where the ProbeActors leave results (see [`Inbox`](super::inbox::Inbox)).
    inbox: Arc<Queue>,
    /// Delivery records waiting to be written, and those in the batch at the writer.
    deliveries: Vec<DeliveryUpdate>,
    batch_deliveries: Vec<DeliveryUpdate>,
    /// The alert engine needs a batch (even an empty one) at this time (unix seconds).
    alerts_due: Option<i64>,
    alerts_timer: Option<SpawnHandle>,
    delivery: Option<Recipient<OutboxChanged>>,
    /// The newest events, oldest first (at most [`RECENT_EVENTS`]).
    events: VecDeque<Event>,
    maintenance: Arc<[crate::alert::Maintenance]>,
    /// The nodes of the database and the quorum rule.
    nodes: Arc<Nodes>,
    intervals: Arc<HashMap<MonitorKey, i64>>,
    model_rules: Arc<HashMap<MonitorKey, crate::config::Quorum>>,
    /// Other nodes' write counters as last read, and whether a read is at the writer.
    seqs: HashMap<i32, i64>,
    reading_others: bool,
    loaded: bool,
    /// This node runs the single-writer duties (purge, alerts): SQLite always, PostgreSQL
    /// while it holds the leader lock.
    leader: bool,
    /// What the leader lock said last (a takeover completes only if it still holds).
    lock_held: bool,
    /// Other nodes' probes for the leader's alert engine, until the next batch.
    foreign: Vec<(MonitorKey, Row)>,
    lead: Option<Recipient<crate::alert::delivery::Lead>>,
    /// Silent nodes at the last look, and whether the engine must hear of a change.
    silent_nodes: Vec<String>,
    nodes_due: bool,
    /// The start-up purge has not run yet (on a shared database it waits for the lead).
    startup_purge_pending: bool,
}

impl StoreActor {
    pub fn new(
        writer: Addr<Writer>,
        clock: SharedClock,
        retention: Duration,
        degraded_weight: f64,
        metrics: Arc<Metrics>,
    ) -> Self {
        StoreActor {
            writer,
            clock,
            metrics,
            retention,
            degraded_weight,
            listed: Vec::new(),
            ids: HashMap::new(),
            models: HashMap::new(),
            version: 0,
            snapshot: None,
            pending: VecDeque::new(),
            batch: Vec::new(),
            busy: false,
            due: false,
            backoff: Duration::ZERO,
            next_attempt: Instant::now(),
            writable: None,
            last_error: None,
            last_written: None,
            dropped: 0,
            purge: None,
            flush_armed: false,
            owed: 0,
            newest_loaded: None,
            flushes: Vec::new(),
            closing: None,
            inbox: Arc::default(),
            deliveries: Vec::new(),
            batch_deliveries: Vec::new(),
            alerts_due: None,
            alerts_timer: None,
            delivery: None,
            events: VecDeque::new(),
            maintenance: Arc::from(Vec::new()),
            nodes: Arc::default(),
            intervals: Arc::default(),
            model_rules: Arc::default(),
            seqs: HashMap::new(),
            reading_others: false,
            loaded: false,
            leader: false,
            lock_held: false,
            foreign: Vec::new(),
            lead: None,
            silent_nodes: Vec::new(),
            nodes_due: false,
            startup_purge_pending: false,
        }
    }

    /// The queue behind the [`Inbox`](super::inbox::Inbox) the ProbeActors are given.
    pub fn queue(&self) -> Arc<Queue> {
        self.inbox.clone()
    }

    fn waiting(&self) -> usize {
        self.pending.len() + self.batch.len() + self.inbox.len() + self.deliveries.len() + self.batch_deliveries.len()
    }

    /// The alert engine wants a look at `due` (unix seconds): a timer brings an empty batch then.
    fn schedule_alerts(&mut self, due: Option<i64>, ctx: &mut Context<Self>) {
        // Only the leader's engine decides (SQLite: always this node).
        let due = due.filter(|_| self.leader);
        self.alerts_due = due;
        if let Some(handle) = self.alerts_timer.take() {
            ctx.cancel_future(handle);
        }
        let Some(due) = due else { return };
        let wait = Duration::from_millis(((due - self.clock.now()).max(0) as u64).saturating_mul(1_000).min(3_600_000));
        self.alerts_timer = Some(ctx.run_later(wait, |act, ctx| {
            act.alerts_timer = None;
            act.pump(ctx);
            // Not reached yet (a timer capped at an hour, or a clock set back): wait again.
            if act.alerts_due.is_some_and(|d| d > act.clock.now()) && act.alerts_timer.is_none() {
                act.schedule_alerts(act.alerts_due, ctx);
            }
        }));
    }

    fn alerts_due_now(&self) -> bool {
        self.alerts_due.is_some_and(|due| due <= self.clock.now())
    }

    /// What a commit recorded and queued: events kept for the API, messages to delivery.
    fn remember_alerts(
        &mut self,
        events: Vec<Event>,
        added: Vec<OutboxRow>,
        suppressed: Vec<i64>,
        abandoned: Vec<(String, i64)>,
    ) {
        for event in events {
            self.events.push_back(event);
        }
        while self.events.len() > RECENT_EVENTS as usize {
            self.events.pop_front();
        }
        if added.is_empty() && suppressed.is_empty() && abandoned.is_empty() {
            return;
        }
        match &self.delivery {
            Some(delivery) => delivery.do_send(OutboxChanged { added, suppressed, abandoned }),
            None => log::debug!("alerts: {} messages queued with no delivery running", added.len()),
        }
    }

    /// Takes a result into the queue for the writer; at [`MAX_PENDING`] the oldest goes.
    fn accept(&mut self, result: ProbeResult) {
        if self.pending.len() + self.batch.len() - self.owed >= MAX_PENDING {
            if self.owed < self.batch.len() {
                // The oldest are at the writer: settled when it answers.
                self.owed += 1;
            } else if self.pending.pop_front().is_some() {
                self.dropped_some(1);
            }
        }
        let (key, mut row) = result.row();
        row.interval_s = self.intervals.get(&key).map(|s| i32::try_from(*s).unwrap_or(i32::MAX));
        self.pending.push_back((key, row));
    }

    /// The batch at the writer was written (`written`) or refused: settles the drops it owes.
    fn settle_owed(&mut self, written: bool) {
        let owed = std::mem::take(&mut self.owed);
        if written {
            // Those rows are stored, so the cap holds without dropping anything.
            return;
        }
        let dropped = owed.min(self.pending.len());
        self.pending.drain(..dropped);
        self.dropped_some(dropped as u64);
    }

    fn dropped_some(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        // Said at the first drop, then at each power of two.
        if self.dropped == 0 || (self.dropped + n).ilog2() > self.dropped.ilog2() {
            log::error!("store: {MAX_PENDING} results wait to be written; dropping the oldest");
        }
        self.dropped += n;
        self.metrics.store_dropped.inc_by(n);
    }

    /// Takes everything the inbox holds.
    fn collect(&mut self) {
        let (results, dropped) = self.inbox.take();
        self.dropped_some(dropped);
        for result in results {
            self.accept(result);
        }
        self.metrics.store_queue.set(self.waiting() as i64);
    }

    fn changed(&mut self) {
        self.version += 1;
        self.snapshot = None;
    }

    /// The model of monitor `id`, to change: copied only if a query still holds it.
    fn model_mut(&mut self, id: i32) -> &mut MonitorModel {
        Arc::make_mut(self.models.entry(id).or_default())
    }

    /// What a committed batch adds to the read model.
    fn remember(&mut self, rows: &[Row]) {
        // Dropping the cached snapshot first, so unchanged models are not copied.
        self.changed();
        for row in rows {
            let model = self.model_mut(row.monitor_id);
            model.history.add_with_reason(
                row.ts,
                row.agg_status(),
                i64::from(row.latency_ms),
                row.ttft_ms.map(i64::from),
                Some(row.reason_code()),
                row.cost_nanos,
            );
            // The last written is the latest, whatever its time (the clock may have stepped back).
            model.latest = Some(row.clone());
        }
    }

    /// Gives the writer its next piece of work, if it is free and there is any.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.busy || Instant::now() < self.next_attempt {
            return;
        }
        // A flush that gave up waiting no longer counts.
        self.flushes.retain(|waiter| !waiter.is_closed());
        let flushing = !self.flushes.is_empty() || self.closing.is_some();
        if flushing {
            self.collect();
        }
        let results_due = !self.pending.is_empty() && (self.due || flushing || self.pending.len() >= FLUSH_AT);
        let deliveries_due = !self.deliveries.is_empty() && (self.due || flushing);
        let foreign_due = !self.foreign.is_empty() || self.nodes_due;
        if results_due || deliveries_due || foreign_due || self.alerts_due_now() {
            self.due = false;
            let take = self.pending.len().min(BATCH_MAX);
            self.batch = self.pending.drain(..take).collect();
            self.batch_deliveries = std::mem::take(&mut self.deliveries);
            // Only the leader's engine reads them; a batch that fails does not retry them
            // (newer ones follow within a second).
            let foreign = std::mem::take(&mut self.foreign);
            let nodes = if self.leader { self.liveness() } else { Vec::new() };
            self.nodes_due = false;
            self.busy = true;
            let request = self.writer.send(WriteBatch {
                rows: self.batch.clone(),
                deliveries: self.batch_deliveries.clone(),
                now: self.clock.now(),
                foreign,
                quorum: self.nodes.quorum,
                nodes,
                model_rules: self.model_rules.clone(),
            });
            ctx.spawn(request.into_actor(self).map(|reply, act, ctx| {
                act.busy = false;
                match reply.map_err(|e| format!("the writer did not answer: {e}")).and_then(|r| r) {
                    Ok(written) => {
                        act.batch.clear();
                        act.batch_deliveries.clear();
                        act.settle_owed(true);
                        act.ids.extend(written.ids);
                        act.remember(&written.rows);
                        act.remember_alerts(written.events, written.outbox, written.suppressed, Vec::new());
                        act.schedule_alerts(written.next_due, ctx);
                        act.succeeded();
                    }
                    Err(e) => {
                        // Back in front, in order, to be tried again (after the backoff, not
                        // waiting for another flush tick).
                        for row in std::mem::take(&mut act.batch).into_iter().rev() {
                            act.pending.push_front(row);
                        }
                        let mut deliveries = std::mem::take(&mut act.batch_deliveries);
                        deliveries.append(&mut act.deliveries);
                        act.deliveries = deliveries;
                        act.settle_owed(false);
                        act.due = true;
                        act.failed(&format!("writing results failed, will retry: {e}"));
                    }
                }
                act.after_work(ctx);
            }));
            return;
        }
        if let Some(purge) = self.purge.as_ref().filter(|_| self.leader) {
            let cutoff_hour = purge.before.div_euclid(HOUR);
            let day = (cutoff_hour * HOUR).div_euclid(DAY);
            let step = PurgeStep {
                before: purge.before,
                from: purge.from,
                limit: PURGE_STEP_ROWS,
                cutoff_hours: (cutoff_hour, (day + 1) * DAY / HOUR - 1),
            };
            self.busy = true;
            ctx.spawn(self.writer.send(step).into_actor(self).map(|reply, act, ctx| {
                act.busy = false;
                match reply.map_err(|e| format!("the writer did not answer: {e}")).and_then(|r| r) {
                    Ok(purged) => {
                        act.succeeded();
                        let Some(purge) = act.purge.as_mut() else { return };
                        purge.purged += purged.progress.deleted;
                        match purged.progress.next {
                            Some(from) => purge.from = from,
                            None => {
                                let done = act.purge.take().expect("a purge in progress");
                                // Once a day: always said, so an operator sees it ran.
                                log::info!(
                                    "store: retention purge done: {} results from before {} removed (retention {})",
                                    done.purged,
                                    chrono::DateTime::from_timestamp(done.before, 0)
                                        .map_or_else(|| done.before.to_string(), |t| t.to_rfc3339()),
                                    crate::config::duration::format(act.retention)
                                );
                                act.forget_purged(done.before, &purged.rest_of_day);
                            }
                        }
                    }
                    Err(e) => act.failed(&format!("the retention purge failed, will retry: {e}")),
                }
                act.after_work(ctx);
            }));
            return;
        }
        // (While writes fail, the backoff above paces these tests too.)
        let stale = self.last_written.is_none_or(|t| t.elapsed() >= RETEST_EVERY - RETEST_TICK);
        if stale {
            // Nothing to write for a while: make sure the database would still take it.
            self.busy = true;
            ctx.spawn(self.writer.send(TryWrite).into_actor(self).map(|reply, act, ctx| {
                act.busy = false;
                match reply.map_err(|e| format!("the writer did not answer: {e}")).and_then(|r| r) {
                    Ok(()) => act.succeeded(),
                    Err(e) => act.failed(&format!("the database refuses writes: {e}")),
                }
                act.after_work(ctx);
            }));
        }
    }

    /// Results go to the writer at most [`FLUSH_EVERY`] after they came: the timer runs while
    /// any wait, so an idle store does not wake up.
    fn arm_flush(&mut self, ctx: &mut Context<Self>) {
        if self.flush_armed || (self.pending.is_empty() && self.inbox.is_empty() && self.deliveries.is_empty()) {
            return;
        }
        self.flush_armed = true;
        ctx.run_later(FLUSH_EVERY, |act, ctx| {
            act.flush_armed = false;
            act.collect();
            act.due = true;
            act.pump(ctx);
            act.arm_flush(ctx);
        });
    }

    fn succeeded(&mut self) {
        if self.writable == Some(false) {
            log::info!("store: writes succeed again ({} results waiting)", self.waiting());
        }
        self.writable = Some(true);
        self.last_error = None;
        self.last_written = Some(Instant::now());
        self.backoff = Duration::ZERO;
        self.next_attempt = Instant::now();
    }

    fn failed(&mut self, message: &str) {
        if self.last_error.as_deref() != Some(message) {
            log::error!("store: {message} ({} results waiting)", self.waiting());
        }
        self.writable = Some(false);
        self.last_error = Some(message.to_string());
        self.metrics.store_write_errors.inc();
        self.backoff = if self.backoff.is_zero() { BACKOFF_FIRST } else { (self.backoff * 2).min(BACKOFF_MAX) };
        self.next_attempt = Instant::now() + self.backoff;
    }

    /// After the writer answered: report, wake who waits for an empty queue, go on.
    fn after_work(&mut self, ctx: &mut Context<Self>) {
        self.metrics.store_queue.set(self.waiting() as i64);
        if self.waiting() == 0 && !self.busy {
            for waiter in self.flushes.drain(..) {
                let _ = waiter.send(Ok(()));
            }
            if let Some(closing) = self.closing.take() {
                // Answered once the writer has closed the connection (SQLite checkpoints the
                // WAL into the database file then), so the daemon never exits before that.
                self.busy = true;
                ctx.spawn(self.writer.send(CloseDatabase).into_actor(self).map(move |reply, act, ctx| {
                    // Whatever comes now cannot be stored: said, and counted as dropped.
                    let late = act.inbox.close() + act.pending.len();
                    if late > 0 {
                        log::warn!("store: {late} results came after the store closed; not stored");
                        act.dropped_some(late as u64);
                    }
                    let _ = closing.send(reply.map_err(|e| format!("the writer did not close the database: {e}")));
                    ctx.stop();
                }));
                return;
            }
        }
        if !self.backoff.is_zero() {
            // Wake up for the retry even if no tick or result comes by.
            ctx.run_later(self.backoff, |act, ctx| act.pump(ctx));
        }
        self.pump(ctx);
        self.arm_flush(ctx);
    }

    /// The answer to a `Flush` or `Close`: what `wait` resolves to, or after `deadline` how many
    /// results were not written (`when`: "in time", "before closing").
    fn answer_by(
        &self,
        wait: oneshot::Receiver<Result<(), String>>,
        deadline: Duration,
        when: &'static str,
    ) -> ResponseFuture<Result<(), String>> {
        let metrics = self.metrics.clone();
        Box::pin(async move {
            match actix_rt::time::timeout(deadline, wait).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err("the store stopped".to_string()),
                Err(_) => Err(format!("{} results were not written {when}", metrics.store_queue.get())),
            }
        })
    }

    /// `at_start_up`: the purge that follows a start goes by the newest result stored before
    /// it, not by results this run has stored since (which carry the same clock).
    fn start_purge(&mut self, at_start_up: bool) {
        if self.purge.is_some() || !self.leader {
            return;
        }
        self.startup_purge_pending = false;
        let retention = self.retention.as_secs() as i64;
        // Never beyond the newest stored probe minus retention: a clock set ahead at start-up
        // must not delete history still within retention of what was stored.
        let newest = if at_start_up {
            self.newest_loaded
        } else {
            self.models.values().filter_map(|m| m.latest.as_ref().map(|r| r.ts)).max()
        };
        let now = self.clock.now();
        let before = match newest {
            Some(newest) => (now - retention).min(newest - retention),
            None => now - retention,
        };
        self.purge = Some(Purge { before, from: 0, purged: 0 });
    }

    /// Brings memory in line with a completed purge of everything before `before` (rounded down
    /// to the hour): older hours and days go, and the day holding the cutoff is summed again
    /// from its stored hours.
    fn forget_purged(&mut self, before: i64, rest_of_day: &[RollupEntry]) {
        let cutoff_hour = before.div_euclid(HOUR);
        let day = (cutoff_hour * HOUR).div_euclid(DAY);
        let me = self.nodes.me;
        let mut sums: HashMap<(i32, i32), Agg> = HashMap::new();
        for (monitor, node, _, agg) in rest_of_day {
            sums.entry((*monitor, *node)).or_default().merge(agg);
        }
        self.changed();
        let ids: Vec<i32> = self.models.keys().copied().collect();
        for id in ids {
            let model = self.model_mut(id);
            model.history.forget_before(cutoff_hour);
            model.history.replace_day(day, sums.remove(&(id, me)).unwrap_or_default());
            if model.latest.as_ref().is_some_and(|row| row.ts < cutoff_hour * HOUR) {
                model.latest = None;
            }
            for (node, part) in &mut model.others {
                part.history.forget_before(cutoff_hour);
                part.history.replace_day(day, sums.remove(&(id, *node)).unwrap_or_default());
                if part.latest.as_ref().is_some_and(|row| row.ts < cutoff_hour * HOUR) {
                    part.latest = None;
                }
            }
        }
    }

    /// The other nodes, each silent when every monitor it probes is stale (3 of its intervals
    /// without a stored probe), with when it went silent or when it last stored one.
    fn liveness(&self) -> Vec<crate::alert::engine::NodeSeen> {
        let now = self.clock.now();
        let mut by_node: HashMap<i32, (bool, i64)> = HashMap::new();
        for model in self.models.values() {
            for (node, part) in &model.others {
                let Some(row) = &part.latest else { continue };
                let interval = i64::from(row.interval_s.unwrap_or(60).max(1));
                let silent_from = row.ts + super::combine::STALE_INTERVALS * interval;
                let live = silent_from >= now;
                let entry = by_node.entry(*node).or_insert((false, i64::MIN));
                entry.0 |= live;
                entry.1 = entry.1.max(if live { row.ts } else { silent_from });
            }
        }
        let mut seen: Vec<crate::alert::engine::NodeSeen> = by_node
            .into_iter()
            .filter(|(node, _)| *node != self.nodes.me)
            .map(|(node, (live, at))| crate::alert::engine::NodeSeen { name: self.nodes.name(node), silent: !live, at })
            .collect();
        seen.sort_by(|a, b| a.name.cmp(&b.name));
        seen
    }

    /// Asks the writer what other nodes stored since last time (one request at a time).
    fn read_others(&mut self, ctx: &mut Context<Self>) {
        if self.leader {
            let silent: Vec<String> = self.liveness().into_iter().filter(|n| n.silent).map(|n| n.name).collect();
            if silent != self.silent_nodes {
                // A node went silent or came back: the engine hears of it at once.
                self.silent_nodes = silent;
                self.nodes_due = true;
                self.pump(ctx);
            }
        }
        if !self.loaded || self.reading_others || self.closing.is_some() {
            return;
        }
        self.reading_others = true;
        let events_after = self.events.back().map_or(0, |e| e.id);
        let request = self.writer.send(ReadChanges { seqs: self.seqs.clone(), events_after });
        ctx.spawn(request.into_actor(self).map(|reply, act, _| {
            act.reading_others = false;
            match reply {
                Ok(Ok(changes)) => act.take_changes(changes),
                Ok(Err(e)) => log::debug!("store: reading other nodes' results failed: {e}"),
                Err(e) => log::debug!("store: reading other nodes' results did not finish: {e}"),
            }
        }));
    }

    fn take_changes(&mut self, changes: super::writer::Changes) {
        self.seqs = changes.seqs;
        let newest = self.events.back().map_or(0, |e| e.id);
        let events: Vec<Event> = changes.events.into_iter().filter(|e| e.id > newest).collect();
        if !events.is_empty() {
            self.remember_alerts(events, Vec::new(), Vec::new(), Vec::new());
        }
        if self.leader {
            // The engine follows the combined status: other nodes' probes count too.
            let keys: HashMap<i32, &MonitorKey> = self.ids.iter().map(|(k, id)| (*id, k)).collect();
            for row in &changes.latest {
                let key = match keys.get(&row.monitor_id) {
                    Some(key) => (*key).clone(),
                    None => match changes.monitors.iter().find(|(_, id)| *id == row.monitor_id) {
                        Some((key, _)) => key.clone(),
                        None => continue,
                    },
                };
                if self.foreign.len() < MAX_PENDING {
                    self.foreign.push((key, row.clone()));
                }
            }
        }
        if !changes.monitors.is_empty() {
            self.ids.extend(changes.monitors);
            self.changed();
        }
        let known = changes.nodes.len() == self.nodes.names.len()
            && changes.nodes.iter().all(|(id, name)| self.nodes.names.get(id) == Some(name));
        if !known {
            Arc::make_mut(&mut self.nodes).names = changes.nodes.into_iter().collect();
            self.changed();
        }
        if changes.rollups.is_empty() && changes.latest.is_empty() {
            return;
        }
        self.changed();
        let now = self.clock.now();
        for (monitor, node, hour, agg) in changes.rollups {
            let part = self.model_mut(monitor).others.entry(node).or_default();
            part.history.set_hour(hour, agg, now);
        }
        for row in changes.latest {
            let (monitor, node) = (row.monitor_id, row.node_id);
            self.model_mut(monitor).others.entry(node).or_default().latest = Some(row);
        }
    }

    fn snapshot(&mut self) -> Arc<Snapshot> {
        if let Some(snapshot) = &self.snapshot {
            return snapshot.clone();
        }
        let mut monitors: Vec<(MonitorKey, Option<Arc<MonitorModel>>)> = self
            .listed
            .iter()
            .map(|key| (key.clone(), self.ids.get(key).and_then(|id| self.models.get(id)).cloned()))
            .collect();
        // Then the monitors only other nodes probe (a probe of theirs in the last day), by name.
        let listed: std::collections::HashSet<i32> =
            self.listed.iter().filter_map(|key| self.ids.get(key).copied()).collect();
        let recent = self.clock.now() - OTHERS_LISTED_FOR;
        let mut extra: Vec<(MonitorKey, Option<Arc<MonitorModel>>)> = self
            .ids
            .iter()
            .filter(|(_, id)| !listed.contains(id))
            .filter_map(|(key, id)| {
                let model = self.models.get(id)?;
                let probed = model.others.values().any(|p| p.latest.as_ref().is_some_and(|row| row.ts >= recent));
                probed.then(|| (key.clone(), Some(model.clone())))
            })
            .collect();
        extra.sort_by_key(|(key, _)| key.to_string());
        monitors.extend(extra);
        let snapshot = Arc::new(Snapshot {
            version: self.version,
            degraded_weight: self.degraded_weight,
            monitors,
            maintenance: self.maintenance.clone(),
            nodes: self.nodes.clone(),
            intervals: self.intervals.clone(),
            model_rules: self.model_rules.clone(),
        });
        self.snapshot = Some(snapshot.clone());
        snapshot
    }
}

impl Actor for StoreActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(Duration::from_secs(3_600), |act, _| {
            let now = act.clock.now();
            act.changed();
            let ids: Vec<i32> = act.models.keys().copied().collect();
            for id in ids {
                let model = act.model_mut(id);
                model.history.prune(now);
                for part in model.others.values_mut() {
                    part.history.prune(now);
                }
            }
        });
        ctx.run_interval(READ_OTHERS_EVERY, |act, ctx| act.read_others(ctx));
        ctx.run_interval(RETEST_TICK, |act, ctx| act.pump(ctx));
        ctx.run_interval(PURGE_EVERY, |act, ctx| {
            act.start_purge(false);
            act.pump(ctx);
        });
    }
}

impl Handler<Collect> for StoreActor {
    type Result = ();

    fn handle(&mut self, _: Collect, ctx: &mut Context<Self>) {
        if self.inbox.len() >= COLLECT_AT {
            self.collect();
            self.pump(ctx);
        }
        self.arm_flush(ctx);
    }
}

impl Handler<RegisterMonitors> for StoreActor {
    type Result = ();

    fn handle(&mut self, msg: RegisterMonitors, _: &mut Context<Self>) {
        self.listed = msg.keys;
        self.degraded_weight = msg.degraded_weight;
        self.retention = msg.retention;
        self.intervals = Arc::new(msg.intervals);
        self.model_rules = Arc::new(msg.model_rules);
        if self.nodes.quorum != msg.quorum {
            Arc::make_mut(&mut self.nodes).quorum = msg.quorum;
        }
        self.changed();
    }
}

impl Handler<LoadHistory> for StoreActor {
    type Result = ResponseActFuture<Self, Result<(), String>>;

    fn handle(&mut self, _: LoadHistory, _: &mut Context<Self>) -> Self::Result {
        let now = self.clock.now();
        let first_hour = now.div_euclid(HOUR) - 31 * 24;
        let load = self.writer.send(Load { first_hour, now });
        Box::pin(load.into_actor(self).map(|reply, act, ctx| {
            let loaded = reply.map_err(|e| format!("the writer did not answer: {e}"))??;
            // The start-up purge goes by the newest result loaded here, so it is scheduled only
            // now, and a moment later, so the daemon answers its first requests first.
            act.startup_purge_pending = true;
            ctx.run_later(STARTUP_PURGE_DELAY, |act, ctx| {
                act.start_purge(true);
                act.pump(ctx);
            });
            let now = act.clock.now();
            act.ids.extend(loaded.monitors);
            act.models.clear();
            let me = loaded.node_id;
            act.nodes = Arc::new(Nodes { me, names: loaded.nodes.into_iter().collect(), quorum: act.nodes.quorum });
            act.seqs = loaded.seqs;
            for (monitor, node, hour, agg) in &loaded.rollups {
                let model = act.model_mut(*monitor);
                if *node == me {
                    model.history.add_hour(*hour, agg, now);
                } else {
                    model.others.entry(*node).or_default().history.add_hour(*hour, agg, now);
                }
            }
            act.newest_loaded = loaded.latest.iter().filter(|row| row.node_id == me).map(|row| row.ts).max();
            for row in loaded.latest {
                let model = act.model_mut(row.monitor_id);
                if row.node_id == me {
                    model.latest = Some(row);
                } else {
                    let node = row.node_id;
                    model.others.entry(node).or_default().latest = Some(row);
                }
            }
            act.loaded = true;
            act.changed();
            log::debug!("store: loaded {} hourly rollups of {} monitors", loaded.rollups.len(), act.models.len());
            let alerts = loaded.alerts;
            if !alerts.pending.is_empty() {
                log::info!("alerts: {} messages from before the restart wait to be sent", alerts.pending.len());
            }
            act.events = alerts.events.into();
            // A shared database's outbox is the leader's to send (handed over at a takeover).
            act.leader = !loaded.shared;
            if act.leader {
                act.remember_alerts(Vec::new(), alerts.pending, Vec::new(), alerts.abandoned);
                act.schedule_alerts(loaded.next_due, ctx);
            }
            match loaded.writable {
                Ok(()) => act.succeeded(),
                Err(e) => act.failed(&format!("the database refuses writes: {e}")),
            }
            Ok(())
        }))
    }
}

/// What a starting ProbeActor needs of its monitor's stored history on this node (committed
/// results: what a restart finds).
#[derive(Debug, Message)]
#[rtype(result = "StoredState")]
pub struct GetStoredState {
    pub key: MonitorKey,
    /// Unix seconds, taken to its hour.
    pub since: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredState {
    /// What its probes cost from `since` to now, nano-USD.
    pub spent_nanos: u64,
    /// The status of its latest stored result.
    pub latest: Option<Status>,
}

impl Handler<GetStoredState> for StoreActor {
    type Result = MessageResult<GetStoredState>;

    fn handle(&mut self, GetStoredState { key, since }: GetStoredState, _: &mut Context<Self>) -> Self::Result {
        let Some(model) = self.ids.get(&key).and_then(|id| self.models.get(id)) else {
            return MessageResult(StoredState::default());
        };
        let now_hour = self.clock.now().div_euclid(HOUR);
        let spent_nanos = (since.div_euclid(HOUR)..=now_hour)
            .filter_map(|hour| model.history.hour(hour).and_then(|agg| agg.cost_nanos))
            .fold(0u64, u64::saturating_add);
        let latest = model.latest.as_ref().and_then(|row| Status::from_i16(row.status));
        MessageResult(StoredState { spent_nanos, latest })
    }
}

impl Handler<GetSnapshot> for StoreActor {
    type Result = MessageResult<GetSnapshot>;

    fn handle(&mut self, _: GetSnapshot, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.snapshot())
    }
}

impl Handler<GetStoreHealth> for StoreActor {
    type Result = MessageResult<GetStoreHealth>;

    fn handle(&mut self, _: GetStoreHealth, _: &mut Context<Self>) -> Self::Result {
        MessageResult(StoreHealth {
            writable: self.writable,
            pending: self.waiting(),
            dropped: self.dropped,
            last_error: self.last_error.clone(),
            node: (self.nodes.name(self.nodes.me), self.leader),
        })
    }
}

impl Handler<ConfigureAlertsFor> for StoreActor {
    type Result = ();

    fn handle(&mut self, msg: ConfigureAlertsFor, ctx: &mut Context<Self>) {
        if msg.delivery.is_some() {
            self.delivery = msg.delivery;
        }
        if msg.lead.is_some() {
            self.lead = msg.lead;
        }
        self.maintenance = Arc::from(msg.config.maintenance.clone());
        self.changed();
        let request = self.writer.send(ConfigureAlerts { config: msg.config, now: self.clock.now() });
        ctx.spawn(request.into_actor(self).map(|reply, act, ctx| {
            if let Ok(due) = reply {
                act.schedule_alerts(due, ctx);
            }
        }));
    }
}

impl Handler<super::leader::Leadership> for StoreActor {
    type Result = ();

    fn handle(&mut self, super::leader::Leadership(leader): super::leader::Leadership, ctx: &mut Context<Self>) {
        self.lock_held = leader;
        if leader == self.leader {
            return;
        }
        if !leader {
            self.leader = false;
            self.purge = None;
            self.foreign.clear();
            if let Some(timer) = self.alerts_timer.take() {
                ctx.cancel_future(timer);
            }
            self.alerts_due = None;
            self.writer.do_send(super::writer::StepDown);
            if let Some(lead) = &self.lead {
                lead.do_send(crate::alert::delivery::Lead(false));
            }
            return;
        }
        let request = self.writer.send(super::writer::TakeLead { now: self.clock.now() });
        ctx.spawn(request.into_actor(self).map(|reply, act, ctx| {
            match reply.map_err(|e| e.to_string()).and_then(|r| r) {
                // The lock went again meanwhile: the step-down was already said.
                Ok(_) if !act.lock_held => act.writer.do_send(super::writer::StepDown),
                Ok((alerts, next_due)) => {
                    act.leader = true;
                    if let Some(lead) = &act.lead {
                        lead.do_send(crate::alert::delivery::Lead(true));
                    }
                    if !alerts.pending.is_empty() {
                        log::info!("alerts: taking over {} messages waiting to be sent", alerts.pending.len());
                    }
                    act.remember_alerts(Vec::new(), alerts.pending, Vec::new(), alerts.abandoned);
                    act.schedule_alerts(next_due, ctx);
                    // The duties start now: the retention purge first (going by the history
                    // loaded at start-up if the start-up purge was not this node's to run).
                    act.start_purge(act.startup_purge_pending);
                    act.pump(ctx);
                }
                Err(e) => {
                    log::error!("leader: cannot take over the alert state: {e}; trying again");
                    // Counted as not leading until it works: the lock thread says so again.
                    ctx.run_later(Duration::from_secs(2), |act, ctx| {
                        if act.lock_held {
                            ctx.address().do_send(super::leader::Leadership(true));
                        }
                    });
                }
            }
        }));
    }
}

impl Handler<Delivered> for StoreActor {
    type Result = ();

    fn handle(&mut self, msg: Delivered, ctx: &mut Context<Self>) {
        self.deliveries.push(msg.0);
        self.arm_flush(ctx);
    }
}

impl Handler<QueryEvents> for StoreActor {
    type Result = ResponseFuture<Result<(Vec<Event>, bool), String>>;

    fn handle(&mut self, msg: QueryEvents, _: &mut Context<Self>) -> Self::Result {
        let limit = msg.limit.max(1);
        // Memory holds the newest events without a gap: enough unless asked from before them.
        let first_held = self.events.front().map(|e| e.id);
        if first_held.is_none_or(|first| msg.since_id >= first - 1) {
            let mut data: Vec<Event> =
                self.events.iter().filter(|e| e.id > msg.since_id).take(limit + 1).cloned().collect();
            let more = data.len() > limit;
            data.truncate(limit);
            return Box::pin(async move { Ok((data, more)) });
        }
        let read = self.writer.send(ReadEvents { since_id: msg.since_id, limit: limit as i64 + 1 });
        Box::pin(async move {
            let mut data = read.await.map_err(|e| format!("the store did not answer: {e}"))??;
            let more = data.len() > limit;
            data.truncate(limit);
            Ok((data, more))
        })
    }
}

impl Handler<Flush> for StoreActor {
    type Result = ResponseFuture<Result<(), String>>;

    fn handle(&mut self, msg: Flush, ctx: &mut Context<Self>) -> Self::Result {
        let (done, wait) = oneshot::channel();
        self.collect();
        if self.waiting() == 0 && !self.busy {
            let _ = done.send(Ok(()));
        } else {
            self.flushes.push(done);
            self.pump(ctx);
        }
        self.answer_by(wait, msg.deadline, "in time")
    }
}

impl Handler<Close> for StoreActor {
    type Result = ResponseFuture<Result<(), String>>;

    fn handle(&mut self, msg: Close, ctx: &mut Context<Self>) -> Self::Result {
        let (done, wait) = oneshot::channel();
        self.closing = Some(done);
        self.after_work(ctx);
        self.answer_by(wait, msg.deadline, "before closing")
    }
}

#[cfg(test)]
mod tests {
    use super::super::db;
    use super::super::timeline::{Bucket, Period};
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::Inbox;

    const DAY_MS: i64 = 86_400_000;
    /// 2024-12-30 00:00:00 UTC.
    const MIDNIGHT: i64 = 1_735_516_800;

    fn key() -> MonitorKey {
        MonitorKey::new("p", "s", "")
    }

    fn result(ts: i64, status: Status, latency_ms: u32) -> ProbeResult {
        ProbeResult {
            key: key(),
            timestamp: ts,
            status,
            latency_ms,
            reason: if status == Status::Red { Reason::ServerError } else { Reason::Ok },
            http_code: 200,
            detail: None,
            measured: Measurements::default(),
        }
    }

    fn store(
        path: &std::path::Path,
        clock: &ManualClock,
        retention_days: u64,
    ) -> (Addr<StoreActor>, Inbox, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new());
        let conn = db::open(path).unwrap();
        let retention = Duration::from_secs(retention_days * 86_400);
        let (addr, inbox) = super::super::start(
            super::super::sql::Db::Sqlite(conn),
            super::super::Place { database: crate::config::Database::Sqlite(path.to_path_buf()), node: "local".into() },
            clock.shared(),
            retention,
            0.5,
            metrics.clone(),
            Arc::default(),
        );
        addr.do_send(RegisterMonitors {
            keys: vec![key()],
            degraded_weight: 0.5,
            retention,
            intervals: HashMap::new(),
            model_rules: HashMap::new(),
            quorum: crate::config::Quorum::default(),
        });
        (addr, inbox, metrics)
    }

    async fn model(store: &Addr<StoreActor>) -> Arc<MonitorModel> {
        let snapshot = store.send(GetSnapshot).await.unwrap();
        snapshot.monitors[0].1.clone().expect("a stored result")
    }

    /// The non-empty buckets of a period, as (start, green, yellow, red).
    fn buckets(model: &MonitorModel, period: Period, now: i64) -> Vec<(i64, i64, i64, i64)> {
        let (buckets, _) = model.history.timeline(period, now, 0.5);
        buckets
            .iter()
            .filter(|b: &&Bucket| b.counts.total() > 0)
            .map(|b| (b.timestamp, b.counts.green, b.counts.yellow, b.counts.red))
            .collect()
    }

    /// Results go through the writer; memory moves with each commit, splits hours and days
    /// where the clock says they end, and matches what a restart reads back from the database.
    #[test]
    fn memory_follows_commits_across_a_day_boundary_and_matches_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let clock = ManualClock::at(MIDNIGHT * 1_000 - 30_000);
        actix::System::new().block_on(async {
            let (store, inbox, _) = store(&path, &clock, 30);
            store.send(LoadHistory).await.unwrap().unwrap();
            inbox.send(result(MIDNIGHT - 20, Status::Green, 100));
            inbox.send(result(MIDNIGHT - 10, Status::Red, 0));
            // Over midnight.
            clock.step_ms(60_000);
            inbox.send(result(MIDNIGHT + 20, Status::Yellow, 900));
            store.send(Flush { deadline: Duration::from_secs(5) }).await.unwrap().unwrap();
            let now = clock.shared().now();
            let model = model(&store).await;
            assert_eq!(model.latest.as_ref().map(|r| r.ts), Some(MIDNIGHT + 20));
            assert_eq!(
                buckets(&model, Period::Week, now),
                vec![(MIDNIGHT - 86_400, 1, 0, 1), (MIDNIGHT, 0, 1, 0)],
                "one bucket per UTC day"
            );
            assert_eq!(buckets(&model, Period::Day, now), vec![(MIDNIGHT - 3_600, 1, 0, 1), (MIDNIGHT, 0, 1, 0)]);
            store.send(Close { deadline: Duration::from_secs(5) }).await.unwrap().unwrap();

            // A restart reads back exactly what memory showed.
            let (again, _, _) = self::store(&path, &clock, 30);
            again.send(LoadHistory).await.unwrap().unwrap();
            let reloaded = self::model(&again).await;
            for period in [Period::Day, Period::Week, Period::Month] {
                assert_eq!(buckets(&reloaded, period, now), buckets(&model, period, now), "{period:?}");
            }
            assert_eq!(reloaded.latest, model.latest);
        });
    }

    /// A clock stepped back: what was written last is the latest, whatever its time, and the
    /// hourly prune on the earlier clock keeps what was stored.
    #[test]
    fn a_clock_stepped_back_still_moves_the_latest() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(MIDNIGHT * 1_000 + 12 * 3_600_000);
        actix::System::new().block_on(async {
            let (store, inbox, _) = store(&dir.path().join("t.db"), &clock, 30);
            store.send(LoadHistory).await.unwrap().unwrap();
            let noon = MIDNIGHT + 12 * 3_600;
            inbox.send(result(noon, Status::Green, 100));
            store.send(Flush { deadline: Duration::from_secs(5) }).await.unwrap().unwrap();
            clock.step_ms(-2 * 3_600_000);
            inbox.send(result(noon - 7_200, Status::Red, 0));
            store.send(Flush { deadline: Duration::from_secs(5) }).await.unwrap().unwrap();
            let model = model(&store).await;
            let latest = model.latest.as_ref().unwrap();
            assert_eq!((latest.ts, latest.status), (noon - 7_200, 0), "the result written last");
            let now = clock.shared().now();
            assert_eq!(buckets(&model, Period::Day, now), vec![(noon - 7_200, 0, 0, 1)], "the hours up to now");
            clock.step_ms(2 * 3_600_000);
            assert_eq!(buckets(&model, Period::Day, clock.shared().now()).len(), 2, "and both once it is noon again");
        });
    }

    /// The clock is 30 days ahead when the daemon starts: the start-up purge keeps every result
    /// within retention of the newest one stored, in the database and in memory alike.
    #[test]
    fn a_clock_ahead_at_start_up_purges_nothing_within_retention_of_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let clock = ManualClock::at(MIDNIGHT * 1_000);
        actix::System::new().block_on(async {
            let (store, inbox, _) = store(&path, &clock, 7);
            store.send(LoadHistory).await.unwrap().unwrap();
            for days_ago in [10, 6, 1] {
                inbox.send(result(MIDNIGHT - days_ago * 86_400 + 60, Status::Green, 100));
            }
            store.send(Close { deadline: Duration::from_secs(5) }).await.unwrap().unwrap();
        });
        clock.step_ms(30 * DAY_MS);
        actix::System::new().block_on(async {
            let (store, inbox, _) = store(&path, &clock, 7);
            // A history that takes a while to load (many monitors): the purge waits for it.
            actix_rt::time::sleep(STARTUP_PURGE_DELAY + Duration::from_millis(500)).await;
            store.send(LoadHistory).await.unwrap().unwrap();
            // A probe on the clock that is ahead, stored before the purge: it does not count.
            let ahead = clock.shared().now();
            inbox.send(result(ahead, Status::Green, 100));
            // The start-up purge runs STARTUP_PURGE_DELAY after the load: wait (with a
            // deadline) until the database shows what it should leave; a purge that removes
            // more never gets there.
            let ahead_hour = ahead.div_euclid(HOUR) * HOUR;
            let expected = vec![(MIDNIGHT - 6 * 86_400), (MIDNIGHT - 86_400), ahead_hour];
            let mut conn = db::open(&path).unwrap();
            let hours = |conn: &mut diesel::SqliteConnection| -> Vec<i64> {
                db::rollups_since(conn, 0).unwrap().iter().map(|(_, _, hour, _)| hour * HOUR).collect()
            };
            let deadline = Instant::now() + STARTUP_PURGE_DELAY + Duration::from_secs(5);
            while hours(&mut conn) != expected && Instant::now() < deadline {
                actix_rt::time::sleep(Duration::from_millis(50)).await;
            }
            store.send(Flush { deadline: Duration::from_secs(5) }).await.unwrap().unwrap();
            let model = model(&store).await;
            let stored = hours(&mut conn);
            assert_eq!(stored, expected, "only what was 10 days before the newest stored before the start went");
            assert_eq!(model.latest.as_ref().map(|r| r.ts), Some(ahead));
            let days = buckets(&model, Period::Month, clock.shared().now()).len();
            assert_eq!(days, 1, "of the last 30 days of a clock 30 days ahead, only today has a result");
        });
    }

    /// Results left in the inbox count as pending at once and are stored without anyone asking
    /// for a flush (the first one arms the store's timer).
    #[test]
    fn results_left_in_the_inbox_are_counted_and_stored_unasked() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(MIDNIGHT * 1_000);
        actix::System::new().block_on(async {
            let (store, inbox, _) = store(&dir.path().join("t.db"), &clock, 30);
            store.send(LoadHistory).await.unwrap().unwrap();
            for i in 0..3 {
                inbox.send(result(MIDNIGHT - 60 + i, Status::Green, 100));
            }
            assert_eq!(store.send(GetStoreHealth).await.unwrap().pending, 3);
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let snapshot = store.send(GetSnapshot).await.unwrap();
                if let Some(model) = &snapshot.monitors[0].1 {
                    if model.latest.as_ref().map(|row| row.ts) == Some(MIDNIGHT - 58) {
                        break;
                    }
                }
                assert!(Instant::now() < deadline, "the inbox was never collected");
                actix_rt::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(store.send(GetStoreHealth).await.unwrap().pending, 0);
        });
    }

    /// Another process holds the write lock: queries still answer at once, writes back off
    /// (a few errors, not one per flush tick), the queue is capped with the excess counted,
    /// and everything kept is written once the lock goes.
    #[test]
    fn a_locked_database_never_blocks_queries_and_the_queue_is_capped() {
        use diesel::connection::SimpleConnection;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let clock = ManualClock::at(MIDNIGHT * 1_000);
        actix::System::new().block_on(async {
            let (store, inbox, metrics) = store(&path, &clock, 30);
            store.send(LoadHistory).await.unwrap().unwrap();
            let mut lock = db::open(&path).unwrap();
            lock.batch_execute("BEGIN EXCLUSIVE").unwrap();
            // Each result a second apart, so which ones were kept shows in the database.
            let first = MIDNIGHT - 200_000;
            let over = 7;
            for i in 0..MAX_PENDING + over {
                inbox.send(result(first + i as i64, Status::Green, 10));
            }
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(3) {
                let asked = Instant::now();
                store.send(GetSnapshot).await.unwrap();
                let health = store.send(GetStoreHealth).await.unwrap();
                assert!(asked.elapsed() < Duration::from_millis(100), "a query waited {:?}", asked.elapsed());
                assert!(health.pending <= MAX_PENDING, "{}", health.pending);
                actix_rt::time::sleep(Duration::from_millis(50)).await;
            }
            let health = store.send(GetStoreHealth).await.unwrap();
            assert_eq!(health.writable, Some(false));
            assert_eq!((health.pending, health.dropped), (MAX_PENDING, over as u64));
            assert_eq!(metrics.store_dropped.get(), over as u64);
            // Newer results while the store is full: the oldest waiting make room for them.
            let later = 5;
            for i in 0..later {
                inbox.send(result(first + (MAX_PENDING + over + i) as i64, Status::Green, 10));
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while store.send(GetStoreHealth).await.unwrap().dropped < (over + later) as u64 {
                assert!(Instant::now() < deadline, "the newer results were never taken");
                actix_rt::time::sleep(Duration::from_millis(20)).await;
            }
            let health = store.send(GetStoreHealth).await.unwrap();
            assert_eq!(health.pending, MAX_PENDING);
            // 3 s of refusals with a 250 ms backoff doubling: about 4 attempts, not 12 ticks.
            let errors = metrics.store_write_errors.get();
            assert!((2..=6).contains(&errors), "{errors} write errors in 3 s");
            lock.batch_execute("COMMIT").unwrap();
            store.send(Flush { deadline: Duration::from_secs(30) }).await.unwrap().unwrap();
            let health = store.send(GetStoreHealth).await.unwrap();
            assert_eq!((health.writable, health.pending), (Some(true), 0));
            let counts = model(&store).await.history.timeline(Period::Month, clock.shared().now(), 0.5).0;
            let stored: i64 = counts.iter().map(|b| b.counts.total()).sum();
            assert_eq!(stored, MAX_PENDING as i64);
            use super::super::schema::probes;
            use diesel::prelude::*;
            let mut conn = db::open(&path).unwrap();
            let (oldest, newest): (Option<i64>, Option<i64>) = probes::table
                .select((diesel::dsl::min(probes::ts), diesel::dsl::max(probes::ts)))
                .first(&mut conn)
                .unwrap();
            let kept_from = first + (over + later) as i64;
            assert_eq!((oldest, newest), (Some(kept_from), Some(kept_from + MAX_PENDING as i64 - 1)));
        });
    }
}
