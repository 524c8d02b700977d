//! Pure difference between the running monitors and a newly loaded set, by monitor key.

use super::{Monitor, MonitorKey};

#[derive(Debug, Default, PartialEq)]
pub struct MonitorDiff {
    /// New keys, in config order.
    pub added: Vec<Monitor>,
    /// Same key, different settings (url, headers, body, interval, timeout, thresholds, key).
    pub changed: Vec<Monitor>,
    pub removed: Vec<MonitorKey>,
    pub unchanged: usize,
}

impl MonitorDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

pub fn diff(running: &[Monitor], loaded: &[Monitor]) -> MonitorDiff {
    let mut out = MonitorDiff::default();
    for new in loaded {
        match running.iter().find(|old| old.key == new.key) {
            None => out.added.push(new.clone()),
            // A key spelled in another case is the same monitor; its display name may change.
            Some(old)
                if old == new
                    && old.key.provider == new.key.provider
                    && old.key.service == new.key.service
                    && old.key.channel == new.key.channel =>
            {
                out.unchanged += 1
            }
            Some(_) => out.changed.push(new.clone()),
        }
    }
    out.removed =
        running.iter().filter(|old| !loaded.iter().any(|new| new.key == old.key)).map(|old| old.key.clone()).collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Method;
    use std::time::Duration;

    fn monitor(provider: &str, service: &str, url: &str) -> Monitor {
        Monitor {
            key: MonitorKey::new(provider, service, ""),
            method: Method::Get,
            url: url.into(),
            headers: vec![],
            body: None,
            interval: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            slow_latency: Duration::from_secs(5),
            slow_ttft: None,
            success_contains: None,
            api_key: None,
            model: None,
            expect_model: None,
            require_model: false,
            challenge: false,
            llm: false,
            fresh_connection: false,
            proxy: None,
            model_rule: None,
            price: None,
            daily_budget_usd: None,
            confirm: 0,
            interval_when_failing: None,
            max_tokens: None,
            integrity_status: crate::domain::Status::Yellow,
            stream_check_every: None,
            redactor: Default::default(),
        }
    }

    #[test]
    fn diff_table() {
        let a = monitor("a", "x", "http://a/");
        let b = monitor("b", "x", "http://b/");
        let c = monitor("c", "x", "http://c/");
        let b2 = monitor("b", "x", "http://b2/");
        let b_interval = Monitor { interval: Duration::from_secs(30), ..b.clone() };
        let b_key = Monitor { api_key: Some("k".into()), ..b.clone() };
        let b_upper = monitor("B", "X", "http://b/");
        let keys = |v: &[Monitor]| v.iter().map(|m| m.key.to_string()).collect::<Vec<_>>();
        // (name, running, loaded, added, changed, removed, unchanged)
        type Row<'a> = (&'a str, Vec<Monitor>, Vec<Monitor>, Vec<&'a str>, Vec<&'a str>, Vec<&'a str>, usize);
        let rows: Vec<Row> = vec![
            ("same", vec![a.clone(), b.clone()], vec![a.clone(), b.clone()], vec![], vec![], vec![], 2),
            ("reordered", vec![a.clone(), b.clone()], vec![b.clone(), a.clone()], vec![], vec![], vec![], 2),
            ("added", vec![a.clone()], vec![a.clone(), c.clone()], vec!["c/x"], vec![], vec![], 1),
            ("removed", vec![a.clone(), b.clone()], vec![a.clone()], vec![], vec![], vec!["b/x"], 1),
            ("url changed", vec![a.clone(), b.clone()], vec![a.clone(), b2.clone()], vec![], vec!["b/x"], vec![], 1),
            ("interval changed", vec![b.clone()], vec![b_interval], vec![], vec!["b/x"], vec![], 0),
            ("key changed", vec![b.clone()], vec![b_key], vec![], vec!["b/x"], vec![], 0),
            ("renamed case", vec![b.clone()], vec![b_upper], vec![], vec!["B/X"], vec![], 0),
            ("all at once", vec![a.clone(), b.clone()], vec![b2, c], vec!["c/x"], vec!["b/x"], vec!["a/x"], 0),
            ("from nothing", vec![], vec![a.clone()], vec!["a/x"], vec![], vec![], 0),
        ];
        for (name, running, loaded, added, changed, removed, unchanged) in rows {
            let d = diff(&running, &loaded);
            assert_eq!(keys(&d.added), added, "{name}: added");
            assert_eq!(keys(&d.changed), changed, "{name}: changed");
            assert_eq!(d.removed.iter().map(|k| k.to_string()).collect::<Vec<_>>(), removed, "{name}: removed");
            assert_eq!(d.unchanged, unchanged, "{name}: unchanged");
        }
    }
}
