//! The ConfigActor: the owner of the configuration file. At start-up it records the load the
//! daemon started with; `/health` asks it for the last load's outcome.

use std::path::PathBuf;

use actix::prelude::*;

/// The outcome of the last load of the config file.
#[derive(Debug, Clone, Default, serde::Serialize, MessageResponse)]
pub struct ReloadStatus {
    /// Unix seconds.
    pub time: i64,
    pub ok: bool,
    pub errors: Vec<String>,
}

pub struct ConfigActor {
    path: PathBuf,
    last: ReloadStatus,
}

impl ConfigActor {
    /// For a config that was loaded successfully just before.
    pub fn new(path: PathBuf) -> Self {
        ConfigActor {
            path,
            last: ReloadStatus {
                time: crate::probe::actor::unix_now(),
                ok: true,
                errors: Vec::new(),
            },
        }
    }
}

impl Actor for ConfigActor {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        log::debug!("config: {} loaded", self.path.display());
    }
}

#[derive(Message)]
#[rtype(result = "ReloadStatus")]
pub struct GetReloadStatus;

impl Handler<GetReloadStatus> for ConfigActor {
    type Result = ReloadStatus;

    fn handle(&mut self, _: GetReloadStatus, _: &mut Context<Self>) -> ReloadStatus {
        self.last.clone()
    }
}
