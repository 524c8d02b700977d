//! The ConfigActor: owns the configuration file. Watches its directory (editors save by
//! renaming a temp file; Kubernetes swaps a `..data` symlink) and the `data/` folder that
//! `!include` reads, debounces bursts of events into one reload, and reloads on SIGHUP. Files
//! are read on a blocking thread, never on the thread that runs the probes. A valid new config
//! goes to the Supervisor; an invalid one is reported and the old one keeps running.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_rt::signal::unix::Signal;
use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use crate::clock::unix_now;
use crate::config::{self, Config, ConfigErrors};
use crate::metrics::Metrics;
use crate::supervisor::{ApplyConfig, Supervisor};
use crate::systemd::notify_systemd;

/// How long the Supervisor may take to apply a new config.
const APPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Events closer together than this become one reload...
const DEBOUNCE: Duration = Duration::from_millis(200);
/// ...but a steady stream of them still reloads this long after the first.
const DEBOUNCE_MAX: Duration = Duration::from_secs(1);

/// The outcome of the last load of the config file, as `/health` shows it.
#[derive(Debug, Clone, Default, serde::Serialize, MessageResponse)]
pub struct ReloadStatus {
    /// Unix seconds.
    pub time: i64,
    /// `startup`, `file` (a watched file changed) or `sighup`.
    pub trigger: &'static str,
    pub ok: bool,
    /// Where each problem is; quoted values are elided (`/health` is public).
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    File,
    Sighup,
}

impl Trigger {
    pub fn name(self) -> &'static str {
        match self {
            Trigger::File => "file",
            Trigger::Sighup => "sighup",
        }
    }
}

/// Where the files that make up the configuration are: the config file's directory (watched
/// flat) and its `data/` (watched recursively), as absolute paths.
#[derive(Debug, Clone)]
struct Watched {
    dir: PathBuf,
    file_name: std::ffi::OsString,
}

impl Watched {
    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Whether a changed path can change the configuration: the config file itself, `data/`
    /// and anything under it, and the `..data`-style entries a Kubernetes ConfigMap swaps.
    /// Anything else in the directory (a log file written beside the config) is not ours.
    fn concerns(&self, path: &Path) -> bool {
        if path.starts_with(self.data()) {
            return true;
        }
        if path.parent() != Some(self.dir.as_path()) {
            return false;
        }
        let name = path.file_name().unwrap_or_default();
        name == self.file_name || name == "data" || name.to_string_lossy().starts_with("..")
    }
}

/// Whether an event kind can change a file's content: reading a file (OPEN, ACCESS,
/// CLOSE_NOWRITE) or touching its metadata cannot.
fn changes_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Any | EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Other => true,
    }
}

pub struct ConfigActor {
    path: PathBuf,
    supervisor: Addr<Supervisor>,
    running: Config,
    last: ReloadStatus,
    /// The errors of the last rejected load: the same ones again (an event that changed
    /// nothing that matters) are not reported again.
    last_rejected: Option<ConfigErrors>,
    watched: Option<Watched>,
    watcher: Option<RecommendedWatcher>,
    watching_data: bool,
    /// The debounce timer, and when the burst it covers began.
    debounce: Option<(SpawnHandle, Instant)>,
    reloading: bool,
    /// A reload asked for while one was running: it runs next (SIGHUP wins over a file event).
    queued: Option<Trigger>,
    hangups: Option<Signal>,
    metrics: Arc<Metrics>,
}

impl ConfigActor {
    /// `running` is the config the daemon started with, loaded from `running.path`.
    pub fn new(running: Config, supervisor: Addr<Supervisor>, hangups: Option<Signal>, metrics: Arc<Metrics>) -> Self {
        ConfigActor {
            path: running.path.clone(),
            running,
            supervisor,
            last: ReloadStatus { time: unix_now(), trigger: "startup", ok: true, errors: Vec::new() },
            last_rejected: None,
            watched: None,
            watcher: None,
            watching_data: false,
            debounce: None,
            reloading: false,
            queued: None,
            hangups,
            metrics,
        }
    }

    fn config_dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    fn watch(&mut self, ctx: &mut Context<Self>) -> Result<(), String> {
        let dir = self.config_dir().canonicalize().map_err(|e| format!("{}: {e}", self.config_dir().display()))?;
        let watched = Watched { dir: dir.clone(), file_name: self.path.file_name().unwrap_or_default().to_owned() };
        let addr = ctx.address();
        let filter = watched.clone();
        let data = watched.data();
        // Runs on the watcher's thread: only events that can change the config reach the actor.
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| match event {
            Ok(event) if changes_content(&event.kind) && event.paths.iter().any(|p| filter.concerns(p)) => {
                // `data/` itself created, removed or renamed: the folder watched may be gone.
                let data_replaced = event.paths.iter().any(|p| p == &data);
                addr.do_send(FilesChanged { data_replaced });
            }
            Ok(_) => {}
            Err(e) => log::warn!("config: file watcher error: {e}"),
        })
        .map_err(|e| e.to_string())?;
        watcher.watch(&dir, RecursiveMode::NonRecursive).map_err(|e| format!("{}: {e}", dir.display()))?;
        self.watcher = Some(watcher);
        self.watched = Some(watched);
        self.watch_data(false);
        Ok(())
    }

    /// Watches `data/` once it exists (it may be created, or swapped in, after start-up).
    /// `replaced`: the entry `data` itself changed, so the folder watched so far may be another
    /// one (or gone): watch whatever is there now.
    fn watch_data(&mut self, replaced: bool) {
        let (Some(watcher), Some(watched)) = (self.watcher.as_mut(), self.watched.as_ref()) else { return };
        let data = watched.data();
        if replaced && self.watching_data {
            // Fails harmlessly when the old folder's watch went with it.
            let _ = watcher.unwatch(&data);
            self.watching_data = false;
        }
        if self.watching_data || !data.is_dir() {
            return;
        }
        match watcher.watch(&data, RecursiveMode::Recursive) {
            Ok(()) => self.watching_data = true,
            Err(e) => log::warn!("config: cannot watch {}: {e}", data.display()),
        }
    }

    /// Reloads now, or after the one running.
    fn request(&mut self, trigger: Trigger, ctx: &mut Context<Self>) {
        if self.reloading {
            if self.queued != Some(Trigger::Sighup) {
                self.queued = Some(trigger);
            }
            return;
        }
        self.reloading = true;
        if trigger == Trigger::File {
            self.metrics.config_file_checks.inc();
        }
        let path = self.path.clone();
        // Off this thread: it runs every probe, and a file read must never stall them.
        let load = actix_rt::task::spawn_blocking(move || {
            let loaded = config::load(&path);
            // The parse's garbage is freed by now: hand it back (see `release_free_memory`).
            crate::limits::release_free_memory();
            loaded
        });
        ctx.spawn(load.into_actor(self).map(move |loaded, act, ctx| {
            let loaded = loaded.unwrap_or_else(|e| Err(ConfigErrors(vec![format!("loading panicked: {e}")])));
            act.loaded(trigger, loaded, ctx)
        }));
    }

    /// Judges a freshly loaded file and applies it if it changes anything.
    fn loaded(&mut self, trigger: Trigger, loaded: Result<Config, ConfigErrors>, ctx: &mut Context<Self>) {
        let mut loaded = match loaded {
            Err(errors) => {
                // A file event that leaves the same mistakes in place was already reported.
                if trigger == Trigger::File && self.last_rejected.as_ref() == Some(&errors) {
                    log::debug!("config: file event, still the same problems");
                } else {
                    notify_systemd(&[sd_notify::NotifyState::Reloading]);
                    self.reject(trigger, &errors);
                    self.last_rejected = Some(errors);
                    notify_systemd(&[sd_notify::NotifyState::Ready]);
                }
                return self.done(ctx);
            }
            Ok(config) => config,
        };
        keep_restart_only_settings(&self.running, &mut loaded);
        // Keys compare case-insensitively, but a new spelling is a change (labels, the API).
        let spelled = |c: &Config| c.monitors.iter().map(|m| m.key.to_string()).collect::<Vec<_>>();
        if loaded == self.running && spelled(&loaded) == spelled(&self.running) {
            self.last_rejected = None;
            if trigger == Trigger::File && self.last.ok {
                // Nothing that matters changed (a comment, a file written with the same bytes).
                log::debug!("config: file event without a change to the configuration");
            } else {
                notify_systemd(&[sd_notify::NotifyState::Reloading]);
                log::info!("config: reloaded, no changes ({} monitors)", loaded.monitors.len());
                self.accept(trigger);
                notify_systemd(&[sd_notify::NotifyState::Ready]);
            }
            return self.done(ctx);
        }
        log::info!("config: change detected ({}), reloading {}", trigger.name(), self.path.display());
        notify_systemd(&[sd_notify::NotifyState::Reloading]);
        for warning in loaded.warnings.iter().filter(|w| !self.running.warnings.contains(w)) {
            log::warn!("config: {warning}");
        }
        let apply = self.supervisor.send(ApplyConfig(loaded.clone())).timeout(APPLY_TIMEOUT);
        ctx.spawn(apply.into_actor(self).map(move |result, act, ctx| {
            match result {
                Ok(Ok(summary)) => {
                    log::info!(
                        "config: reload succeeded with {} monitors ({} added, {} changed, {} removed)",
                        loaded.monitors.len(),
                        summary.added,
                        summary.changed,
                        summary.removed
                    );
                    act.running = loaded;
                    act.last_rejected = None;
                    act.accept(trigger);
                }
                // Not the file's fault: `running` is unchanged, so the same content is applied
                // again at the next event or SIGHUP.
                Ok(Err(e)) => act.reject(trigger, &ConfigErrors(vec![format!("applying the new config failed: {e}")])),
                Err(e) => act.reject(
                    trigger,
                    &ConfigErrors(vec![format!(
                        "the supervisor did not answer within {} ({e})",
                        crate::config::duration::format(APPLY_TIMEOUT)
                    )]),
                ),
            }
            notify_systemd(&[sd_notify::NotifyState::Ready]);
            act.done(ctx);
        }));
    }

    /// A reload ended: run the one queued meanwhile, if any.
    fn done(&mut self, ctx: &mut Context<Self>) {
        self.reloading = false;
        if let Some(next) = self.queued.take() {
            self.request(next, ctx);
        }
    }

    fn accept(&mut self, trigger: Trigger) {
        self.last = ReloadStatus { time: unix_now(), trigger: trigger.name(), ok: true, errors: Vec::new() };
        self.metrics.reloaded(trigger.name(), true, self.last.time);
    }

    fn reject(&mut self, trigger: Trigger, errors: &ConfigErrors) {
        log::error!(
            "config: reload rejected ({}), keeping the running config:\n  {}",
            errors.summary(),
            errors.0.join("\n  ")
        );
        self.metrics.reloaded(trigger.name(), false, unix_now());
        self.last = ReloadStatus { time: unix_now(), trigger: trigger.name(), ok: false, errors: errors.public() };
    }
}

/// `listen`, `database`, `node` and `cors` are bound at start-up: a change is logged and the running
/// values are kept.
fn keep_restart_only_settings(running: &Config, loaded: &mut Config) {
    let say = |message: String| log::warn!("{message}");
    if loaded.listen != running.listen {
        say(format!(
            "config: listen changed to {:?}; that needs a restart, still listening on {:?}",
            loaded.listen, running.listen
        ));
        loaded.listen = running.listen.clone();
    }
    if loaded.database != running.database {
        say(format!(
            "config: database changed to {}; that needs a restart, still using {}",
            loaded.database.shown(),
            running.database.shown()
        ));
        loaded.database = running.database.clone();
    }
    if loaded.node != running.node {
        say(format!(
            "config: node changed to {:?}; that needs a restart, still probing as {:?}",
            loaded.node, running.node
        ));
        loaded.node = running.node.clone();
    }
    if loaded.cors != running.cors {
        say("config: cors changed; that needs a restart, keeping the running CORS policy".to_string());
        loaded.cors = running.cors.clone();
    }
}

impl Actor for ConfigActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Err(e) = self.watch(ctx) {
            log::error!("config: cannot watch for changes ({e}); reload with SIGHUP");
        }
        if let Some(hangups) = self.hangups.take() {
            let stream =
                futures_util::stream::unfold(hangups, |mut s| async move { s.recv().await.map(|_| (Sighup, s)) });
            ctx.add_message_stream(stream);
        }
        // An edit saved while the daemon was starting (after its first read, before the
        // watcher) would otherwise wait for the next one: look once now.
        self.request(Trigger::File, ctx);
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct FilesChanged {
    data_replaced: bool,
}

impl Handler<FilesChanged> for ConfigActor {
    type Result = ();

    fn handle(&mut self, FilesChanged { data_replaced }: FilesChanged, ctx: &mut Context<Self>) {
        self.watch_data(data_replaced);
        let now = Instant::now();
        let first = match self.debounce.take() {
            Some((timer, first)) => {
                ctx.cancel_future(timer);
                first
            }
            None => now,
        };
        let wait = DEBOUNCE.min((first + DEBOUNCE_MAX).saturating_duration_since(now));
        let timer = ctx.run_later(wait, |act, ctx| {
            act.debounce = None;
            act.request(Trigger::File, ctx);
        });
        self.debounce = Some((timer, first));
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Sighup;

impl Handler<Sighup> for ConfigActor {
    type Result = ();

    fn handle(&mut self, _: Sighup, ctx: &mut Context<Self>) {
        log::info!("config: SIGHUP received");
        self.request(Trigger::Sighup, ctx);
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

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, MetadataKind, RemoveKind, RenameMode};

    #[test]
    fn only_events_that_can_change_content_count() {
        let rows = [
            (EventKind::Access(AccessKind::Open(AccessMode::Any)), false),
            (EventKind::Access(AccessKind::Read), false),
            (EventKind::Access(AccessKind::Close(AccessMode::Read)), false),
            (EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)), false),
            (EventKind::Access(AccessKind::Close(AccessMode::Write)), true),
            (EventKind::Modify(ModifyKind::Data(DataChange::Any)), true),
            (EventKind::Modify(ModifyKind::Name(RenameMode::To)), true),
            (EventKind::Create(CreateKind::File), true),
            (EventKind::Remove(RemoveKind::File), true),
        ];
        for (kind, counts) in rows {
            assert_eq!(changes_content(&kind), counts, "{kind:?}");
        }
    }

    #[test]
    fn only_the_config_data_and_configmap_entries_concern_us() {
        let watched = Watched { dir: PathBuf::from("/etc/m"), file_name: "config.yaml".into() };
        let rows = [
            ("/etc/m/config.yaml", true),
            ("/etc/m/data", true),
            ("/etc/m/data/templates/x.yaml", true),
            ("/etc/m/..data", true),
            ("/etc/m/..2026_11_26_08_00_00.1234", true),
            ("/etc/m/daemon.log", false),
            ("/etc/m/config.yaml.swp", false),
            ("/etc/m/.config.yaml.tmp", false),
            ("/etc/other/config.yaml", false),
            ("/etc/m/database/config.yaml", false),
        ];
        for (path, concerns) in rows {
            assert_eq!(watched.concerns(Path::new(path)), concerns, "{path}");
        }
    }
}
