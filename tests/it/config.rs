//! Configuration as the upstream and the operator see it: env overrides, `{{API_KEY}}`,
//! `!include`, `check`, and a daemon refusing to start on a bad file.

use std::process::Command;
use std::time::Duration;

use crate::support::upstream;
use crate::support::{wait_for, Workspace, BIN};

const ENV_KEY: &str = "sk-env-override-1234567890";
const PLAIN_ENV_KEY: &str = "plain-env-key-0987654321";
const FILE_KEY: &str = "file-key-abcdefghijkl";

#[test]
fn env_overrides_and_placeholders_reach_the_upstream_and_never_leak() {
    let up = upstream::start();
    let b = &up.base;
    std::env::remove_var("MONITOR_ACME_CHAT_API_KEY");
    let ws = Workspace::new(&format!(
        r#"interval: 1s
monitors:
  - provider: acme
    service: chat
    channel: vip
    url: "{b}/echo?key={{{{API_KEY}}}}"
    method: POST
    api_key: "{FILE_KEY}"
    headers:
      Authorization: "Bearer {{{{API_KEY}}}}"
      X-Plain: "static"
    body: '{{"key": "{{{{API_KEY}}}}"}}'
  - provider: acme
    service: chat
    channel: file
    url: "{b}/ok?channel=file"
    method: GET
    api_key: "{FILE_KEY}"
    headers:
      Authorization: "Bearer {{{{API_KEY}}}}"
  - provider: acme
    service: leaky
    url: "{b}/reject-key?key={{{{API_KEY}}}}"
    method: GET
    headers:
      Authorization: "Bearer {{{{API_KEY}}}}"
"#
    ));
    let daemon =
        ws.start_with_env(&[("MONITOR_ACME_CHAT_VIP_API_KEY", ENV_KEY), ("MONITOR_ACME_LEAKY_API_KEY", PLAIN_ENV_KEY)]);
    let echo = wait_for("a probe at /echo", Duration::from_secs(10), || up.log.for_path("/echo").into_iter().next());
    assert_eq!(echo.query, format!("key={ENV_KEY}"));
    assert_eq!(echo.header("authorization"), Some(format!("Bearer {ENV_KEY}").as_str()));
    assert_eq!(echo.header("x-plain"), Some("static"));
    assert_eq!(echo.body, format!("{{\"key\": \"{ENV_KEY}\"}}"));
    let file = wait_for("a probe with the file key", Duration::from_secs(10), || {
        up.log.all().into_iter().find(|r| r.query == "channel=file")
    });
    assert_eq!(file.header("authorization"), Some(format!("Bearer {FILE_KEY}").as_str()));

    // The upstream echoes the key back in a 401: the stored detail is redacted.
    let leaky = daemon.wait_current("acme", "leaky", Duration::from_secs(10));
    assert_eq!(leaky["reason"], "auth_error");
    let detail = leaky["detail"].as_str().unwrap();
    assert!(detail.contains("[REDACTED]"), "{detail}");
    daemon.wait_current("acme", "chat", Duration::from_secs(10));
    let api = daemon.get("/api/status?period=30d").text + &daemon.get("/health").text;
    let logs = daemon.logs();
    for secret in [ENV_KEY, PLAIN_ENV_KEY, FILE_KEY] {
        assert!(!api.contains(secret), "API leaks {secret}: {api}");
        assert!(!logs.contains(secret), "logs leak {secret}: {logs}");
    }
}

#[test]
fn include_reads_the_body_from_data() {
    let up = upstream::start();
    let ws = Workspace::new(&format!(
        "interval: 1s\nmonitors:\n  - {{provider: inc, service: body, url: \"{}/echo\", method: POST, api_key: k-123, body: \"!include data/request.json\"}}\n",
        up.base
    ));
    std::fs::write(ws.path().join("data/request.json"), r#"{"model":"m","key":"{{API_KEY}}"}"#).unwrap();
    let _daemon = ws.start();
    let echo = wait_for("a probe at /echo", Duration::from_secs(10), || up.log.for_path("/echo").into_iter().next());
    assert_eq!(echo.body, r#"{"model":"m","key":"k-123"}"#);
}

fn check(ws: &Workspace) -> (i32, String) {
    let out = Command::new(BIN).arg("check").arg("--config").arg(ws.config_path()).output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn include_escapes_are_refused() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "top secret").unwrap();
    let ws = Workspace::new("");
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), ws.path().join("data/link.json")).unwrap();
    std::os::unix::fs::symlink(outside.path(), ws.path().join("data/dir")).unwrap();
    std::fs::write(ws.path().join("sibling.json"), "{}").unwrap();
    let cases = [
        (
            format!("../{}/secret.txt", outside.path().file_name().unwrap().to_str().unwrap()),
            "resolves outside the data/ folder",
        ),
        ("data/../sibling.json".to_string(), "resolves outside the data/ folder"),
        ("data/link.json".to_string(), "resolves outside the data/ folder"),
        ("data/dir/secret.txt".to_string(), "resolves outside the data/ folder"),
        (outside.path().join("secret.txt").display().to_string(), "absolute paths are not allowed"),
        ("data".to_string(), "resolves outside the data/ folder"),
    ];
    for (path, message) in cases {
        ws.write_config(&format!(
            "monitors:\n  - {{provider: a, service: b, url: \"http://127.0.0.1:1/\", method: POST, body: \"!include {path}\"}}\n"
        ));
        let (code, output) = check(&ws);
        assert_eq!(code, 1, "{path}: {output}");
        assert!(output.contains(message), "{path}: {output}");
        assert!(output.contains("monitors[0] a/b: body:"), "{path}: {output}");
        assert!(!output.contains("top secret"));
    }
}

#[test]
fn check_reports_every_problem_and_exits_1() {
    let ws = Workspace::new(
        "interval: 10x\nmonitors:\n  - {provider: a, service: b, url: \"ftp://h/\", method: FETCH}\n  - {provider: A, service: B, url: \"http://h/\", method: GET, colour: red}\n",
    );
    let (code, output) = check(&ws);
    assert_eq!(code, 1, "{output}");
    for expected in [
        "5 problems",
        "interval: unknown unit \"x\" in duration \"10x\"",
        "monitors[0] a/b: url: scheme \"ftp\" is not http or https",
        "monitors[0] a/b: method: \"FETCH\" is not one of GET, POST, PUT, DELETE, PATCH",
        "monitors[1] A/B: colour: unknown key",
        "monitors[1] A/B: provider/service/channel duplicates monitors[0]",
    ] {
        assert!(output.contains(expected), "missing {expected:?} in:\n{output}");
    }

    ws.write_config("monitors:\n  - {provider: a, service: b, url: \"http://h/\", method: GET}\n");
    let (code, output) = check(&ws);
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("OK, 1 monitors"), "{output}");
}

#[test]
fn the_daemon_refuses_to_start_on_an_invalid_config() {
    let ws = Workspace::new("retention: forever\nmonitors: []\n");
    let out = Command::new(BIN).arg("--config").arg(ws.config_path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("retention:"), "{stderr}");
    assert!(!ws.db_path().exists(), "a database was created for an invalid config");
}

#[test]
fn the_example_config_is_valid() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.yaml.example");
    let out = Command::new(BIN).arg("check").arg("--config").arg(&example).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `check` and start run the same validation: what `check` accepts starts, and what start
/// refuses `check` refuses too, with the same message.
#[test]
fn check_and_start_refuse_the_same_files() {
    let cases = [
        ("", "the file is empty"),
        ("database: \":memory:\"\nmonitors: []\n", "must be a file path"),
        ("database: \"file:x.db\"\nmonitors: []\n", "must be a file path"),
        ("listen: \"::1:8080\"\nmonitors: []\n", "an IPv6 address needs brackets"),
        (
            "monitors:\n  - {provider: a, service: b, base_url: \"http://127.0.0.1:1/?k=v\", template: openai-chat, model: m}\n",
            "base_url: must not have a query or fragment",
        ),
        ("cors: {allowed_origins: [\"https://\"]}\nmonitors: []\n", "is not an origin"),
        ("cors: {allowed_origins: [\"https://s.example:99999\"]}\nmonitors: []\n", "invalid port number"),
    ];
    for (text, message) in cases {
        let ws = Workspace::new("");
        ws.write_raw(text);
        let (code, output) = check(&ws);
        assert_eq!(code, 1, "check accepted {text:?}: {output}");
        assert!(output.contains(message), "{text:?}: {output}");
        assert!(output.contains("invalid configuration (1 problem):"), "{output}");
        let start = Command::new(BIN).arg("--config").arg(ws.config_path()).current_dir(ws.path()).output().unwrap();
        let stderr = String::from_utf8_lossy(&start.stderr);
        assert_eq!(start.status.code(), Some(1), "start accepted {text:?}: {stderr}");
        assert!(stderr.contains(message), "{text:?}: {stderr}");
    }
}

#[test]
fn cors_origins_are_normalised_so_they_match() {
    let ws = Workspace::new(
        "cors: {allowed_origins: [\"HTTPS://Status.Example/\", \"https://bücher.example\"]}\nmonitors: []\n",
    );
    let daemon = ws.start();
    for origin in ["https://status.example", "https://xn--bcher-kva.example"] {
        let response = crate::support::http_get(&format!("{}/health", daemon.base), &[("Origin", origin)]);
        assert_eq!(response.header("access-control-allow-origin"), Some(origin), "{origin}");
    }
    let other = crate::support::http_get(&format!("{}/health", daemon.base), &[("Origin", "https://evil.example")]);
    assert_eq!(other.header("access-control-allow-origin"), None);
}

#[test]
fn env_names_that_collide_are_refused_and_api_key_env_picks_the_variable() {
    let ws = Workspace::new(
        "monitors:\n  - {provider: open-ai, service: chat, url: \"http://127.0.0.1:1/\", method: GET, headers: {Authorization: \"Bearer {{API_KEY}}\"}}\n  - {provider: open_ai, service: chat, url: \"http://127.0.0.1:2/\", method: GET, headers: {Authorization: \"Bearer {{API_KEY}}\"}}\n",
    );
    let (code, output) = check(&ws);
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains(
            "monitors[1] open_ai/chat: its API key variable MONITOR_OPEN_AI_CHAT_API_KEY is also monitors[0] open-ai/chat's"
        ),
        "{output}"
    );

    let up = upstream::start();
    ws.write_config(&format!(
        "interval: 1s\nmonitors:\n  - {{provider: open-ai, service: chat, url: \"{}/echo?a\", method: GET, headers: {{Authorization: \"Bearer {{{{API_KEY}}}}\"}}}}\n  - {{provider: open_ai, service: chat, api_key_env: SECOND_RELAY_KEY, url: \"{}/echo?b\", method: GET, headers: {{Authorization: \"Bearer {{{{API_KEY}}}}\"}}}}\n",
        up.base, up.base
    ));
    let _daemon = ws.start_with_env(&[
        ("MONITOR_OPEN_AI_CHAT_API_KEY", "first-key-123456"),
        ("SECOND_RELAY_KEY", "second-key-654321"),
    ]);
    let sent = |query: &str| {
        wait_for(&format!("a probe of {query}"), Duration::from_secs(10), || {
            up.log.all().into_iter().find(|r| r.query == query).map(|r| r.header("authorization").unwrap().to_string())
        })
    };
    assert_eq!(sent("a"), "Bearer first-key-123456");
    assert_eq!(sent("b"), "Bearer second-key-654321");
}
