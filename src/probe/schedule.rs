//! Pure scheduling: each monitor's grid of due times on the wall clock, and which slot comes
//! after a probe ends. Slot `k` is due at `offset + k * interval`, so probes never drift.

use std::time::Duration;

/// A deterministic offset within `interval` for `key` (FNV-1a), so that many monitors spread
/// their first probes over the first interval, the same way on every start.
pub fn jitter(key: &str, interval: Duration) -> Duration {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let millis = interval.as_millis().max(1) as u64;
    Duration::from_millis(hash % millis)
}

/// A monitor's grid on the wall clock: its probes are due at `offset + k * interval`
/// milliseconds since the Unix epoch, `offset` fixed by its key. The same on every start, so a
/// restart keeps each monitor's phase: the probe after a restart comes when it would have come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    offset_ms: i64,
    interval_ms: i64,
}

impl Grid {
    pub fn new(key: &str, interval: Duration) -> Grid {
        let interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX).max(1);
        Grid { offset_ms: jitter(key, interval).as_millis() as i64, interval_ms }
    }

    /// When slot `k` is due (ms since the epoch).
    pub fn due(&self, k: i64) -> i64 {
        self.offset_ms.saturating_add(k.saturating_mul(self.interval_ms))
    }

    /// The latest slot due at or before `now_ms`.
    fn latest_due(&self, now_ms: i64) -> i64 {
        (now_ms - self.offset_ms).div_euclid(self.interval_ms)
    }

    /// The first slot due at or after `at_ms`.
    pub fn first_from(&self, at_ms: i64) -> i64 {
        let k = self.latest_due(at_ms);
        if self.due(k) == at_ms {
            k
        } else {
            k + 1
        }
    }

    /// The slot to run after slot `last` (none yet: the first from now), at wall time `now_ms`:
    /// normally the next one; after an overrun, the latest one already due (run at once, once:
    /// missed slots are skipped, never stacked); after the clock stepped back (the next slot
    /// more than an interval away), the first from now.
    pub fn next(&self, last: Option<i64>, now_ms: i64) -> i64 {
        let Some(last) = last else { return self.first_from(now_ms) };
        let k = (last + 1).max(self.latest_due(now_ms));
        if self.due(k) - now_ms > self.interval_ms {
            self.first_from(now_ms)
        } else {
            k
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_is_deterministic_and_within_the_interval() {
        let interval = Duration::from_secs(60);
        let a = jitter("88code\u{1f}cc\u{1f}", interval);
        assert_eq!(a, jitter("88code\u{1f}cc\u{1f}", interval));
        assert!(a < interval);
        let spread: std::collections::BTreeSet<u128> =
            (0..1000).map(|i| jitter(&format!("p{i}\u{1f}s\u{1f}"), interval).as_millis() / 1000).collect();
        // 1,000 monitors over 60 one-second slots: every second gets some.
        assert_eq!(spread.len(), 60);
    }

    /// Whenever the daemon starts, a monitor's probes fall at the same wall-clock phase.
    #[test]
    fn the_grid_is_the_same_after_a_restart() {
        let interval = Duration::from_secs(60);
        let offset = jitter("88code\u{1f}cc\u{1f}", interval).as_millis() as i64;
        for start in [1_735_559_160_000, 1_735_559_167_300, 1_735_559_219_999] {
            let grid = Grid::new("88code\u{1f}cc\u{1f}", interval);
            let first = grid.due(grid.next(None, start));
            assert!(first >= start && first - start < 60_000, "{start}");
            assert_eq!(first.rem_euclid(60_000), offset, "{start}");
        }
    }

    #[test]
    fn next_slot_table() {
        let grid = Grid { offset_ms: 100, interval_ms: 1_000 };
        let rows = [
            // (last slot, now) -> next slot
            (None, 0, 0),
            (None, 100, 0),
            (None, 101, 1),
            (Some(3), 3_300, 4),
            (Some(3), 4_099, 4),
            (Some(3), 4_100, 4),
            (Some(3), 4_600, 4),
            // overran two slots: run the latest due one now, skip the one in between
            (Some(3), 6_300, 6),
            // the clock stepped back an hour: the first slot from now, not an hour's wait
            (Some(3_600), 3_600, 4),
            // the clock stepped forward a day: once, now
            (Some(3), 86_400_050, 86_399),
        ];
        for (last, now, expected) in rows {
            assert_eq!(grid.next(last, now), expected, "{last:?} {now}");
        }
    }
}
