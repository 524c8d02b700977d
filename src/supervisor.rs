//! The Supervisor: owns the ConfigActor and one ProbeActor per monitor, starts them spread
//! over their first interval, and drains them on shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use actix_rt::signal::unix::Signal;
use futures_util::future::join_all;

use crate::config::watch::{ConfigActor, GetReloadStatus, ReloadStatus};
use crate::config::{diff, Config, Monitor, MonitorKey};
use crate::metrics::Metrics;
use crate::probe::{schedule, Drain, ProbeActor, Retire, UpdateMonitor};
use crate::store::{RegisterMonitors, StoreActor};

pub struct Supervisor {
    config: Config,
    /// SIGHUP, registered before the daemon says it is ready; handed to the ConfigActor.
    hangups: Option<Signal>,
    metrics: Arc<Metrics>,
    store: Addr<StoreActor>,
    config_actor: Option<Addr<ConfigActor>>,
    probes: HashMap<MonitorKey, Addr<ProbeActor>>,
    stopping: bool,
}

impl Supervisor {
    pub fn new(config: Config, store: Addr<StoreActor>, hangups: Option<Signal>, metrics: Arc<Metrics>) -> Self {
        Supervisor { config, hangups, metrics, store, config_actor: None, probes: HashMap::new(), stopping: false }
    }

    /// Starts a monitor's actor, its first probe spread over its first interval.
    fn start_probe(&mut self, monitor: &Monitor, now: Instant) {
        let first_due = now + schedule::jitter(monitor.key.normalized(), monitor.interval);
        let actor =
            ProbeActor::new(monitor.clone(), self.store.clone().recipient(), first_due, self.metrics.clone()).start();
        self.probes.insert(monitor.key.clone(), actor);
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.config_actor = Some(
            ConfigActor::new(self.config.clone(), ctx.address(), self.hangups.take(), self.metrics.clone()).start(),
        );
        let now = Instant::now();
        for monitor in self.config.monitors.clone() {
            self.start_probe(&monitor, now);
        }
    }
}

/// How a reload changed the running monitors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplySummary {
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
}

/// A validated new configuration: apply the difference to the running monitors.
#[derive(Message)]
#[rtype(result = "Result<ApplySummary, String>")]
pub struct ApplyConfig(pub Config);

impl Handler<ApplyConfig> for Supervisor {
    type Result = AtomicResponse<Self, Result<ApplySummary, String>>;

    fn handle(&mut self, ApplyConfig(new): ApplyConfig, _: &mut Context<Self>) -> Self::Result {
        // New keys need their store ids before their first result arrives.
        let register = self.store.send(RegisterMonitors {
            keys: new.monitors.iter().map(|m| m.key.clone()).collect(),
            degraded_weight: new.degraded_weight,
            retention: new.retention,
        });
        AtomicResponse::new(Box::pin(register.into_actor(self).map(move |registered, act, _| {
            registered.map_err(|e| e.to_string())??;
            if act.stopping {
                return Err("shutting down".to_string());
            }
            let changes = diff(&act.config.monitors, &new.monitors);
            for key in &changes.removed {
                if let Some(actor) = act.probes.remove(key) {
                    actor.do_send(Retire);
                }
                act.metrics.forget(key);
                log::info!("{key}: removed");
            }
            for monitor in &changes.changed {
                // A key spelled in another case is the same monitor, but its metric labels
                // change: the old spelling's series go, or they would stay forever.
                let old_spelling = act.config.monitors.iter().find(|m| m.key == monitor.key).map(|m| &m.key);
                if let Some(old) = old_spelling.filter(|old| old.to_string() != monitor.key.to_string()) {
                    act.metrics.forget(old);
                }
                // Re-filed, in case the key is now spelled in another case.
                if let Some(actor) = act.probes.remove(&monitor.key) {
                    actor.do_send(UpdateMonitor(monitor.clone()));
                    act.probes.insert(monitor.key.clone(), actor);
                }
                log::info!("{}: settings changed, applied from its next probe", monitor.key);
            }
            let now = Instant::now();
            for monitor in &changes.added {
                act.start_probe(monitor, now);
                log::info!("{}: added", monitor.key);
            }
            act.config = new;
            Ok(ApplySummary {
                added: changes.added.len(),
                changed: changes.changed.len(),
                removed: changes.removed.len(),
            })
        })))
    }
}

/// What `/health` shows about the running configuration.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConfigState {
    pub path: String,
    pub monitors: usize,
    pub disabled: usize,
    pub last_reload: ReloadStatus,
}

#[derive(Message)]
#[rtype(result = "ConfigState")]
pub struct GetConfigState;

impl Handler<GetConfigState> for Supervisor {
    type Result = ResponseFuture<ConfigState>;

    fn handle(&mut self, _: GetConfigState, _: &mut Context<Self>) -> Self::Result {
        let config_actor = self.config_actor.clone();
        let path = self.config.path.display().to_string();
        let (monitors, disabled) = (self.config.monitors.len(), self.config.disabled);
        Box::pin(async move {
            let last_reload = match config_actor {
                Some(addr) => addr.send(GetReloadStatus).await.unwrap_or_default(),
                None => ReloadStatus::default(),
            };
            ConfigState { path, monitors, disabled, last_reload }
        })
    }
}

/// Stop every probe: none starts any more, the ones in flight finish (bounded by their
/// timeout) and hand their results to the store. Resolves when all have.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

impl Handler<Shutdown> for Supervisor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Shutdown, _: &mut Context<Self>) -> Self::Result {
        self.stopping = true;
        let probes: Vec<_> = self.probes.drain().collect();
        log::info!("shutdown: stopping {} probes, waiting for the ones in flight", probes.len());
        Box::pin(async move {
            join_all(probes.iter().map(|(_, addr)| addr.send(Drain))).await;
        })
    }
}
