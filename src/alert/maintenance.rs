//! Maintenance windows: which monitors a window covers (`provider/service[/channel]` patterns,
//! `*` matching one part) and when it is open (once, or daily or weekly in a time zone). Pure:
//! every question takes the time it is asked about.

use std::time::Duration;

use chrono::{Datelike, NaiveDate, NaiveTime, TimeZone, Weekday};

use crate::domain::MonitorKey;

#[derive(Debug, Clone, PartialEq)]
pub struct Maintenance {
    pub name: String,
    pub monitors: Vec<Pattern>,
    pub schedule: Recurrence,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Recurrence {
    /// From `start` to `end` (unix seconds), once.
    Once { start: i64, end: i64 },
    /// Every day (or every `weekday`) at `at` in `timezone`, for `duration`.
    Every { weekday: Option<Weekday>, at: NaiveTime, duration: Duration, timezone: chrono_tz::Tz },
}

/// `provider/service[/channel]`, each part a name or `*`; compared case-insensitively. Two parts
/// match a monitor whatever its channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    parts: Vec<String>,
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let parts: Vec<String> = text.split('/').map(|p| p.trim().to_ascii_lowercase()).collect();
        if !(2..=3).contains(&parts.len()) || parts.iter().any(String::is_empty) {
            return Err(format!("{text:?} is not provider/service or provider/service/channel"));
        }
        Ok(Pattern { parts })
    }

    pub fn matches(&self, key: &MonitorKey) -> bool {
        let names = [&key.provider, &key.service, &key.channel];
        self.parts.iter().zip(names).all(|(part, name)| part == "*" || name.eq_ignore_ascii_case(part))
    }
}

impl Maintenance {
    pub fn covers(&self, key: &MonitorKey) -> bool {
        self.monitors.iter().any(|p| p.matches(key))
    }

    /// The occurrence open at `t` (start inclusive, end exclusive).
    pub fn open_at(&self, t: i64) -> Option<(i64, i64)> {
        match &self.schedule {
            Recurrence::Once { start, end } => (*start <= t && t < *end).then_some((*start, *end)),
            Recurrence::Every { duration, .. } => {
                // The latest start at or before t, if its occurrence still runs.
                let start = self.starts_from(t - duration.as_secs() as i64).take_while(|s| *s <= t).last()?;
                let end = start + duration.as_secs() as i64;
                (t < end).then_some((start, end))
            }
        }
    }

    /// The first occurrence that starts after `t`.
    pub fn next_after(&self, t: i64) -> Option<(i64, i64)> {
        match &self.schedule {
            Recurrence::Once { start, end } => (*start > t).then_some((*start, *end)),
            Recurrence::Every { duration, .. } => {
                let start = self.starts_from(t + 1).next()?;
                Some((start, start + duration.as_secs() as i64))
            }
        }
    }

    /// Start times (unix seconds) at or after `from`, in order; a local time that does not
    /// exist (a DST gap) is skipped, an ambiguous one takes its first instant.
    fn starts_from(&self, from: i64) -> impl Iterator<Item = i64> + '_ {
        let Recurrence::Every { weekday, at, timezone, .. } = &self.schedule else {
            return Box::new(std::iter::empty()) as Box<dyn Iterator<Item = i64>>;
        };
        let first_day: NaiveDate = chrono::DateTime::from_timestamp(from, 0)
            .map(|t| t.with_timezone(timezone).date_naive())
            .unwrap_or_default()
            .pred_opt()
            .unwrap_or_default();
        Box::new(
            first_day
                .iter_days()
                .take(9)
                .filter(move |d| weekday.is_none_or(|w| d.weekday() == w))
                .filter_map(move |d| timezone.from_local_datetime(&d.and_time(*at)).earliest())
                .map(|t| t.timestamp())
                .filter(move |s| *s >= from),
        )
    }
}

/// The window among `windows` covering `key` that is open at `t`, if any (the one ending last).
pub fn current<'a>(windows: &'a [Maintenance], key: &MonitorKey, t: i64) -> Option<(&'a Maintenance, i64, i64)> {
    windows
        .iter()
        .filter(|w| w.covers(key))
        .filter_map(|w| w.open_at(t).map(|(s, e)| (w, s, e)))
        .max_by_key(|(_, _, e)| *e)
}

/// The next window among `windows` covering `key` that starts after `t`, if any.
pub fn next<'a>(windows: &'a [Maintenance], key: &MonitorKey, t: i64) -> Option<(&'a Maintenance, i64, i64)> {
    windows
        .iter()
        .filter(|w| w.covers(key))
        .filter_map(|w| w.next_after(t).map(|(s, e)| (w, s, e)))
        .min_by_key(|(_, s, _)| *s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every(weekday: Option<Weekday>, at: &str, minutes: u64, tz: chrono_tz::Tz) -> Maintenance {
        Maintenance {
            name: "w".into(),
            monitors: vec![Pattern::parse("*/*").unwrap()],
            schedule: Recurrence::Every {
                weekday,
                at: NaiveTime::parse_from_str(at, "%H:%M").unwrap(),
                duration: Duration::from_secs(minutes * 60),
                timezone: tz,
            },
        }
    }

    fn ts(rfc3339: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp()
    }

    #[test]
    fn patterns_match_one_part_per_star_and_two_parts_any_channel() {
        let rows = [
            ("88code/*", ("88code", "cc", ""), true),
            ("88code/*", ("88CODE", "cc", "vip"), true),
            ("88code/*", ("other", "cc", ""), false),
            ("*/*", ("a", "b", "c"), true),
            ("a/b/vip", ("a", "b", "vip"), true),
            ("a/b/vip", ("a", "b", ""), false),
            ("a/*/*", ("a", "x", ""), true),
        ];
        for (pattern, (p, s, c), expected) in rows {
            assert_eq!(Pattern::parse(pattern).unwrap().matches(&MonitorKey::new(p, s, c)), expected, "{pattern}");
        }
        for bad in ["a", "a/", "a/b/c/d", "/b"] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn daily_windows_open_in_their_time_zone() {
        let w = every(None, "03:00", 15, chrono_tz::Asia::Shanghai);
        // 03:00 in Shanghai is 19:00 UTC the day before.
        let start = ts("2026-12-01T03:00:00+08:00");
        assert_eq!(w.open_at(start), Some((start, start + 900)));
        assert_eq!(w.open_at(start + 899), Some((start, start + 900)));
        assert_eq!(w.open_at(start + 900), None);
        assert_eq!(w.open_at(start - 1), None);
        assert_eq!(w.next_after(start - 1), Some((start, start + 900)));
        assert_eq!(w.next_after(start), Some((start + 86_400, start + 86_400 + 900)));
    }

    #[test]
    fn weekly_windows_open_on_their_weekday_only() {
        let w = every(Some(Weekday::Sun), "23:50", 20, chrono_tz::UTC);
        let sunday = ts("2026-11-29T23:50:00Z");
        assert_eq!(w.open_at(sunday + 60), Some((sunday, sunday + 1_200)));
        // Across midnight into Monday.
        assert_eq!(w.open_at(sunday + 1_199), Some((sunday, sunday + 1_200)));
        assert_eq!(w.open_at(sunday - 86_400 + 60), None);
        assert_eq!(w.next_after(sunday), Some((sunday + 7 * 86_400, sunday + 7 * 86_400 + 1_200)));
    }

    #[test]
    fn a_dst_gap_skips_that_day() {
        // 02:30 does not exist in New York on 2026-03-08.
        let w = every(None, "02:30", 10, chrono_tz::America::New_York);
        let before = ts("2026-03-07T12:00:00-05:00");
        let (first, _) = w.next_after(before).unwrap();
        assert_eq!(first, ts("2026-03-09T02:30:00-04:00"));
        assert_eq!(w.open_at(ts("2026-03-08T03:35:00-04:00")), None);
    }

    #[test]
    fn once_windows() {
        let w = Maintenance {
            name: "upgrade".into(),
            monitors: vec![Pattern::parse("a/*").unwrap()],
            schedule: Recurrence::Once { start: 100, end: 200 },
        };
        assert_eq!((w.open_at(99), w.open_at(100), w.open_at(200)), (None, Some((100, 200)), None));
        assert_eq!((w.next_after(50), w.next_after(100)), (Some((100, 200)), None));
        let windows = [w];
        assert!(current(&windows, &MonitorKey::new("a", "b", ""), 150).is_some());
        assert!(current(&windows, &MonitorKey::new("x", "b", ""), 150).is_none());
    }
}
