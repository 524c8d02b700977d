//! Pure bucketing of a period's results into the API's timeline (SPEC section 6): UTC-aligned
//! buckets, worst status, mean latency of non-red probes, weighted availability and uptime.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use super::rollup::Agg;

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

    /// The bucket's `time`, formatted once per thread and shared: a 30-day answer for 100
    /// monitors needs 30 distinct labels, not 3,000 formatted strings.
    fn label(&self, start: i64) -> Arc<str> {
        thread_local! {
            static LABELS: RefCell<HashMap<(i64, bool), Arc<str>>> = RefCell::new(HashMap::new());
        }
        let hourly = self.period == Period::Day;
        LABELS.with(|labels| {
            let mut labels = labels.borrow_mut();
            if labels.len() > 4_096 {
                labels.clear();
            }
            labels
                .entry((start, hourly))
                .or_insert_with(|| {
                    let Some(time) = chrono::DateTime::from_timestamp(start, 0) else { return Arc::from("") };
                    let format = if hourly { "%H:%M" } else { "%Y-%m-%d" };
                    Arc::from(time.format(format).to_string())
                })
                .clone()
        })
    }
}

/// One stored probe, as far as the timeline needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub ts: i64,
    pub status: i16,
    pub latency_ms: i64,
    pub ttft_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub green: i64,
    pub yellow: i64,
    pub red: i64,
    /// Probes inside a maintenance window (counted in no colour).
    pub maintenance: i64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.green += other.green;
        self.yellow += other.yellow;
        self.red += other.red;
        self.maintenance += other.maintenance;
    }

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

    /// The worst colour seen: red over yellow over green; -2 when every probe was in
    /// maintenance; -1 when empty.
    pub fn worst_status(&self) -> i16 {
        if self.red > 0 {
            0
        } else if self.yellow > 0 {
            2
        } else if self.green > 0 {
            1
        } else if self.maintenance > 0 {
            -2
        } else {
            -1
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    pub time: Arc<str>,
    pub timestamp: i64,
    pub status: i16,
    pub latency: i64,
    /// Percentiles of the non-red probes' latency and time to first token; null when none.
    pub latency_p50: Option<i64>,
    pub latency_p95: Option<i64>,
    pub ttft_p50: Option<i64>,
    pub ttft_p95: Option<i64>,
    pub availability: f64,
    pub counts: Counts,
    /// The red and yellow probes' reasons, with how many had each.
    pub reasons: std::collections::BTreeMap<&'static str, u64>,
    /// What the bucket's probes cost (every node's), USD; null when none had a cost.
    pub cost_usd: Option<f64>,
}

/// Nano-USD as USD.
pub fn usd(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

use crate::stats::percentile;

/// Builds every bucket of `window` (empty ones included) and the period's uptime, weighted by
/// probe count, directly from raw rows: the reference the rollups are checked against.
pub fn build(window: &Window, samples: &[Sample], degraded_weight: f64) -> (Vec<Bucket>, f64) {
    let mut counts = vec![Counts::default(); window.count];
    let mut latencies: Vec<Vec<i64>> = vec![Vec::new(); window.count];
    let mut ttfts: Vec<Vec<i64>> = vec![Vec::new(); window.count];
    for sample in samples {
        let Some(bucket) = window.bucket_of(sample.ts) else { continue };
        let c = &mut counts[bucket];
        match sample.status {
            0 => c.red += 1,
            1 => c.green += 1,
            2 => c.yellow += 1,
            super::rollup::MAINTENANCE => {
                c.maintenance += 1;
                continue;
            }
            _ => continue,
        }
        if sample.status != 0 {
            latencies[bucket].push(sample.latency_ms);
            if let Some(ttft) = sample.ttft_ms {
                ttfts[bucket].push(ttft);
            }
        }
    }
    let mut total = Counts::default();
    let buckets = counts
        .iter()
        .zip(latencies.iter_mut().zip(ttfts.iter_mut()))
        .enumerate()
        .map(|(i, (c, (latency, ttft)))| {
            total.add(c);
            latency.sort_unstable();
            ttft.sort_unstable();
            let non_red = latency.len() as i64;
            let stats = Stats {
                mean: if non_red > 0 { (latency.iter().sum::<i64>() + non_red / 2) / non_red } else { 0 },
                latency_p50: percentile(latency, 50.0),
                latency_p95: percentile(latency, 95.0),
                ttft_p50: percentile(ttft, 50.0),
                ttft_p95: percentile(ttft, 95.0),
            };
            window.bucket(i, c, stats, degraded_weight)
        })
        .collect();
    (buckets, total.availability(degraded_weight))
}

/// The same from per-bucket aggregates (`None` for an empty bucket): how the API answers.
pub fn from_aggs(window: &Window, aggs: &[Option<&Agg>], degraded_weight: f64) -> (Vec<Bucket>, f64) {
    let mut total = Counts::default();
    let empty = Agg::default();
    let buckets = (0..window.count)
        .map(|i| {
            let agg = aggs.get(i).copied().flatten().unwrap_or(&empty);
            let c = agg.counts();
            total.add(&c);
            let non_red = (agg.green + agg.yellow) as i64;
            let as_i64 = |v: Option<u32>| v.map(i64::from);
            let stats = Stats {
                mean: if non_red > 0 { (agg.latency_sum as i64 + non_red / 2) / non_red } else { 0 },
                latency_p50: as_i64(agg.latency.percentile(50.0)),
                latency_p95: as_i64(agg.latency.percentile(95.0)),
                ttft_p50: as_i64(agg.ttft.percentile(50.0)),
                ttft_p95: as_i64(agg.ttft.percentile(95.0)),
            };
            Bucket {
                reasons: agg.reasons.named(),
                cost_usd: agg.cost_nanos.map(usd),
                ..window.bucket(i, &c, stats, degraded_weight)
            }
        })
        .collect();
    (buckets, total.availability(degraded_weight))
}

struct Stats {
    mean: i64,
    latency_p50: Option<i64>,
    latency_p95: Option<i64>,
    ttft_p50: Option<i64>,
    ttft_p95: Option<i64>,
}

impl Window {
    fn bucket(&self, i: usize, c: &Counts, stats: Stats, degraded_weight: f64) -> Bucket {
        let start = self.first_start + self.size * i as i64;
        Bucket {
            time: self.label(start),
            timestamp: start,
            status: c.worst_status(),
            latency: stats.mean,
            latency_p50: stats.latency_p50,
            latency_p95: stats.latency_p95,
            ttft_p50: stats.ttft_p50,
            ttft_p95: stats.ttft_p95,
            availability: c.availability(degraded_weight),
            counts: *c,
            reasons: Default::default(),
            cost_usd: None,
        }
    }
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
            (Period::Week, 7, 86_400, 1_735_516_800 - 6 * 86_400, "2024-12-24", "2024-12-30"),
            (Period::Month, 30, 86_400, 1_735_516_800 - 29 * 86_400, "2024-12-01", "2024-12-30"),
        ];
        for (period, count, size, first, first_label, last_label) in rows {
            let w = period.window(NOW);
            assert_eq!((w.count, w.size, w.first_start), (count, size, first), "{period:?}");
            let (buckets, uptime) = build(&w, &[], 0.7);
            assert_eq!(buckets.len(), count);
            assert_eq!(&*buckets[0].time, first_label);
            assert_eq!(&*buckets[count - 1].time, last_label);
            assert!(buckets.iter().all(|b| b.status == -1 && b.availability == -1.0 && b.latency == 0));
            assert_eq!(uptime, -1.0);
            assert_eq!(w.bucket_of(NOW), Some(count - 1));
            assert_eq!(w.bucket_of(first), Some(0));
            assert_eq!(w.bucket_of(first - 1), None);
            assert_eq!(w.bucket_of(w.end()), None);
        }
    }

    fn sample(ts: i64, status: i16, latency_ms: i64, ttft_ms: Option<i64>) -> Sample {
        Sample { ts, status, latency_ms, ttft_ms }
    }

    #[test]
    fn buckets_take_the_worst_status_and_weighted_availability() {
        let w = Period::Day.window(NOW);
        let hour = |b: usize| w.first_start + 3_600 * b as i64;
        let mut samples = Vec::new();
        samples.extend((0..60).map(|i| sample(hour(23) + i, 1, 200, None)));
        samples.extend((0..50).map(|i| sample(hour(22) + i, 1, 100, None)));
        samples.extend((0..10).map(|i| sample(hour(22) + 100 + i, 2, 700, None)));
        samples.extend((0..3).map(|i| sample(hour(21) + i, 1, 100, None)));
        samples.push(sample(hour(21) + 10, 2, 900, None));
        samples.push(sample(hour(21) + 11, 0, 10_000, None));
        samples.extend((0..2).map(|i| sample(hour(20) + i, 0, 25, None)));
        samples.push(sample(w.first_start - 1, 1, 1, None));
        samples.push(sample(w.end(), 1, 1, None));
        let (b, uptime) = build(&w, &samples, 0.7);
        assert_eq!((b[23].status, b[23].latency, b[23].availability), (1, 200, 100.0));
        assert_eq!((b[22].status, b[22].latency), (2, (5_000 + 7_000) / 60));
        assert_eq!(b[22].availability, round2(100.0 * (50.0 + 7.0) / 60.0));
        // red dominates; red latency is left out of the mean
        assert_eq!(
            (b[21].status, b[21].latency, b[21].counts),
            (0, 300, Counts { green: 3, yellow: 1, red: 1, maintenance: 0 })
        );
        assert_eq!(b[21].availability, 74.0);
        assert_eq!((b[20].status, b[20].latency, b[20].availability), (0, 0, 0.0));
        assert_eq!(b[19].status, -1);
        // uptime is weighted by probe count, not a mean of bucket percentages
        let expected = round2(100.0 * (113.0 + 11.0 * 0.7) / 127.0);
        assert_eq!(uptime, expected);
    }

    #[test]
    fn percentiles_are_nearest_rank_over_non_red_probes() {
        let w = Period::Day.window(NOW);
        let t = w.first_start;
        let mut samples: Vec<Sample> = (1..=100).map(|i| sample(t + i, 1, i * 10, Some(i))).collect();
        samples.push(sample(t, 0, 1_000_000, Some(1_000_000)));
        samples.push(sample(t + 200, 2, 5, None));
        let (b, _) = build(&w, &samples, 0.7);
        // 101 non-red latencies: 5, 10, 20, ..., 1000
        assert_eq!((b[0].latency_p50, b[0].latency_p95), (Some(500), Some(950)));
        assert_eq!((b[0].ttft_p50, b[0].ttft_p95), (Some(50), Some(95)));
        assert_eq!((b[1].latency_p50, b[1].ttft_p95), (None, None));
    }

    #[test]
    fn unknown_statuses_are_ignored() {
        let w = Period::Week.window(NOW);
        let (b, uptime) = build(&w, &[sample(NOW, 9, 1, None)], 0.7);
        assert!(b.iter().all(|b| b.counts.total() == 0));
        assert_eq!(uptime, -1.0);
    }

    #[test]
    fn maintenance_probes_count_in_no_colour_and_a_bucket_of_only_them_is_minus_two() {
        let window = Period::Day.window(NOW);
        let hour = |h: i64| window.first_start + h * 3_600 + 60;
        let m = crate::store::rollup::MAINTENANCE;
        let samples = [
            sample(hour(20), m, 100, None),
            sample(hour(20) + 1, m, 100, None),
            sample(hour(21), m, 100, None),
            sample(hour(21) + 1, 1, 100, None),
            sample(hour(21) + 2, 0, 100, None),
        ];
        let (b, uptime) = build(&window, &samples, 0.7);
        assert_eq!((b[20].status, b[20].availability, b[20].counts.maintenance), (-2, -1.0, 2));
        assert_eq!((b[21].status, b[21].availability, b[21].counts.total()), (0, 50.0, 2));
        assert_eq!(uptime, 50.0);
        let (_, only_maintenance) = build(&window, &samples[..3], 0.7);
        assert_eq!(only_maintenance, -1.0);
    }
}
