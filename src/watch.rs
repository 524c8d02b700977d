//! The ConfigActor: owns the configuration file. Watches its directory (editors save by
//! renaming a temp file; Kubernetes swaps a `..data` symlink) and the `data/` folder that
//! `!include` reads, debounces bursts of events into one reload, and reloads on SIGHUP. A valid
//! new config goes to the Supervisor; an invalid one is reported and the old one keeps running.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_rt::signal::unix::Signal;
use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{new_debouncer, DebounceEventResult, Debouncer};

use crate::config::{self, Config};
use crate::metrics::Metrics;
use crate::probe::actor::unix_now;
use crate::supervisor::{ApplyConfig, Supervisor};

/// Events closer together than this become one reload.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// The outcome of the last load of the config file, as `/health` shows it.
#[derive(Debug, Clone, Default, serde::Serialize, MessageResponse)]
pub struct ReloadStatus {
    /// Unix seconds.
    pub time: i64,
    /// `startup`, `file` (a watched file changed) or `sighup`.
    pub trigger: &'static str,
    pub ok: bool,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    File { data_changed: bool },
    Sighup,
}

impl Trigger {
    fn name(self) -> &'static str {
        match self {
            Trigger::File { .. } => "file",
            Trigger::Sighup => "sighup",
        }
    }
}

pub struct ConfigActor {
    path: PathBuf,
    supervisor: Addr<Supervisor>,
    running: Config,
    last: ReloadStatus,
    /// Hash of the config file's bytes at the last load: events that leave it unchanged (and
    /// touch nothing in data/) are ignored.
    last_hash: Option<u64>,
    last_rejected: Option<Vec<String>>,
    watcher: Option<Debouncer<RecommendedWatcher>>,
    watching_data: bool,
    hangups: Option<Signal>,
    metrics: Arc<Metrics>,
}

impl ConfigActor {
    /// `running` is the config the daemon started with, loaded from `running.path`.
    pub fn new(running: Config, supervisor: Addr<Supervisor>, hangups: Option<Signal>, metrics: Arc<Metrics>) -> Self {
        ConfigActor {
            path: running.path.clone(),
            last_hash: file_hash(&running.path),
            running,
            supervisor,
            last: ReloadStatus { time: unix_now(), trigger: "startup", ok: true, errors: Vec::new() },
            last_rejected: None,
            watcher: None,
            watching_data: false,
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
        let addr = ctx.address();
        let mut debouncer = new_debouncer(DEBOUNCE, move |events: DebounceEventResult| match events {
            Ok(events) => addr.do_send(FilesChanged(events.into_iter().map(|e| e.path).collect())),
            Err(e) => log::warn!("config: file watcher error: {e}"),
        })
        .map_err(|e| e.to_string())?;
        let dir = self.config_dir().canonicalize().map_err(|e| format!("{}: {e}", self.config_dir().display()))?;
        debouncer.watcher().watch(&dir, RecursiveMode::NonRecursive).map_err(|e| format!("{}: {e}", dir.display()))?;
        self.watcher = Some(debouncer);
        self.watch_data();
        Ok(())
    }

    /// Watches `data/` once it exists (it may be created, or swapped in, after start-up).
    fn watch_data(&mut self) {
        let Ok(dir) = self.config_dir().canonicalize() else { return };
        let data = dir.join("data");
        let Some(debouncer) = self.watcher.as_mut() else { return };
        if self.watching_data || !data.is_dir() {
            return;
        }
        match debouncer.watcher().watch(&data, RecursiveMode::Recursive) {
            Ok(()) => self.watching_data = true,
            Err(e) => log::warn!("config: cannot watch {}: {e}", data.display()),
        }
    }

    /// What a batch of changed paths means for us, if anything.
    fn classify_paths(&self, paths: &[PathBuf]) -> Option<Trigger> {
        let dir = self.config_dir().canonicalize().ok()?;
        let data = dir.join("data");
        let name = self.path.file_name()?;
        let mut config_changed = false;
        let mut data_changed = false;
        for path in paths {
            if path.starts_with(&data) && path != &data {
                data_changed = true;
            } else if path.parent() == Some(dir.as_path()) {
                let file = path.file_name().unwrap_or_default();
                // `..data` and friends: a Kubernetes ConfigMap swapping its symlink, which may
                // change included files without touching the config's own bytes.
                if file.to_string_lossy().starts_with("..") || file == "data" {
                    data_changed = true;
                }
                config_changed |= file == name;
            }
        }
        (config_changed || data_changed).then_some(Trigger::File { data_changed })
    }

    fn reload(&mut self, trigger: Trigger, ctx: &mut Context<Self>) {
        let hash = file_hash(&self.path);
        if trigger == (Trigger::File { data_changed: false }) && hash.is_some() && hash == self.last_hash {
            log::debug!("config: file event without a content change ignored");
            return;
        }
        self.last_hash = hash;
        log::info!("config: change detected ({}), reloading {}", trigger.name(), self.path.display());
        notify_systemd(&[sd_notify::NotifyState::Reloading]);
        // An editor writing in place can leave the file empty for a moment: that is never meant
        // as "no monitors" (write `monitors: []` for that).
        let empty = std::fs::metadata(&self.path).map(|m| m.len() == 0).unwrap_or(false);
        if empty {
            self.reject(trigger, vec![format!("{}: the file is empty", self.path.display())]);
            notify_systemd(&[sd_notify::NotifyState::Ready]);
            return;
        }
        let mut loaded = match config::load(&self.path) {
            Ok(c) => c,
            Err(errors) => {
                self.reject(trigger, errors.0);
                notify_systemd(&[sd_notify::NotifyState::Ready]);
                return;
            }
        };
        self.last_rejected = None;
        keep_restart_only_settings(&self.running, &mut loaded);
        for warning in loaded.warnings.iter().filter(|w| !self.running.warnings.contains(w)) {
            log::warn!("config: {warning}");
        }
        if loaded == self.running {
            log::info!("config: reloaded, no changes ({} monitors)", loaded.monitors.len());
            self.accept(trigger);
            notify_systemd(&[sd_notify::NotifyState::Ready]);
            return;
        }
        // `wait` holds the mailbox: file events and SIGHUPs arriving meanwhile reload afterwards.
        let apply = self.supervisor.send(ApplyConfig(loaded.clone()));
        ctx.wait(apply.into_actor(self).map(move |result, act, _| {
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
                    act.accept(trigger);
                }
                Ok(Err(e)) => act.reject(trigger, vec![format!("applying the new config failed: {e}")]),
                Err(e) => act.reject(trigger, vec![format!("the supervisor did not answer: {e}")]),
            }
            notify_systemd(&[sd_notify::NotifyState::Ready]);
        }));
    }

    fn accept(&mut self, trigger: Trigger) {
        self.last = ReloadStatus { time: unix_now(), trigger: trigger.name(), ok: true, errors: Vec::new() };
        self.metrics.reloaded(true, self.last.time);
    }

    fn reject(&mut self, trigger: Trigger, errors: Vec<String>) {
        if self.last_rejected.as_ref() != Some(&errors) || trigger == Trigger::Sighup {
            log::error!(
                "config: reload rejected ({} problems), keeping the running config:\n  {}",
                errors.len(),
                errors.join("\n  ")
            );
        }
        self.last_rejected = Some(errors.clone());
        self.metrics.reloaded(false, unix_now());
        self.last = ReloadStatus { time: unix_now(), trigger: trigger.name(), ok: false, errors };
    }
}

/// `listen`, `database` and `cors` are bound at start-up: a change is logged and the running
/// values are kept.
fn keep_restart_only_settings(running: &Config, loaded: &mut Config) {
    if loaded.listen != running.listen {
        log::warn!(
            "config: listen changed to {:?}; that needs a restart, still listening on {:?}",
            loaded.listen,
            running.listen
        );
        loaded.listen = running.listen.clone();
    }
    if loaded.database != running.database {
        log::warn!(
            "config: database changed to {}; that needs a restart, still using {}",
            loaded.database.display(),
            running.database.display()
        );
        loaded.database = running.database.clone();
    }
    if loaded.cors != running.cors {
        log::warn!("config: cors changed; that needs a restart, keeping the running CORS policy");
        loaded.cors = running.cors.clone();
    }
}

fn file_hash(path: &Path) -> Option<u64> {
    use std::io::Read;
    // The loader refuses files over 1 MiB; hashing more than that would prove nothing.
    let mut bytes = Vec::new();
    std::fs::File::open(path).ok()?.take(1024 * 1024 + 1).read_to_end(&mut bytes).ok()?;
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    Some(hasher.finish())
}

/// Tells systemd (when it runs us with `Type=notify`); a no-op elsewhere.
pub fn notify_systemd(states: &[sd_notify::NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let mut all: Vec<sd_notify::NotifyState> = states.to_vec();
    if states.iter().any(|s| matches!(s, sd_notify::NotifyState::Reloading)) {
        if let Ok(now) = sd_notify::NotifyState::monotonic_usec_now() {
            all.push(now);
        }
    }
    if let Err(e) = sd_notify::notify(&all) {
        log::warn!("systemd notify failed: {e}");
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
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct FilesChanged(Vec<PathBuf>);

impl Handler<FilesChanged> for ConfigActor {
    type Result = ();

    fn handle(&mut self, FilesChanged(paths): FilesChanged, ctx: &mut Context<Self>) {
        self.watch_data();
        if let Some(trigger) = self.classify_paths(&paths) {
            self.reload(trigger, ctx);
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Sighup;

impl Handler<Sighup> for ConfigActor {
    type Result = ();

    fn handle(&mut self, _: Sighup, ctx: &mut Context<Self>) {
        log::info!("config: SIGHUP received");
        self.reload(Trigger::Sighup, ctx);
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
