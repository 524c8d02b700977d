//! Per-monitor aggregates of probe results by hour and by day: colour counts, the latency sum
//! and percentile sketches. The StoreActor keeps the recent ones in memory (updated with every
//! batch it writes) and the hourly ones in the database, so a status query reads a few hundred
//! aggregates instead of millions of rows.

use std::collections::BTreeMap;

use super::sketch::Sketch;
use super::timeline::{self, Bucket, Counts, Period};

pub const HOUR: i64 = 3_600;
pub const DAY: i64 = 86_400;
/// The status an aggregate counts a probe under when it was made inside a maintenance window
/// (never stored as a probe's status: the probe keeps its colour and a mark).
pub const MAINTENANCE: i16 = 3;

/// Everything a timeline bucket needs about the probes in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Agg {
    pub green: u64,
    pub yellow: u64,
    pub red: u64,
    /// Probes made inside a maintenance window: in no colour, so out of availability and uptime.
    pub maintenance: u64,
    /// Sum of the latency of non-red probes.
    pub latency_sum: u64,
    /// Latency of non-red probes.
    pub latency: Sketch,
    /// Time to first token of non-red probes that have one.
    pub ttft: Sketch,
    /// How many of the red and yellow probes (outside maintenance) had each reason, by code.
    pub reasons: Reasons,
    /// What the probes cost, nano-USD (maintenance included: they were paid for); `None` when
    /// no probe had a cost.
    pub cost_nanos: Option<u64>,
}

/// Counts by reason code, stored as text: `code:count` pairs joined by commas, codes ascending
/// (`"6:3,7:1"`); an empty text is no reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reasons(pub BTreeMap<i16, u64>);

impl Reasons {
    pub fn add(&mut self, code: i16, count: u64) {
        if count > 0 {
            *self.0.entry(code).or_default() += count;
        }
    }

    pub fn merge(&mut self, other: &Reasons) {
        for (code, count) in &other.0 {
            self.add(*code, *count);
        }
    }

    pub fn encode(&self) -> String {
        let pairs: Vec<String> = self.0.iter().map(|(code, count)| format!("{code}:{count}")).collect();
        pairs.join(",")
    }

    /// The stored text back; a malformed pair is skipped, never an error.
    pub fn decode(text: &str) -> Reasons {
        let mut out = Reasons::default();
        for pair in text.split(',') {
            if let Some((code, count)) = pair.split_once(':') {
                if let (Ok(code), Ok(count)) = (code.trim().parse(), count.trim().parse()) {
                    out.add(code, count);
                }
            }
        }
        out
    }

    /// By name (`{"server_error": 3}`); codes this build does not know are left out.
    pub fn named(&self) -> BTreeMap<&'static str, u64> {
        self.0
            .iter()
            .filter_map(|(code, count)| crate::domain::Reason::from_code(*code).map(|r| (r.as_str(), *count)))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Agg {
    pub fn add(&mut self, status: i16, latency_ms: i64, ttft_ms: Option<i64>) {
        match status {
            0 => self.red += 1,
            1 => self.green += 1,
            2 => self.yellow += 1,
            MAINTENANCE => {
                self.maintenance += 1;
                return;
            }
            _ => return,
        }
        if status != 0 {
            let latency = latency_ms.clamp(0, i64::from(u32::MAX));
            self.latency_sum += latency as u64;
            self.latency.add(latency as u32);
            if let Some(ttft) = ttft_ms {
                self.ttft.add(ttft.clamp(0, i64::from(u32::MAX)) as u32);
            }
        }
    }

    /// Counts a red or yellow probe's reason (call after [`Agg::add`] with the same status).
    pub fn add_reason(&mut self, status: i16, reason: i16) {
        if status == 0 || status == 2 {
            self.reasons.add(reason, 1);
        }
    }

    /// Counts a probe's cost, whatever its status.
    pub fn add_cost(&mut self, cost_nanos: Option<i64>) {
        if let Some(cost) = cost_nanos {
            self.cost_nanos = Some(self.cost_nanos.unwrap_or(0).saturating_add(cost.max(0) as u64));
        }
    }

    pub fn merge(&mut self, other: &Agg) {
        self.reasons.merge(&other.reasons);
        if let Some(cost) = other.cost_nanos {
            self.cost_nanos = Some(self.cost_nanos.unwrap_or(0).saturating_add(cost));
        }
        self.green += other.green;
        self.yellow += other.yellow;
        self.red += other.red;
        self.maintenance += other.maintenance;
        self.latency_sum += other.latency_sum;
        self.latency.merge(&other.latency);
        self.ttft.merge(&other.ttft);
    }

    pub fn counts(&self) -> Counts {
        Counts {
            green: self.green as i64,
            yellow: self.yellow as i64,
            red: self.red as i64,
            maintenance: self.maintenance as i64,
        }
    }
}

/// One monitor's recent aggregates: hours for the 24 h view, days for 7 d and 30 d.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    hours: BTreeMap<i64, Agg>,
    days: BTreeMap<i64, Agg>,
}

impl History {
    pub fn add(&mut self, ts: i64, status: i16, latency_ms: i64, ttft_ms: Option<i64>) {
        self.add_with_reason(ts, status, latency_ms, ttft_ms, None, None);
    }

    /// [`History::add`], counting the probe's reason (a code) when it is red or yellow, and its
    /// cost (nano-USD) when it has one.
    pub fn add_with_reason(
        &mut self,
        ts: i64,
        status: i16,
        latency_ms: i64,
        ttft_ms: Option<i64>,
        reason: Option<i16>,
        cost_nanos: Option<i64>,
    ) {
        for agg in
            [self.hours.entry(ts.div_euclid(HOUR)).or_default(), self.days.entry(ts.div_euclid(DAY)).or_default()]
        {
            agg.add(status, latency_ms, ttft_ms);
            if let Some(reason) = reason {
                agg.add_reason(status, reason);
            }
            agg.add_cost(cost_nanos);
        }
    }

    /// Adds a stored hourly aggregate (at start-up): to its day, and to the hours if recent.
    pub fn add_hour(&mut self, hour: i64, agg: &Agg, now: i64) {
        self.days.entry((hour * HOUR).div_euclid(DAY)).or_default().merge(agg);
        if hour >= now.div_euclid(HOUR) - 48 {
            self.hours.entry(hour).or_default().merge(agg);
        }
    }

    /// Sets an hour's aggregate as stored (another node's, read back whole) and sums its day
    /// again from its hours. Only hours whose whole day is still held are taken (changes come
    /// for the current hour and late results for the one before).
    pub fn set_hour(&mut self, hour: i64, agg: Agg, now: i64) {
        let day = (hour * HOUR).div_euclid(DAY);
        let first_hour = day * (DAY / HOUR);
        if first_hour < now.div_euclid(HOUR) - 48 {
            return;
        }
        self.hours.insert(hour, agg);
        let mut sum = Agg::default();
        for (_, agg) in self.hours.range(first_hour..first_hour + DAY / HOUR) {
            sum.merge(agg);
        }
        self.days.insert(day, sum);
    }

    /// The hour's aggregate, if held.
    pub fn hour(&self, hour: i64) -> Option<&Agg> {
        self.hours.get(&hour)
    }

    /// The aggregate of a period's bucket (an hour for 24 h, a day otherwise), if held.
    pub fn bucket(&self, period: Period, index: i64) -> Option<&Agg> {
        if period == Period::Day {
            self.hours.get(&index)
        } else {
            self.days.get(&index)
        }
    }

    /// Forgets everything before `hour` (after a purge): whole hours and days go; the day holding
    /// `hour` is left for [`History::replace_day`] to sum again from the hours still stored.
    pub fn forget_before(&mut self, hour: i64) {
        self.hours = self.hours.split_off(&hour);
        self.days = self.days.split_off(&(hour * HOUR).div_euclid(DAY));
    }

    /// Sets (or, with an empty aggregate, removes) a day's aggregate.
    pub fn replace_day(&mut self, day: i64, agg: Agg) {
        if agg == Agg::default() {
            self.days.remove(&day);
        } else {
            self.days.insert(day, agg);
        }
    }

    /// Drops what no window can show any more (hours older than two days, days older than 31).
    pub fn prune(&mut self, now: i64) {
        let first_hour = now.div_euclid(HOUR) - 48;
        let first_day = now.div_euclid(DAY) - 31;
        self.hours = self.hours.split_off(&first_hour);
        self.days = self.days.split_off(&first_day);
    }

    /// The period's buckets and uptime, as [`timeline::build`] computes them from raw rows.
    pub fn timeline(&self, period: Period, now: i64, degraded_weight: f64) -> (Vec<Bucket>, f64) {
        let window = period.window(now);
        let map = if period == Period::Day { &self.hours } else { &self.days };
        let first = window.first_start.div_euclid(window.size);
        let aggs: Vec<Option<&Agg>> = (0..window.count as i64).map(|i| map.get(&(first + i))).collect();
        timeline::from_aggs(&window, &aggs, degraded_weight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::timeline::{build, Sample};

    // 2024-12-30 11:46:00 UTC
    const NOW: i64 = 1_735_559_160;

    fn samples() -> Vec<Sample> {
        // A pseudo-random spread over 32 days, across hour and day boundaries.
        let mut out = Vec::new();
        let mut x: u64 = 42;
        for _ in 0..20_000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let ts = NOW - (x >> 33) as i64 % (32 * DAY);
            let status = [1, 1, 1, 1, 2, 0][(x >> 20) as usize % 6];
            let latency = (x >> 40) as i64 % 5_000;
            let ttft = ((x >> 12) % 3 == 0).then_some(latency / 3);
            out.push(Sample { ts, status, latency_ms: latency, ttft_ms: ttft });
        }
        out
    }

    /// The rollups answer what the raw rows answer: counts, availability and mean latency
    /// exactly, percentiles to within a sketch bin.
    #[test]
    fn rollups_agree_with_raw_rows() {
        let raw = samples();
        let mut history = History::default();
        for s in &raw {
            history.add(s.ts, s.status, s.latency_ms, s.ttft_ms);
        }
        history.prune(NOW);
        // Rebuilt from hourly aggregates, as after a restart.
        let mut hourly: BTreeMap<i64, Agg> = BTreeMap::new();
        for s in &raw {
            hourly.entry(s.ts.div_euclid(HOUR)).or_default().add(s.status, s.latency_ms, s.ttft_ms);
        }
        let mut restarted = History::default();
        for (hour, agg) in &hourly {
            restarted.add_hour(*hour, agg, NOW);
        }
        restarted.prune(NOW);
        for period in [Period::Day, Period::Week, Period::Month] {
            let (want, want_uptime) = build(&period.window(NOW), &raw, 0.7);
            for (name, h) in [("live", &history), ("restarted", &restarted)] {
                let (got, uptime) = h.timeline(period, NOW, 0.7);
                assert_eq!(uptime, want_uptime, "{name} {period:?}");
                assert_eq!(got.len(), want.len());
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!(
                        (g.timestamp, &g.time, g.status, g.latency, g.availability, g.counts),
                        (w.timestamp, &w.time, w.status, w.latency, w.availability, w.counts),
                        "{name} {period:?}"
                    );
                    for (a, b) in [
                        (g.latency_p50, w.latency_p50),
                        (g.latency_p95, w.latency_p95),
                        (g.ttft_p50, w.ttft_p50),
                        (g.ttft_p95, w.ttft_p95),
                    ] {
                        match (a, b) {
                            (Some(a), Some(b)) => {
                                assert!((a - b).abs() as f64 <= b as f64 / 32.0 + 0.5, "{name} {period:?}: {a} vs {b}")
                            }
                            (a, b) => assert_eq!(a, b),
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn pruning_keeps_what_the_windows_show() {
        let mut h = History::default();
        h.add(NOW - 40 * DAY, 1, 1, None);
        h.add(NOW - 3 * DAY, 1, 1, None);
        h.add(NOW, 1, 1, None);
        h.prune(NOW);
        assert_eq!(h.days.len(), 2);
        assert_eq!(h.hours.len(), 1);
    }
}
