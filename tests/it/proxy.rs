//! Proxies: probes and alerts through a local HTTP CONNECT proxy and a local SOCKS5 one (both
//! in-process, in `support::proxy`), the proxy's failures as `proxy_error`, and its password
//! nowhere.

use std::process::Command;
use std::time::Duration;

use crate::support::proxy;
use crate::support::upstream::{self, black_hole, closed_port};
use crate::support::{receiver, wait_for, Workspace, BIN};

const USER: &str = "probe-user";
const PASSWORD: &str = "pr0xyPass-Canary-8Hd3Kq";

fn monitor(service: &str, url: &str, extra: &str) -> String {
    format!("  - {{provider: px, service: {service}, url: \"{url}\", method: GET, interval: 1s{extra}}}\n")
}

/// The global proxy, a monitor's own, `""` for direct, and the environment's, each used; the
/// upstream sees the proxy's connection; socks5h sends the name, socks5 an address; TLS runs
/// from the daemon to the target through the tunnel.
#[test]
fn probes_go_through_the_proxy_their_config_names() {
    let up = upstream::start();
    let port = up.base.rsplit(':').next().unwrap().to_string();
    let http = proxy::http_connect(Some((USER, PASSWORD)));
    let socks = proxy::socks5(Some((USER, PASSWORD)));
    let plain_socks = proxy::socks5(None);
    let tls = upstream::raw_server(b"");
    let config = format!(
        "proxy: \"{}\"\nmonitors:\n{}{}{}{}{}{}{}",
        http.url("http", Some((USER, PASSWORD))),
        monitor("global", &format!("{}/ok", up.base), ""),
        monitor(
            "socks5h",
            &format!("http://localhost:{port}/ok"),
            &format!(", proxy: \"{}\"", socks.url("socks5h", Some((USER, PASSWORD))))
        ),
        monitor(
            "socks5",
            &format!("http://localhost:{port}/ok"),
            &format!(", proxy: \"{}\"", plain_socks.url("socks5", None))
        ),
        monitor("direct", &format!("{}/ok", up.base), ", proxy: \"\""),
        // The file says direct; the environment wins.
        monitor("from-env", &format!("{}/ok", up.base), ", proxy: \"\""),
        monitor("tls", &format!("https://localhost:{}/v1", tls.port), ", timeout: 3s, slow_latency: 2s"),
        // The channel's variable wins over the provider/service one.
        monitor("ch", &format!("{}/ok", up.base), ", channel: vip"),
    );
    let ws = Workspace::new(&config);
    let socks_url = socks.url("socks5h", Some((USER, PASSWORD)));
    let nowhere = format!("http://127.0.0.1:{}", closed_port());
    let daemon = ws.start_with_env(&[
        ("MONITOR_PX_FROM_ENV_PROXY", &socks_url),
        ("MONITOR_PX_CH_VIP_PROXY", &socks_url),
        ("MONITOR_PX_CH_PROXY", &nowhere),
        // Blank counts as unset: `global` keeps the global proxy.
        ("MONITOR_PX_GLOBAL_PROXY", " "),
    ]);
    for service in ["global", "socks5h", "socks5", "direct", "from-env", "ch"] {
        let current = daemon.wait_current("px", service, Duration::from_secs(15));
        assert_eq!(current["status"], 1, "{service}: {current}");
    }
    let tunnels_to = |p: &proxy::TestProxy, target: &str| p.tunnels().iter().filter(|t| t.target == target).count();
    let upstream_addr = up.base.trim_start_matches("http://").to_string();
    assert!(tunnels_to(&http, &upstream_addr) >= 1, "{:?}", http.tunnels());
    let by_name = format!("localhost:{port}");
    let named = socks.tunnels().into_iter().filter(|t| t.target == by_name).collect::<Vec<_>>();
    assert!(!named.is_empty() && named.iter().all(|t| t.address_type == Some(3)), "socks5h sends the name: {named:?}");
    let resolved = plain_socks.tunnels();
    assert!(
        !resolved.is_empty() && resolved.iter().all(|t| matches!(t.address_type, Some(1 | 4))),
        "socks5 sends an address: {resolved:?}"
    );
    // Who the upstream saw: the proxies for all but the direct monitor.
    let requests = up.log.for_path("/ok");
    let through = |p: &proxy::TestProxy| requests.iter().filter(|r| r.peer.is_some_and(|a| p.opened(a))).count();
    let direct = requests
        .iter()
        .filter(|r| r.peer.is_some_and(|a| !http.opened(a) && !socks.opened(a) && !plain_socks.opened(a)))
        .count();
    assert!(through(&http) >= 1 && through(&socks) >= 3 && through(&plain_socks) >= 1, "{requests:#?}");
    assert!(direct >= 1, "the direct monitor's requests came straight: {requests:#?}");
    // A pooled tunnel is reused: three probes or more of `global`, one tunnel.
    wait_for("three probes of global", Duration::from_secs(15), || {
        (crate::support::probe_count(&daemon.monitor("px", "global")) >= 3).then_some(())
    });
    assert_eq!(tunnels_to(&http, &upstream_addr), 1, "{:?}", http.tunnels());
    assert!(tunnels_to(&socks, &upstream_addr) >= 1, "the env's proxy carried from-env: {:?}", socks.tunnels());
    // HTTPS: the CONNECT names the target, and what reaches it first is our TLS ClientHello
    // (a handshake with the target, not with the proxy), so the failure is the target's.
    let current = daemon.wait_current("px", "tls", Duration::from_secs(15));
    assert_eq!(current["reason"], "network_error", "{current}");
    assert!(tunnels_to(&http, &format!("localhost:{}", tls.port)) >= 1, "{:?}", http.tunnels());
    let hello = wait_for("a ClientHello", Duration::from_secs(5), || tls.first_bytes.lock().unwrap().first().cloned());
    assert_eq!(&hello[..2], &[0x16, 0x03], "not a TLS handshake: {hello:?}");
    assert!(hello.windows(9).any(|w| w == b"localhost"), "the SNI is the target's name");
    assert!(http.refused().is_empty(), "{:?}", http.refused());
    assert!(socks.refused().is_empty(), "{:?}", socks.refused());
    assert!(!daemon.logs().contains(&PASSWORD[..10]) && !daemon.status("").to_string().contains(&PASSWORD[..10]));
}

/// A reload that gives a monitor a proxy sends its next probes through it, and one that takes
/// it away sends them direct again.
#[test]
fn a_reload_changes_a_monitors_proxy() {
    let up = upstream::start();
    let socks = proxy::socks5(None);
    let direct = monitor("m", &format!("{}/ok", up.base), "");
    let ws = Workspace::new(&format!("monitors:\n{direct}"));
    let daemon = ws.start();
    daemon.wait_current("px", "m", Duration::from_secs(15));
    assert!(socks.tunnels().is_empty());
    ws.write_config(&format!(
        "monitors:\n{}",
        monitor("m", &format!("{}/ok", up.base), &format!(", proxy: \"{}\"", socks.url("socks5", None)))
    ));
    wait_for("a probe through the proxy", Duration::from_secs(15), || {
        up.log.for_path("/ok").iter().any(|r| r.peer.is_some_and(|a| socks.opened(a))).then_some(())
    });
    ws.write_config(&format!("monitors:\n{direct}"));
    let written = std::time::Instant::now();
    wait_for("a direct probe after the reload", Duration::from_secs(15), || {
        up.log
            .for_path("/ok")
            .iter()
            .any(|r| r.started > written && r.peer.is_some_and(|a| !socks.opened(a)))
            .then_some(())
    });
    let tunnels = socks.tunnels().len();
    let before = up.log.for_path("/ok").len();
    wait_for("two more probes", Duration::from_secs(15), || (up.log.for_path("/ok").len() >= before + 2).then_some(()));
    assert_eq!(socks.tunnels().len(), tunnels, "no new tunnel once direct again");
}

/// Wrong credentials, an unreachable proxy, a SOCKS proxy that cannot reach the target: each
/// `proxy_error` (red), with the proxy's answer as the detail; the password is nowhere.
#[test]
fn a_failing_proxy_is_proxy_error_and_its_password_never_shows() {
    let up = upstream::start();
    let http = proxy::http_connect(Some((USER, "the-right-one-42")));
    let socks = proxy::socks5(Some((USER, "the-right-one-42")));
    let open_socks = proxy::socks5(None);
    let stalled = black_hole();
    let config = format!(
        "monitors:\n{}{}{}{}{}",
        monitor(
            "http-407",
            &format!("{}/ok", up.base),
            &format!(", proxy: \"{}\"", http.url("http", Some((USER, PASSWORD))))
        ),
        monitor(
            "socks-auth",
            &format!("{}/ok", up.base),
            &format!(", proxy: \"{}\"", socks.url("socks5h", Some((USER, PASSWORD))))
        ),
        monitor(
            "unreachable",
            &format!("{}/ok", up.base),
            &format!(", proxy: \"socks5://{USER}:{PASSWORD}@127.0.0.1:{}\"", closed_port())
        ),
        monitor(
            "refused-target",
            &format!("http://127.0.0.1:{}/ok", closed_port()),
            &format!(", proxy: \"{}\"", open_socks.url("socks5", None))
        ),
        monitor(
            "stalled",
            &format!("{}/ok", up.base),
            &format!(", timeout: 2s, slow_latency: 1s, proxy: \"{}\"", stalled.url.trim_end_matches('/'))
        ),
    );
    let ws = Workspace::new(&config);
    let daemon = ws.start();
    let expected = [
        ("http-407", "CONNECT: HTTP 407 Proxy Authentication Required"),
        ("socks-auth", "auth: user name and password refused (status 0x01)"),
        ("unreachable", "the proxy is unreachable: connection refused"),
        ("refused-target", "connect: connection refused (reply 0x05)"),
    ];
    for (service, detail) in expected {
        let current = daemon.wait_current("px", service, Duration::from_secs(15));
        assert_eq!(
            (current["status"].as_i64(), current["reason"].as_str()),
            (Some(0), Some("proxy_error")),
            "{service}: {current}"
        );
        assert_eq!(current["detail"], detail, "{service}");
    }
    let current = daemon.wait_current("px", "stalled", Duration::from_secs(15));
    assert_eq!(current["reason"], "timeout", "a proxy that says nothing: {current}");
    assert!(up.log.all().is_empty(), "no request reached the upstream");
    assert!(http.refused().contains(&"407".to_string()) && socks.refused().contains(&"auth".to_string()));
    let metrics = daemon.get("/metrics").text;
    assert!(metrics.contains("proxy_error"), "the reason is counted");
    // Nowhere: the API, the metrics, the page, the log, the database.
    let mut seen = vec![
        daemon.status("").to_string(),
        daemon.get("/api/status?period=24h").text,
        metrics,
        daemon.get("/").text,
        daemon.get("/health").text,
        daemon.logs(),
    ];
    drop(daemon);
    for file in std::fs::read_dir(ws.path()).unwrap().flatten() {
        if file.path().is_file() && file.path() != ws.config_path() {
            seen.push(String::from_utf8_lossy(&std::fs::read(file.path()).unwrap()).into_owned());
        }
    }
    for text in &seen {
        assert!(!text.contains(&PASSWORD[..10]), "the proxy password leaked: {}", &text[..text.len().min(3000)]);
    }
}

/// A channel's proxy (here from `MONITOR_ALERT_<NAME>_PROXY`) carries its alert; the global
/// `proxy` is the probes' only.
#[test]
fn an_alert_goes_through_its_channels_proxy() {
    let up = upstream::start();
    let telegram = receiver::answering(200, r#"{"ok":true,"result":{"message_id":1}}"#);
    let http = proxy::http_connect(None);
    let socks = proxy::socks5(Some((USER, PASSWORD)));
    let config = format!(
        "proxy: \"{}\"\nalerts:\n  failure_threshold: 1\n  storm: {{min_monitors: 0}}\n  channels:\n    - {{name: tg, type: telegram, bot_token: \"123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw\", chat_id: \"42\", api_url: \"{}\"}}\n  default_channels: [tg]\nmonitors:\n{}",
        http.url("http", None),
        telegram.base.replace("127.0.0.1", "localhost"),
        monitor("down", &format!("{}/status/503", up.base), ""),
    );
    let ws = Workspace::new(&config);
    let daemon = ws.start_with_env(&[("MONITOR_ALERT_TG_PROXY", &socks.url("socks5h", Some((USER, PASSWORD))))]);
    let sent = wait_for("the alert", Duration::from_secs(20), || telegram.requests().into_iter().next());
    assert!(sent.path.ends_with("/sendMessage"), "{sent:?}");
    assert!(String::from_utf8_lossy(&sent.body).contains("down is down"), "{sent:?}");
    let port = telegram.base.rsplit(':').next().unwrap();
    assert!(socks.tunnels().iter().any(|t| t.target == format!("localhost:{port}") && t.address_type == Some(3)));
    assert!(sent.peer.is_some_and(|peer| socks.opened(peer)), "the receiver saw the proxy's connection");
    assert!(http.tunnels().iter().all(|t| !t.target.ends_with(&format!(":{port}"))), "the global proxy is for probes");
    assert!(http.tunnels().iter().any(|t| up.base.ends_with(&t.target)), "the probes went through it");
    assert!(!daemon.logs().contains(PASSWORD));
}

/// `check` refuses an https:// proxy, a proxy without a port, and one in the environment as
/// bad, naming where each is, never quoting the URL; two monitors whose proxy variable is the
/// same name collide as their key variables would.
#[test]
fn check_validates_proxy_urls_without_quoting_them() {
    let ws = Workspace::new(&format!(
        "proxy: \"https://u:{PASSWORD}@p.example:443\"\nalerts:\n  channels:\n    - {{name: hook, type: webhook, url: \"http://127.0.0.1:9/h\", proxy: \"socks5://u:{PASSWORD}@127.0.0.1\"}}\nmonitors:\n{}{}{}",
        monitor("a", "http://127.0.0.1:9/", ", proxy: \"ftp://127.0.0.1:21\""),
        monitor("b-c", "http://127.0.0.1:9/", ""),
        monitor("b.c", "http://127.0.0.1:9/", ""),
    ));
    let out = Command::new(BIN)
        .arg("check")
        .arg("--config")
        .arg(ws.config_path())
        .env("MONITOR_PX_B_C_PROXY", "socks5h://127.0.0.1:1080")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for expected in [
        "proxy: an https:// proxy is not supported",
        "alerts.channels[0] hook: proxy: the port is required",
        "monitors[0] px/a: proxy: the scheme must be http, socks5 or socks5h",
        "its proxy variable MONITOR_PX_B_C_PROXY is also monitors[1] px/b-c's",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(!text.contains(PASSWORD) && !text.contains("p.example"), "{text}");
    // Without the variable, the two names never meet.
    let out = Command::new(BIN).arg("check").arg("--config").arg(ws.config_path()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!text.contains("proxy variable"), "{text}");
}
