//! Several probing nodes, one answer: a monitor's combined status under the `quorum` rule.
//!
//! - A node's part of a monitor is **stale** when its newest probe is older than 3 of its
//!   intervals (or it has none): it is left out of the quorum and never counted as red.
//! - The combined **current** status is red when at least `quorum.needed(n)` of the `n`
//!   non-stale nodes' latest probes are red; otherwise it is the worst of the non-red ones.
//! - A combined **bucket** (and so the uptime) takes, of the nodes with probes in it, the red
//!   share that `needed(n)` of them reach (the `needed`-th largest): under `majority` a
//!   minority's red probes make no red. Its counts keep the bucket's total, with the red ones
//!   the agreed share and the rest split between green and yellow as all nodes saw them; its
//!   latency and TTFT sketches merge every node's.

use super::db::Row;
use super::rollup::{Agg, History};
use super::timeline::{self, Bucket, Period};
use crate::config::Quorum;

/// How many intervals without a stored probe make a node's part stale.
pub const STALE_INTERVALS: i64 = 3;

/// One node's part of a monitor.
#[derive(Debug, Clone, Copy)]
pub struct Part<'a> {
    pub node: i32,
    pub history: &'a History,
    pub latest: Option<&'a Row>,
    /// The monitor's interval on that node, seconds (`None`: unknown, never stale by time).
    pub interval: Option<i64>,
}

impl Part<'_> {
    pub fn stale(&self, now: i64) -> bool {
        match (self.latest, self.interval) {
            (None, _) => true,
            (Some(row), Some(interval)) => row.ts < now - STALE_INTERVALS * interval.max(1),
            (Some(_), None) => false,
        }
    }
}

/// Which of the non-stale nodes' latest probes, given as (status, time), the combined status
/// shows: the newest red one when at least the quorum of them are red, otherwise the newest of
/// the worst non-red ones (yellow, else green). `None` when there are none.
pub fn pick(latest: &[(i16, i64)], quorum: Quorum) -> Option<usize> {
    let red = latest.iter().filter(|(status, _)| *status == 0).count();
    let wanted = if red > 0 && red >= quorum.needed(latest.len()) {
        0
    } else if latest.iter().any(|(status, _)| *status == 2) {
        2
    } else {
        1
    };
    (0..latest.len()).filter(|&i| latest[i].0 == wanted).max_by_key(|&i| latest[i].1)
}

/// The latest probe the combined current status shows (see [`pick`]); `None` when every part
/// is stale.
pub fn current<'a>(parts: &[Part<'a>], quorum: Quorum, now: i64) -> Option<&'a Row> {
    let live: Vec<&Row> = parts.iter().filter(|p| !p.stale(now)).filter_map(|p| p.latest).collect();
    let statuses: Vec<(i16, i64)> = live.iter().map(|r| (r.status, r.ts)).collect();
    pick(&statuses, quorum).map(|i| live[i])
}

/// One bucket of several nodes combined (see the module's comment).
pub fn bucket(aggs: &[&Agg], quorum: Quorum) -> Agg {
    let mut merged = Agg::default();
    for agg in aggs {
        merged.merge(agg);
    }
    let voting: Vec<&&Agg> = aggs.iter().filter(|a| a.green + a.yellow + a.red > 0).collect();
    if voting.len() <= 1 {
        return merged;
    }
    let mut shares: Vec<f64> = voting.iter().map(|a| a.red as f64 / (a.green + a.yellow + a.red) as f64).collect();
    shares.sort_by(|a, b| b.total_cmp(a));
    let share = shares[quorum.needed(voting.len()) - 1];
    let total = merged.green + merged.yellow + merged.red;
    let mut red = ((share * total as f64).round() as u64).min(total);
    // A share above zero stays visible: never rounded away to no red at all.
    if share > 0.0 && red == 0 {
        red = 1;
    }
    let non_red = total - red;
    let seen_non_red = merged.green + merged.yellow;
    let yellow = if seen_non_red == 0 {
        0
    } else {
        ((merged.yellow as f64 * non_red as f64 / seen_non_red as f64).round() as u64).min(non_red)
    };
    merged.red = red;
    merged.yellow = yellow;
    merged.green = non_red - yellow;
    merged
}

/// The period's combined buckets and uptime from several nodes' histories.
pub fn timeline(
    histories: &[&History],
    quorum: Quorum,
    period: Period,
    now: i64,
    degraded_weight: f64,
) -> (Vec<Bucket>, f64) {
    if let [only] = histories {
        return only.timeline(period, now, degraded_weight);
    }
    let window = period.window(now);
    let first = window.first_start.div_euclid(window.size);
    let combined: Vec<Option<Agg>> = (0..window.count as i64)
        .map(|i| {
            let aggs: Vec<&Agg> = histories.iter().filter_map(|h| h.bucket(period, first + i)).collect();
            (!aggs.is_empty()).then(|| bucket(&aggs, quorum))
        })
        .collect();
    let refs: Vec<Option<&Agg>> = combined.iter().map(Option::as_ref).collect();
    timeline::from_aggs(&window, &refs, degraded_weight)
}

/// A monitor of several models: each bucket combined over each model's nodes under `quorum`,
/// then over the models under `rule` (`models[i]`: the histories of model i's nodes).
pub fn models_timeline(
    models: &[Vec<&History>],
    quorum: Quorum,
    rule: Quorum,
    period: Period,
    now: i64,
    degraded_weight: f64,
) -> (Vec<Bucket>, f64) {
    let window = period.window(now);
    let first = window.first_start.div_euclid(window.size);
    let combined: Vec<Option<Agg>> = (0..window.count as i64)
        .map(|i| {
            let per_model: Vec<Agg> = models
                .iter()
                .filter_map(|histories| {
                    let aggs: Vec<&Agg> = histories.iter().filter_map(|h| h.bucket(period, first + i)).collect();
                    (!aggs.is_empty()).then(|| bucket(&aggs, quorum))
                })
                .collect();
            let refs: Vec<&Agg> = per_model.iter().collect();
            (!refs.is_empty()).then(|| bucket(&refs, rule))
        })
        .collect();
    let refs: Vec<Option<&Agg>> = combined.iter().map(Option::as_ref).collect();
    timeline::from_aggs(&window, &refs, degraded_weight)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_735_559_160;

    fn agg(green: u64, yellow: u64, red: u64) -> Agg {
        let mut a = Agg::default();
        for _ in 0..green {
            a.add(1, 100, None);
        }
        for _ in 0..yellow {
            a.add(2, 900, None);
        }
        for _ in 0..red {
            a.add(0, 0, None);
        }
        a
    }

    fn row(node: i32, ts: i64, status: i16) -> Row {
        Row { node_id: node, ts, status, ..Row::default() }
    }

    #[test]
    fn a_minority_red_is_not_red_under_majority_and_is_under_one() {
        let (g, r) = (agg(60, 0, 0), agg(0, 0, 60));
        let majority = bucket(&[&g, &g, &r], Quorum::Majority);
        assert_eq!((majority.green, majority.yellow, majority.red), (180, 0, 0));
        let one = bucket(&[&g, &g, &r], Quorum::One);
        assert_eq!((one.green, one.red), (0, 180));
        let all = bucket(&[&r, &r, &g], Quorum::All);
        assert_eq!(all.red, 0);
        let all_red = bucket(&[&r, &r, &r], Quorum::All);
        assert_eq!(all_red.red, 180);
        // Two of three red: a majority.
        assert_eq!(bucket(&[&r, &r, &g], Quorum::Majority).red, 180);
    }

    #[test]
    fn shares_combine_by_the_needed_largest_and_keep_the_total() {
        // Red shares 0.5, 0.1, 0.0: majority (2 of 3) agrees on 0.1.
        let (a, b, c) = (agg(30, 0, 30), agg(50, 4, 6), agg(60, 0, 0));
        let m = bucket(&[&a, &b, &c], Quorum::Majority);
        assert_eq!(m.green + m.yellow + m.red, 180);
        assert_eq!(m.red, 18);
        assert!(m.yellow > 0, "the yellow share survives: {m:?}");
        // A node with no probes in the bucket does not vote.
        let empty = Agg::default();
        assert_eq!(bucket(&[&a, &empty], Quorum::All).red, 30);
    }

    #[test]
    fn every_nodes_probes_cost_whatever_the_quorum_says() {
        let (mut a, mut b, c) = (agg(2, 0, 0), agg(0, 0, 2), agg(1, 0, 0));
        a.add_cost(Some(300));
        a.add_cost(Some(200));
        b.add_cost(Some(1_000));
        for quorum in [Quorum::One, Quorum::Majority, Quorum::All] {
            assert_eq!(bucket(&[&a, &b, &c], quorum).cost_nanos, Some(1_500), "{quorum:?}");
        }
        assert_eq!(bucket(&[&c, &c], Quorum::Majority).cost_nanos, None, "no priced probe: no cost");
    }

    #[test]
    fn stale_nodes_are_left_out_of_the_current_status_and_never_red() {
        let h = History::default();
        let (fresh_green, stale_red, fresh_red) = (row(1, NOW - 30, 1), row(2, NOW - 400, 0), row(3, NOW - 10, 0));
        let part = |node, latest: &'static Row| Part { node, history: &h, latest: Some(latest), interval: Some(60) };
        let (a, b, c) =
            (Box::leak(Box::new(fresh_green)), Box::leak(Box::new(stale_red)), Box::leak(Box::new(fresh_red)));
        let parts = [part(1, a), part(2, b)];
        assert!(parts[1].stale(NOW));
        // One live node, green: green, whatever the stale one said.
        assert_eq!(current(&parts, Quorum::One, NOW).map(|r| r.status), Some(1));
        // Green + red live: red needs 2 under majority, 1 under `1`.
        let parts = [part(1, a), part(3, c)];
        assert_eq!(current(&parts, Quorum::Majority, NOW).map(|r| r.status), Some(1));
        assert_eq!(current(&parts, Quorum::One, NOW).map(|r| r.node_id), Some(3));
        // All stale: no current status.
        assert_eq!(current(&[part(2, b)], Quorum::One, NOW), None);
    }

    #[test]
    fn models_combine_under_their_rule_after_their_nodes() {
        // Three models on one node; one of them red all along.
        let (mut green, mut red) = (History::default(), History::default());
        for t in [NOW - 300, NOW - 200, NOW - 100] {
            green.add(t, 1, 100, None);
            red.add(t, 0, 0, None);
        }
        let models = vec![vec![&green], vec![&green], vec![&red]];
        let (_, any) = models_timeline(&models, Quorum::Majority, Quorum::One, Period::Day, NOW, 0.7);
        let (_, majority) = models_timeline(&models, Quorum::Majority, Quorum::Majority, Period::Day, NOW, 0.7);
        assert_eq!((any, majority), (0.0, 100.0));
        // One model alone is its own timeline.
        let (one, _) = models_timeline(&[vec![&red]], Quorum::Majority, Quorum::All, Period::Day, NOW, 0.7);
        assert_eq!(format!("{one:?}"), format!("{:?}", red.timeline(Period::Day, NOW, 0.7).0));
    }

    #[test]
    fn one_node_is_exactly_its_own_timeline() {
        let mut h = History::default();
        h.add(NOW - 100, 0, 0, None);
        h.add(NOW - 50, 1, 300, None);
        for period in [Period::Day, Period::Week, Period::Month] {
            assert_eq!(
                format!("{:?}", timeline(&[&h], Quorum::Majority, period, NOW, 0.7)),
                format!("{:?}", h.timeline(period, NOW, 0.7))
            );
        }
    }
}
