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
