//! A small mergeable sketch for percentiles of millisecond values: a sparse log-linear
//! histogram. Values below 32 are exact; above, each power of two is cut into 32 bins, so a
//! percentile is off by at most 1/32 (~3%) of its value. An hour of probes takes a few dozen
//! bytes, and sketches of hours merge into days exactly.

/// Values below this are their own bin.
const EXACT: u32 = 32;
/// Bins per power of two above `EXACT`.
const SUB_BITS: u32 = 5;
const COUNT_BITS: u32 = 22;
const COUNT_MAX: u32 = (1 << COUNT_BITS) - 1;

fn bin_of(value: u32) -> u32 {
    if value < EXACT {
        return value;
    }
    let exponent = 31 - value.leading_zeros(); // >= 5
    let sub = (value >> (exponent - SUB_BITS)) & ((1 << SUB_BITS) - 1);
    EXACT + (exponent - SUB_BITS) * (1 << SUB_BITS) + sub
}

/// The middle of a bin's range: the value a percentile in it reports.
fn value_of(bin: u32) -> u32 {
    if bin < EXACT {
        return bin;
    }
    let exponent = (bin - EXACT) / (1 << SUB_BITS) + SUB_BITS;
    let sub = (bin - EXACT) % (1 << SUB_BITS);
    let width = 1u64 << (exponent - SUB_BITS);
    let low = (1u64 << exponent) + u64::from(sub) * width;
    (low + (width - 1) / 2).min(u64::from(u32::MAX)) as u32
}

/// Sorted by bin; each entry packs `bin << 22 | count` (a bucket never holds 4 M probes: one a
/// second for a day is 86,400).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sketch {
    entries: Vec<u32>,
}

impl Sketch {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn count(&self) -> u64 {
        self.entries.iter().map(|e| u64::from(e & COUNT_MAX)).sum()
    }

    pub fn add(&mut self, value: u32) {
        self.add_bin(bin_of(value), 1);
    }

    fn add_bin(&mut self, bin: u32, count: u32) {
        match self.entries.binary_search_by_key(&bin, |e| e >> COUNT_BITS) {
            Ok(i) => {
                let total = (self.entries[i] & COUNT_MAX).saturating_add(count).min(COUNT_MAX);
                self.entries[i] = (bin << COUNT_BITS) | total;
            }
            Err(i) => self.entries.insert(i, (bin << COUNT_BITS) | count.min(COUNT_MAX)),
        }
    }

    /// Adds `other`'s counts: one pass over both sorted lists (a report merges tens of
    /// thousands of hourly sketches).
    pub fn merge(&mut self, other: &Sketch) {
        if other.entries.is_empty() {
            return;
        }
        if self.entries.is_empty() {
            self.entries.clone_from(&other.entries);
            return;
        }
        let mut out = Vec::with_capacity(self.entries.len().max(other.entries.len()));
        let (mut a, mut b) = (self.entries.iter().peekable(), other.entries.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(&&x), Some(&&y)) => match (x >> COUNT_BITS).cmp(&(y >> COUNT_BITS)) {
                    std::cmp::Ordering::Less => {
                        a.next();
                        x
                    }
                    std::cmp::Ordering::Greater => {
                        b.next();
                        y
                    }
                    std::cmp::Ordering::Equal => {
                        a.next();
                        b.next();
                        let total = (x & COUNT_MAX).saturating_add(y & COUNT_MAX).min(COUNT_MAX);
                        (x >> COUNT_BITS << COUNT_BITS) | total
                    }
                },
                (Some(&&x), None) => {
                    a.next();
                    x
                }
                (None, Some(&&y)) => {
                    b.next();
                    y
                }
                (None, None) => break,
            };
            out.push(next);
        }
        self.entries = out;
    }

    /// The nearest-rank percentile `p` (0-100), to within a bin; `None` when empty.
    pub fn percentile(&self, p: f64) -> Option<u32> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = crate::stats::nearest_rank(p, total);
        let mut seen = 0u64;
        for e in &self.entries {
            seen += u64::from(e & COUNT_MAX);
            if seen >= rank {
                return Some(value_of(e >> COUNT_BITS));
            }
        }
        None
    }

    /// Compact bytes for the database: per bin, its varint bin delta and varint count.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * 3);
        let mut previous = 0u32;
        for e in &self.entries {
            let bin = e >> COUNT_BITS;
            put_varint(&mut out, bin - previous);
            put_varint(&mut out, e & COUNT_MAX);
            previous = bin;
        }
        out
    }

    /// The inverse of [`Sketch::encode`]; garbage gives the bins read before it.
    pub fn decode(bytes: &[u8]) -> Sketch {
        let mut sketch = Sketch::default();
        let mut rest = bytes;
        let mut bin = 0u32;
        while let (Some(delta), Some(count)) = (get_varint(&mut rest), get_varint(&mut rest)) {
            bin = bin.saturating_add(delta);
            if bin >= (1 << (32 - COUNT_BITS)) {
                break;
            }
            sketch.add_bin(bin, count);
        }
        sketch
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u32) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn get_varint(input: &mut &[u8]) -> Option<u32> {
    let mut value = 0u32;
    for shift in (0..35).step_by(7) {
        let (&byte, rest) = input.split_first()?;
        *input = rest;
        value |= u32::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact_percentile(values: &mut [u32], p: f64) -> u32 {
        values.sort_unstable();
        crate::stats::percentile(values, p).unwrap()
    }

    #[test]
    fn bins_cover_every_value_and_stay_within_three_percent() {
        let mut previous_bin = 0;
        for value in (0..100_000).chain([u32::MAX / 2, u32::MAX - 1, u32::MAX]) {
            let bin = bin_of(value);
            assert!(bin >= previous_bin, "bins are monotonic at {value}");
            previous_bin = bin;
            let back = value_of(bin);
            let error = (i64::from(back) - i64::from(value)).unsigned_abs() as f64;
            assert!(error <= (value as f64 / 32.0).max(0.0) + 0.5, "{value} -> {back}");
        }
        assert!(bin_of(u32::MAX) < (1 << (32 - COUNT_BITS)));
    }

    #[test]
    fn percentiles_match_the_exact_ones_within_a_bin() {
        let mut values: Vec<u32> = (0..5_000u32).map(|i| (i * 7919) % 3_000 + 1).collect();
        let mut sketch = Sketch::default();
        for v in &values {
            sketch.add(*v);
        }
        assert_eq!(sketch.count(), 5_000);
        for p in [1.0, 50.0, 95.0, 99.0, 100.0] {
            let exact = exact_percentile(&mut values, p);
            let got = sketch.percentile(p).unwrap();
            let error = (f64::from(got) - f64::from(exact)).abs();
            assert!(error <= f64::from(exact) / 32.0 + 0.5, "p{p}: {got} vs {exact}");
        }
        let mut small = Sketch::default();
        for v in [5, 1, 9] {
            small.add(v);
        }
        assert_eq!((small.percentile(50.0), small.percentile(95.0)), (Some(5), Some(9)));
        assert_eq!(Sketch::default().percentile(50.0), None);
    }

    #[test]
    fn merging_equals_adding_everything_to_one() {
        let (mut a, mut b, mut all) = (Sketch::default(), Sketch::default(), Sketch::default());
        for v in 0..1_000u32 {
            let value = v * v % 10_007;
            if v % 3 == 0 {
                a.add(value)
            } else {
                b.add(value)
            }
            all.add(value);
        }
        a.merge(&b);
        assert_eq!(a, all);
    }

    #[test]
    fn encoding_roundtrips_and_garbage_is_harmless() {
        let mut sketch = Sketch::default();
        for v in [0, 1, 31, 32, 33, 250, 251, 70_000, u32::MAX] {
            sketch.add(v);
            sketch.add(v);
        }
        let bytes = sketch.encode();
        assert!(bytes.len() < 40, "{} bytes", bytes.len());
        assert_eq!(Sketch::decode(&bytes), sketch);
        for garbage in [&[0xffu8; 12][..], &[0x80], &[1], &[]] {
            let _ = Sketch::decode(garbage);
        }
    }
}
