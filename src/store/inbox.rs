//! Where ProbeActors leave their results for the StoreActor.
//!
//! A message per result would wake the store's thread once per probe; at a few probes a second
//! those wake-ups were a large share of the daemon's CPU. The inbox is a shared queue instead:
//! only the first result into an empty inbox sends a message (so the store arms its flush
//! timer), and the store takes everything waiting when that timer fires, when it is asked to
//! flush, or as soon as [`COLLECT_AT`] results wait.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use actix::{Addr, Message};

use super::actor::{GetStoredState, ProbeResult, StoreActor, StoredState, MAX_PENDING};
use crate::domain::MonitorKey;

/// This many results waiting make the store collect at once, without waiting for its timer.
pub const COLLECT_AT: usize = 2_000;

/// Results are waiting in the inbox (sent by the first into an empty inbox, and at [`COLLECT_AT`]).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Collect;

#[derive(Default)]
pub struct Queue {
    results: Mutex<VecDeque<ProbeResult>>,
    /// Results dropped because [`MAX_PENDING`] were waiting here, not yet told to the store.
    dropped: AtomicU64,
    /// The store has closed: results sent now are not stored (and said so).
    closed: AtomicBool,
}

impl Queue {
    /// Everything waiting, and how many were dropped since the last take.
    pub fn take(&self) -> (VecDeque<ProbeResult>, u64) {
        let results = std::mem::take(&mut *self.results.lock().unwrap_or_else(|e| e.into_inner()));
        (results, self.dropped.swap(0, Ordering::Relaxed))
    }

    pub fn len(&self) -> usize {
        self.results.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Marks the store closed; gives how many results were left here.
    pub fn close(&self) -> usize {
        self.closed.store(true, Ordering::SeqCst);
        self.take().0.len()
    }
}

/// The ProbeActors' handle on the store: cheap to clone, safe to use from any thread.
#[derive(Clone)]
pub struct Inbox {
    queue: Arc<Queue>,
    store: Addr<StoreActor>,
}

impl Inbox {
    pub fn new(queue: Arc<Queue>, store: Addr<StoreActor>) -> Self {
        Inbox { queue, store }
    }

    /// What a starting monitor needs of its stored history (see [`GetStoredState`]).
    pub async fn stored_state(&self, key: MonitorKey, since: i64) -> Result<StoredState, actix::MailboxError> {
        self.store.send(GetStoredState { key, since }).await
    }

    /// Leaves `result` for the store. The oldest results are the ones dropped at the cap: the
    /// store drops its oldest as it takes new ones beyond [`MAX_PENDING`], and this queue, which
    /// the store empties every 250 ms, drops its own oldest only if it alone reaches the cap
    /// (a store that stopped collecting). So for up to 250 ms, what arrived meanwhile may wait
    /// beyond the cap.
    pub fn send(&self, result: ProbeResult) {
        if self.queue.closed.load(Ordering::SeqCst) {
            log::warn!("store: a result of {} came after the store closed; not stored", result.key);
            return;
        }
        let waiting = {
            let mut results = self.queue.results.lock().unwrap_or_else(|e| e.into_inner());
            if results.len() >= MAX_PENDING && results.pop_front().is_some() {
                self.queue.dropped.fetch_add(1, Ordering::Relaxed);
            }
            results.push_back(result);
            results.len()
        };
        if waiting == 1 || waiting == COLLECT_AT {
            self.store.do_send(Collect);
        }
    }
}
