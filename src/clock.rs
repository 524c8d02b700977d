//! Wall-clock time, injectable. Probe timestamps, hour and day buckets, retention and the
//! schedule's anchor follow the wall clock; the daemon reads it only through a [`Clock`], so
//! tests can set it and step it (forward over a day boundary, back after an NTP correction)
//! through the actors. Waiting is done on the monotonic clock, which no step moves.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// Seconds since the Unix epoch.
    fn now(&self) -> i64 {
        self.now_ms().div_euclid(1_000)
    }
}

/// The clock the daemon runs on.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            // A clock set before 1970: negative, as it says.
            Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
        }
    }
}

pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// Seconds since the Unix epoch on the system clock (for tools and tests; the daemon's parts
/// take a [`SharedClock`]).
pub fn unix_now() -> i64 {
    SystemClock.now()
}

/// A clock that stands still until it is set or stepped.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn at(unix_ms: i64) -> Self {
        ManualClock(Arc::new(AtomicI64::new(unix_ms)))
    }

    pub fn set_ms(&self, unix_ms: i64) {
        self.0.store(unix_ms, Ordering::SeqCst);
    }

    /// Moves the clock by `ms` (negative: back).
    pub fn step_ms(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_is_set_and_stepped() {
        let clock = ManualClock::at(1_735_559_160_500);
        let shared = clock.shared();
        assert_eq!(shared.now(), 1_735_559_160);
        clock.step_ms(-7_200_000);
        assert_eq!(shared.now(), 1_735_551_960);
        clock.set_ms(-1_500);
        assert_eq!(shared.now(), -2, "before 1970 rounds down");
        assert!((SystemClock.now() - unix_now()).abs() <= 1);
    }
}
