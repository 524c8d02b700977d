//! The Supervisor: owns the ConfigActor and one ProbeActor per monitor, starts them spread
//! over their first interval, and drains them on shutdown.

use std::time::Instant;

use actix::prelude::*;
use futures_util::future::join_all;

use crate::config::{Config, MonitorKey};
use crate::probe::{schedule, Drain, ProbeActor};
use crate::store::{ProbeResult, StoreActor};
use crate::watch::{ConfigActor, GetReloadStatus, ReloadStatus};

pub struct Supervisor {
    config: Config,
    store: Addr<StoreActor>,
    config_actor: Option<Addr<ConfigActor>>,
    probes: Vec<(MonitorKey, Addr<ProbeActor>)>,
}

impl Supervisor {
    pub fn new(config: Config, store: Addr<StoreActor>) -> Self {
        Supervisor {
            config,
            store,
            config_actor: None,
            probes: Vec::new(),
        }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        self.config_actor = Some(ConfigActor::new(self.config.path.clone()).start());
        let now = Instant::now();
        let recipient: Recipient<ProbeResult> = self.store.clone().recipient();
        for monitor in &self.config.monitors {
            let first_due = now + schedule::jitter(monitor.key.normalized(), monitor.interval);
            let key = monitor.key.clone();
            let actor = ProbeActor::new(monitor.clone(), recipient.clone(), first_due).start();
            self.probes.push((key, actor));
        }
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
            ConfigState {
                path,
                monitors,
                disabled,
                last_reload,
            }
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
        let probes: Vec<_> = self.probes.drain(..).collect();
        log::info!(
            "shutdown: stopping {} probes, waiting for the ones in flight",
            probes.len()
        );
        Box::pin(async move {
            join_all(probes.iter().map(|(_, addr)| addr.send(Drain))).await;
        })
    }
}
