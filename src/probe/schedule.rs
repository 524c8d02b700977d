//! Pure scheduling: where in its interval a monitor's first probe falls, and which slot comes
//! after a probe ends. Slot `n` is due at `start + n * interval`, so probes never drift.

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

/// The slot to run after slot `finished` ended at `elapsed` since the start. Normally the
/// next one; after an overrun, the latest slot already due (run at once, once): missed slots
/// are skipped, never stacked.
pub fn next_slot(finished: u64, elapsed: Duration, interval: Duration) -> u64 {
    let next = finished + 1;
    let due_now = (elapsed.as_nanos() / interval.as_nanos().max(1)) as u64;
    next.max(due_now)
}

/// When slot `n` is due, as an offset from the start.
pub fn due(n: u64, interval: Duration) -> Duration {
    interval.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX))
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

    #[test]
    fn next_slot_table() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        let rows = [
            // (finished slot, ended at, interval) -> next slot
            (0, ms(200), s(1), 1),
            (3, ms(3_999), s(1), 4),
            (3, s(4), s(1), 4),
            (3, ms(4_500), s(1), 4),
            // overran two slots: run the latest due one now, skip the one in between
            (3, ms(6_200), s(1), 6),
            (0, s(95), s(60), 1),
            (0, s(125), s(60), 2),
        ];
        for (finished, elapsed, interval, expected) in rows {
            assert_eq!(next_slot(finished, elapsed, interval), expected, "{finished} {elapsed:?} {interval:?}");
        }
    }

    #[test]
    fn due_is_a_multiple_of_the_interval() {
        assert_eq!(due(0, Duration::from_secs(30)), Duration::ZERO);
        assert_eq!(due(7, Duration::from_millis(1500)), Duration::from_millis(10_500));
    }
}
