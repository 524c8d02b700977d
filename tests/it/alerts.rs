//! Alerting end to end (issue 11): the real daemon, upstreams a test turns red and green, and a
//! receiver that records every message. Each test proves one of the faults the peers have
//! absent here: re-sends after restarts, lost messages, false "sent", floods, re-alerts after
//! maintenance, silence for a monitor red from its first probe.

use std::time::Duration;

use hmac::{Hmac, Mac};
use nix::sys::signal::Signal;
use serde_json::Value;
use sha2::Sha256;

use crate::support::switchboard::Switchboard;
use crate::support::{wait_for, Daemon, Workspace};

const SECRET: &str = "whsec_test_0123456789";

fn monitor(sb: &Switchboard, name: &str, extra: &str) -> String {
    format!("  - {{provider: relay, service: {name}, url: \"{}/up/{name}\", method: GET, interval: 1s, timeout: 2s, slow_latency: 1s{extra}}}\n", sb.base)
}

/// An `alerts:` section with one webhook channel `ops` pointing at the switchboard's `hook`.
fn alerts(sb: &Switchboard, hook: &str, extra: &str) -> String {
    format!(
        "alerts:\n  failure_threshold: 2\n  success_threshold: 2\n  storm: {{min_monitors: 0}}\n{extra}  channels:\n    - {{name: ops, type: webhook, url: \"{}/hook/{hook}\", secret: \"{SECRET}\"}}\n  default_channels: [ops]\n",
        sb.base
    )
}

fn events(daemon: &Daemon, since: i64) -> Vec<Value> {
    let answer = daemon.get(&format!("/api/events?since_id={since}&limit=500")).json();
    answer["data"].as_array().cloned().unwrap_or_default()
}

fn event_types(daemon: &Daemon) -> Vec<String> {
    events(daemon, 0).iter().map(|e| e["type"].as_str().unwrap_or_default().to_string()).collect()
}

fn restart(ws: &Workspace, mut daemon: Daemon) -> Daemon {
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(Duration::from_secs(30)).success(), "{}", daemon.logs());
    ws.start()
}

fn signature_of(body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The monitor's probe count so far (from /api/status).
fn probes(daemon: &Daemon, service: &str) -> i64 {
    crate::support::probe_count(&daemon.monitor("relay", service))
}

fn wait_more_probes(daemon: &Daemon, service: &str, more: i64) {
    let target = probes(daemon, service) + more;
    wait_for(&format!("{more} more probes of {service}"), Duration::from_secs(20), || {
        (probes(daemon, service) >= target).then_some(())
    });
}

#[test]
fn red_from_the_first_probe_fires_once_and_two_restarts_send_nothing_new_then_one_resolved() {
    let sb = Switchboard::start();
    sb.set("api", "red");
    let ws = Workspace::new(&format!(
        "public_url: \"https://status.example.com\"\n{}monitors:\n{}",
        alerts(&sb, "main", ""),
        monitor(&sb, "api", "")
    ));
    let mut daemon = ws.start();
    let downs = wait_for("the down message", Duration::from_secs(20), || {
        let accepted = sb.accepted_events("main");
        (!accepted.is_empty()).then_some(accepted)
    });
    assert_eq!(downs, ["down"]);
    let message = sb.messages().into_iter().find(|m| m.event() == "down").unwrap();
    let body = message.json();
    assert_eq!(message.header("X-Signature"), Some(signature_of(&message.body).as_str()), "signed with the secret");
    assert_eq!(body["monitor"]["provider"], "relay");
    assert_eq!(body["monitor"]["service"], "api");
    assert_eq!((body["status"].as_str(), body["reason"].as_str()), (Some("red"), Some("server_error")));
    assert!(body["started_at"].as_i64().is_some() && body["resolved_at"].is_null(), "{body}");
    assert!(body["url"].as_str().is_some_and(|u| u.starts_with("https://status.example.com")), "{body}");
    // The id is the /api/events id, and the header says it too.
    let recorded = events(&daemon, 0);
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0]["type"], "down");
    assert_eq!(body["id"], recorded[0]["id"]);
    assert_eq!(message.header("X-LLM-Monitor-Event-Id"), Some(recorded[0]["id"].to_string().as_str()));

    // Still red across two restarts: nothing new is sent or recorded.
    for _ in 0..2 {
        daemon = restart(&ws, daemon);
        wait_more_probes(&daemon, "api", 3);
    }
    assert_eq!(sb.accepted_events("main"), ["down"], "a restart re-sent");
    assert_eq!(event_types(&daemon), ["down"]);

    // Recovers: exactly one resolved, with the outage's duration.
    sb.set("api", "green");
    wait_for("the resolved message", Duration::from_secs(20), || (sb.accepted_events("main").len() == 2).then_some(()));
    wait_more_probes(&daemon, "api", 2);
    assert_eq!(sb.accepted_events("main"), ["down", "up"]);
    let up = sb.messages().into_iter().find(|m| m.event() == "up").unwrap().json();
    assert!(up["duration_s"].as_i64().is_some_and(|d| d > 0), "{up}");
    assert_eq!(event_types(&daemon), ["down", "up"]);
    // This process sent the resolved; the down went before the restarts.
    assert_eq!(daemon.metric("llm_monitor_notifications_total", &[("channel", "ops"), ("result", "sent")]), Some(1.0));
    let logs = daemon.logs();
    assert!(!logs.contains(SECRET), "the secret was logged");
}

#[test]
fn flapping_below_the_threshold_sends_nothing() {
    let sb = Switchboard::start();
    let ws = Workspace::new(&format!(
        "{}monitors:\n  - {{provider: relay, service: flappy, url: \"{}/flap/f\", method: GET, interval: 1s, timeout: 2s, slow_latency: 1s}}\n",
        alerts(&sb, "main", ""),
        sb.base
    ));
    let daemon = ws.start();
    wait_for("8 probes", Duration::from_secs(20), || (probes(&daemon, "flappy") >= 8).then_some(()));
    let monitor = daemon.monitor("relay", "flappy");
    let counts = &monitor["timeline"].as_array().unwrap().last().unwrap()["counts"];
    assert!(counts["red"].as_i64().unwrap() >= 3, "it did fail, every other probe: {counts}");
    assert!(sb.messages().is_empty(), "{:?}", sb.messages());
    assert!(event_types(&daemon).is_empty());
}

#[test]
fn a_receiver_that_is_down_for_a_while_gets_every_message_exactly_once() {
    let sb = Switchboard::start();
    sb.set("api", "red");
    sb.set("hook:main", "down");
    let ws = Workspace::new(&format!("{}monitors:\n{}", alerts(&sb, "main", ""), monitor(&sb, "api", "")));
    let daemon = ws.start();
    // Two refused attempts (the first retry comes within 10 s)...
    wait_for("two refused attempts", Duration::from_secs(30), || {
        (sb.messages().iter().filter(|m| !m.accepted).count() >= 2).then_some(())
    });
    let failed = daemon.metric("llm_monitor_notifications_total", &[("channel", "ops"), ("result", "failed")]);
    assert!(failed.is_some_and(|f| f >= 2.0), "{failed:?}");
    let health = daemon.get("/health").json();
    assert!(health["alerts"]["failed"].as_u64().is_some_and(|f| f >= 2), "{health}");
    assert!(health["alerts"]["channels"][0]["last_error"].as_str().is_some_and(|e| e.contains("503")), "{health}");
    assert_eq!(health["alerts"]["pending"], 1, "{health}");
    // A restart while it waits: the message is still owed, and goes once the receiver is back.
    sb.set("hook:main", "ok");
    let daemon = restart(&ws, daemon);
    wait_for("the down, after the restart", Duration::from_secs(20), || {
        (sb.accepted_events("main") == ["down"]).then_some(())
    });
    let sent = daemon.metric("llm_monitor_notifications_total", &[("channel", "ops"), ("result", "sent")]);
    assert_eq!(sent, Some(1.0), "sent by the daemon that started after the restart");
    // ...the monitor recovers: the resolved follows the down.
    sb.set("api", "green");
    wait_for("both messages", Duration::from_secs(40), || (sb.accepted_events("main").len() >= 2).then_some(()));
    wait_more_probes(&daemon, "api", 2);
    assert_eq!(sb.accepted_events("main"), ["down", "up"], "in order, each once");
    let ids: Vec<Value> = sb.messages().iter().filter(|m| m.accepted).map(|m| m.json()["id"].clone()).collect();
    assert_ne!(ids[0], ids[1]);
    assert_eq!(daemon.get("/health").json()["alerts"]["pending"], 0);
}

#[test]
fn a_feishu_200_with_a_nonzero_code_is_retried_not_counted_as_sent() {
    let sb = Switchboard::start();
    sb.set("api", "red");
    sb.set("hook:fs", "feishu-fail");
    let ws = Workspace::new(&format!(
        "alerts:\n  storm: {{min_monitors: 0}}\n  channels:\n    - {{name: fs, type: feishu, url: \"{}/hook/fs\"}}\n  default_channels: [fs]\nmonitors:\n{}",
        sb.base,
        monitor(&sb, "api", "")
    ));
    let daemon = ws.start();
    wait_for("a refused attempt", Duration::from_secs(20), || (!sb.messages().is_empty()).then_some(()));
    let metric = |result| daemon.metric("llm_monitor_notifications_total", &[("channel", "fs"), ("result", result)]);
    wait_for("the failure counted", Duration::from_secs(5), || metric("failed").filter(|f| *f >= 1.0));
    assert_eq!(metric("sent"), None, "a 200 with code 19021 is not sent");
    sb.set("hook:fs", "ok");
    wait_for("the retry accepted", Duration::from_secs(20), || metric("sent").filter(|s| *s == 1.0));
    let accepted: Vec<Value> = sb.messages().iter().filter(|m| m.accepted).map(|m| m.json()).collect();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0]["msg_type"], "text");
}

#[test]
fn twenty_five_monitors_failing_together_give_one_summary_and_one_recovery() {
    let sb = Switchboard::start();
    let mut monitors = String::new();
    for i in 0..25 {
        monitors.push_str(&format!(
            "  - {{provider: relay, service: s{i}, url: \"{}/up/shared\", method: GET, interval: 1s, timeout: 2s, slow_latency: 1s}}\n",
            sb.base
        ));
    }
    let ws = Workspace::new(&format!(
        "alerts:\n  storm: {{min_monitors: 5, min_fraction: 0.5, window: 4s}}\n  channels:\n    - {{name: ops, type: webhook, url: \"{}/hook/main\"}}\n  default_channels: [ops]\nmonitors:\n{monitors}",
        sb.base
    ));
    let daemon = ws.start();
    wait_for("every monitor probed", Duration::from_secs(20), || {
        (0..25).all(|i| probes(&daemon, &format!("s{i}")) >= 1).then_some(())
    });
    sb.set("shared", "red");
    wait_for("25 downs recorded", Duration::from_secs(20), || {
        (event_types(&daemon).iter().filter(|t| *t == "down").count() == 25).then_some(())
    });
    wait_for("the summary", Duration::from_secs(20), || (!sb.accepted_events("main").is_empty()).then_some(()));
    // Past the window every single down would have been sent by now.
    wait_more_probes(&daemon, "s0", 6);
    assert_eq!(sb.accepted_events("main"), ["storm_down"]);
    let summary = sb.messages()[0].json();
    assert_eq!(summary["monitors"].as_array().map(Vec::len), Some(25), "{summary}");
    assert!(summary["title"].as_str().is_some_and(|t| t.contains("25 monitors down")), "{summary}");
    sb.set("shared", "green");
    wait_for("the recovery summary", Duration::from_secs(20), || (sb.accepted_events("main").len() == 2).then_some(()));
    wait_more_probes(&daemon, "s0", 3);
    assert_eq!(sb.accepted_events("main"), ["storm_down", "storm_up"]);
    let types = event_types(&daemon);
    assert_eq!(types.iter().filter(|t| *t == "up").count(), 25);
    assert_eq!(types.iter().filter(|t| t.starts_with("storm")).count(), 2);
}

fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0).unwrap().to_rfc3339()
}

#[test]
fn a_maintenance_window_suppresses_then_reports_only_real_changes_and_its_probes_leave_uptime() {
    let sb = Switchboard::start();
    // still: down before and after. heals: down before, recovers inside. breaks: fails inside.
    sb.set("still", "red");
    sb.set("heals", "red");
    let monitors = ["still", "heals", "breaks"].map(|n| monitor(&sb, n, "")).concat();
    let config = |window: &str| format!("{}{window}monitors:\n{monitors}", alerts(&sb, "main", "  remind_every: 1s\n"));
    let ws = Workspace::new(&config(""));
    let daemon = ws.start();
    wait_for("two downs", Duration::from_secs(20), || {
        (sb.accepted_events("main").iter().filter(|e| *e == "down").count() == 2).then_some(())
    });
    // A window opens (a reload adds it), covering all three.
    let now = llm_monitor::clock::unix_now();
    let (start, end) = (now + 2, now + 10);
    ws.write_config(&config(&format!(
        "maintenance:\n  - {{name: upgrade, monitors: [\"relay/*\"], start: \"{}\", end: \"{}\"}}\n",
        rfc3339(start),
        rfc3339(end)
    )));
    wait_for("the window open", Duration::from_secs(15), || {
        let m = daemon.monitor("relay", "still");
        (m["maintenance"]["current"]["name"] == "upgrade").then_some(())
    });
    assert_eq!(daemon.monitor("relay", "still")["maintenance"]["current"]["end"], end);
    sb.set("heals", "green");
    sb.set("breaks", "red");
    wait_for("the window closed", Duration::from_secs(20), || {
        event_types(&daemon).iter().any(|t| t == "maintenance_end").then_some(())
    });
    // Inside the window: no reminder (every 1 s outside!), no resolved, no down.
    let types = event_types(&daemon);
    let opened = types.iter().position(|t| t == "maintenance_start").unwrap();
    let closed = types.iter().position(|t| t == "maintenance_end").unwrap();
    assert!(types[opened + 1..closed].is_empty(), "nothing happens inside: {types:?}");
    // At its end, only the real changes: heals resolves, breaks goes down; still says nothing new.
    wait_for("the changes reported", Duration::from_secs(20), || {
        let ev = events(&daemon, 0);
        let after: Vec<(String, String)> = ev[closed + 1..]
            .iter()
            .filter(|e| e["type"] != "reminder")
            .map(|e| (e["type"].as_str().unwrap().to_string(), e["service"].as_str().unwrap_or("").to_string()))
            .collect();
        (after.len() >= 2).then_some(after)
    });
    let ev = events(&daemon, 0);
    let mut after: Vec<(String, String)> = ev[closed + 1..]
        .iter()
        .filter(|e| e["type"] != "reminder")
        .map(|e| (e["type"].as_str().unwrap().to_string(), e["service"].as_str().unwrap_or("").to_string()))
        .collect();
    after.sort();
    assert_eq!(after, [("down".to_string(), "breaks".to_string()), ("up".to_string(), "heals".to_string())]);
    // "still" was down before and after: its reminders resume a full period after the end,
    // not at it.
    let reminder = wait_for("a reminder of still after the window", Duration::from_secs(15), || {
        events(&daemon, 0)[closed + 1..].iter().find(|e| e["type"] == "reminder" && e["service"] == "still").cloned()
    });
    assert!(reminder["time"].as_i64().unwrap() > end, "{reminder}");
    // Probes inside the window are stored, marked, and out of uptime.
    let still = daemon.monitor("relay", "still");
    let total_maintenance: i64 =
        still["timeline"].as_array().unwrap().iter().map(|b| b["counts"]["maintenance"].as_i64().unwrap_or(0)).sum();
    assert!(total_maintenance >= 3, "{still}");
    let heals = daemon.monitor("relay", "heals");
    let hour = heals["timeline"].as_array().unwrap().last().unwrap().clone();
    let c = &hour["counts"];
    let total = c["green"].as_i64().unwrap() + c["yellow"].as_i64().unwrap() + c["red"].as_i64().unwrap();
    assert!(c["maintenance"].as_i64().unwrap() >= 3 && total > 0, "{hour}");
    let expected = 100.0 * c["green"].as_f64().unwrap() / total as f64;
    assert!((hour["availability"].as_f64().unwrap() - expected).abs() < 0.01, "{hour}");
}

#[test]
fn editing_the_channel_while_firing_neither_drops_nor_resends_and_the_resolved_goes_to_the_new_url() {
    let sb = Switchboard::start();
    sb.set("api", "red");
    let ws = Workspace::new(&format!("{}monitors:\n{}", alerts(&sb, "first", ""), monitor(&sb, "api", "")));
    let daemon = ws.start();
    wait_for("the down", Duration::from_secs(20), || (sb.accepted_events("first") == ["down"]).then_some(()));
    ws.write_config(&format!(
        "{}monitors:\n{}",
        alerts(&sb, "second", "  remind_every: 1h\n"),
        monitor(&sb, "api", "")
    ));
    wait_for("the reload", Duration::from_secs(15), || {
        (daemon.last_reload()["ok"] == true && daemon.last_reload()["trigger"] != "startup").then_some(())
    });
    wait_more_probes(&daemon, "api", 3);
    sb.set("api", "green");
    wait_for("the resolved", Duration::from_secs(20), || (sb.accepted_events("second") == ["up"]).then_some(()));
    assert_eq!(sb.accepted_events("first"), ["down"], "nothing re-sent to the old url");
    assert_eq!(event_types(&daemon), ["down", "up"]);
}

#[test]
fn the_events_api_pages_and_refuses_bad_parameters() {
    let sb = Switchboard::start();
    sb.set("api", "red");
    let ws = Workspace::new(&format!(
        "alerts:\n  failure_threshold: 1\n  success_threshold: 1\n  storm: {{min_monitors: 0}}\nmonitors:\n{}",
        monitor(&sb, "api", "")
    ));
    let daemon = ws.start();
    // No channel at all: events are recorded anyway.
    wait_for("a down", Duration::from_secs(20), || (event_types(&daemon) == ["down"]).then_some(()));
    sb.set("api", "green");
    wait_for("an up", Duration::from_secs(20), || (event_types(&daemon).len() == 2).then_some(()));
    let page = daemon.get("/api/events?limit=1").json();
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert_eq!(page["meta"]["has_more"], true);
    let first = page["data"][0].clone();
    assert_eq!(first["type"], "down");
    for field in ["id", "provider", "service", "channel", "type", "reason", "detail", "time"] {
        assert!(first.get(field).is_some(), "{field} missing: {first}");
    }
    let next = page["meta"]["next_since_id"].as_i64().unwrap();
    assert_eq!(next, first["id"].as_i64().unwrap());
    let rest = daemon.get(&format!("/api/events?since_id={next}")).json();
    assert_eq!(rest["data"][0]["type"], "up");
    assert_eq!(rest["meta"]["has_more"], false);
    let done = daemon.get(&format!("/api/events?since_id={}", rest["meta"]["next_since_id"])).json();
    assert!(done["data"].as_array().unwrap().is_empty());
    assert_eq!(done["meta"]["next_since_id"], rest["meta"]["next_since_id"], "an empty page keeps the cursor");
    for bad in ["limit=0", "limit=501", "since_id=-1", "since_id=abc", "cursor=1"] {
        let answer = daemon.get(&format!("/api/events?{bad}"));
        assert_eq!(answer.status, 400, "{bad}: {}", answer.text);
        assert!(answer.json()["error"]["message"].as_str().is_some(), "{bad}");
    }
}

#[test]
fn a_message_not_delivered_in_give_up_after_is_given_up_and_its_resolved_not_sent() {
    let sb = Switchboard::start();
    sb.set("api", "red");
    sb.set("hook:main", "down");
    let ws = Workspace::new(&format!(
        "{}monitors:\n{}",
        alerts(&sb, "main", "  give_up_after: 3s\n"),
        monitor(&sb, "api", "")
    ));
    let daemon = ws.start();
    let metric = |result| daemon.metric("llm_monitor_notifications_total", &[("channel", "ops"), ("result", result)]);
    wait_for("the down given up", Duration::from_secs(30), || metric("given_up").filter(|n| *n == 1.0));
    let health = daemon.get("/health").json();
    assert_eq!(
        (health["alerts"]["given_up"].as_u64(), health["alerts"]["pending"].as_u64()),
        (Some(1), Some(0)),
        "{health}"
    );
    assert!(
        health["alerts"]["channels"][0]["last_error"].as_str().is_some_and(|e| e.contains("not delivered within 3s")),
        "{health}"
    );
    assert!(daemon.logs().contains("given up"), "said in the log");
    // The receiver is back and the monitor recovers: the resolved of a down nobody got is not sent.
    sb.set("hook:main", "ok");
    sb.set("api", "green");
    wait_for("the up recorded", Duration::from_secs(20), || (event_types(&daemon) == ["down", "up"]).then_some(()));
    wait_more_probes(&daemon, "api", 2);
    assert!(sb.accepted_events("main").is_empty(), "{:?}", sb.accepted_events("main"));
    assert_eq!(metric("sent"), None);
}

#[test]
fn a_message_refused_for_good_is_given_up_after_three_attempts_and_the_next_one_goes() {
    let sb = Switchboard::start();
    sb.set("api", "red");
    sb.set("hook:main", "reject");
    let ws = Workspace::new(&format!("{}monitors:\n{}", alerts(&sb, "main", ""), monitor(&sb, "api", "")));
    let daemon = ws.start();
    let metric = |result| daemon.metric("llm_monitor_notifications_total", &[("channel", "ops"), ("result", result)]);
    wait_for("the down given up", Duration::from_secs(40), || metric("given_up").filter(|n| *n == 1.0));
    assert_eq!(sb.messages().len(), 3, "three attempts, not 24 hours of them");
    let health = daemon.get("/health").json();
    let error = health["alerts"]["channels"][0]["last_error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("refused 3 times for good") && error.contains("HTTP 400"), "{health}");
    // The channel is not blocked: the next message (a down of another outage) goes.
    sb.set("hook:main", "ok");
    sb.set("api", "green");
    wait_for("recovered", Duration::from_secs(20), || (event_types(&daemon) == ["down", "up"]).then_some(()));
    sb.set("api", "red");
    wait_for("the second down", Duration::from_secs(20), || (sb.accepted_events("main") == ["down"]).then_some(()));
}

#[test]
fn a_send_in_flight_at_shutdown_finishes_and_is_not_sent_again_after_the_restart() {
    let sb = Switchboard::start();
    sb.set("api", "red");
    sb.set("hook:main", "slow");
    let ws = Workspace::new(&format!("{}monitors:\n{}", alerts(&sb, "main", ""), monitor(&sb, "api", "")));
    let mut daemon = ws.start();
    // The receiver has the message and takes 2 s to answer: stop the daemon now.
    wait_for("the send in flight", Duration::from_secs(20), || (!sb.messages().is_empty()).then_some(()));
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(Duration::from_secs(30)).success(), "{}", daemon.logs());
    assert!(!daemon.logs().contains("still being sent"), "it waited for the answer: {}", daemon.logs());
    sb.set("hook:main", "ok");
    let daemon = ws.start();
    wait_more_probes(&daemon, "api", 3);
    assert_eq!(sb.messages().len(), 1, "recorded as sent before the exit, so not sent again");
}
