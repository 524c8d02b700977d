//! The Supervisor: owns the ConfigActor and one ProbeActor per monitor, starts them spread
//! over their first interval, and drains them on shutdown.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use actix_rt::signal::unix::Signal;
use futures_util::future::join_all;

use crate::alert::delivery::{Delivery, Reconfigure};
use crate::clock::SharedClock;
use crate::config::watch::{ConfigActor, GetReloadStatus, ReloadStatus};
use crate::config::{diff, Config, Monitor, MonitorKey};
use crate::metrics::Metrics;
use crate::probe::{Drain, ProbeActor, Retire, UpdateMonitor, UpdateRedactor};
use crate::store::{ConfigureAlertsFor, Inbox, RegisterMonitors, StoreActor};

pub struct Supervisor {
    config: Config,
    clock: SharedClock,
    /// The threads the ProbeActors run on, one per core: probing is spread over all of them.
    probe_threads: Vec<Arbiter>,
    /// SIGHUP, registered before the daemon says it is ready; handed to the ConfigActor.
    hangups: Option<Signal>,
    metrics: Arc<Metrics>,
    store: Addr<StoreActor>,
    /// Where the ProbeActors leave their results.
    inbox: Inbox,
    config_actor: Option<Addr<ConfigActor>>,
    probes: HashMap<MonitorKey, Addr<ProbeActor>>,
    /// Sends alert messages; told of every new alert configuration.
    delivery: Option<Addr<Delivery>>,
    stopping: bool,
}

impl Supervisor {
    pub fn new(
        config: Config,
        store: Addr<StoreActor>,
        inbox: Inbox,
        hangups: Option<Signal>,
        metrics: Arc<Metrics>,
        clock: SharedClock,
    ) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 16);
        Supervisor {
            config,
            clock,
            probe_threads: (0..threads).map(|_| Arbiter::new()).collect(),
            hangups,
            metrics,
            store,
            inbox,
            config_actor: None,
            probes: HashMap::new(),
            delivery: None,
            stopping: false,
        }
    }

    /// Starts a monitor's actor on a probe thread (chosen by its key, so the same on every
    /// start); its first probe comes at its grid's next slot.
    fn start_probe(&mut self, monitor: &Monitor) {
        let thread = &self.probe_threads[thread_of(monitor.key.normalized(), self.probe_threads.len())];
        let (monitor_owned, store, clock, metrics) =
            (monitor.clone(), self.inbox.clone(), self.clock.clone(), self.metrics.clone());
        let actor = ProbeActor::start_in_arbiter(&thread.handle(), move |_| {
            ProbeActor::new(monitor_owned, store, clock, metrics)
        });
        self.probes.insert(monitor.key.clone(), actor);
    }
}

/// Which of `threads` probe threads a monitor runs on.
fn thread_of(key: &str, threads: usize) -> usize {
    let hash =
        key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3));
    (hash % threads.max(1) as u64) as usize
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        for thread in &self.probe_threads {
            thread.stop();
        }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.config_actor = Some(
            ConfigActor::new(self.config.clone(), ctx.address(), self.hangups.take(), self.metrics.clone()).start(),
        );
        for monitor in self.config.monitors.clone() {
            self.start_probe(&monitor);
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
    type Result = Result<ApplySummary, String>;

    fn handle(&mut self, ApplyConfig(new): ApplyConfig, _: &mut Context<Self>) -> Self::Result {
        if self.stopping {
            return Err("shutting down".to_string());
        }
        // The store lists the new monitors at once; it needs no database for that (a new
        // monitor gets its id with its first stored result), so a reload never waits for it.
        self.store.do_send(RegisterMonitors::of(&new));
        if new.monitors.len() > self.config.monitors.len() {
            if let Some(warning) = crate::limits::check_open_files(new.monitors.len()) {
                log::warn!("open files: {warning}");
            }
        }
        if new.alerts != self.config.alerts {
            // Diff-applied: the engine keeps every monitor's state; only settings change.
            let alerts = Arc::new(new.alerts.clone());
            self.store.do_send(ConfigureAlertsFor { config: alerts.clone(), delivery: None, lead: None });
            if let Some(delivery) = &self.delivery {
                delivery.do_send(Reconfigure(alerts));
            }
            log::info!("alerts: settings changed, applied from now on");
        }
        let changes = diff(&self.config.monitors, &new.monitors);
        for key in &changes.removed {
            if let Some(actor) = self.probes.remove(key) {
                actor.do_send(Retire);
            }
            self.metrics.forget(key);
            log::info!("{key}: removed");
        }
        for monitor in &changes.changed {
            // A key spelled in another case is the same monitor, but its metric labels
            // change: the old spelling's series go, or they would stay forever.
            let old_spelling = self.config.monitors.iter().find(|m| m.key == monitor.key).map(|m| &m.key);
            if let Some(old) = old_spelling.filter(|old| old.to_string() != monitor.key.to_string()) {
                self.metrics.forget(old);
            }
            // Re-filed, in case the key is now spelled in another case.
            if let Some(actor) = self.probes.remove(&monitor.key) {
                actor.do_send(UpdateMonitor(monitor.clone()));
                self.probes.insert(monitor.key.clone(), actor);
            }
            log::info!("{}: settings changed, applied from its next probe", monitor.key);
        }
        for monitor in &changes.added {
            self.start_probe(monitor);
            log::info!("{}: added", monitor.key);
        }
        // Every running probe redacts with the new config-wide redactor (changed and added
        // monitors carry it already).
        if let Some(redactor) = new.monitors.first().map(|m| m.redactor.clone()) {
            for (key, actor) in &self.probes {
                if !changes.added.iter().chain(&changes.changed).any(|m| &m.key == key) {
                    actor.do_send(UpdateRedactor(redactor.clone()));
                }
            }
        }
        self.config = new;
        Ok(ApplySummary { added: changes.added.len(), changed: changes.changed.len(), removed: changes.removed.len() })
    }
}

/// The delivery actor, to tell of new alert settings.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AttachDelivery(pub Addr<Delivery>);

impl Handler<AttachDelivery> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: AttachDelivery, _: &mut Context<Self>) {
        self.delivery = Some(msg.0);
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
        let (monitors, disabled) = (self.config.monitor_count(), self.config.disabled);
        Box::pin(async move {
            let last_reload = match config_actor {
                Some(addr) => match addr.send(GetReloadStatus).timeout(std::time::Duration::from_secs(1)).await {
                    Ok(status) => status,
                    Err(e) => {
                        log::warn!("health: the config actor did not answer: {e}");
                        ReloadStatus::default()
                    }
                },
                None => ReloadStatus::default(),
            };
            ConfigState { path, monitors, disabled, last_reload }
        })
    }
}

/// The status page's settings (`page:` and the monitors' `group:`), as last applied.
#[derive(Message)]
#[rtype(result = "crate::config::PageConfig")]
pub struct GetPage;

impl Handler<GetPage> for Supervisor {
    type Result = MessageResult<GetPage>;

    fn handle(&mut self, _: GetPage, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.config.page.clone())
    }
}

/// What the history endpoints (incidents, reports, exports, feeds) need of the config, as
/// last applied.
#[derive(Debug, Clone)]
pub struct Listing {
    /// The configured monitors in config order, each with its `failure_threshold`.
    pub monitors: Vec<(crate::domain::MonitorKey, u32)>,
    /// The threshold of monitors only other nodes probe.
    pub default_threshold: u32,
    pub node: String,
    pub quorum: crate::config::Quorum,
    pub degraded_weight: f64,
    pub page: crate::config::PageConfig,
    pub public_url: Option<String>,
    pub maintenance: Vec<crate::alert::Maintenance>,
    pub redactor: crate::secret::SharedRedactor,
    /// `retention`, seconds.
    pub retention_s: i64,
    /// The store is PostgreSQL (else SQLite).
    pub postgres: bool,
}

#[derive(Message)]
#[rtype(result = "Listing")]
pub struct GetListing;

impl Handler<GetListing> for Supervisor {
    type Result = MessageResult<GetListing>;

    fn handle(&mut self, _: GetListing, _: &mut Context<Self>) -> Self::Result {
        let config = &self.config;
        let alerts = &config.alerts;
        let threshold = |key: &crate::domain::MonitorKey| {
            alerts.monitors.get(key).map_or(alerts.failure_threshold, |m| m.failure_threshold)
        };
        MessageResult(Listing {
            // A monitor of several models: each model's series counts at the monitor's threshold.
            monitors: config.monitors.iter().map(|m| (m.key.clone(), threshold(&m.key.monitor()))).collect(),
            default_threshold: alerts.failure_threshold,
            node: config.node.clone(),
            quorum: config.quorum,
            degraded_weight: config.degraded_weight,
            page: config.page.clone(),
            public_url: alerts.public_url.clone(),
            maintenance: alerts.maintenance.clone(),
            redactor: alerts.redactor.clone(),
            retention_s: i64::try_from(config.retention.as_secs()).unwrap_or(i64::MAX),
            postgres: matches!(config.database, crate::config::Database::Postgres(_)),
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
        let drain = self.config.monitors.iter().map(|m| m.timeout).max().unwrap_or_default()
            + std::time::Duration::from_secs(5);
        let probes: Vec<_> = self.probes.drain().collect();
        log::info!("shutdown: stopping {} probes, waiting for the ones in flight", probes.len());
        Box::pin(async move {
            // Each probe finishes within its timeout; one that does not answer is named.
            join_all(probes.iter().map(|(key, addr)| async move {
                if let Err(e) = addr.send(Drain).timeout(drain).await {
                    log::error!("shutdown: {key} did not finish its probe ({e})");
                }
            }))
            .await;
        })
    }
}
