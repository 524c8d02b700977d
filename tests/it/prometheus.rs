//! `/metrics` as Prometheus and its tools see it: content negotiation, `promtool check
//! metrics`, the shipped alert rules under `promtool test rules`, histogram buckets that cover
//! the longest timeout, and no ghost series when a key changes case.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::upstream;
use crate::support::{http_get, wait_for, Workspace};

/// promtool, or None (and SKIPPED) when it is not installed, unless CI requires it.
fn promtool() -> Option<&'static str> {
    let found = Command::new("promtool").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("LLM_MONITOR_REQUIRE_PROMTOOL").is_none(),
            "promtool is required (LLM_MONITOR_REQUIRE_PROMTOOL is set) but not installed"
        );
        println!("SKIPPED: promtool not installed (apt-get install prometheus)");
        return None;
    }
    Some("promtool")
}

#[test]
fn the_shipped_alert_rules_pass_promtool() {
    let Some(promtool) = promtool() else { return };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/prometheus");
    let out =
        Command::new(promtool).arg("test").arg("rules").arg("alerts_test.yml").current_dir(&dir).output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let out = Command::new(promtool).arg("check").arg("rules").arg("alerts.yml").current_dir(&dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn metrics_speak_both_formats_and_pass_promtool() {
    let up = upstream::start();
    let ws = Workspace::new(&format!(
        "interval: 1s\nmonitors:\n  - {{provider: m, service: ok, url: \"{}/ok\", method: GET}}\n",
        up.base
    ));
    let daemon = ws.start();
    daemon.wait_current("m", "ok", Duration::from_secs(10));
    let url = format!("{}/metrics", daemon.base);
    // What Prometheus sends: OpenMetrics first.
    let prometheus_accept =
        "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
    let open = http_get(&url, &[("Accept", prometheus_accept)]);
    assert!(open.header("content-type").unwrap().starts_with("application/openmetrics-text"));
    assert!(open.text.ends_with("# EOF\n"));
    assert!(open.text.contains("# TYPE llm_monitor_probes counter"));
    for accept in ["*/*", "text/plain;version=0.0.4", "text/plain;q=0.9,application/openmetrics-text;q=0.5"] {
        let classic = http_get(&url, &[("Accept", accept)]);
        assert!(classic.header("content-type").unwrap().starts_with("text/plain; version=0.0.4"), "{accept}");
    }
    let classic = http_get(&url, &[]);
    assert!(classic.text.contains("# TYPE llm_monitor_probes_total counter"), "{}", classic.text);
    assert!(classic.text.contains("# HELP llm_monitor_probes_total "));
    assert!(!classic.text.contains("# EOF") && !classic.text.contains("# UNIT"));
    // The top bucket covers the longest timeout a monitor may have (5 minutes).
    assert!(classic.text.contains("llm_monitor_probe_latency_seconds_bucket{le=\"300.0\""), "{}", classic.text);
    let Some(promtool) = promtool() else { return };
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(classic.text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_key_that_changes_case_leaves_no_ghost_series() {
    let up = upstream::start();
    let ws = Workspace::new(&format!(
        "interval: 1s\nmonitors:\n  - {{provider: OpenAI, service: Chat, url: \"{}/ok\", method: GET}}\n",
        up.base
    ));
    let daemon = ws.start();
    wait_for("the first spelling's series", Duration::from_secs(10), || {
        daemon.metric("llm_monitor_last_status", &[("provider", "OpenAI")]).map(|_| ())
    });
    ws.write_config(&format!(
        "interval: 1s\nmonitors:\n  - {{provider: openai, service: chat, url: \"{}/ok\", method: GET}}\n",
        up.base
    ));
    wait_for("the new spelling's series", Duration::from_secs(10), || {
        daemon.metric("llm_monitor_last_status", &[("provider", "openai")]).map(|_| ())
    });
    let text = daemon.get("/metrics").text;
    assert!(!text.contains("provider=\"OpenAI\""), "ghost series of the old spelling:\n{text}");
}
