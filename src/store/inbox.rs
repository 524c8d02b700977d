//! Where ProbeActors leave their results for the StoreActor.
//!
//! A message per result would wake the store's thread once per probe; at a few probes a second
//! those wake-ups were a large share of the daemon's CPU. The inbox is a shared queue instead:
//! only the first result into an empty inbox sends a message (so the store arms its flush
//! timer), and the store takes everything waiting when that timer fires, when it is asked to
//! flush, or as soon as [`COLLECT_AT`] results wait.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix::{Addr, Message};

use super::actor::{ProbeResult, StoreActor, MAX_PENDING};

/// This many results waiting make the store collect at once, without waiting for its timer.
pub const COLLECT_AT: usize = 2_000;

/// Results are waiting in the inbox (sent by the first into an empty inbox, and at [`COLLECT_AT`]).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Collect;

#[derive(Default)]
pub struct Queue {
    results: Mutex<VecDeque<ProbeResult>>,
    /// Results dropped because [`MAX_PENDING`] were waiting, not yet told to the store.
    dropped: AtomicU64,
    /// Results the store has taken and not yet written (it keeps this up to date), so the cap
    /// covers everything waiting, here and there.
    held: AtomicUsize,
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

    pub fn set_held(&self, held: usize) {
        self.held.store(held, Ordering::Relaxed);
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

    /// Leaves `result` for the store. With [`MAX_PENDING`] waiting here and in the store, the
    /// oldest here is dropped (and counted); if none waits here, the store drops its oldest when
    /// it takes this one, so for a moment one more than the cap may wait.
    pub fn send(&self, result: ProbeResult) {
        let held = self.queue.held.load(Ordering::Relaxed);
        let waiting = {
            let mut results = self.queue.results.lock().unwrap_or_else(|e| e.into_inner());
            if results.len() + held >= MAX_PENDING && results.pop_front().is_some() {
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
