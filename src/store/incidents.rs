//! Incidents, computed from stored probes. The store keeps every run of consecutive red probes
//! of a monitor on a node (outside maintenance windows) in `red_runs`, moved forward with each
//! batch it writes (and rebuilt from the raw probes after a migration), so live, generated and
//! migrated history give the same runs. An **incident** is a run of at least the monitor's
//! `failure_threshold` red probes; its downtime runs from its first red probe to the first probe
//! after it that is not red (or to now, while it lasts). Seen from several nodes, a monitor's
//! overlapping incidents are one.

use std::collections::BTreeMap;

use super::rollup::Reasons;

/// How long a probe may be missing before a run is taken to have ended at its last red probe:
/// 3 of the monitor's intervals (as a node goes stale), or 15 minutes when the interval is not
/// known (history written by a tool).
pub fn gap_of(interval_s: Option<i32>) -> i64 {
    interval_s.map_or(super::db::MAX_DISORDER_SECS, |i| super::combine::STALE_INTERVALS * i64::from(i.max(1)))
}

/// One run of red probes as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub monitor_id: i32,
    pub node_id: i32,
    /// The first red probe's time.
    pub start: i64,
    /// The first probe after the run that is not red, or its last red probe when no probe came
    /// for longer than [`gap_of`] (the node stopped, or stopped probing the monitor); `None`
    /// while it lasts.
    pub end: Option<i64>,
    /// The last red probe's time.
    pub last: i64,
    pub reds: i64,
    pub reasons: Reasons,
    /// The monitor's interval on that node at the last red probe, seconds.
    pub interval_s: Option<i32>,
}

impl Run {
    /// The run as of `now`: one still open whose last red probe is older than [`gap_of`] its
    /// interval ended there (nothing probed the monitor since: a node gone, a monitor removed).
    pub fn as_of(mut self, now: i64) -> Run {
        if self.end.is_none() && self.last < now - gap_of(self.interval_s) {
            self.end = Some(self.last);
        }
        self
    }
}

/// One probe, as runs see it.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    pub ts: i64,
    pub red: bool,
    pub reason: i16,
    pub interval_s: Option<i32>,
}

/// Moves a monitor's runs on one node forward by one probe (probes in time order). `open` is
/// its current run, if any. Returns the run this probe closed, and whether `open` changed
/// (started or grew). A probe that comes more than [`gap_of`] after the run's last red probe
/// first ends the run there: the time nothing was probed is not counted as down.
pub fn step(open: &mut Option<Run>, monitor_id: i32, node_id: i32, probe: Seen) -> (Option<Run>, bool) {
    let Seen { ts, red, reason, interval_s } = probe;
    let mut closed = None;
    if let Some(run) = open.as_ref() {
        if ts > run.last + gap_of(run.interval_s) {
            let mut stalled = open.take().expect("checked");
            stalled.end = Some(stalled.last);
            closed = Some(stalled);
        }
    }
    match (open.as_mut(), red) {
        (Some(run), true) => {
            run.reds += 1;
            if ts >= run.last {
                run.last = ts;
                run.interval_s = interval_s;
            }
            run.reasons.add(reason, 1);
            (closed, true)
        }
        // A late result from before the run's last red probe cannot end it.
        (Some(run), false) if ts <= run.last => (closed, false),
        (Some(_), false) => {
            let mut ended = open.take().expect("matched Some");
            ended.end = Some(ts);
            (Some(ended), false)
        }
        (None, true) => {
            let mut reasons = Reasons::default();
            reasons.add(reason, 1);
            *open = Some(Run { monitor_id, node_id, start: ts, end: None, last: ts, reds: 1, reasons, interval_s });
            (closed, true)
        }
        (None, false) => (closed, false),
    }
}

/// One incident: a run of red probes long enough, or several nodes' overlapping ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    pub monitor_id: i32,
    pub start: i64,
    pub end: Option<i64>,
    /// Red probes in it (every node's).
    pub reds: i64,
    pub reasons: Reasons,
    /// The nodes that saw it, by id, ascending.
    pub nodes: Vec<i32>,
}

impl Incident {
    /// Seconds of downtime inside `[from, to)` (an ongoing incident lasts until `now`).
    pub fn downtime_within(&self, from: i64, to: i64, now: i64) -> i64 {
        let end = self.end.unwrap_or(now).min(to);
        (end - self.start.max(from)).max(0)
    }
}

/// The incidents among `runs`: runs of at least `threshold(monitor)` red probes (a monitor
/// without a threshold is not listed and left out), a monitor's overlapping ones merged into
/// one. Newest first.
pub fn incidents(runs: Vec<Run>, threshold: impl Fn(i32) -> Option<u32>) -> Vec<Incident> {
    let mut by_monitor: BTreeMap<i32, Vec<Run>> = BTreeMap::new();
    for run in runs {
        if threshold(run.monitor_id).is_some_and(|t| run.reds >= i64::from(t.max(1))) {
            by_monitor.entry(run.monitor_id).or_default().push(run);
        }
    }
    let mut out = Vec::new();
    for (monitor_id, mut runs) in by_monitor {
        runs.sort_by_key(|r| (r.start, r.node_id));
        let mut current: Option<Incident> = None;
        for run in runs {
            if let Some(inc) = current.as_mut() {
                let overlaps = inc.end.is_none_or(|end| run.start < end);
                if overlaps {
                    inc.end = match (inc.end, run.end) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        _ => None,
                    };
                    inc.reds += run.reds;
                    inc.reasons.merge(&run.reasons);
                    if !inc.nodes.contains(&run.node_id) {
                        inc.nodes.push(run.node_id);
                        inc.nodes.sort_unstable();
                    }
                    continue;
                }
                out.push(current.take().expect("checked"));
            }
            current = Some(Incident {
                monitor_id,
                start: run.start,
                end: run.end,
                reds: run.reds,
                reasons: run.reasons,
                nodes: vec![run.node_id],
            });
        }
        out.extend(current);
    }
    out.sort_by(|a, b| b.start.cmp(&a.start).then(a.monitor_id.cmp(&b.monitor_id)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs of one monitor from a list of (time, red) probes, every 60 s.
    fn runs_of(probes: &[(i64, bool)]) -> Vec<Run> {
        let (mut open, mut out) = (None, Vec::new());
        for &(ts, red) in probes {
            let (closed, _) = step(&mut open, 1, 1, Seen { ts, red, reason: 6, interval_s: Some(60) });
            out.extend(closed);
        }
        out.extend(open);
        out
    }

    #[test]
    fn a_run_without_probes_for_3_intervals_ended_at_its_last_red_probe() {
        // The daemon stopped for an hour while red; red again after the restart: two runs,
        // neither counting the hour nothing was probed.
        let runs = runs_of(&[(0, true), (60, true), (3_660, true), (3_720, false)]);
        assert_eq!(runs.len(), 2, "{runs:?}");
        assert_eq!((runs[0].start, runs[0].end, runs[0].reds), (0, Some(60), 2));
        assert_eq!((runs[1].start, runs[1].end, runs[1].reds), (3_660, Some(3_720), 1));
        // Green after the gap: the run ended at its last red probe, not at the green one.
        let runs = runs_of(&[(0, true), (60, true), (600, false)]);
        assert_eq!((runs[0].end, runs.len()), (Some(60), 1));
        // Read later with no probe since: ended at its last red probe; a recent one goes on.
        let open = runs_of(&[(0, true), (60, true)]).remove(0);
        assert_eq!(open.clone().as_of(200).end, None);
        assert_eq!(open.as_of(1_000).end, Some(60));
        assert_eq!(gap_of(None), 900);
    }

    #[test]
    fn a_run_lasts_from_its_first_red_probe_to_the_next_probe_that_is_not() {
        let runs = runs_of(&[(0, false), (60, true), (120, true), (180, true), (240, false), (300, true)]);
        assert_eq!(runs.len(), 2);
        assert_eq!((runs[0].start, runs[0].end, runs[0].last, runs[0].reds), (60, Some(240), 180, 3));
        assert_eq!(runs[0].reasons.encode(), "6:3");
        assert_eq!((runs[1].start, runs[1].end, runs[1].reds), (300, None, 1));
    }

    #[test]
    fn a_late_result_from_inside_a_run_does_not_end_it() {
        let runs = runs_of(&[(60, true), (180, true), (120, false), (240, false)]);
        assert_eq!(runs.len(), 1);
        assert_eq!((runs[0].start, runs[0].end, runs[0].reds), (60, Some(240), 2));
    }

    #[test]
    fn only_runs_of_the_threshold_are_incidents_and_nodes_overlapping_merge() {
        let run = |node, start, end: Option<i64>, reds| Run {
            monitor_id: 1,
            node_id: node,
            start,
            end,
            last: start,
            reds,
            reasons: Reasons::decode("6:1"),
            interval_s: None,
        };
        let runs = vec![
            run(1, 100, Some(400), 3),
            run(2, 300, Some(700), 4),
            run(1, 1_000, Some(1_060), 1),
            run(1, 2_000, None, 5),
            Run { monitor_id: 9, ..run(1, 0, Some(10), 9) },
        ];
        let got = incidents(runs, |m| (m == 1).then_some(3));
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!((got[0].start, got[0].end, got[0].reds), (2_000, None, 5));
        assert_eq!((got[1].start, got[1].end, got[1].reds, &got[1].nodes), (100, Some(700), 7, &vec![1, 2]));
        assert_eq!(got[1].reasons.encode(), "6:2");
        assert_eq!(got[1].downtime_within(0, 500, 10_000), 400);
        assert_eq!(got[0].downtime_within(0, 10_000, 2_500), 500);
    }
}
