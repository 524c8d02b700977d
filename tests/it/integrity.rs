//! Usage integrity (issue 14): a relay that starts adding a hidden prompt (`prompt_inflated`)
//! or bills more completion tokens than the request allows or the reply holds
//! (`usage_inflated`); yellow, or red with `integrity_status: red`.

use std::time::Duration;

use serde_json::Value;

use crate::support::upstream::{self, Upstream};
use crate::support::{wait_for, Workspace};

const KEY: &str = "sk-integrity-key-0123456789";

fn templated(service: &str, up: &Upstream, mode: &str, extra: &str) -> String {
    format!(
        "  - {{provider: integrity, service: \"{service}\", base_url: \"{}/llm/{mode}\", template: openai-chat, model: \"model-x\", stream: false, api_key: \"{KEY}\"{extra}}}\n",
        up.base
    )
}

fn current(daemon: &crate::support::Daemon, service: &str) -> Value {
    daemon.monitor("integrity", service)["current_status"].clone()
}

#[test]
fn a_relay_that_starts_adding_a_prompt_is_flagged_after_three_probes_in_a_row() {
    let up = upstream::start();
    // 20 prompt tokens for 5 probes, then 820: above 20 + max(50, 20) = 70.
    let config = format!(
        "interval: 1s\nmonitors:\n{}{}",
        templated("yellow", &up, "inject-5-800+correct", ""),
        templated("red", &up, "inject-5-800+r+correct", ", integrity_status: red"),
    );
    let ws = Workspace::new(&config);
    let daemon = ws.start();
    for (service, status) in [("yellow", 2), ("red", 0)] {
        let flagged = wait_for(&format!("{service} flagged"), Duration::from_secs(30), || {
            let c = current(&daemon, service);
            (c["reason"] == "prompt_inflated").then_some(c)
        });
        assert_eq!(flagged["status"], status, "{flagged}");
        assert_eq!(flagged["prompt_tokens"], 820, "{flagged}");
        let detail = flagged["detail"].as_str().unwrap();
        assert!(detail.contains("above 70 (baseline 20)"), "{detail}");
    }
    // The first 5 taught the baseline, the 6th and 7th were above it but not yet 3 in a row.
    let path = "/llm/inject-5-800+correct/v1/chat/completions";
    assert!(up.log.for_path(path).len() >= 8);
    let reasons: Vec<String> = export_reasons(&daemon, "yellow");
    assert!(reasons.len() >= 8, "{reasons:?}");
    assert!(reasons[..7].iter().all(|r| r == "ok"), "{reasons:?}");
    assert!(reasons[7..].iter().all(|r| r == "prompt_inflated"), "{reasons:?}");
    // Counted as a reason of its own, with its colour.
    let labels = [("service", "yellow"), ("reason", "prompt_inflated"), ("status", "yellow")];
    assert!(daemon.metric("llm_monitor_probes_total", &labels).is_some_and(|n| n >= 1.0));
    let m = daemon.monitor("integrity", "red");
    let seen: u64 =
        m["timeline"].as_array().unwrap().iter().filter_map(|b| b["reasons"]["prompt_inflated"].as_u64()).sum();
    assert!(seen >= 1, "{m}");
}

/// The stored reasons of integrity/`service`, oldest first, from the raw export.
fn export_reasons(daemon: &crate::support::Daemon, service: &str) -> Vec<String> {
    let export = daemon.get("/api/export?from=0&to=4000000000&format=jsonl");
    assert_eq!(export.status, 200, "{}", export.text);
    export
        .text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["service"] == service)
        .map(|r| r["reason"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn completion_tokens_beyond_the_requests_limit_or_the_reply_are_usage_inflated() {
    let up = upstream::start();
    // Without a template and with no max_tokens in the body: only the reply bounds the count.
    let custom = format!(
        "  - {{provider: integrity, service: per-char, url: \"{}/llm/tokens-100+correct/v1/chat/completions\", method: POST, model: model-x, body: '{{\"model\": \"model-x\", \"messages\": [{{\"role\": \"user\", \"content\": \"{{{{CHALLENGE}}}}\"}}]}}'}}\n",
        up.base
    );
    let config = format!(
        "interval: 1s\nmonitors:\n{}{}{}{}",
        templated("over-max", &up, "tokens-5000+correct", ""),
        templated("over-max-red", &up, "tokens-5000+r+correct", ", integrity_status: red"),
        custom,
        templated("honest", &up, "tokens-16+correct", ""),
    );
    let ws = Workspace::new(&config);
    let daemon = ws.start();
    let over = daemon.wait_current("integrity", "over-max", Duration::from_secs(15));
    assert_eq!((over["status"].clone(), over["reason"].clone()), (Value::from(2), Value::from("usage_inflated")));
    assert_eq!(over["detail"], "completion_tokens 5000 above the request's max tokens 16", "{over}");
    let red = daemon.wait_current("integrity", "over-max-red", Duration::from_secs(15));
    assert_eq!((red["status"].clone(), red["reason"].clone()), (Value::from(0), Value::from("usage_inflated")));
    let per_char = daemon.wait_current("integrity", "per-char", Duration::from_secs(15));
    assert_eq!(per_char["reason"], "usage_inflated", "{per_char}");
    assert!(per_char["detail"].as_str().unwrap().starts_with("completion_tokens 100 for a reply of "), "{per_char}");
    // Exactly the limit is honest.
    let honest = daemon.wait_current("integrity", "honest", Duration::from_secs(15));
    assert_eq!((honest["status"].clone(), honest["reason"].clone()), (Value::from(1), Value::from("ok")));
}

#[test]
fn every_nth_probe_checks_the_stream_and_a_buffered_one_is_flagged() {
    let up = upstream::start();
    let streamed = |service: &str, mode: &str, template: &str| {
        format!(
            "  - {{provider: integrity, service: \"{service}\", base_url: \"{}/llm/{mode}\", template: {template}, model: \"model-x\", stream: true, api_key: \"{KEY}\", stream_check_every: 2}}\n",
            up.base
        )
    };
    let config = format!(
        "interval: 1s\nmonitors:\n{}{}{}",
        // A word an event, 20 ms apart: 41 and more events over 800 ms.
        streamed("paced", "pace-20+correct", "openai-chat"),
        // The same events, all at once.
        streamed("buffered", "burst+correct", "openai-chat"),
        streamed("buffered-anthropic", "burst+a+correct", "anthropic-messages"),
    );
    let ws = Workspace::new(&config);
    let daemon = ws.start();
    wait_for("4 probes of each", Duration::from_secs(30), || {
        ["paced", "buffered", "buffered-anthropic"].iter().all(|s| export_reasons(&daemon, s).len() >= 4).then_some(())
    });
    // Every second probe asks to count, with room for it; the others do not.
    let bodies: Vec<Value> = up
        .log
        .for_path("/llm/burst+correct/v1/chat/completions")
        .iter()
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    for (i, body) in bodies.iter().enumerate() {
        let asks = body["messages"][0]["content"]
            .as_str()
            .unwrap()
            .ends_with(" Then count from 1 to 40, separated by spaces.");
        assert_eq!(asks, i % 2 == 1, "request {i}: {body}");
        assert_eq!(body["max_tokens"], if i % 2 == 1 { 128 } else { 16 }, "request {i}");
    }
    let paced = export_reasons(&daemon, "paced");
    assert!(paced.iter().all(|r| r == "ok"), "{paced:?}");
    for service in ["buffered", "buffered-anthropic"] {
        let reasons = export_reasons(&daemon, service);
        for (i, reason) in reasons.iter().enumerate() {
            assert_eq!(reason, if i % 2 == 1 { "buffered_stream" } else { "ok" }, "{service}: {reasons:?}");
        }
    }
    let flagged = wait_for("a buffered current status", Duration::from_secs(10), || {
        let c = current(&daemon, "buffered");
        (c["reason"] == "buffered_stream").then_some(c)
    });
    assert_eq!(flagged["status"], 2, "{flagged}");
    assert!(flagged["detail"].as_str().unwrap().contains("text events within"), "{flagged}");
}
