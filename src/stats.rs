//! The one definition of a percentile the daemon (and its benchmarks) use: nearest rank.

/// The 1-based nearest rank of percentile `p` (0-100) among `n` values: the smallest rank
/// whose share of the values reaches `p` (at least 1, at most `n`).
pub fn nearest_rank(p: f64, n: u64) -> u64 {
    ((p / 100.0) * n as f64).ceil().clamp(1.0, n.max(1) as f64) as u64
}

/// The nearest-rank percentile `p` of values sorted ascending; `None` when there are none.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    let rank = nearest_rank(p, sorted.len() as u64);
    sorted.get(usize::try_from(rank).ok()? - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_table() {
        let rows = [
            (50.0, 1, 1),
            (95.0, 1, 1),
            (50.0, 2, 1),
            (50.0, 3, 2),
            (95.0, 20, 19),
            (99.0, 100, 99),
            (100.0, 7, 7),
            (0.0, 7, 1),
        ];
        for (p, n, rank) in rows {
            assert_eq!(nearest_rank(p, n), rank, "p{p} of {n}");
        }
        assert_eq!(percentile(&[7], 95.0), Some(7));
        assert_eq!(percentile(&[1, 2], 50.0), Some(1));
        assert_eq!(percentile(&[1.5, 2.5, 9.0], 50.0), Some(2.5));
        assert_eq!(percentile::<i64>(&[], 50.0), None);
    }
}
