//! Pure bucketing of a period's results into the API's timeline (SPEC section 6): UTC-aligned
//! buckets, worst status, mean latency of non-red probes, weighted availability and uptime.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Week,
    Month,
}

impl Period {
    pub fn parse(s: &str) -> Option<Period> {
        match s {
            "24h" => Some(Period::Day),
            "7d" => Some(Period::Week),
            "30d" => Some(Period::Month),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "24h",
            Period::Week => "7d",
            Period::Month => "30d",
        }
    }

    pub fn bucket_secs(self) -> i64 {
        match self {
            Period::Day => 3_600,
            Period::Week | Period::Month => 86_400,
        }
    }

    pub fn bucket_count(self) -> usize {
        match self {
            Period::Day => 24,
            Period::Week => 7,
            Period::Month => 30,
        }
    }

    /// The buckets for `now`: the first one's start, oldest first, the last containing `now`.
    pub fn window(self, now: i64) -> Window {
        let size = self.bucket_secs();
        let current = now.div_euclid(size) * size;
        Window {
            first_start: current - size * (self.bucket_count() as i64 - 1),
            size,
            count: self.bucket_count(),
            period: self,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub first_start: i64,
    pub size: i64,
    pub count: usize,
    pub period: Period,
}

impl Window {
    /// One past the last second of the last bucket.
    pub fn end(&self) -> i64 {
        self.first_start + self.size * self.count as i64
    }

    pub fn bucket_of(&self, ts: i64) -> Option<usize> {
        if ts < self.first_start || ts >= self.end() {
            return None;
        }
        Some(((ts - self.first_start) / self.size) as usize)
    }

    fn label(&self, start: i64) -> String {
        let Some(time) = chrono::DateTime::from_timestamp(start, 0) else {
            return String::new();
        };
        match self.period {
            Period::Day => time.format("%H:%M").to_string(),
            Period::Week | Period::Month => time.format("%Y-%m-%d").to_string(),
        }
    }
}

/// Counts and latency of one status within one bucket, as the database aggregates them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub bucket: usize,
    pub status: i16,
    pub count: i64,
    pub latency_sum: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub green: i64,
    pub yellow: i64,
    pub red: i64,
}

impl Counts {
    pub fn total(&self) -> i64 {
        self.green + self.yellow + self.red
    }

    /// 100 * (green + yellow * weight) / probes, or -1 when there are none.
    pub fn availability(&self, degraded_weight: f64) -> f64 {
        if self.total() == 0 {
            return -1.0;
        }
        round2(100.0 * (self.green as f64 + self.yellow as f64 * degraded_weight) / self.total() as f64)
    }

    /// The worst colour seen: red over yellow over green; -1 when empty.
    pub fn worst_status(&self) -> i16 {
        if self.red > 0 {
            0
        } else if self.yellow > 0 {
            2
        } else if self.green > 0 {
            1
        } else {
            -1
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    pub time: String,
    pub timestamp: i64,
    pub status: i16,
    pub latency: i64,
    pub availability: f64,
    pub counts: Counts,
}

/// Builds every bucket of `window` (empty ones included) and the period's uptime, weighted by
/// probe count.
pub fn build(window: &Window, tallies: &[Tally], degraded_weight: f64) -> (Vec<Bucket>, f64) {
    let mut counts = vec![Counts::default(); window.count];
    let mut latency_sums = vec![0i64; window.count];
    for tally in tallies.iter().filter(|t| t.bucket < window.count) {
        let c = &mut counts[tally.bucket];
        match tally.status {
            0 => c.red += tally.count,
            1 => c.green += tally.count,
            2 => c.yellow += tally.count,
            _ => continue,
        }
        if tally.status != 0 {
            latency_sums[tally.bucket] += tally.latency_sum;
        }
    }
    let mut total = Counts::default();
    let buckets = counts
        .iter()
        .zip(&latency_sums)
        .enumerate()
        .map(|(i, (c, latency_sum))| {
            total.green += c.green;
            total.yellow += c.yellow;
            total.red += c.red;
            let non_red = c.green + c.yellow;
            let start = window.first_start + window.size * i as i64;
            Bucket {
                time: window.label(start),
                timestamp: start,
                status: c.worst_status(),
                latency: if non_red > 0 {
                    (latency_sum + non_red / 2) / non_red
                } else {
                    0
                },
                availability: c.availability(degraded_weight),
                counts: *c,
            }
        })
        .collect();
    (buckets, total.availability(degraded_weight))
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2024-12-30 11:46:00 UTC
    const NOW: i64 = 1_735_559_160;

    #[test]
    fn windows_are_utc_aligned_and_end_with_now() {
        let rows = [
            (Period::Day, 24, 3_600, 1_735_556_400 - 23 * 3_600, "12:00", "11:00"),
            (
                Period::Week,
                7,
                86_400,
                1_735_516_800 - 6 * 86_400,
                "2024-12-24",
                "2024-12-30",
            ),
            (
                Period::Month,
                30,
                86_400,
                1_735_516_800 - 29 * 86_400,
                "2024-12-01",
                "2024-12-30",
            ),
        ];
        for (period, count, size, first, first_label, last_label) in rows {
            let w = period.window(NOW);
            assert_eq!((w.count, w.size, w.first_start), (count, size, first), "{period:?}");
            let (buckets, uptime) = build(&w, &[], 0.7);
            assert_eq!(buckets.len(), count);
            assert_eq!(buckets[0].time, first_label);
            assert_eq!(buckets[count - 1].time, last_label);
            assert!(buckets
                .iter()
                .all(|b| b.status == -1 && b.availability == -1.0 && b.latency == 0));
            assert_eq!(uptime, -1.0);
            assert_eq!(w.bucket_of(NOW), Some(count - 1));
            assert_eq!(w.bucket_of(first), Some(0));
            assert_eq!(w.bucket_of(first - 1), None);
            assert_eq!(w.bucket_of(w.end()), None);
        }
    }

    #[test]
    fn buckets_take_the_worst_status_and_weighted_availability() {
        let w = Period::Day.window(NOW);
        let tally = |bucket, status, count, latency_sum| Tally {
            bucket,
            status,
            count,
            latency_sum,
        };
        let tallies = [
            tally(23, 1, 60, 60 * 200),
            tally(22, 1, 50, 50 * 100),
            tally(22, 2, 10, 10 * 700),
            tally(21, 1, 3, 300),
            tally(21, 2, 1, 900),
            tally(21, 0, 1, 10_000),
            tally(20, 0, 2, 50),
        ];
        let (b, uptime) = build(&w, &tallies, 0.7);
        assert_eq!((b[23].status, b[23].latency, b[23].availability), (1, 200, 100.0));
        assert_eq!((b[22].status, b[22].latency), (2, (5_000 + 7_000) / 60));
        assert_eq!(b[22].availability, round2(100.0 * (50.0 + 7.0) / 60.0));
        // red dominates; red latency is left out of the mean
        assert_eq!(
            (b[21].status, b[21].latency, b[21].counts),
            (
                0,
                300,
                Counts {
                    green: 3,
                    yellow: 1,
                    red: 1
                }
            )
        );
        assert_eq!(b[21].availability, 74.0);
        assert_eq!((b[20].status, b[20].latency, b[20].availability), (0, 0, 0.0));
        assert_eq!(b[19].status, -1);
        // uptime is weighted by probe count, not a mean of bucket percentages
        let expected = round2(100.0 * (113.0 + 11.0 * 0.7) / 127.0);
        assert_eq!(uptime, expected);
    }

    #[test]
    fn unknown_status_and_out_of_range_buckets_are_ignored() {
        let w = Period::Week.window(NOW);
        let (b, uptime) = build(
            &w,
            &[
                Tally {
                    bucket: 7,
                    status: 1,
                    count: 5,
                    latency_sum: 5,
                },
                Tally {
                    bucket: 0,
                    status: 9,
                    count: 1,
                    latency_sum: 1,
                },
            ],
            0.7,
        );
        assert!(b.iter().all(|b| b.counts.total() == 0));
        assert_eq!(uptime, -1.0);
    }
}
