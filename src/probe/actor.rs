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
use super::request;
use super::schedule::Grid;
use crate::config::{Monitor, SharedRedactor};
use crate::domain::Status;
use crate::metrics::Metrics;
use crate::store::{Inbox, ProbeResult};

/// How long a starting probe waits for the store to say what today's probes cost.
const SPENT_TIMEOUT: Duration = Duration::from_secs(5);

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
    fn add(&mut self, timestamp: i64, nanos: u64) {
        let day = timestamp.div_euclid(DAY_SECS);
        if day != self.day {
            *self = Spent { day, nanos: 0 };
        }
        self.nanos = self.nanos.saturating_add(nanos);
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
    let hour_after = last_start_ms.unwrap_or(now_ms).saturating_add(OVER_BUDGET_EVERY_MS);
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
        }
    }

    /// Counts a probe's cost toward its day, and says so once the day's budget is spent.
    fn spend(&mut self, monitor: &Monitor, timestamp: i64, nanos: u64) {
        let Some(budget) = monitor.daily_budget_usd else {
            self.spent.add(timestamp, nanos);
            return;
        };
        let before = self.spent;
        self.spent.add(timestamp, nanos);
        let now_ms = timestamp.saturating_mul(1_000);
        if self.spent.over(budget, now_ms) && !(before.day == self.spent.day && before.over(budget, now_ms)) {
            log::warn!(
                "{}: daily budget of {budget} USD spent ({:.6} USD since 00:00 UTC): probing hourly until 00:00 UTC",
                monitor.key,
                self.spent.nanos as f64 / 1e9
            );
        }
    }

    /// Sets the timer for the next slot of the grid (waiting on the monotonic clock).
    fn schedule(&mut self, ctx: &mut Context<Self>) {
        let now = self.clock.now_ms();
        let over_budget = self
            .monitor
            .daily_budget_usd
            .filter(|budget| self.spent.over(*budget, now))
            .map(|_| over_budget_not_before(self.last_start_ms, now));
        let slot = match (self.not_before.take(), over_budget) {
            (None, None) => self.grid.next(self.last_slot, now),
            (a, b) => self.grid.first_from(a.max(b).unwrap_or(now).max(now)),
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
        let counted = InFlight::new(&self.metrics);
        let now_ms = self.clock.now_ms();
        self.last_slot = Some(slot);
        self.last_start_ms = Some(now_ms);
        let generation = self.generation;
        let monitor = Rc::clone(&self.monitor);
        let timestamp = now_ms.div_euclid(1_000);
        let challenge = monitor.challenge.then(Challenge::random);
        let prepared = request::Prepared::new(&monitor, challenge.as_ref());
        let probe = async move {
            let probed = request::execute(&prepared).await;
            drop(counted);
            (probed, monitor)
        };
        ctx.spawn(probe.into_actor(self).map(move |(probed, monitor), act, ctx| {
            act.in_flight = false;
            if generation == act.generation {
                act.record(&monitor, timestamp, &probed, challenge.as_ref());
            } else {
                log::debug!("{}: result of a probe with replaced settings discarded", monitor.key);
            }
            if act.draining {
                for waiter in act.drained.drain(..) {
                    let _ = waiter.send(());
                }
                ctx.stop();
                return;
            }
            if act.timer.is_none() {
                act.schedule(ctx);
            }
        }));
    }

    fn record(&mut self, monitor: &Monitor, timestamp: i64, probed: &request::Probed, challenge: Option<&Challenge>) {
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
            redactor: Some(&monitor.redactor),
        };
        let verdict = classify::classify(outcome, answer.as_ref(), &checks);
        let mut measured = super::measure::metrics(outcome, answer.as_ref());
        measured.connect_ms = probed.connect.map(|d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX));
        // The reported model is served and stored: refused unless it is shaped like a model
        // name, and redacted like everything else from the upstream.
        measured.model =
            measured.model.and_then(|m| crate::config::is_model_name(&m).then(|| monitor.redactor.redact(&m)));
        measured.cost_nanos = answer
            .as_ref()
            .and_then(|a| a.usage())
            .zip(monitor.price)
            .map(|((usage, counting), price)| super::cost::cost_nanos(&usage, counting, &price));
        if let Some(cost) = measured.cost_nanos {
            self.metrics.cost(&monitor.key, cost);
            self.spend(monitor, timestamp, cost);
        }
        let detail = verdict.detail.as_deref().map(|d| monitor.redactor.excerpt(d, classify::MAX_DETAIL_BYTES));
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
        let latency_ms = u32::try_from(outcome.latency().as_millis()).unwrap_or(u32::MAX);
        self.metrics.probe(&monitor.key, verdict.status, verdict.reason, latency_ms, measured.ttft_ms, timestamp);
        self.store.send(ProbeResult {
            key: monitor.key.clone(),
            timestamp,
            status: verdict.status,
            latency_ms: u32::try_from(outcome.latency().as_millis()).unwrap_or(u32::MAX),
            reason: verdict.reason,
            http_code: outcome.http_code(),
            detail,
            measured,
        });
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
        if self.monitor.price.is_none() && self.monitor.daily_budget_usd.is_none() {
            self.schedule(ctx);
            return;
        }
        // What today's stored probes cost (a restart keeps the day's spending), before the
        // first probe.
        let now = self.clock.now_ms().div_euclid(1_000);
        let today = now - now.rem_euclid(DAY_SECS);
        let (store, key) = (self.store.clone(), self.monitor.key.clone());
        let ask = async move { tokio::time::timeout(SPENT_TIMEOUT, store.spent_since(key, today)).await };
        ctx.wait(ask.into_actor(self).map(move |spent, act, ctx| {
            match spent {
                Ok(Ok(nanos)) => act.spent.add(today, nanos),
                _ => log::warn!("{}: today's spending not read from the store; counted from 0", act.monitor.key),
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
        let interval_changed = monitor.interval != self.monitor.interval;
        let budget_changed = monitor.daily_budget_usd != self.monitor.daily_budget_usd;
        self.monitor = Rc::new(monitor);
        self.generation += 1;
        if self.draining {
            return;
        }
        if !interval_changed {
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
        self.grid = Grid::new(self.monitor.key.normalized(), self.monitor.interval);
        self.last_slot = None;
        let interval_ms = i64::try_from(self.monitor.interval.as_millis()).unwrap_or(i64::MAX);
        self.not_before = Some(self.last_start_ms.map_or(0, |t| t.saturating_add(interval_ms)));
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
