//! What monitoring costs (issue 14): each family's reported usage priced by `prices:`, stored
//! per probe, summed per bucket and period, counted in `/metrics`, exported, kept over a
//! restart; and `daily_budget_usd`, which slows a monitor to one probe an hour for the rest
//! of the UTC day.

use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::support::upstream::{self, Upstream};
use crate::support::{probe_count, wait_for, Workspace};

const KEY: &str = "sk-cost-key-0123456789";

/// USD per million tokens: input 2.5, output 10, cached input 1.25.
const PRICES: &str = "prices:\n  price-test: {input: 2.5, output: 10, cached_input: 1.25}\n";

/// Each family's usage (as the fake reports it: see `support::llm`) and its cost, by hand.
struct Case {
    service: &'static str,
    template: &'static str,
    mode: &'static str,
    usd: f64,
}

const CASES: &[Case] = &[
    // 1,200 prompt tokens of which 1,000 cached, 12 completion (within the template's 16):
    // (200 x 2.5 + 1,000 x 1.25 + 12 x 10) / 1e6 = (500 + 1,250 + 120) / 1e6.
    Case { service: "chat", template: "openai-chat", mode: "prompt-1200+hit-1000+tokens-12", usd: 0.001_87 },
    Case { service: "responses", template: "openai-responses", mode: "prompt-1200+hit-1000+tokens-12", usd: 0.001_87 },
    // Anthropic's 200 input tokens leave out 1,000 cache reads and 100 cache writes (priced as
    // input): ((200 + 100) x 2.5 + 1,000 x 1.25 + 12 x 10) / 1e6 = (750 + 1,250 + 120) / 1e6.
    Case {
        service: "anthropic",
        template: "anthropic-messages",
        mode: "prompt-200+hit-1000+write-100+tokens-12",
        usd: 0.002_12,
    },
    // Gemini's 20 thought tokens come apart from its 12 and are output:
    // (200 x 2.5 + 1,000 x 1.25 + (12 + 20) x 10) / 1e6 = (500 + 1,250 + 320) / 1e6.
    Case { service: "gemini", template: "gemini", mode: "prompt-1200+hit-1000+tokens-12+think-20", usd: 0.002_07 },
];

fn monitor(service: &str, up: &Upstream, mode: &str, template: &str, model: &str, stream: bool, extra: &str) -> String {
    format!(
        "  - {{provider: cost, service: \"{service}\", base_url: \"{}/llm/{mode}+correct\", template: {template}, model: \"{model}\", stream: {stream}, api_key: \"{KEY}\"{extra}}}\n",
        up.base
    )
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

/// Probes counted in a monitor's timeline, maintenance included.
fn probes_of(m: &Value) -> i64 {
    probe_count(m)
        + m["timeline"].as_array().unwrap().iter().map(|b| b["counts"]["maintenance"].as_i64().unwrap()).sum::<i64>()
}

#[test]
fn each_familys_usage_is_priced_stored_summed_counted_and_exported() {
    let up = upstream::start();
    let mut config = format!("interval: 1s\n{PRICES}monitors:\n");
    for case in CASES {
        for stream in [false, true] {
            let service = format!("{}-{}", case.service, if stream { "stream" } else { "whole" });
            config.push_str(&monitor(&service, &up, case.mode, case.template, "price-test", stream, ""));
        }
    }
    // No price for this model: its cost is null, not 0.
    config.push_str(&monitor("unpriced", &up, "prompt-1200+tokens-12", "openai-chat", "unpriced-x", false, ""));
    let ws = Workspace::new(&config);
    let daemon = ws.start();

    for case in CASES {
        for stream in ["whole", "stream"] {
            let service = format!("{}-{stream}", case.service);
            let current = daemon.wait_current("cost", &service, Duration::from_secs(15));
            assert_eq!(current["status"], 1, "{service}: {current}");
            let cost = current["cost_usd"].as_f64().unwrap_or_else(|| panic!("{service}: no cost: {current}"));
            assert!(close(cost, case.usd), "{service}: {cost} USD, not {} USD", case.usd);
        }
    }
    let unpriced = daemon.wait_current("cost", "unpriced", Duration::from_secs(15));
    assert_eq!(unpriced["status"], 1, "{unpriced}");
    assert!(unpriced.get("cost_usd").is_some_and(Value::is_null), "{unpriced}");

    // The period's total is every stored probe's cost; each bucket's is its probes'.
    let m = wait_for("a few probes of cost/chat-stream", Duration::from_secs(20), || {
        let m = daemon.monitor("cost", "chat-stream");
        (probes_of(&m) >= 3).then_some(m)
    });
    let total = m["cost_usd"].as_f64().unwrap();
    assert!(close(total, probes_of(&m) as f64 * 0.001_87), "{total} USD for {} probes", probes_of(&m));
    for bucket in m["timeline"].as_array().unwrap() {
        let c = &bucket["counts"];
        let n: i64 = ["green", "yellow", "red", "maintenance"].iter().map(|k| c[k].as_i64().unwrap()).sum();
        if n == 0 {
            assert!(bucket["cost_usd"].is_null(), "{bucket}");
        } else {
            assert!(close(bucket["cost_usd"].as_f64().unwrap(), n as f64 * 0.001_87), "{bucket}");
        }
    }
    let compact = daemon.status("?period=24h&view=compact");
    let row = compact["data"].as_array().unwrap().iter().find(|m| m["service"] == "chat-stream").unwrap().clone();
    assert!(row["cost_usd"].as_f64().is_some_and(|c| c >= total), "{row}");
    let unpriced = daemon.monitor("cost", "unpriced");
    assert!(unpriced["cost_usd"].is_null() && probes_of(&unpriced) > 0, "{unpriced}");

    // /metrics counts every probe's cost since the start, in USD.
    let labels = [("provider", "cost"), ("service", "anthropic-whole")];
    let spent = wait_for("the cost counter", Duration::from_secs(10), || {
        daemon.metric("llm_monitor_probe_cost_usd_total", &labels).filter(|v| *v > 0.0)
    });
    let probes = (spent / 0.002_12).round();
    assert!(probes >= 1.0 && (spent - probes * 0.002_12).abs() < 1e-9, "{spent} is not a whole number of probes");
    assert_eq!(daemon.metric("llm_monitor_probe_cost_usd_total", &[("service", "unpriced")]), None);

    // The raw export carries each probe's cost.
    let export = daemon.get("/api/export?from=0&to=4000000000&format=jsonl");
    assert_eq!(export.status, 200, "{}", export.text);
    let rows: Vec<Value> = export.text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let gemini = rows.iter().find(|r| r["service"] == "gemini-whole").expect("a gemini row");
    assert!(close(gemini["cost_usd"].as_f64().unwrap(), 0.002_07), "{gemini}");
    assert!(rows.iter().filter(|r| r["service"] == "unpriced").all(|r| r["cost_usd"].is_null()));
    let csv = daemon.get("/api/export?from=0&to=4000000000&format=csv");
    assert!(csv.text.lines().next().unwrap().ends_with(",monitor_id,cost_usd"), "{}", csv.text);

    // Stored, not only counted: a restart serves the same total for what was stored before.
    let mut daemon = daemon;
    daemon.signal(Signal::SIGTERM);
    daemon.wait_exit(Duration::from_secs(15));
    let stored = daemon_total_after_stop(&ws);
    let daemon = ws.start();
    let again = daemon.monitor("cost", "chat-stream");
    assert!(again["cost_usd"].as_f64().unwrap() >= stored - 1e-12, "{again} after {stored}");
    drop(daemon);
}

/// What the store holds for cost/chat-stream, read without the daemon.
fn daemon_total_after_stop(ws: &Workspace) -> f64 {
    use diesel::prelude::*;
    use llm_monitor::store::schema::{monitors, probes};
    let costs: Vec<Option<i64>> = crate::with_store!(ws, |conn| probes::table
        .inner_join(monitors::table.on(monitors::id.eq(probes::monitor_id)))
        .filter(monitors::service.eq("chat-stream"))
        .select(probes::cost_nanos)
        .load(conn)
        .unwrap());
    let costs: Vec<i64> = costs.into_iter().map(|c| c.expect("a stored cost")).collect();
    assert!(!costs.is_empty() && costs.iter().all(|c| *c == 1_870_000), "stored nano-USD: {costs:?}");
    costs.iter().sum::<i64>() as f64 / 1e9
}

#[test]
fn a_spent_daily_budget_slows_the_monitor_to_hourly_until_raised_and_a_restart_remembers() {
    let up = upstream::start();
    let path = "/llm/prompt-1200+hit-1000+tokens-12+budget+correct/v1/chat/completions";
    let control = "/llm/prompt-1200+hit-1000+tokens-12+control+correct/v1/chat/completions";
    let config = |budget: &str| {
        format!(
            "interval: 1s\n{PRICES}monitors:\n{}{}",
            monitor(
                "budget",
                &up,
                "prompt-1200+hit-1000+tokens-12+budget",
                "openai-chat",
                "price-test",
                false,
                &format!(", daily_budget_usd: {budget}")
            ),
            monitor("control", &up, "prompt-1200+hit-1000+tokens-12+control", "openai-chat", "price-test", false, ""),
        )
    };
    // The day's spending starts again at 00:00 UTC: not a test to run across it.
    let now = llm_monitor::clock::unix_now();
    if now.rem_euclid(86_400) > 86_400 - 60 {
        std::thread::sleep(Duration::from_secs((86_400 - now.rem_euclid(86_400) + 1) as u64));
    }
    // 0.00187 USD a probe: the second probe spends 0.0037.
    let ws = Workspace::new(&config("0.0037"));
    let daemon = ws.start();
    wait_for("two probes of the budgeted monitor", Duration::from_secs(15), || {
        (up.log.for_path(path).len() >= 2).then_some(())
    });
    let spent = up.log.for_path(path).len();
    // While the control monitor probes 5 more times, the budgeted one does not probe again.
    let before = up.log.for_path(control).len();
    wait_for("5 more control probes", Duration::from_secs(20), || {
        (up.log.for_path(control).len() >= before + 5).then_some(())
    });
    assert_eq!(up.log.for_path(path).len(), spent, "probed after its budget was spent");
    assert!(daemon.logs().contains("daily budget of 0.0037 USD spent"), "{}", daemon.logs());

    // A restart on the same UTC day remembers what today's stored probes cost.
    let mut daemon = daemon;
    daemon.signal(Signal::SIGTERM);
    daemon.wait_exit(Duration::from_secs(15));
    let daemon = ws.start();
    let before = up.log.for_path(control).len();
    wait_for("5 control probes after the restart", Duration::from_secs(20), || {
        (up.log.for_path(control).len() >= before + 5).then_some(())
    });
    assert_eq!(up.log.for_path(path).len(), spent, "probed after a restart with today's budget spent");
    assert!(daemon.logs().contains("daily budget of 0.0037 USD spent"), "{}", daemon.logs());

    // A larger budget takes effect at once, without waiting out the hour.
    ws.write_config(&config("1"));
    wait_for("probing again under the new budget", Duration::from_secs(20), || {
        (up.log.for_path(path).len() >= spent + 2).then_some(())
    });
    drop(daemon);
}
