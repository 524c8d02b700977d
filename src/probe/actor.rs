//! The ProbeActor: one per monitor. Fires on its own grid of wall-clock times (the same on
//! every start), never has two probes in flight, classifies each outcome and hands the result
//! to the store.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::SharedClock;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::challenge::Challenge;
use super::classify::{self, Checks};
use super::integrity;
use super::request;
use super::schedule::Grid;
use crate::config::{Monitor, SharedRedactor};
use crate::domain::{Reason, Status};
use crate::metrics::Metrics;
use crate::store::{Inbox, ProbeResult};

/// How long a starting probe waits for the store to say what its stored history holds.
const STORED_TIMEOUT: Duration = Duration::from_secs(5);

pub struct ProbeActor {
    monitor: Rc<Monitor>,
    store: Inbox,
    metrics: Arc<Metrics>,
    clock: SharedClock,
    grid: Grid,
    timer: Option<SpawnHandle>,
    /// The slot of the last probe, and when it started (wall-clock ms).
    last_slot: Option<i64>,
    last_start_ms: Option<i64>,
    /// After a new interval: the next probe is not before this (wall-clock ms).
    not_before: Option<i64>,
    /// Bumped by every settings change: a probe started under older settings is not stored.
    generation: u64,
    in_flight: bool,
    draining: bool,
    drained: Vec<oneshot::Sender<()>>,
    last_status: Option<Status>,
    /// What this monitor's probes cost on one UTC day, for `daily_budget_usd`.
    spent: Spent,
    /// The latest stored result is red and the monitor has an `interval_when_failing`: its
    /// grid is that interval's.
    failing: bool,
    /// The day (since the epoch) the spent budget was last logged.
    budget_warned: Option<i64>,
    /// A 429's `Retry-After`: no probe before this (wall-clock ms).
    retry_until: Option<i64>,
    /// The prompt size this monitor's request has, learned from its first probes: of its
    /// usual probes, and of its stream checks.
    prompt: [integrity::PromptBaseline; 2],
    /// Slots fired since the start (every `stream_check_every`-th is a stream check).
    fired: u64,
}

/// What the probes of one UTC day cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Spent {
    /// Days since the epoch.
    day: i64,
    nanos: u64,
}

const DAY_SECS: i64 = 86_400;
/// Once the day's budget is spent: one probe an hour.
const OVER_BUDGET_EVERY_MS: i64 = 3_600_000;

impl Spent {
    /// Counts a cost on the day of `timestamp`: a new day starts from 0; a day before the
    /// one counted (the clock stepped back over midnight) is not counted, nor forgets it.
    fn add(&mut self, timestamp: i64, nanos: u64) {
        let day = timestamp.div_euclid(DAY_SECS);
        if day > self.day {
            *self = Spent { day, nanos: 0 };
        }
        if day == self.day {
            self.nanos = self.nanos.saturating_add(nanos);
        }
    }

    /// Spent at least `budget_usd` on the day of `now_ms`.
    fn over(&self, budget_usd: f64, now_ms: i64) -> bool {
        self.day == now_ms.div_euclid(DAY_SECS * 1_000) && self.nanos as f64 >= budget_usd * 1e9
    }
}

/// With the day's budget spent at `now_ms`: the next probe waits an hour after the last one
/// started, or until the next UTC day, whichever comes first.
fn over_budget_not_before(last_start_ms: Option<i64>, now_ms: i64) -> i64 {
    let next_day_ms = (now_ms.div_euclid(DAY_SECS * 1_000) + 1) * DAY_SECS * 1_000;
    // (Never more than an hour from now: a clock stepped back does not stretch it.)
    let hour_after = last_start_ms.unwrap_or(now_ms).min(now_ms).saturating_add(OVER_BUDGET_EVERY_MS);
    hour_after.min(next_day_ms)
}

impl ProbeActor {
    pub fn new(monitor: Monitor, store: Inbox, clock: SharedClock, metrics: Arc<Metrics>) -> Self {
        ProbeActor {
            metrics,
            grid: Grid::new(monitor.key.normalized(), monitor.interval),
            monitor: Rc::new(monitor),
            store,
            clock,
            timer: None,
            last_slot: None,
            last_start_ms: None,
            not_before: None,
            generation: 0,
            in_flight: false,
            draining: false,
            drained: Vec::new(),
            last_status: None,
            spent: Spent::default(),
            failing: false,
            budget_warned: None,
            retry_until: None,
            prompt: Default::default(),
            fired: 0,
        }
    }

    /// Sets the timer for the next slot of the grid (waiting on the monotonic clock).
    fn schedule(&mut self, ctx: &mut Context<Self>) {
        let now = self.clock.now_ms();
        let budget = self.monitor.daily_budget_usd.filter(|budget| self.spent.over(*budget, now));
        if let Some(budget) = budget.filter(|_| self.budget_warned != Some(self.spent.day)) {
            // Once a day, whether the budget was spent by a probe, found spent at a start or
            // lowered below what the day spent.
            self.budget_warned = Some(self.spent.day);
            log::warn!(
                "{}: daily budget of {budget} USD spent ({:.6} USD since 00:00 UTC): probing hourly until 00:00 UTC",
                self.monitor.key,
                self.spent.nanos as f64 / 1e9
            );
        }
        let over_budget = budget.map(|_| over_budget_not_before(self.last_start_ms, now));
        // (These hold until a probe fires: a reschedule before then keeps them.)
        let slot = match self.not_before.max(over_budget).max(self.retry_until) {
            None => self.grid.next(self.last_slot, now),
            Some(at) => self.grid.first_from(at.max(now)),
        };
        let wait = Duration::from_millis(u64::try_from(self.grid.due(slot) - now).unwrap_or(0));
        self.timer = Some(ctx.run_later(wait, move |act, ctx| act.fire(slot, ctx)));
    }

    fn fire(&mut self, slot: i64, ctx: &mut Context<Self>) {
        self.timer = None;
        if self.draining {
            return;
        }
        self.in_flight = true;
        self.not_before = None;
        self.retry_until = None;
        let now_ms = self.clock.now_ms();
        self.last_slot = Some(slot);
        self.last_start_ms = Some(now_ms);
        self.fired = self.fired.wrapping_add(1);
        let check = self.monitor.stream_check_every.is_some_and(|n| self.fired % u64::from(n.max(1)) == 0);
        let attempt = Attempt {
            check,
            generation: self.generation,
            timestamp: now_ms.div_euclid(1_000),
            tries_left: self.monitor.confirm,
            first: None,
            cost_nanos: None,
        };
        self.attempt(attempt, ctx);
    }

    /// Sends one try of the slot's probe; a red one is tried again at once while `confirm`
    /// allows, and the last try is stored.
    fn attempt(&mut self, attempt: Attempt, ctx: &mut Context<Self>) {
        let counted = InFlight::new(&self.metrics);
        let monitor = Rc::clone(&self.monitor);
        let challenge = monitor.challenge.then(Challenge::random);
        let prepared = match &challenge {
            Some(challenge) if attempt.check => request::Prepared::stream_check(&monitor, challenge),
            _ => request::Prepared::new(&monitor, challenge.as_ref()),
        };
        let probe = async move {
            let probed = request::execute(&prepared).await;
            drop(counted);
            (probed, monitor)
        };
        ctx.spawn(probe.into_actor(self).map(move |(probed, monitor), act, ctx| {
            let mut judged = judge(&monitor, &probed, challenge.as_ref(), attempt.check);
            // Every try was paid for: a retried one, and one whose result is discarded too.
            if let Some(cost) = judged.measured.cost_nanos {
                act.metrics.cost(&monitor.key, cost);
                act.spent.add(attempt.timestamp, cost);
            }
            if attempt.generation != act.generation {
                log::debug!("{}: result of a probe with replaced settings discarded", monitor.key);
                act.done(ctx);
                return;
            }
            act.watch_prompt(&monitor, &mut judged, attempt.check);
            let cost_nanos = match (attempt.cost_nanos, judged.measured.cost_nanos) {
                (None, None) => None,
                (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
            };
            if judged.verdict.status == Status::Red && attempt.tries_left > 0 && !act.draining {
                log::debug!("{}: red ({}), probing again to confirm", monitor.key, judged.verdict.reason.as_str());
                let first = attempt.first.or_else(|| Some((judged.verdict.reason, judged.detail.clone())));
                let again = Attempt { tries_left: attempt.tries_left - 1, first, cost_nanos, ..attempt };
                act.attempt(again, ctx);
                return;
            }
            judged.measured.cost_nanos = cost_nanos;
            act.record(&monitor, &attempt, judged, probed.retry_after);
            act.done(ctx);
        }));
    }

    /// Learns the monitor's prompt size, and flags `prompt_inflated` when it grew (a result
    /// that is red already stays as it is).
    fn watch_prompt(&mut self, monitor: &Monitor, judged: &mut Judged, check: bool) {
        let Some(prompt) = judged.measured.prompt_tokens else { return };
        // A stream check's prompt is longer: it has its own baseline.
        let flagged = self.prompt[usize::from(check)].observe(prompt);
        if let Some(detail) = flagged.filter(|_| judged.verdict.status != Status::Red) {
            if matches!(judged.verdict.reason, Reason::Ok | Reason::Slow) {
                judged.detail = Some(monitor.redactor.excerpt(&detail, classify::MAX_DETAIL_BYTES));
                judged.verdict = classify::Verdict {
                    status: monitor.integrity_status,
                    reason: Reason::PromptInflated,
                    detail: Some(detail),
                };
            }
        }
    }

    /// The slot's probe is over (stored or not): the next is scheduled, or the drain ends.
    fn done(&mut self, ctx: &mut Context<Self>) {
        self.in_flight = false;
        if self.draining {
            for waiter in self.drained.drain(..) {
                let _ = waiter.send(());
            }
            ctx.stop();
            return;
        }
        if self.timer.is_none() {
            self.schedule(ctx);
        }
    }

    /// The interval in force: `interval_when_failing` while the latest stored result is red.
    fn active_interval(&self) -> Duration {
        match self.monitor.interval_when_failing {
            Some(interval) if self.failing => interval,
            _ => self.monitor.interval,
        }
    }

    /// Moves to the grid of the interval in force, from one such interval after the last probe.
    fn regrid(&mut self) {
        let interval = self.active_interval();
        self.grid = Grid::new(self.monitor.key.normalized(), interval);
        self.last_slot = None;
        let interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
        let next = self.last_start_ms.map_or(0, |t| t.saturating_add(interval_ms));
        self.not_before = Some(self.not_before.map_or(next, |at| at.max(next)));
    }

    fn record(&mut self, monitor: &Monitor, attempt: &Attempt, judged: Judged, retry_after: Option<Duration>) {
        let Judged { verdict, mut detail, measured, latency_ms, http_code } = judged;
        // A red that a re-probe did not confirm: the stored result says what the first try saw.
        if let Some((reason, first_detail)) = attempt.first.as_ref().filter(|_| verdict.status != Status::Red) {
            let first = match first_detail {
                Some(d) => format!("confirmed after: {} ({d})", reason.as_str()),
                None => format!("confirmed after: {}", reason.as_str()),
            };
            detail = Some(monitor.redactor.excerpt(&first, classify::MAX_DETAIL_BYTES));
        }
        let previous = self.last_status.replace(verdict.status);
        let what = match &detail {
            Some(d) => format!("{} ({d})", verdict.reason.as_str()),
            None => verdict.reason.as_str().to_string(),
        };
        match previous {
            None => log::info!("{}: first probe {}: {what}", monitor.key, verdict.status.name()),
            Some(p) if p != verdict.status => {
                let line = format!("{}: {} -> {}: {what}", monitor.key, p.name(), verdict.status.name());
                if verdict.status == Status::Red {
                    log::warn!("{line}");
                } else {
                    log::info!("{line}");
                }
            }
            Some(_) => log::debug!("{}: {}: {what}", monitor.key, verdict.status.name()),
        }
        let timestamp = attempt.timestamp;
        self.metrics.probe(&monitor.key, verdict.status, verdict.reason, latency_ms, measured.ttft_ms, timestamp);
        self.store.send(ProbeResult {
            key: monitor.key.clone(),
            timestamp,
            status: verdict.status,
            latency_ms,
            reason: verdict.reason,
            http_code,
            detail,
            measured,
        });
        // `interval_when_failing` from a red result until the next result that is not red.
        let failing = verdict.status == Status::Red && monitor.interval_when_failing.is_some();
        if failing != self.failing {
            self.failing = failing;
            self.regrid();
        }
        // A 429's Retry-After: no probe before it (the slots in between are skipped, and
        // nothing is stored for them).
        if let Some(wait) = retry_after {
            let until = self.clock.now_ms().saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
            log::info!("{}: rate limited; the upstream asks for no probe for {} s", monitor.key, wait.as_secs());
            self.retry_until = Some(until);
        }
    }
}

/// One slot's probe, over its tries.
#[derive(Debug, Clone)]
struct Attempt {
    /// A stream check (`stream_check_every`): the challenge asks to count to 40 too.
    check: bool,
    generation: u64,
    /// When the slot's first try started (unix seconds): the stored result's time.
    timestamp: i64,
    /// Re-probes still allowed for a red result.
    tries_left: u32,
    /// The first try's reason and detail, when it was red.
    first: Option<(Reason, Option<String>)>,
    /// What the tries so far cost, nano-USD.
    cost_nanos: Option<u64>,
}

/// One try, judged.
struct Judged {
    verdict: classify::Verdict,
    /// Redacted and cut.
    detail: Option<String>,
    measured: super::measure::Measurements,
    latency_ms: u32,
    http_code: u16,
}

/// Classifies a try's outcome and measures it: what would be stored of it.
fn judge(monitor: &Monitor, probed: &request::Probed, challenge: Option<&Challenge>, check: bool) -> Judged {
    let outcome = &probed.outcome;
    let answer = outcome.answer();
    let checks = Checks {
        slow_latency: monitor.slow_latency,
        slow_ttft: monitor.slow_ttft,
        timeout: monitor.timeout,
        success_contains: monitor.success_contains.as_deref(),
        llm: monitor.llm,
        expect_model: monitor.expect_model.as_deref(),
        require_model: monitor.require_model,
        challenge,
        counted: check,
        redactor: Some(&monitor.redactor),
    };
    let mut verdict = classify::classify(outcome, answer.as_ref(), &checks);
    // Billed beyond what the request allows or the reply holds: `usage_inflated`. A stream
    // check's request allowed more (its limit was raised).
    let sent_limit = match monitor.max_tokens {
        Some(limit) if check => Some(limit.max(request::STREAM_CHECK_MAX_TOKENS)),
        limit => limit,
    };
    if let Some(answer) = answer.as_ref().filter(|_| verdict.status != Status::Red) {
        let whole = answer.complete && answer.text.len() < super::sse::MAX_TEXT_BYTES;
        let inflated = answer.completion_tokens.and_then(|completion| {
            integrity::usage_inflated(completion, &answer.text, whole, answer.reasoned, sent_limit)
        });
        if let Some(detail) = inflated {
            verdict = classify::Verdict {
                status: monitor.integrity_status,
                reason: Reason::UsageInflated,
                detail: Some(detail),
            };
        }
    }
    // A stream check whose text all came at once was generated before it was sent.
    if let Some(answer) = answer.as_ref().filter(|_| check && matches!(verdict.reason, Reason::Ok | Reason::Slow)) {
        if let Some(detail) = integrity::buffered(answer) {
            verdict =
                classify::Verdict { status: Status::Yellow, reason: Reason::BufferedStream, detail: Some(detail) };
        }
    }
    let mut measured = super::measure::metrics(outcome, answer.as_ref());
    measured.connect_ms = probed.connect.map(|d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX));
    // The reported model is served and stored: refused unless it is shaped like a model
    // name, and redacted like everything else from the upstream.
    measured.model = measured.model.and_then(|m| crate::config::is_model_name(&m).then(|| monitor.redactor.redact(&m)));
    measured.cost_nanos = answer
        .as_ref()
        .and_then(|a| a.usage())
        .filter(|(usage, _)| usage.plausible())
        .zip(monitor.price)
        .map(|((usage, counting), price)| super::cost::cost_nanos(&usage, counting, &price));
    let detail = verdict.detail.as_deref().map(|d| monitor.redactor.excerpt(d, classify::MAX_DETAIL_BYTES));
    Judged {
        latency_ms: u32::try_from(outcome.latency().as_millis()).unwrap_or(u32::MAX),
        http_code: outcome.http_code(),
        verdict,
        detail,
        measured,
    }
}

/// Counts a probe in `llm_monitor_probes_in_flight` for as long as it lives, including when its
/// actor stops with it unanswered.
struct InFlight(Arc<Metrics>);

impl InFlight {
    fn new(metrics: &Arc<Metrics>) -> Self {
        metrics.probes_in_flight.inc();
        InFlight(metrics.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.probes_in_flight.dec();
    }
}

impl Actor for ProbeActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let m = &self.monitor;
        if m.price.is_none() && m.daily_budget_usd.is_none() && m.interval_when_failing.is_none() {
            self.schedule(ctx);
            return;
        }
        // Before the first probe: what today's stored probes cost (a restart keeps the day's
        // spending) and whether the latest stored result is red (`interval_when_failing`).
        let now = self.clock.now_ms().div_euclid(1_000);
        let today = now - now.rem_euclid(DAY_SECS);
        let (store, key) = (self.store.clone(), self.monitor.key.clone());
        let ask = async move { tokio::time::timeout(STORED_TIMEOUT, store.stored_state(key, today)).await };
        ctx.wait(ask.into_actor(self).map(move |stored, act, ctx| {
            match stored {
                Ok(Ok(stored)) => {
                    act.spent.add(today, stored.spent_nanos);
                    if stored.latest == Some(Status::Red) && act.monitor.interval_when_failing.is_some() {
                        act.failing = true;
                        act.grid = Grid::new(act.monitor.key.normalized(), act.active_interval());
                    }
                }
                _ => log::warn!("{}: the stored history did not answer; today's cost counted from 0", act.monitor.key),
            }
            act.schedule(ctx);
        }));
    }
}

/// New settings for this monitor (same key), used from the next probe on. A probe in flight
/// under the old settings is not stored. The phase is kept; a new interval counts from the last
/// probe (to the first slot of its own grid from then), so a shorter one applies at once and a
/// longer one never triggers an extra probe.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UpdateMonitor(pub Monitor);

impl Handler<UpdateMonitor> for ProbeActor {
    type Result = ();

    fn handle(&mut self, UpdateMonitor(monitor): UpdateMonitor, ctx: &mut Context<Self>) {
        let before = self.active_interval();
        let budget_changed = monitor.daily_budget_usd != self.monitor.daily_budget_usd;
        // Another request has another prompt: learnt again.
        let old = &self.monitor;
        if monitor.url != old.url
            || monitor.body != old.body
            || monitor.headers != old.headers
            || monitor.model != old.model
        {
            self.prompt = Default::default();
        }
        self.monitor = Rc::new(monitor);
        self.generation += 1;
        self.failing &= self.monitor.interval_when_failing.is_some();
        if self.draining {
            return;
        }
        if self.active_interval() == before {
            // A new budget may end (or start) the hourly probing at once: the next slot again.
            if budget_changed && !self.in_flight {
                if let Some(timer) = self.timer.take() {
                    ctx.cancel_future(timer);
                }
                self.schedule(ctx);
            }
            return;
        }
        // The new interval's grid, from one new interval after the last probe.
        self.not_before = None;
        self.regrid();
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
        }
        // With a probe in flight, its completion schedules the next slot.
        if !self.in_flight {
            self.schedule(ctx);
        }
    }
}

/// The config-wide redactor changed (a monitor was added, removed or given another key):
/// applied from the next probe. It never changes when or how the monitor is probed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UpdateRedactor(pub SharedRedactor);

impl Handler<UpdateRedactor> for ProbeActor {
    type Result = ();

    fn handle(&mut self, UpdateRedactor(redactor): UpdateRedactor, _: &mut Context<Self>) {
        if !Arc::ptr_eq(&redactor.0, &self.monitor.redactor.0) {
            self.monitor = Rc::new(Monitor { redactor, ..(*self.monitor).clone() });
        }
    }
}

/// The monitor was removed: stop at once. A probe in flight is abandoned and not stored.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Retire;

impl Handler<Retire> for ProbeActor {
    type Result = ();

    fn handle(&mut self, _: Retire, ctx: &mut Context<Self>) {
        self.generation += 1;
        ctx.stop();
    }
}

/// Stop scheduling; resolves once the probe in flight (if any) has been handed to the store.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

impl Handler<Drain> for ProbeActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) -> Self::Result {
        self.draining = true;
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
        }
        if !self.in_flight {
            ctx.stop();
            return Box::pin(async {});
        }
        let (done, wait) = oneshot::channel();
        self.drained.push(done);
        Box::pin(async move {
            let _ = wait.await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-12-03 00:00:00 UTC
    const MIDNIGHT: i64 = 1_796_256_000;

    #[test]
    fn a_days_spending_starts_again_at_midnight_utc() {
        let mut spent = Spent::default();
        spent.add(MIDNIGHT + 10, 600_000_000);
        assert!(!spent.over(1.0, (MIDNIGHT + 20) * 1_000));
        spent.add(MIDNIGHT + 70, 400_000_000);
        assert!(spent.over(1.0, (MIDNIGHT + 80) * 1_000), "exactly the budget is spent");
        assert!(!spent.over(1.5, (MIDNIGHT + 80) * 1_000));
        // The next UTC day: nothing spent yet, whatever the day before cost.
        assert!(!spent.over(1.0, (MIDNIGHT + 86_400) * 1_000));
        spent.add(MIDNIGHT + 86_400 + 5, 1);
        assert_eq!(spent, Spent { day: MIDNIGHT / 86_400 + 1, nanos: 1 });
    }

    #[test]
    fn over_budget_probes_wait_an_hour_or_until_the_next_day() {
        let now = (MIDNIGHT + 3_600) * 1_000;
        assert_eq!(over_budget_not_before(Some(now - 60_000), now), now - 60_000 + 3_600_000);
        assert_eq!(over_budget_not_before(None, now), now + 3_600_000);
        // 23:30: the next day comes first.
        let late = (MIDNIGHT + 86_400 - 1_800) * 1_000;
        assert_eq!(over_budget_not_before(Some(late), late), (MIDNIGHT + 86_400) * 1_000);
    }
}
