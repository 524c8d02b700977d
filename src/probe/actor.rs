//! The ProbeActor: one per monitor. Fires on its own fixed grid, never has two probes in
//! flight, classifies each outcome and hands the result to the store.

use std::rc::Rc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use tokio::sync::oneshot;

use super::classify::{self, Checks, Status};
use super::{request, schedule};
use crate::config::Monitor;
use crate::store::ProbeResult;

pub struct ProbeActor {
    monitor: Rc<Monitor>,
    store: Recipient<ProbeResult>,
    client: Option<awc::Client>,
    /// Slot 0 is due here; slot n at `start + n * interval`.
    start: Instant,
    timer: Option<SpawnHandle>,
    in_flight: bool,
    draining: bool,
    drained: Vec<oneshot::Sender<()>>,
    last_status: Option<Status>,
}

impl ProbeActor {
    /// `start` is when the first probe is due (the daemon's start plus this monitor's jitter).
    pub fn new(monitor: Monitor, store: Recipient<ProbeResult>, start: Instant) -> Self {
        ProbeActor {
            monitor: Rc::new(monitor),
            store,
            client: None,
            start,
            timer: None,
            in_flight: false,
            draining: false,
            drained: Vec::new(),
            last_status: None,
        }
    }

    fn schedule(&mut self, slot: u64, ctx: &mut Context<Self>) {
        let due_at = self.start + schedule::due(slot, self.monitor.interval);
        let wait = due_at.saturating_duration_since(Instant::now());
        self.timer = Some(ctx.run_later(wait, move |act, ctx| act.fire(slot, ctx)));
    }

    fn fire(&mut self, slot: u64, ctx: &mut Context<Self>) {
        self.timer = None;
        if self.draining {
            return;
        }
        self.in_flight = true;
        let monitor = Rc::clone(&self.monitor);
        let client = self.client.clone().unwrap_or_else(|| request::client(monitor.timeout));
        let timestamp = unix_now();
        let probe = async move {
            let outcome = request::execute(&client, &monitor).await;
            (outcome, monitor)
        };
        ctx.spawn(probe.into_actor(self).map(move |(outcome, monitor), act, ctx| {
            act.in_flight = false;
            act.record(&monitor, timestamp, &outcome);
            if act.draining {
                for waiter in act.drained.drain(..) {
                    let _ = waiter.send(());
                }
                ctx.stop();
                return;
            }
            let next = schedule::next_slot(slot, act.start.elapsed(), monitor.interval);
            act.schedule(next, ctx);
        }));
    }

    fn record(&mut self, monitor: &Monitor, timestamp: i64, outcome: &classify::Outcome) {
        let verdict = classify::classify(
            outcome,
            &Checks {
                slow_latency: monitor.slow_latency,
                timeout: monitor.timeout,
                success_contains: monitor.success_contains.as_deref(),
            },
        );
        let detail = verdict
            .detail
            .as_deref()
            .map(|d| classify::redact(d, &monitor.secrets()));
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
        self.store.do_send(ProbeResult {
            key: monitor.key.clone(),
            timestamp,
            status: verdict.status,
            latency_ms: u32::try_from(outcome.latency().as_millis()).unwrap_or(u32::MAX),
            reason: verdict.reason,
            http_code: outcome.http_code(),
            detail,
        });
    }
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Actor for ProbeActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.client = Some(request::client(self.monitor.timeout));
        self.schedule(0, ctx);
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
