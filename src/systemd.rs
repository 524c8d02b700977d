//! systemd's notification protocol (`Type=notify`): READY, RELOADING, STOPPING and the
//! watchdog. Outside systemd (no `NOTIFY_SOCKET`) every call is a no-op.

use std::time::Duration;

use actix::Addr;
use sd_notify::NotifyState;

use crate::config::duration;
use crate::store::{GetStoreHealth, StoreActor};

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

/// Pings systemd's watchdog at half its period while the store still answers: a wedged store
/// or a stalled event loop gets the daemon restarted.
pub async fn watchdog(store: Addr<StoreActor>, period: Duration) {
    let every = period / 2;
    log::info!("systemd watchdog enabled: pinging every {}", duration::format(every));
    loop {
        actix_rt::time::sleep(every).await;
        if store.send(GetStoreHealth).timeout(every).await.is_ok() {
            notify_systemd(&[NotifyState::Watchdog]);
        } else {
            log::error!("watchdog: the store did not answer within {}", duration::format(every));
        }
    }
}
