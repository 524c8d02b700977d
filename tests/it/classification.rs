//! Every row of the classification table (SPEC section 4), as the API reports it.

use std::time::Duration;

use llm_monitor::clock::Clock;

use crate::support::upstream::{self, closed_port, raw_server};
use crate::support::{wait_for, Workspace};

fn monitor(service: &str, url: &str, extra: &str) -> String {
    format!(
        "  - {{provider: fake, service: \"{service}\", url: \"{url}\", method: POST, headers: {{Content-Type: application/json}}, body: '{{\"q\":1}}'{extra}}}\n"
    )
}

#[test]
fn every_outcome_is_classified_as_the_table_says() {
    let up = upstream::start();
    let reset = raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nContent-Type: application/json\r\n\r\n{\"choi");
    let tls = raw_server(b"");
    let b = &up.base;
    let rows: Vec<(&str, String, &str, i64, &str)> = vec![
        ("ok", format!("{b}/ok"), "", 1, "ok"),
        ("slow", format!("{b}/delay/700"), ", slow_latency: 300ms, timeout: 3s", 2, "slow"),
        ("rate-limited", format!("{b}/status/429"), "", 2, "rate_limited"),
        ("empty", format!("{b}/empty"), "", 0, "content_mismatch"),
        // A health check answering 204 No Content is up; "error": 0 and [] say "no error".
        ("no-content", format!("{b}/no-content"), "", 1, "ok"),
        ("error-zero", format!("{b}/error-zero"), "", 1, "ok"),
        ("error-empty-list", format!("{b}/error-empty-list"), "", 1, "ok"),
        ("json-error", format!("{b}/json-error"), "", 0, "content_mismatch"),
        ("html", format!("{b}/html"), ", success_contains: choices", 0, "content_mismatch"),
        ("flood", format!("{b}/flood"), "", 0, "content_mismatch"),
        ("unauthorized", format!("{b}/status/401"), "", 0, "auth_error"),
        ("forbidden", format!("{b}/status/403"), "", 0, "auth_error"),
        ("not-found", format!("{b}/status/404"), "", 0, "client_error"),
        ("redirect", format!("{b}/status/302"), "", 0, "client_error"),
        ("server-error", format!("{b}/status/500"), "", 0, "server_error"),
        ("bad-gateway", format!("{b}/status/502"), "", 0, "server_error"),
        ("hang", format!("{b}/hang"), ", timeout: 1s, slow_latency: 500ms", 0, "timeout"),
        ("refused", format!("http://127.0.0.1:{}/v1", closed_port()), "", 0, "network_error"),
        ("reset-mid-body", format!("http://127.0.0.1:{}/v1", reset.port), "", 0, "network_error"),
        ("tls-to-plain", format!("https://127.0.0.1:{}/v1", tls.port), "", 0, "network_error"),
    ];
    let mut config = String::from("interval: 2s\ntimeout: 5s\nslow_latency: 2s\nmonitors:\n");
    for (service, url, extra, _, _) in &rows {
        config.push_str(&monitor(service, url, extra));
    }
    let ws = Workspace::new(&config);
    let daemon = ws.start();
    for (service, _, _, status, reason) in &rows {
        let current = daemon.wait_current("fake", service, Duration::from_secs(15));
        assert_eq!(current["status"], *status, "{service}: {current}");
        assert_eq!(current["reason"], *reason, "{service}: {current}");
        if *status == 0 {
            assert!(
                current["detail"].as_str().is_some_and(|d| !d.is_empty()),
                "{service}: red without detail: {current}"
            );
        }
    }
    let codes = |service: &str| daemon.monitor("fake", service)["current_status"]["http_code"].as_i64().unwrap();
    assert_eq!(codes("redirect"), 302);
    assert_eq!(codes("bad-gateway"), 502);
    assert_eq!(codes("hang"), 0);
    assert_eq!(codes("refused"), 0);
    // The redirect was a result, not followed.
    assert!(up.log.for_path("/redirect-target").is_empty(), "redirect was followed");
    // The https probe really spoke TLS (a ClientHello starts with 0x16).
    let hello =
        wait_for("a TLS ClientHello", Duration::from_secs(5), || tls.first_bytes.lock().unwrap().first().cloned());
    assert_eq!(hello.first(), Some(&0x16), "not a TLS handshake: {hello:?}");
    let timeout = daemon.monitor("fake", "hang")["current_status"]["latency"].as_i64().unwrap();
    assert!((1000..2000).contains(&timeout), "timeout latency {timeout}");
    let detail = daemon.monitor("fake", "bad-gateway")["current_status"]["detail"].clone();
    assert_eq!(detail, "HTTP 502: upstream says 502");
}

#[test]
fn latency_is_close_to_the_upstreams_delay() {
    let up = upstream::start();
    let ws = Workspace::new(&format!(
        "interval: 1s\nmonitors:\n{}",
        monitor("delayed", &format!("{}/delay/300", up.base), "")
    ));
    let daemon = ws.start();
    let m = wait_for("three probes", Duration::from_secs(10), || {
        let m = daemon.monitor("fake", "delayed");
        (crate::support::probe_count(&m) >= 3).then_some(m)
    });
    let latency = m["current_status"]["latency"].as_i64().unwrap();
    assert!((300..=450).contains(&latency), "latency {latency} ms for a 300 ms upstream");
    // Every probe so far, through the bucket means.
    for bucket in m["timeline"].as_array().unwrap().iter().filter(|b| b["status"] != -1) {
        let mean = bucket["latency"].as_i64().unwrap();
        assert!((300..=450).contains(&mean), "bucket mean latency {mean}: {bucket}");
    }
}

/// The monitors of a probe thread share one pooled client: 40 monitors of one relay, probing
/// every second at different moments, reuse a few connections, not one each.
#[test]
fn monitors_of_one_relay_share_pooled_connections() {
    use std::sync::atomic::Ordering;
    let up = upstream::start();
    let mut config = String::from("interval: 1s\nmonitors:\n");
    for i in 0..40 {
        config.push_str(&format!("  - {{provider: share, service: m{i}, url: \"{}/ok\", method: GET}}\n", up.base));
    }
    let ws = Workspace::new(&config);
    let _daemon = ws.start();
    wait_for("three probes of every monitor", Duration::from_secs(20), || {
        (up.log.for_path("/ok").len() >= 120).then_some(())
    });
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 16);
    let opened = up.connections.load(Ordering::SeqCst);
    // One client per probe thread; a connection more only when two probes of a thread overlap.
    assert!(opened <= threads * 4 && opened < 40, "{opened} connections for 40 monitors on {threads} threads");
}

/// Connections are kept between probes longer than awc's default 15 s, so a monitor's steady
/// probes reuse one and measure the service; the probe that opened it says how long that took.
/// `fresh_connection: true` opens (and measures) one per probe.
#[test]
fn connections_are_reused_across_long_intervals_or_fresh_on_request() {
    use std::sync::atomic::Ordering;
    let reused = upstream::start();
    let fresh = upstream::start();
    // A name whose grid's next slot comes 1 to 3 s from now (the daemon starts in between).
    let interval = Duration::from_secs(17);
    let now_ms = llm_monitor::clock::SystemClock.now_ms();
    let name = (0..)
        .map(|i| format!("steady{i}"))
        .find(|n| {
            let grid = llm_monitor::probe::schedule::Grid::new(&format!("keep\u{1f}{n}\u{1f}"), interval);
            let wait = grid.due(grid.next(None, now_ms)) - now_ms;
            (1_000..3_000).contains(&wait)
        })
        .unwrap();
    let ws = Workspace::new(&format!(
        "monitors:\n  - {{provider: keep, service: {name}, url: \"{}/ok\", method: GET, interval: 17s}}\n  - {{provider: keep, service: fresh, url: \"{}/ok\", method: GET, interval: 1s, fresh_connection: true}}\n",
        reused.base, fresh.base
    ));
    let daemon = ws.start();
    let first = daemon.wait_current("keep", &name, Duration::from_secs(10));
    assert!(first["connect"].is_number(), "the first probe opened a connection: {first}");
    let second = wait_for("the second probe, 17 s later", Duration::from_secs(25), || {
        let current = daemon.monitor("keep", &name)["current_status"].clone();
        (current["timestamp"] != first["timestamp"]).then_some(current)
    });
    assert!(second["connect"].is_null(), "the second probe reused the connection: {second}");
    assert_eq!(reused.connections.load(Ordering::SeqCst), 1);
    // Every fresh probe opened its own.
    let probes = fresh.log.for_path("/ok").len();
    assert!(probes >= 10, "{probes}");
    let opened = fresh.connections.load(Ordering::SeqCst);
    assert!(opened + 1 >= probes, "{opened} connections for {probes} fresh probes");
    assert!(daemon.monitor("keep", "fresh")["current_status"]["connect"].is_number());
}
