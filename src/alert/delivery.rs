//! The Delivery actor: sends what the outbox holds, off the probe path. One queue per channel,
//! in outbox order (a channel's messages never overtake each other: a message that fails holds
//! back the ones after it until it is sent or given up). A failed attempt is retried after 5 s,
//! doubling to 5 min, or when the receiver's `Retry-After` says; a message still unsent
//! `give_up_after` after it was queued is given up. Each outcome goes to the store, which
//! writes it with its next batch, so a restart resumes exactly where delivery stood.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde::Serialize;

use super::message::RenderContext;
use super::send::{self, Attempt};
use super::{AlertConfig, Channel};
use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::store::alerts::{DeliveryUpdate, OutboxRow, GIVEN_UP, PENDING, SENT, SUPPRESSED};
use crate::store::{Delivered, OutboxChanged};

const RETRY_FIRST: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(300);
/// A receiver's `Retry-After` is honoured up to this.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(3_600);
/// A message the receiver refuses for good (see [`Attempt::permanent`]) is given up after this
/// many attempts, so it does not hold back the channel's later messages for `give_up_after`.
const PERMANENT_ATTEMPTS: i32 = 3;
/// At shutdown, sends in flight get this long to finish (and be recorded).
pub const STOP_GRACE: Duration = Duration::from_secs(5);

struct Queued {
    row: OutboxRow,
    /// Not before this (the outbox's `not_before`, or the next retry).
    next_try: Instant,
    last_error: Option<String>,
    /// Attempts the receiver refused for good (HTTP 4xx, SMTP 5xx).
    refused: i32,
}

#[derive(Default)]
struct ChannelQueue {
    rows: VecDeque<Queued>,
    in_flight: bool,
    /// When the last messages went (for the channel's rate limit).
    sent_at: VecDeque<Instant>,
    timer: Option<SpawnHandle>,
}

/// What `/health` shows about one channel.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChannelHealth {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub pending: usize,
    pub sent: u64,
    pub failed: u64,
    pub given_up: u64,
    /// The channel's last error (redacted), cleared by the next success.
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DeliveryHealth {
    pub pending: usize,
    pub failed: u64,
    pub given_up: u64,
    pub channels: Vec<ChannelHealth>,
}

pub struct Delivery {
    config: Arc<AlertConfig>,
    store: Recipient<Delivered>,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    /// One client per proxy setting (awc's pool is keyed by host alone), made on the actor's
    /// own thread (awc's client is not Send).
    clients: crate::proxy::PerProxy<Option<crate::proxy::Proxy>, awc::Client>,
    queues: HashMap<String, ChannelQueue>,
    stats: HashMap<String, ChannelHealth>,
    stopping: bool,
    /// Another node leads: nothing is sent from here.
    standby: bool,
    /// Who waits for the sends in flight to finish (at shutdown).
    idle: Vec<tokio::sync::oneshot::Sender<()>>,
    /// (channel, event id) of downs given up: their reminders and resolved are not sent there
    /// (a resolved only ever follows a down the receiver got).
    abandoned: HashSet<(String, i64)>,
}

impl Delivery {
    /// The client for channels with this proxy setting (`None`: direct).
    fn client_for(&mut self, proxy: Option<&crate::proxy::Proxy>) -> awc::Client {
        self.clients.get_or_insert_with(proxy.cloned(), |proxy| send::client(proxy.as_ref()))
    }

    pub fn new(
        config: Arc<AlertConfig>,
        store: Recipient<Delivered>,
        clock: SharedClock,
        metrics: Arc<Metrics>,
    ) -> Self {
        Delivery {
            config,
            store,
            clock,
            metrics,
            clients: crate::proxy::PerProxy::new(64),
            queues: HashMap::new(),
            stats: HashMap::new(),
            stopping: false,
            standby: false,
            idle: Vec::new(),
            abandoned: HashSet::new(),
        }
    }

    fn in_instant(&self, unix_s: i64) -> Instant {
        let wait = (unix_s - self.clock.now()).clamp(0, 86_400 * 366) as u64;
        Instant::now() + Duration::from_secs(wait)
    }

    fn stats(&mut self, channel: &str) -> &mut ChannelHealth {
        let kind = self.config.channel(channel).map_or("", |c| c.kind.type_name()).to_string();
        self.stats.entry(channel.to_string()).or_insert_with(|| ChannelHealth {
            name: channel.to_string(),
            kind,
            ..ChannelHealth::default()
        })
    }

    fn record(&self, row: &OutboxRow, state: i16, error: Option<String>) {
        self.store.do_send(Delivered(DeliveryUpdate {
            id: row.id,
            state,
            attempts: row.attempts,
            error,
            at: self.clock.now(),
        }));
    }

    /// Sends the head of `channel`'s queue if it is due, or sets a timer for when it is.
    fn pump(&mut self, channel: &str, ctx: &mut Context<Self>) {
        if self.stopping || self.standby {
            return;
        }
        let now = Instant::now();
        let unix_now = self.clock.now();
        let give_up_after = self.config.give_up_after.as_secs() as i64;
        let configured: Option<Channel> = self.config.channel(channel).cloned();
        let Some(queue) = self.queues.get_mut(channel) else { return };
        if queue.in_flight {
            return;
        }
        if let Some(handle) = queue.timer.take() {
            ctx.cancel_future(handle);
        }
        // Given up: too old, refused for good, or the channel is no longer configured; and withdrawn: what
        // follows a down given up.
        let mut given_up = Vec::new();
        let mut withdrawn = Vec::new();
        while let Some(head) = queue.rows.front() {
            if head.row.message.down_id.is_some_and(|down| self.abandoned.contains(&(channel.to_string(), down))) {
                withdrawn.push(queue.rows.pop_front().expect("a head").row);
                continue;
            }
            let too_old = unix_now - head.row.created_at >= give_up_after;
            let refused = head.refused >= PERMANENT_ATTEMPTS;
            if !too_old && !refused && configured.is_some() {
                break;
            }
            let head = queue.rows.pop_front().expect("a head");
            let why = if configured.is_none() {
                "the channel is no longer configured".to_string()
            } else if refused {
                format!(
                    "refused {PERMANENT_ATTEMPTS} times for good ({})",
                    head.last_error.as_deref().unwrap_or("no answer")
                )
            } else {
                format!(
                    "not delivered within {} ({})",
                    crate::config::duration::format(self.config.give_up_after),
                    head.last_error.as_deref().unwrap_or("no answer")
                )
            };
            given_up.push((head.row, why));
        }
        let head_due = queue.rows.front().map(|h| h.next_try);
        // The channel's own rate limit: at most N in any minute.
        let limit = configured.as_ref().and_then(|c| c.kind.per_minute());
        while queue.sent_at.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60)) {
            queue.sent_at.pop_front();
        }
        let rate_free_at = rate_free_at(&queue.sent_at, limit);
        for row in withdrawn {
            log::info!(
                "alerts: {}: {} message {} not sent: the down it follows was given up",
                row.channel,
                row.message.event.as_str(),
                row.id
            );
            self.record(&row, SUPPRESSED, Some("the down it follows was given up".to_string()));
        }
        for (row, why) in given_up {
            if matches!(row.message.event, super::EventKind::Down | super::EventKind::StormDown) {
                // Bounded: past this many, the oldest knowledge goes (a late resolved may then go).
                if self.abandoned.len() >= 100_000 {
                    self.abandoned.clear();
                }
                self.abandoned.insert((row.channel.clone(), row.message.id));
            }
            log::error!("alerts: {}: message {} ({}) given up: {why}", row.channel, row.id, row.message.event.as_str());
            self.metrics.notification(&row.channel, "given_up");
            let stats = self.stats(channel);
            stats.given_up += 1;
            stats.last_error = Some(why.clone());
            self.record(&row, GIVEN_UP, Some(why));
        }
        let (Some(due), Some(channel_config)) = (head_due, configured) else { return };
        let start_at = rate_free_at.map_or(due, |free| free.max(due));
        if start_at > now {
            let name = channel.to_string();
            let handle = ctx.run_later(start_at - now, move |act, ctx| {
                if let Some(queue) = act.queues.get_mut(&name) {
                    queue.timer = None;
                }
                act.pump(&name, ctx);
            });
            if let Some(queue) = self.queues.get_mut(channel) {
                queue.timer = Some(handle);
            }
            return;
        }
        let client = self.client_for(channel_config.proxy.as_ref());
        let queue = self.queues.get_mut(channel).expect("the queue");
        let head = queue.rows.front_mut().expect("a head");
        head.row.attempts += 1;
        let row = head.row.clone();
        queue.in_flight = true;
        queue.sent_at.push_back(now);
        let config = self.config.clone();
        let name = channel.to_string();
        let now_ms = self.clock.now_ms();
        let attempt = async move {
            let ctx = RenderContext {
                language: config.language,
                timezone: config.timezone,
                public_url: config.public_url.as_deref(),
            };
            send::send(&channel_config, &row.message, &ctx, &client, &config.redactor, now_ms).await
        };
        ctx.spawn(attempt.into_actor(self).map(move |attempt, act, ctx| {
            act.attempted(&name, attempt);
            if act.stopping && !act.queues.values().any(|q| q.in_flight) {
                for waiter in act.idle.drain(..) {
                    let _ = waiter.send(());
                }
            }
            act.pump(&name, ctx);
        }));
    }

    fn attempted(&mut self, channel: &str, attempt: Attempt) {
        let Some(queue) = self.queues.get_mut(channel) else { return };
        queue.in_flight = false;
        let Some(head) = queue.rows.front_mut() else { return };
        if attempt.accepted {
            let done = queue.rows.pop_front().expect("a head");
            log::info!(
                "alerts: {channel}: sent {} message {} ({})",
                done.row.message.event.as_str(),
                done.row.id,
                attempt.answer
            );
            self.metrics.notification(channel, "sent");
            let stats = self.stats(channel);
            stats.sent += 1;
            stats.last_error = None;
            self.record(&done.row, SENT, None);
            return;
        }
        // Failed: retried after a backoff (or when the receiver asked), in place, so nothing
        // behind it overtakes it.
        let wait = retry_wait(head.row.attempts, attempt.retry_after);
        head.next_try = Instant::now() + wait;
        head.last_error = Some(attempt.answer.clone());
        if attempt.permanent {
            head.refused += 1;
        }
        let row = head.row.clone();
        log::warn!(
            "alerts: {channel}: {} message {} not delivered (attempt {}), retrying in {}: {}",
            row.message.event.as_str(),
            row.id,
            row.attempts,
            crate::config::duration::format(wait),
            attempt.answer
        );
        self.metrics.notification(channel, "failed");
        let stats = self.stats(channel);
        stats.failed += 1;
        stats.last_error = Some(attempt.answer.clone());
        self.record(&row, PENDING, Some(attempt.answer));
    }
}

/// How long to wait after failed attempt number `attempts` (1 for the first): 5 s doubling to
/// 5 min, or what the receiver asked for (between 1 s and an hour).
fn retry_wait(attempts: i32, retry_after: Option<Duration>) -> Duration {
    let exponent = (attempts.max(1) - 1).min(16) as u32;
    let backoff = RETRY_FIRST.saturating_mul(1 << exponent).min(RETRY_MAX);
    retry_after.map_or(backoff, |asked| asked.clamp(Duration::from_secs(1), RETRY_AFTER_MAX))
}

/// When a channel that takes `limit` messages a minute may send again, given when its last
/// messages went (those of the last minute, oldest first); `None`: now.
fn rate_free_at(sent_at: &VecDeque<Instant>, limit: Option<u32>) -> Option<Instant> {
    match limit {
        Some(n) if sent_at.len() >= n as usize => sent_at.front().map(|t| *t + Duration::from_secs(60)),
        _ => None,
    }
}

impl Actor for Delivery {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        let names: Vec<String> = self.config.channels.iter().map(|c| c.name.clone()).collect();
        for name in names {
            self.stats(&name);
        }
    }
}

impl Handler<OutboxChanged> for Delivery {
    type Result = ();

    fn handle(&mut self, msg: OutboxChanged, ctx: &mut Context<Self>) {
        self.abandoned.extend(msg.abandoned);
        let mut touched: Vec<String> = Vec::new();
        for row in msg.added {
            let next_try = self.in_instant(row.not_before);
            let channel = row.channel.clone();
            let queue = self.queues.entry(channel.clone()).or_default();
            if queue.rows.iter().any(|q| q.row.id == row.id) {
                continue;
            }
            // In outbox order (rows loaded at start-up and rows committed since may interleave).
            let at = queue.rows.iter().position(|q| q.row.id > row.id).unwrap_or(queue.rows.len());
            queue.rows.insert(at, Queued { row, next_try, last_error: None, refused: 0 });
            if !touched.contains(&channel) {
                touched.push(channel);
            }
        }
        if !msg.suppressed.is_empty() {
            for (channel, queue) in &mut self.queues {
                let in_flight = queue.in_flight;
                let before = queue.rows.len();
                let mut index = 0;
                queue.rows.retain(|q| {
                    index += 1;
                    // The one being sent right now cannot be called back.
                    (in_flight && index == 1) || !msg.suppressed.contains(&q.row.message.id)
                });
                if queue.rows.len() != before && !touched.contains(channel) {
                    touched.push(channel.clone());
                }
            }
        }
        for channel in touched {
            self.pump(&channel, ctx);
        }
    }
}

/// A new configuration: channels, languages and limits apply to the next attempt.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reconfigure(pub Arc<AlertConfig>);

impl Handler<Reconfigure> for Delivery {
    type Result = ();

    fn handle(&mut self, msg: Reconfigure, ctx: &mut Context<Self>) {
        self.config = msg.0;
        for channel in &self.config.channels.clone() {
            self.stats(&channel.name);
        }
        let channels: Vec<String> = self.queues.keys().cloned().collect();
        for channel in channels {
            self.pump(&channel, ctx);
        }
    }
}

#[derive(Message)]
#[rtype(result = "DeliveryHealth")]
pub struct GetDeliveryHealth;

impl Handler<GetDeliveryHealth> for Delivery {
    type Result = MessageResult<GetDeliveryHealth>;

    fn handle(&mut self, _: GetDeliveryHealth, _: &mut Context<Self>) -> Self::Result {
        let mut channels: Vec<ChannelHealth> = self
            .stats
            .values()
            .filter(|s| self.config.channel(&s.name).is_some() || s.failed + s.given_up + s.sent > 0)
            .cloned()
            .map(|mut s| {
                s.pending = self.queues.get(&s.name).map_or(0, |q| q.rows.len());
                s
            })
            .collect();
        channels.sort_by(|a, b| a.name.cmp(&b.name));
        MessageResult(DeliveryHealth {
            pending: self.queues.values().map(|q| q.rows.len()).sum(),
            failed: channels.iter().map(|c| c.failed).sum(),
            given_up: channels.iter().map(|c| c.given_up).sum(),
            channels,
        })
    }
}

/// Whether this node is the leader (several nodes on one database: only the leader sends).
/// `Lead(false)`: the queues are dropped (the next leader loads what waits from the shared
/// outbox); a send in flight finishes and its outcome is recorded, and nothing more is tried.
/// `Lead(true)`: sending resumes with what the store hands over.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Lead(pub bool);

impl Handler<Lead> for Delivery {
    type Result = ();

    fn handle(&mut self, Lead(leader): Lead, _: &mut Context<Self>) {
        self.standby = !leader;
        if !leader {
            for queue in self.queues.values_mut() {
                let keep = usize::from(queue.in_flight && !queue.rows.is_empty());
                queue.rows.truncate(keep);
            }
            self.abandoned.clear();
        }
    }
}

/// Stop sending: no new attempt starts; resolves once the ones in flight have finished (and
/// their outcome is with the store), or after [`STOP_GRACE`].
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopDelivery;

impl Handler<StopDelivery> for Delivery {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: StopDelivery, _: &mut Context<Self>) -> Self::Result {
        self.stopping = true;
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.queues.values().any(|q| q.in_flight) {
            self.idle.push(done);
        } else {
            let _ = done.send(());
        }
        Box::pin(async move {
            if actix_rt::time::timeout(STOP_GRACE, wait).await.is_err() {
                log::warn!("shutdown: alert messages still being sent; they will be sent again after the restart");
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::ChannelKind;

    #[test]
    fn retries_back_off_from_5s_to_5min_or_as_the_receiver_asks() {
        let waits: Vec<u64> = (1..=9).map(|n| retry_wait(n, None).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(retry_wait(1, Some(Duration::from_secs(30))), Duration::from_secs(30));
        assert_eq!(retry_wait(3, Some(Duration::ZERO)), Duration::from_secs(1));
        assert_eq!(retry_wait(1, Some(Duration::from_secs(86_400))), RETRY_AFTER_MAX);
    }

    #[test]
    fn a_channel_sends_at_most_its_limit_in_any_minute() {
        let now = Instant::now();
        let sent: VecDeque<Instant> = (0..20).map(|i| now + Duration::from_secs(i)).collect();
        assert_eq!(rate_free_at(&sent, Some(20)), Some(now + Duration::from_secs(60)));
        assert_eq!(rate_free_at(&sent, Some(21)), None);
        assert_eq!(rate_free_at(&sent, None), None);
        // The limits of the receivers that have one.
        let url = crate::secret::Secret::new("https://x.test/");
        let per_minute = |kind: ChannelKind| kind.per_minute();
        assert_eq!(per_minute(ChannelKind::Dingtalk { url: url.clone(), secret: None }), Some(20));
        assert_eq!(per_minute(ChannelKind::Wecom { url: url.clone() }), Some(20));
        assert_eq!(per_minute(ChannelKind::Discord { url: url.clone() }), Some(30));
        assert_eq!(per_minute(ChannelKind::Webhook { url, secret: None }), None);
    }
}
