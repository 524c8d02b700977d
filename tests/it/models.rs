//! Monitors of several models: one series per model, combined under `model_rule`.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::receiver::{self, Reply};
use crate::support::{llm, probe_count, wait_for, Workspace, BIN};

/// A relay that answers every model but `bad`, which it fails with a 503.
fn relay() -> receiver::HttpReceiver {
    receiver::http(|request| {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let model = body["model"].as_str().unwrap_or("").to_string();
        if model == "bad" {
            return Reply::new(503, r#"{"error":{"message":"no channel for this model"}}"#);
        }
        let answer = llm::challenge_answer(&String::from_utf8_lossy(&request.body)).unwrap_or(0);
        let reply = json!({"id": "c", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.to_string()}, "finish_reason": "stop"}]});
        Reply::new(200, reply.to_string())
    })
}

fn config(base: &str, hook: &str, models: &[&str], rule: &str) -> String {
    format!(
        "alerts:\n  failure_threshold: 1\n  success_threshold: 1\n  storm: {{min_monitors: 0}}\n  channels:\n    - {{name: ops, type: webhook, url: \"{hook}/hook\"}}\n  default_channels: [ops]\nmonitors:\n  - {{provider: relay, service: multi, base_url: \"{base}\", template: openai-chat, stream: false, \
         api_key: \"k-123\", interval: 2s, models: {models:?}, model_rule: {rule}}}\n  - {{provider: relay, service: single, \
         base_url: \"{base}\", template: openai-chat, stream: false, api_key: \"k-123\", interval: 2s, model: solo}}\n"
    )
}

fn models_of(entry: &Value) -> Vec<String> {
    entry["models"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
}

/// Three models, one failing: red under `any`, green under `majority`; each model's own
/// figures under `models`; `?model=` answers one model's; a reload that drops a model keeps
/// the others' history and rhythm.
#[test]
fn a_monitor_of_three_models_is_combined_under_its_rule() {
    let relay = relay();
    let hook = receiver::answering(200, "");
    let ws = Workspace::new(&config(&relay.base, &hook.base, &["good", "fine", "bad"], "any"));
    let daemon = ws.start();
    let entry = wait_for("every model probed", Duration::from_secs(20), || {
        let entry = daemon.monitor("relay", "multi");
        let models = entry["models"].as_object()?;
        (models.len() == 3 && models.values().all(|m| !m["current_status"].is_null())).then_some(entry)
    });
    // Listed once, the single-model monitor as ever.
    assert_eq!(daemon.listed(), ["relay/multi", "relay/single"]);
    assert_eq!(models_of(&entry), ["bad", "fine", "good"]);
    assert_eq!(entry["model_rule"], "any");
    assert_eq!(entry["models"]["bad"]["current_status"]["status"], 0, "{entry}");
    assert_eq!(entry["models"]["bad"]["current_status"]["reason"], "server_error");
    assert_eq!(entry["models"]["good"]["current_status"]["status"], 1, "{entry}");
    assert_eq!(entry["current_status"]["status"], 0, "any red model makes it red: {entry}");
    let single = daemon.monitor("relay", "single");
    assert!(single.get("models").is_none() && single.get("model_rule").is_none(), "{single}");
    // One model's own figures.
    let good = daemon.status("?model=good");
    let data = good["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{good}");
    assert_eq!((data[0]["service"].as_str(), data[0]["model"].as_str()), (Some("multi"), Some("good")));
    assert_eq!(data[0]["current_status"]["status"], 1);
    // A model another filter leaves out is an empty answer, not an error.
    let elsewhere = daemon.status("?service=single&model=good");
    assert_eq!(elsewhere["data"], json!([]), "{elsewhere}");
    let unknown = daemon.get("/api/status?model=nope");
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.json()["error"]["code"], "invalid_param", "{}", unknown.text);

    // majority: one red model of three is not a red monitor; it is the worst of the others.
    // Badges: the combined status, or one model's.
    let badge = |query: &str| {
        let r = daemon.get(&format!("/api/badge/relay/multi.svg{query}"));
        (r.status, r.text)
    };
    let (code, svg) = badge("");
    assert!(code == 200 && svg.contains(">down<"), "{svg}");
    let (code, svg) = badge("?model=good");
    assert!(code == 200 && svg.contains(">up<") && svg.contains("relay/multi good"), "{svg}");
    assert_eq!(badge("?model=nope").0, 404);

    // Each model's series in the metrics, the incidents and /health's count of monitors.
    let last = |model| daemon.metric("llm_monitor_last_status", &[("service", "multi"), ("model", model)]);
    assert_eq!((last("bad"), last("good")), (Some(0.0), Some(1.0)));
    assert_eq!(daemon.get("/health").json()["config"]["monitors"], 2);
    let incidents = daemon.get("/api/incidents?period=24h").json();
    let bad = incidents["incidents"].as_array().into_iter().flatten().find(|i| i["model"] == "bad").cloned();
    assert!(bad.is_some_and(|i| i["service"] == "multi"), "{incidents}");

    // One alert for the monitor, naming the failing model.
    let down = wait_for("the down alert", Duration::from_secs(15), || hook.requests().into_iter().next());
    let down = down.json();
    assert_eq!((down["event"].as_str(), down["monitor"]["service"].as_str()), (Some("down"), Some("multi")), "{down}");
    let detail = down["detail"].as_str().unwrap_or_default();
    assert!(detail.starts_with("failing models: bad: server_error"), "{down}");
    assert!(!detail.contains("good") && !detail.contains("fine"), "{down}");

    ws.write_config(&config(&relay.base, &hook.base, &["good", "fine", "bad"], "majority"));
    wait_for("the rule reloaded", Duration::from_secs(15), || {
        let entry = daemon.monitor("relay", "multi");
        (entry["model_rule"] == "majority").then_some(())
    });
    assert_eq!(daemon.monitor("relay", "multi")["current_status"]["status"], 1);
    let resolved = wait_for("the recovery alert", Duration::from_secs(15), || {
        hook.requests().into_iter().map(|r| r.json()).find(|m| m["event"] == "up")
    });
    assert_eq!(resolved["monitor"]["service"], "multi");
    let sent: Vec<String> =
        hook.requests().iter().map(|r| r.json()["event"].as_str().unwrap_or("").to_string()).collect();
    assert_eq!(sent, ["down", "up"], "one alert for the monitor, not one per model");

    // Dropping `fine` keeps `good`'s history and its rhythm.
    let before = probe_count(&daemon.status("?model=good")["data"][0]);
    ws.write_config(&config(&relay.base, &hook.base, &["good", "bad"], "majority"));
    wait_for("fine dropped", Duration::from_secs(15), || {
        (models_of(&daemon.monitor("relay", "multi")) == ["bad", "good"]).then_some(())
    });
    wait_for("two more probes of good", Duration::from_secs(15), || {
        (probe_count(&daemon.status("?model=good")["data"][0]) >= before + 2).then_some(())
    });
    let times: Vec<std::time::Instant> = relay
        .requests()
        .iter()
        .filter(|r| serde_json::from_slice::<Value>(&r.body).is_ok_and(|b| b["model"] == "good"))
        .map(|r| r.at)
        .collect();
    for pair in times.windows(2).skip(1) {
        let gap = pair[1] - pair[0];
        assert!(
            gap > Duration::from_millis(1_500) && gap < Duration::from_millis(2_500),
            "good's probes {gap:?} apart"
        );
    }
    // Two models of two: under majority both must be red; `bad` alone is not.
    assert_eq!(daemon.monitor("relay", "multi")["current_status"]["status"], 1);
}

#[test]
fn model_and_models_together_are_refused() {
    let ws = Workspace::new(
        "monitors:\n  - {provider: r, service: s, base_url: \"http://127.0.0.1:9\", template: openai-chat, model: a, models: [a, b], model_rule: most}\n  - {provider: r, service: t, base_url: \"http://127.0.0.1:9\", template: openai-chat, models: [a, A], expect_model: a}\n  - {provider: r, service: u, base_url: \"http://127.0.0.1:9\", template: openai-chat, model: a, model_rule: all}\n",
    );
    let out = Command::new(BIN).arg("check").arg("--config").arg(ws.config_path()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for expected in [
        "monitors[0] r/s: model: cannot be used with models",
        "monitors[0] r/s: model_rule: \"most\" is not one of any, all, majority",
        "monitors[1] r/t: models: \"A\" is listed twice",
        "monitors[1] r/t: expect_model: cannot be used with models",
        "monitors[2] r/u: model_rule: only applies with models",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

/// The status page shows the combined row with each model under it.
#[test]
fn the_page_shows_the_models_under_their_monitor() {
    let Some((browser, _profile)) = crate::web::browser("the_page_shows_the_models_under_their_monitor", (1280, 900))
    else {
        return;
    };
    let relay = relay();
    let hook = receiver::answering(200, "");
    let ws = Workspace::new(&config(&relay.base, &hook.base, &["good", "fine", "bad"], "any"));
    let daemon = ws.start();
    wait_for("every model probed", Duration::from_secs(20), || {
        let entry = daemon.monitor("relay", "multi");
        let models = entry["models"].as_object()?;
        (models.len() == 3 && models.values().all(|m| !m["current_status"].is_null())).then_some(())
    });
    let tab = browser.new_tab().unwrap();
    tab.navigate_to(&format!("{}/?lang=en", daemon.base)).unwrap().wait_until_navigated().unwrap();
    let js = r#"JSON.stringify([...document.querySelectorAll('.monitor-row')].map(r => ({
        key: r.dataset.key, status: r.dataset.status,
        models: [...r.querySelectorAll('.model-chip')].map(c => [c.dataset.model, c.dataset.status]),
        rule: r.querySelector('.model-rule')?.textContent ?? null })))"#;
    let rows = wait_for("the rows with their models", Duration::from_secs(15), || {
        let result = tab.evaluate(js, false).ok()?;
        let rows: Value = serde_json::from_str(result.value?.as_str()?).ok()?;
        (rows.as_array()?.len() == 2).then_some(rows)
    });
    assert_eq!(rows[0]["key"], "relay/multi/", "{rows}");
    assert_eq!(rows[0]["status"], "0", "{rows}");
    assert_eq!(rows[0]["models"], json!([["bad", "0"], ["fine", "1"], ["good", "1"]]), "{rows}");
    assert_eq!(rows[0]["rule"], "Models (red if any is red)");
    assert_eq!(rows[1]["models"], json!([]), "a single-model monitor has no model line: {rows}");
}

/// A restart neither recovers nor re-fires a monitor of several models that is down: the first
/// probe after it is combined with the others' latest, not judged alone.
#[test]
fn a_restart_neither_recovers_nor_refires_a_monitor_of_several_models() {
    let relay = relay();
    let hook = receiver::answering(200, "");
    let ws = Workspace::new(&config(&relay.base, &hook.base, &["good", "fine", "bad"], "any"));
    let mut daemon = ws.start();
    wait_for("the down alert", Duration::from_secs(15), || hook.requests().into_iter().next());
    wait_for("every model probed", Duration::from_secs(15), || {
        let models = daemon.monitor("relay", "multi")["models"].clone();
        models.as_object()?.values().all(|m| !m["current_status"].is_null()).then_some(())
    });
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    daemon.wait_exit(Duration::from_secs(20));
    let before = relay.requests().len();
    let daemon = ws.start();
    // Every model probed twice more, each a chance for a false recovery.
    wait_for("two rounds after the restart", Duration::from_secs(20), || {
        (relay.requests().len() >= before + 8).then_some(())
    });
    daemon.get("/health");
    let sent: Vec<String> =
        hook.requests().iter().map(|r| r.json()["event"].as_str().unwrap_or("").to_string()).collect();
    assert_eq!(sent, ["down"], "the restart changed nothing");
}
