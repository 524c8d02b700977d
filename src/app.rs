//! Wires the actors and the HTTP server together and runs them until SIGINT/SIGTERM, then
//! shuts down in order: probes drain, the store flushes and closes, the server stops.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::alert::delivery::{Delivery, StopDelivery, STOP_GRACE};
use crate::api::{self, AppState};
use crate::clock::SharedClock;
use crate::config::{duration, Config};
use crate::metrics::Metrics;
use crate::store::{db, Close, ConfigureAlertsFor, Flush, LoadHistory, RegisterMonitors};
use crate::supervisor::{AttachDelivery, Shutdown, Supervisor};
use crate::systemd::{notify_systemd, watchdog};
use sd_notify::NotifyState;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] db::StoreError),
    #[error("cannot listen on {listen}: {source}")]
    Listen { listen: String, source: std::io::Error },
    #[error("{0}")]
    Other(String),
}

/// Reading the history into memory at start-up may take this long (a migration rebuilding the
/// rollups of a large old database takes longer, but happens in `db::open`, before).
const LOAD_TIMEOUT: Duration = Duration::from_secs(120);
/// At shutdown, results still waiting are written for up to this long (the database may be
/// locked by another process for a while); the unit's `TimeoutStopSec=400s` leaves room for a
/// 5-minute probe, this, the HTTP server's 5 s and the close's 10 s.
const FLUSH_DEADLINE: Duration = Duration::from_secs(60);

/// Runs the daemon on `config` inside the current actix System until a stop signal.
pub async fn run(config: Config) -> Result<(), RunError> {
    run_with_clock(config, crate::clock::system()).await
}

/// [`run`], on the given wall clock.
pub async fn run_with_clock(config: Config, clock: SharedClock) -> Result<(), RunError> {
    let started = Instant::now();
    log::info!("starting: {} loaded ({} monitors)", config.path.display(), config.monitor_count());
    match crate::limits::raise_open_files() {
        Some((before, after)) if after > before => log::info!("open files: limit raised from {before} to {after}"),
        Some(_) => {}
        None => log::warn!("open files: cannot read the limit"),
    }
    if let Some(warning) = crate::limits::check_open_files(config.monitors.len()) {
        log::warn!("open files: {warning}");
    }
    // The port first: a busy one fails the start before anything else is running.
    let listener = std::net::TcpListener::bind(&config.listen)
        .map_err(|source| RunError::Listen { listen: config.listen.clone(), source })?;
    let conn = db::connect(&config.database, &config.node)?;
    log::info!("store: {} as node {:?}", config.database.shown(), config.node);
    let metrics = Arc::new(Metrics::new());
    metrics.reloaded("startup", true, clock.now());
    // diesel blocks: the one connection lives on a thread of its own.
    let alerts = Arc::new(config.alerts.clone());
    let (store, inbox) = crate::store::start(
        conn,
        crate::store::Place { database: config.database.clone(), node: config.node.clone() },
        clock.clone(),
        config.retention,
        config.degraded_weight,
        metrics.clone(),
        alerts.clone(),
    );
    // Before the history loads: messages left in the outbox go to it as the store reads them.
    let delivery = Delivery::new(alerts.clone(), store.clone().recipient(), clock.clone(), metrics.clone()).start();
    store.do_send(ConfigureAlertsFor {
        config: alerts,
        delivery: Some(delivery.clone().recipient()),
        lead: Some(delivery.clone().recipient()),
    });
    match store.send(LoadHistory).timeout(LOAD_TIMEOUT).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(RunError::Other(format!("cannot read the history: {e}"))),
        Err(e) => return Err(RunError::Other(format!("reading the history did not finish: {e}"))),
    }
    store.do_send(RegisterMonitors::of(&config));
    // Several nodes on one PostgreSQL: the single-writer duties go to the holder of a lock.
    let leader_lock = match &config.database {
        crate::config::Database::Postgres(url) => {
            Some(crate::store::leader::LeaderLock::start(url.clone(), config.node.clone(), store.clone().recipient()))
        }
        crate::config::Database::Sqlite(_) => None,
    };

    // Registered now, so a `systemctl reload` right after READY=1 reloads instead of killing us.
    let hangups = match actix_rt::signal::unix::signal(actix_rt::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(e) => {
            log::error!("cannot handle SIGHUP ({e}); reload by saving the file");
            None
        }
    };
    let supervisor =
        Supervisor::new(config.clone(), store.clone(), inbox, hangups, metrics.clone(), clock.clone()).start();
    supervisor.do_send(AttachDelivery(delivery.clone()));
    let metrics_for_exit = metrics.clone();
    let state = AppState {
        clock,
        store: store.clone(),
        supervisor: supervisor.clone(),
        reader: crate::store::reader::start(config.database.clone(), config.node.clone()),
        delivery: Some(delivery.clone()),
        metrics,
        started,
    };
    let address = listener.local_addr().map_err(|e| RunError::Other(e.to_string()))?;
    let server = api::serve(listener, state, config.cors.clone())
        .map_err(|source| RunError::Listen { listen: config.listen.clone(), source })?;
    let (server_handle, server_task) = match start_server(server) {
        Ok(started) => started,
        Err(e) => {
            // Nothing is served: stop what was started, write what is pending, and fail.
            supervisor.send(Shutdown).timeout(Duration::from_secs(10)).await.ok();
            store.send(Close { deadline: Duration::from_secs(10) }).timeout(Duration::from_secs(15)).await.ok();
            return Err(e);
        }
    };

    for warning in &config.warnings {
        log::warn!("config: {warning}");
    }
    log::info!(
        "llm-monitor {} started: {} monitors ({} disabled), database {}, retention {}",
        env!("CARGO_PKG_VERSION"),
        config.monitor_count(),
        config.disabled,
        config.database.shown(),
        duration::format(config.retention),
    );
    log::info!("listening on http://{address}");
    log::info!("ready {} ms after start (history loaded, server bound)", started.elapsed().as_millis());
    notify_systemd(&[NotifyState::Ready]);
    if let Some(period) = sd_notify::watchdog_enabled() {
        let store = store.clone();
        actix_rt::spawn(watchdog(store, period));
    }

    let signal = wait_for_stop_signal().await;
    log::info!("{signal} received: shutting down (send it again to exit at once)");
    notify_systemd(&[NotifyState::Stopping]);
    let stage = Arc::new(std::sync::Mutex::new("waiting for the probes in flight"));
    actix_rt::spawn(force_exit_on_second_signal(stage.clone(), metrics_for_exit.clone()));
    // In order: no new probes and the ones in flight stored, everything written, the API
    // stopped (it can read until then), the database closed. Every step has a deadline and
    // says what did not answer.
    // The supervisor bounds each probe by the running config's timeouts (reloads included);
    // this only catches a supervisor that does not answer.
    let drain = Duration::from_secs(300 + 10);
    if let Err(e) = supervisor.send(Shutdown).timeout(drain).await {
        log::error!("shutdown: the probes did not all finish within {} ({e})", duration::format(drain));
    }
    *stage.lock().unwrap_or_else(|e| e.into_inner()) = "finishing the alert messages being sent";
    if let Err(e) = delivery.send(StopDelivery).timeout(STOP_GRACE + Duration::from_secs(1)).await {
        log::error!("shutdown: alert delivery did not answer: {e}");
    }
    // Another node may take the single-writer duties over at once.
    if let Some(lock) = leader_lock {
        lock.release();
    }
    *stage.lock().unwrap_or_else(|e| e.into_inner()) = "writing the last results";
    match store.send(Flush { deadline: FLUSH_DEADLINE }).timeout(FLUSH_DEADLINE + Duration::from_secs(5)).await {
        Ok(Ok(())) => log::info!("shutdown: every result written"),
        Ok(Err(e)) => log::error!("shutdown: the store could not write everything: {e}"),
        Err(e) => log::error!("shutdown: the store did not answer the flush: {e}"),
    }
    *stage.lock().unwrap_or_else(|e| e.into_inner()) = "stopping the HTTP server";
    server_handle.stop(true).await;
    let _ = server_task.await;
    *stage.lock().unwrap_or_else(|e| e.into_inner()) = "closing the database";
    let close = Duration::from_secs(10);
    match store.send(Close { deadline: close }).timeout(close + Duration::from_secs(5)).await {
        Ok(Ok(())) => log::info!("shutdown: database closed"),
        Ok(Err(e)) => log::error!("shutdown: the store could not write before closing: {e}"),
        Err(e) => log::error!("shutdown: the store did not answer the close: {e}"),
    }
    log::info!("shutdown complete");
    Ok(())
}

/// Starts the HTTP server. actix starts its workers on the first poll, and a worker whose app
/// cannot be built (a bad middleware) ends the server at once: that must fail the daemon, not
/// leave it running without an API.
pub fn start_server(
    mut server: actix_web::dev::Server,
) -> Result<(actix_web::dev::ServerHandle, actix_rt::task::JoinHandle<std::io::Result<()>>), RunError> {
    use futures_util::FutureExt;
    let handle = server.handle();
    if let Some(result) = (&mut server).now_or_never() {
        let why = match result {
            Err(e) => e.to_string(),
            Ok(()) => "it stopped at once".to_string(),
        };
        return Err(RunError::Other(format!("the HTTP server did not start: {why}")));
    }
    Ok((handle, actix_rt::spawn(server)))
}

/// A second SIGINT/SIGTERM while shutting down: exit now, saying what is left behind.
async fn force_exit_on_second_signal(stage: Arc<std::sync::Mutex<&'static str>>, metrics: Arc<Metrics>) {
    let signal = wait_for_stop_signal().await;
    let stage = *stage.lock().unwrap_or_else(|e| e.into_inner());
    log::error!(
        "{signal} received again while {stage}: exiting now; abandoned {} probes in flight and {} results not yet written",
        metrics.probes_in_flight.get(),
        metrics.store_queue.get()
    );
    log::logger().flush();
    std::process::exit(1);
}

async fn wait_for_stop_signal() -> &'static str {
    use actix_rt::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{web, App, HttpServer};

    /// An app that cannot be built in its workers (here, a CORS origin actix-cors refuses) is a
    /// failed start, not a daemon running without an API.
    #[test]
    fn a_server_whose_workers_fail_fails_the_start() {
        actix_rt::System::new().block_on(async {
            let broken = HttpServer::new(|| {
                App::new()
                    .wrap(actix_cors::Cors::default().allowed_origin("https://"))
                    .route("/", web::get().to(|| async { "ok" }))
            })
            .workers(1)
            .disable_signals()
            .bind("127.0.0.1:0")
            .unwrap();
            let Err(error) = start_server(broken.run()) else { panic!("the start should fail") };
            assert!(error.to_string().starts_with("the HTTP server did not start"), "{error}");

            let working = HttpServer::new(|| App::new().route("/", web::get().to(|| async { "ok" })))
                .workers(1)
                .disable_signals()
                .bind("127.0.0.1:0")
                .unwrap();
            let (handle, task) = start_server(working.run()).expect("a working server starts");
            handle.stop(true).await;
            task.await.unwrap().unwrap();
        });
    }
}
