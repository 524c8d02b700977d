//! A canary key, echoed back by hostile upstreams in every field they know we store or show,
//! must never reach the API, the database or the log, in whole or in part.

use std::process::Command;
use std::time::Duration;

use crate::support::upstream;
use crate::support::{wait_for, Workspace, BIN};

/// Not shaped like an `sk-` or Bearer token, so only knowing the configured key can catch it
/// (a Gemini key, a relay's own token). Also model-name shaped, so a reply may call it its model.
const CANARY: &str = "AQ.canaryKey-7Rk2Lm9Qx4Vb8Nz3Wd6";
const LITERAL: &str = "literalTok-5Hs8Jd2Kf6Lq9Pw3";
const QUERY_KEY: &str = "queryKey_Z7x5C3v1B9n8M6";

/// The canary and every prefix of it long enough to identify it.
fn leaks(haystack: &str) -> Vec<String> {
    let mut found = Vec::new();
    for secret in [CANARY, LITERAL, QUERY_KEY] {
        for len in [10, secret.len()] {
            if haystack.contains(&secret[..len]) {
                found.push(secret[..len].to_string());
            }
        }
    }
    found
}

#[test]
fn a_key_echoed_in_any_field_is_never_served_stored_or_logged() {
    let up = upstream::start();
    let b = &up.base;
    let templated = |service: &str, mode: &str, stream: bool| {
        format!(
            "  - {{provider: leak, service: {service}, base_url: \"{b}/echo-key/{mode}\", template: openai-chat, model: m, stream: {stream}, api_key: \"{CANARY}\"}}\n"
        )
    };
    let mut config = String::from("interval: 1s\nmonitors:\n");
    config.push_str(&templated("model", "model", false));
    config.push_str(&templated("model-header", "model-header", false));
    config.push_str(&templated("text", "text", false));
    config.push_str(&templated("html", "html", false));
    config.push_str(&templated("stream", "stream", true));
    config.push_str(&format!(
        "  - {{provider: leak, service: status500, url: \"{b}/echo-key/500\", method: GET, api_key: \"{CANARY}\", headers: {{Authorization: \"Bearer {{{{API_KEY}}}}\"}}}}\n"
    ));
    // A credential written literally into a header: the upstream echoes the token alone.
    config.push_str(&format!(
        "  - {{provider: leak, service: literal, url: \"{b}/echo-key/500\", method: GET, headers: {{Authorization: \"Bearer {LITERAL}\"}}}}\n"
    ));
    // A key in the URL.
    config.push_str(&format!(
        "  - {{provider: leak, service: query, url: \"{b}/echo-key/500?key={QUERY_KEY}\", method: GET}}\n"
    ));
    // A keyless monitor whose upstream answers with the other monitors' keys.
    config.push_str(&format!("  - {{provider: leak, service: cross, url: \"{b}/echo-seen\", method: GET}}\n"));
    let ws = Workspace::new(&config);
    let daemon = ws.start_with_env(&[("RUST_LOG", "trace")]);
    let services = ["model", "model-header", "text", "html", "stream", "status500", "literal", "query", "cross"];
    for service in services {
        wait_for(&format!("two probes of {service}"), Duration::from_secs(20), || {
            let current = daemon.monitor("leak", service)["current_status"].clone();
            (crate::support::probe_count(&daemon.monitor("leak", service)) >= 2).then_some(current)
        });
    }
    // Each hostile upstream was classified, and said why, without the key.
    let status = daemon.status("?period=30d");
    let reason = |service: &str| {
        let entry = status["data"].as_array().unwrap().iter().find(|m| m["service"] == service).unwrap().clone();
        entry["current_status"].clone()
    };
    assert_eq!(reason("model")["reason"], "model_mismatch", "{}", reason("model"));
    assert_eq!(reason("model")["model"], "[REDACTED]", "a model-shaped key is redacted: {}", reason("model"));
    assert!(reason("model-header")["model"].is_null(), "not model-shaped: refused {}", reason("model-header"));
    assert_eq!(reason("text")["reason"], "wrong_answer");
    assert_eq!(reason("html")["reason"], "content_mismatch");
    assert_eq!(reason("stream")["reason"], "upstream_error");
    assert_eq!(reason("status500")["reason"], "server_error");
    assert_eq!(reason("cross")["reason"], "server_error");
    for service in services {
        let detail = reason(service)["detail"].as_str().unwrap_or_default().to_string();
        assert!(detail.contains("[REDACTED]") || service == "model-header", "{service}: {detail}");
    }
    let served = [
        daemon.get("/api/status?period=30d").text,
        daemon.get("/api/status?period=24h").text,
        daemon.get("/health").text,
        daemon.get("/metrics").text,
        daemon.get("/api/badge/leak/model.svg").text,
    ]
    .join("\n");
    assert_eq!(leaks(&served), Vec::<String>::new(), "served");
    let logs = daemon.logs();
    assert_eq!(leaks(&logs), Vec::<String>::new(), "logged");
    // Upstream text is one line: a newline in it cannot forge a log line.
    assert!(!logs.lines().any(|l| l.starts_with("[2030-01-01T00:00:00Z")), "a forged log line");
    drop(daemon);
    let mut stored = Vec::new();
    if ws.database.is_none() {
        // SQLite: every byte of the database files.
        for entry in std::fs::read_dir(ws.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().unwrap().to_string_lossy().starts_with("monitor.db") {
                stored.extend(std::fs::read(&path).unwrap());
            }
        }
    } else {
        // PostgreSQL: every text the daemon stores.
        #[derive(diesel::QueryableByName)]
        struct Text {
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
            t: Option<String>,
        }
        let query = "SELECT detail AS t FROM probes UNION ALL SELECT name FROM models UNION ALL SELECT name FROM nodes \
                     UNION ALL SELECT provider || service || channel FROM monitors UNION ALL SELECT value FROM meta \
                     UNION ALL SELECT coalesce(detail, '') || coalesce(reason, '') FROM events \
                     UNION ALL SELECT message || coalesce(last_error, '') FROM outbox UNION ALL SELECT state FROM alert_state";
        let texts: Vec<Text> =
            crate::with_store!(ws, |conn| diesel::RunQueryDsl::load(diesel::sql_query(query), conn).unwrap());
        for text in texts.into_iter().flat_map(|t| t.t) {
            stored.extend(text.into_bytes());
            stored.push(b'\n');
        }
    }
    assert!(!stored.is_empty());
    assert_eq!(leaks(&String::from_utf8_lossy(&stored)), Vec::<String>::new(), "stored in the database");
}

#[test]
fn a_key_pasted_into_the_wrong_field_is_never_quoted() {
    let up = upstream::start();
    let good = format!(
        "monitors:\n  - {{provider: p, service: s, url: \"{}/ok\", method: GET, interval: 1s, api_key: \"{CANARY}\"}}\n",
        up.base
    );
    let ws = Workspace::new(&good);
    let daemon = ws.start();
    daemon.wait_current("p", "s", Duration::from_secs(10));
    let pasted = format!(
        "monitors:\n  - {{provider: p, service: s, url: \"{}/ok\", method: GET, interval: 1s, api_key: \"{CANARY}\", disabled: \"{CANARY}\", timeout: \"{CANARY}\"}}\n  - {{provider: p, service: t, url: \"{}/ok\", method: \"{CANARY}\"}}\n",
        up.base, up.base
    );
    ws.write_config(&pasted);
    let reload = wait_for("the rejected reload", Duration::from_secs(10), || {
        let r = daemon.last_reload();
        (r["ok"] == false).then_some(r)
    });
    assert_eq!(reload["errors"].as_array().unwrap().len(), 3, "{reload}");
    assert_eq!(leaks(&daemon.get("/health").text), Vec::<String>::new(), "/health");
    assert_eq!(leaks(&daemon.logs()), Vec::<String>::new(), "log");
    let out = Command::new(BIN).arg("check").arg("--config").arg(ws.config_path()).output().unwrap();
    let printed = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{printed}");
    assert!(printed.contains("invalid configuration (3 problems)"), "{printed}");
    assert_eq!(leaks(&printed), Vec::<String>::new(), "check");
}
