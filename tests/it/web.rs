//! What operators look at: the status page in a real browser, SVG badges, Prometheus metrics.

use std::time::Duration;

use serde_json::Value;

use llm_monitor::config::MonitorKey;
use llm_monitor::store::db::Row;

use crate::support::upstream;
use crate::support::{http_get, wait_for, Workspace};

fn now() -> i64 {
    llm_monitor::clock::unix_now()
}

/// Four monitors whose history is written before start and who do not probe during the test
/// (their own probes never answered): alpha green, beta red, gamma yellow, delta never probed.
fn page_workspace(quiet: &crate::support::upstream::BlackHole) -> Workspace {
    let monitors = [("alpha", "chat"), ("beta", "chat"), ("gamma", "code"), ("delta", "code")];
    // A probe the daemon makes during the test goes to a port that never answers and stays in
    // flight (5 minute timeout): the page shows only the history written here.
    let mut config = String::from("interval: 24h\ntimeout: 5m\nslow_latency: 4m\nmonitors:\n");
    for (p, s) in monitors {
        config.push_str(&format!("  - {{provider: {p}, service: {s}, url: \"{}\", method: GET}}\n", quiet.url));
    }
    let ws = Workspace::new(&config);
    let mut conn = ws.db();
    let keys: Vec<MonitorKey> = monitors[..3].iter().map(|(p, s)| MonitorKey::new(p, s, "")).collect();
    let ids = conn.monitor_ids(&keys).unwrap();
    let t = now();
    let mut rows = Vec::new();
    for hour in 1..60 {
        for (i, id) in ids.iter().enumerate() {
            // alpha always green; beta red one hour in three; gamma slow one hour in four.
            let status = match i {
                1 if hour % 3 == 0 => 0,
                2 if hour % 4 == 0 => 2,
                _ => 1,
            };
            let reason = ["server_error", "ok", "slow"][status as usize].to_string();
            // gamma's hour 5 ago was all inside a maintenance window.
            let maintenance = i == 2 && hour == 5;
            rows.push(Row {
                maintenance,
                monitor_id: *id,
                ts: t - hour * 3_600 + 60,
                status,
                latency_ms: 200 + 100 * i as i32,
                reason,
                http_code: if status == 0 { 502 } else { 200 },
                ttft_ms: Some(90),
                // alpha's model has a price: each probe cost 45,000 nano-USD.
                cost_nanos: (i == 0).then_some(45_000),
                ..Row::default()
            });
        }
    }
    // The latest of each: green, red, yellow.
    for (id, status, reason) in [(ids[0], 1, "ok"), (ids[1], 0, "server_error"), (ids[2], 2, "slow")] {
        rows.push(Row {
            monitor_id: id,
            ts: t - 30,
            status,
            latency_ms: 321,
            reason: reason.into(),
            http_code: 200,
            ttft_ms: Some(180),
            ..Row::default()
        });
    }
    conn.insert(&rows).unwrap();
    ws
}

fn title_of(svg: &str) -> String {
    let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("not XML ({e}): {svg}"));
    doc.descendants().find(|n| n.has_tag_name("title")).and_then(|n| n.text()).unwrap_or_default().to_string()
}

#[test]
fn badges_show_status_and_uptime() {
    let quiet = crate::support::upstream::black_hole();
    let ws = page_workspace(&quiet);
    let daemon = ws.start();
    for (path, title) in [
        ("/api/badge/alpha/chat.svg", "alpha/chat: up"),
        ("/api/badge/beta/chat.svg", "beta/chat: down"),
        ("/api/badge/gamma/code.svg", "gamma/code: degraded"),
        ("/api/badge/delta/code.svg", "delta/code: unknown"),
        ("/api/badge/ALPHA/Chat.svg?metric=uptime&period=7d", "ALPHA/Chat 7d: 100.00%"),
        ("/api/badge/delta/code.svg?metric=uptime", "delta/code 24h: no data"),
        ("/api/badge/alpha/chat.svg?label=OpenAI", "OpenAI: up"),
    ] {
        let response = daemon.get(path);
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(response.header("content-type"), Some("image/svg+xml; charset=utf-8"), "{path}");
        assert_eq!(response.header("cache-control"), Some("max-age=60, s-maxage=60"), "{path}");
        assert_eq!(title_of(&response.text), title, "{path}");
    }
    let beta_uptime = daemon.status("?period=7d&provider=beta")["data"][0]["uptime"].as_f64().unwrap();
    let badge = daemon.get("/api/badge/beta/chat.svg?metric=uptime&period=7d");
    assert_eq!(title_of(&badge.text), format!("beta/chat 7d: {beta_uptime:.2}%"));
    let missing = daemon.get("/api/badge/nobody/here.svg");
    assert_eq!(missing.status, 404);
    assert_eq!(title_of(&missing.text), "nobody/here: not found");
    let wrong_channel = daemon.get("/api/badge/alpha/chat.svg?channel=vip");
    assert_eq!((wrong_channel.status, title_of(&wrong_channel.text)), (404, "alpha/chat/vip: not found".to_string()));
    assert_eq!(daemon.get("/api/badge/alpha/chat.svg?metric=latency").status, 400);
}

/// Parses `/metrics` and returns the value of the sample with `name` whose labels include all of `labels`.
fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
        .reduce(|a, b| a + b)
}

fn scrape(daemon: &crate::support::Daemon) -> (prometheus_parse::Scrape, String) {
    let response = crate::support::http_get(
        &format!("{}/metrics", daemon.base),
        &[("Accept", "application/openmetrics-text;version=1.0.0")],
    );
    assert_eq!(response.status, 200);
    assert!(response.header("content-type").unwrap().starts_with("application/openmetrics-text"));
    let lines: Vec<std::io::Result<String>> = response.text.lines().map(|l| Ok(l.to_string())).collect();
    (prometheus_parse::Scrape::parse(lines.into_iter()).expect("a Prometheus text exposition"), response.text)
}

#[test]
fn metrics_count_the_probes_the_upstream_saw() {
    let up = upstream::start();
    let key = "sk-metrics-secret-123456";
    let ws = Workspace::new(&format!(
        "interval: 1s\nmonitors:\n  - {{provider: m, service: ok, url: \"{b}/m/ok\", method: GET, api_key: {key}, headers: {{Authorization: \"Bearer {{{{API_KEY}}}}\"}}}}\n  - {{provider: m, service: bad, url: \"{b}/status/500\", method: GET}}\n",
        b = up.base
    ));
    let daemon = ws.start();
    let seen = |path: &str| up.log.for_path(path).iter().filter(|r| r.finished.is_some()).count() as f64;
    // Poll until the counters catch up with what the upstream answered (between two probes).
    let (metrics, text) = wait_for("counters equal to the upstream's requests", Duration::from_secs(20), || {
        let (ok_before, bad_before) = (seen("/m/ok"), seen("/status/500"));
        let (parsed, text) = scrape(&daemon);
        let ok = sample(&parsed, "llm_monitor_probes_total", &[("provider", "m"), ("service", "ok")]).unwrap_or(0.0);
        let bad = sample(
            &parsed,
            "llm_monitor_probes_total",
            &[("service", "bad"), ("status", "red"), ("reason", "server_error")],
        )
        .unwrap_or(0.0);
        let stable = seen("/m/ok") == ok_before && seen("/status/500") == bad_before;
        (stable && ok >= 3.0 && ok == ok_before && bad == bad_before).then_some((parsed, text))
    });
    let ok_labels = [("provider", "m"), ("service", "ok"), ("channel", "")];
    assert_eq!(
        sample(&metrics, "llm_monitor_probes_total", &[("service", "ok"), ("status", "green"), ("reason", "ok")]),
        Some(seen("/m/ok"))
    );
    assert_eq!(sample(&metrics, "llm_monitor_probe_latency_seconds_count", &ok_labels), Some(seen("/m/ok")));
    assert_eq!(sample(&metrics, "llm_monitor_last_status", &ok_labels), Some(1.0));
    assert_eq!(sample(&metrics, "llm_monitor_last_status", &[("service", "bad")]), Some(0.0));
    let last = sample(&metrics, "llm_monitor_last_probe_timestamp_seconds", &ok_labels).unwrap();
    assert!((now() as f64 - last).abs() < 10.0, "{last}");
    assert_eq!(sample(&metrics, "llm_monitor_config_last_reload_successful", &[]), Some(1.0));
    assert!(sample(&metrics, "llm_monitor_config_last_reload_success_timestamp_seconds", &[]).unwrap() > 0.0);
    assert!(sample(&metrics, "llm_monitor_store_queue_depth", &[]).is_some());
    assert_eq!(sample(&metrics, "llm_monitor_store_write_errors_total", &[]), Some(0.0));
    assert_eq!(sample(&metrics, "llm_monitor_store_dropped_total", &[]), Some(0.0));
    assert_eq!(sample(&metrics, "llm_monitor_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), Some(1.0));
    assert!(text.contains("# TYPE llm_monitor_probe_latency_seconds histogram"), "{text}");
    assert!(!text.contains(key), "a key in /metrics");

    // A failed reload shows, and a removed monitor's series go.
    ws.write_config(&format!(
        "interval: 1s\nmonitors:\n  - {{provider: m, service: ok, url: \"{}/m/ok\", method: FETCH}}\n",
        up.base
    ));
    wait_for("the failed reload in /metrics", Duration::from_secs(5), || {
        (sample(&scrape(&daemon).0, "llm_monitor_config_last_reload_successful", &[]) == Some(0.0)).then_some(())
    });
    ws.write_config(&format!(
        "interval: 1s\nmonitors:\n  - {{provider: m, service: ok, url: \"{}/m/ok\", method: GET}}\n",
        up.base
    ));
    wait_for("the removed monitor's series to go", Duration::from_secs(5), || {
        let m = scrape(&daemon).0;
        (sample(&m, "llm_monitor_config_last_reload_successful", &[]) == Some(1.0)
            && sample(&m, "llm_monitor_last_status", &[("service", "bad")]).is_none())
        .then_some(())
    });
}

pub(crate) fn chromium() -> Option<std::path::PathBuf> {
    let candidates = [
        std::env::var("LLM_MONITOR_CHROMIUM").unwrap_or_default(),
        "/usr/bin/chromium".into(),
        "/usr/bin/chromium-browser".into(),
    ];
    candidates.into_iter().filter(|p| !p.is_empty()).map(std::path::PathBuf::from).find(|p| p.exists())
}

fn expected_colour(status: i64) -> &'static str {
    match status {
        1 => "rgb(34, 165, 91)",
        2 => "rgb(224, 165, 18)",
        0 => "rgb(217, 66, 58)",
        _ => "rgb(197, 202, 211)",
    }
}

fn uptime_text(uptime: f64) -> String {
    if uptime < 0.0 {
        "—".to_string()
    } else {
        format!("{uptime:.2}%")
    }
}

/// Headless Chromium at `size` with a profile of its own (kept while the browser runs), or None
/// after printing SKIPPED (a panic when `LLM_MONITOR_REQUIRE_BROWSER` is set).
pub(crate) fn browser(test: &str, size: (u32, u32)) -> Option<(headless_chrome::Browser, tempfile::TempDir)> {
    use headless_chrome::{Browser, LaunchOptions};
    let Some(path) = chromium() else {
        if std::env::var_os("LLM_MONITOR_REQUIRE_BROWSER").is_some() {
            panic!("LLM_MONITOR_REQUIRE_BROWSER is set but no Chromium was found (apt-get install chromium)");
        }
        eprintln!("SKIPPED {test}: no Chromium (apt-get install chromium; CI installs it)");
        return None;
    };
    let profile = tempfile::tempdir().unwrap();
    let args: Vec<String> = [
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        &format!("--user-data-dir={}", profile.path().display()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let options = LaunchOptions::default_builder()
        .path(Some(path))
        .headless(true)
        .sandbox(false)
        .window_size(Some(size))
        .idle_browser_timeout(Duration::from_secs(120))
        .args(args.iter().map(std::ffi::OsStr::new).collect())
        .build()
        .unwrap();
    Some((Browser::new(options).expect("Chromium starts"), profile))
}

/// The page in headless Chromium: rows, colours and uptimes as /api/status says, the period
/// switch, a filter, the language switch; a screenshot lands in target/screenshots/.
#[test]
fn the_status_page_in_a_real_browser() {
    use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;

    let Some((browser, _profile)) = browser("the_status_page_in_a_real_browser", (1280, 900)) else { return };
    let quiet = crate::support::upstream::black_hole();
    let ws = page_workspace(&quiet);
    let daemon = ws.start();
    let tab = browser.new_tab().unwrap();
    tab.navigate_to(&format!("{}/?theme=light&lang=en", daemon.base)).unwrap().wait_until_navigated().unwrap();
    let eval = |js: &str| -> Value {
        let result = tab.evaluate(js, false).unwrap_or_else(|e| panic!("{js}: {e}"));
        let text = result.value.and_then(|v| v.as_str().map(String::from)).unwrap_or_else(|| "null".into());
        serde_json::from_str(&text).unwrap()
    };
    let rows_js = r#"JSON.stringify([...document.querySelectorAll('.monitor-row')].map(r => ({
        provider: r.dataset.provider, status: Number(r.dataset.status),
        colour: getComputedStyle(r.querySelector('.status-dot')).backgroundColor,
        uptime: r.querySelector('.uptime b').textContent,
        uptimeLabel: r.querySelector('.uptime').firstChild.textContent.trim(),
        cost: r.querySelector('.cost b')?.textContent ?? null,
        buckets: r.querySelectorAll('.bar .bucket').length,
        tooltip: [...r.querySelectorAll('.bar .bucket:not(.sn)')].pop()?.getAttribute('aria-label') ?? '' })))"#;
    let wait_rows = |period: &str, buckets: usize| -> Vec<Value> {
        wait_for(&format!("{buckets} buckets for {period}"), Duration::from_secs(20), || {
            let loaded = eval("JSON.stringify(document.body.dataset.loaded || '')");
            let rows = eval(rows_js).as_array().cloned().unwrap_or_default();
            (loaded == period && rows.len() == 4 && rows.iter().all(|r| r["buckets"] == buckets)).then_some(rows)
        })
    };
    let check = |period: &str, rows: &[Value]| {
        let api = daemon.status(&format!("?period={period}"));
        for (row, m) in rows.iter().zip(api["data"].as_array().unwrap()) {
            assert_eq!(row["provider"], m["provider"]);
            let status = m["current_status"]["status"].as_i64().unwrap_or(-1);
            assert_eq!(row["status"], status, "{period}: {row}");
            assert_eq!(row["colour"], expected_colour(status), "{period}: {row}");
            assert_eq!(row["uptime"], uptime_text(m["uptime"].as_f64().unwrap()), "{period}: {row}");
            // The period's cost beside the uptime, for the one monitor whose probes had one.
            let cost = m["cost_usd"].as_f64().map(|usd| format!("${usd:.6}"));
            assert_eq!(row["cost"].as_str().map(String::from), cost, "{period}: {row}");
            assert_eq!(cost.is_some(), m["provider"] == "alpha", "{period}: {m}");
        }
    };

    let rows = wait_rows("24h", 24);
    check("24h", &rows);
    assert_eq!(rows[0]["uptimeLabel"], "Uptime");
    // A bucket whose probes were all in maintenance has its own colour, never red.
    let maintenance = eval(
        r#"JSON.stringify([...document.querySelectorAll('.bar .bucket')].filter(b => b.dataset.status === '-2').map(b => [getComputedStyle(b).backgroundColor, b.getAttribute('aria-label')]))"#,
    );
    assert_eq!(maintenance.as_array().map(Vec::len), Some(1), "{maintenance}");
    assert_eq!(maintenance[0][0], "rgb(123, 97, 201)");
    assert!(maintenance[0][1].as_str().unwrap().contains("Worst: Maintenance"), "{maintenance}");
    assert!(rows[0]["tooltip"].as_str().unwrap().contains("availability"), "{}", rows[0]["tooltip"]);
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let png = tab.capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true).unwrap();
    assert!(png.len() > 10_000, "a real screenshot");
    std::fs::write(shots.join("status-page.png"), &png).unwrap();

    tab.find_element("button[data-period='7d']").unwrap().click().unwrap();
    let rows = wait_rows("7d", 7);
    check("7d", &rows);

    // A filter: only beta.
    eval("(() => { const s = document.getElementById('filter-provider'); s.value = 'beta'; s.dispatchEvent(new Event('change')); return '1'; })()");
    let filtered = wait_for("the filter", Duration::from_secs(5), || {
        let rows = eval(rows_js).as_array().cloned().unwrap_or_default();
        (rows.len() == 1).then_some(rows)
    });
    assert_eq!(filtered[0]["provider"], "beta");
    eval("(() => { const s = document.getElementById('filter-provider'); s.value = ''; s.dispatchEvent(new Event('change')); return '1'; })()");

    // The language switch changes the labels.
    tab.find_element("#lang").unwrap().click().unwrap();
    let labels = wait_for("Chinese labels", Duration::from_secs(5), || {
        let v = eval("JSON.stringify([document.documentElement.lang, document.querySelector('h1').textContent, document.querySelector('.uptime').firstChild.textContent.trim(), document.getElementById('lang').textContent])");
        (v[0] == "zh-CN").then_some(v)
    });
    assert_eq!(labels[1], "LLM 接口状态");
    // Dates as Chinese writes them (the 7-day view: "2026年11月21日 UTC").
    let tick = eval("JSON.stringify(document.querySelector('.monitor-row .ticks span').textContent)");
    let first = now() / 86_400 * 86_400 - 6 * 86_400;
    let expected = format!("{} UTC", time_label(first, "%Y年%-m月%-d日"));
    // (or the day before, if the day turned since the page drew its bars)
    let day_before = format!("{} UTC", time_label(first - 86_400, "%Y年%-m月%-d日"));
    assert!(tick == expected.as_str() || tick == day_before.as_str(), "{tick} vs {expected}");
    assert_eq!(labels[2], "可用率");
    assert_eq!(labels[3], "English");

    let png = tab.capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true).unwrap();
    std::fs::write(shots.join("status-page-zh.png"), &png).unwrap();

    // Values the page does not have fall back instead of breaking it, and are never saved:
    // zh-TW is the page's Chinese, 1y the saved period (7d), en-GB English.
    tab.navigate_to(&format!("{}/?lang=zh-TW&period=1y", daemon.base)).unwrap().wait_until_navigated().unwrap();
    let rows = wait_rows("7d", 7);
    assert_eq!(rows.len(), 4);
    assert_eq!(eval("JSON.stringify(document.documentElement.lang)"), "zh-CN");
    tab.navigate_to(&format!("{}/?lang=xx-YY&period=1y", daemon.base)).unwrap().wait_until_navigated().unwrap();
    wait_rows("7d", 7);
    let stored =
        eval("JSON.stringify([localStorage.getItem('llm-monitor.lang'), localStorage.getItem('llm-monitor.period')])");
    assert_eq!(stored, serde_json::json!(["zh", "7d"]), "an unknown value was saved");
    // An unknown language asked in the URL is English (the saved Chinese is not used).
    assert_eq!(eval("JSON.stringify(document.documentElement.lang)"), "en");
    // zh-HK and zh-TW are the page's Chinese (简体中文).
    tab.navigate_to(&format!("{}/?lang=zh-HK", daemon.base)).unwrap().wait_until_navigated().unwrap();
    wait_rows("7d", 7);
    assert_eq!(eval("JSON.stringify(document.documentElement.lang)"), "zh-CN");
    tab.navigate_to(&format!("{}/?lang=en-GB", daemon.base)).unwrap().wait_until_navigated().unwrap();
    wait_rows("7d", 7);
    assert_eq!(eval("JSON.stringify(document.querySelector('h1').textContent)"), "LLM API status");
    // The icon a browser asks for by itself is there.
    let favicon = wait_for("the favicon fetched by the page", Duration::from_secs(5), || {
        let v = eval("JSON.stringify(window.__favicon ?? (fetch('/favicon.ico').then(r => { window.__favicon = [r.status, r.headers.get('content-type')]; }), null))");
        (!v.is_null()).then_some(v)
    });
    assert_eq!(favicon, serde_json::json!([200, "image/svg+xml"]));
    // The page never asked for anything but this daemon (CSP would block it anyway).
    assert!(http_get(&format!("{}/", daemon.base), &[])
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'none'"));
}

/// History for the shading test: `shade/chat` has one hour-bucket at each of 100 %, 99.9 %,
/// 97 %, 80 % and 0 % availability (1 to 5 hours back) and is green now; with `down`, a second
/// monitor is red now with a detail. Nothing is probed during the test.
fn shading_workspace(quiet: &crate::support::upstream::BlackHole, down: bool) -> (Workspace, i64, i64) {
    // The test reads buckets by their hour: not in the last minute before the hour turns.
    let t = wait_for("an hour with a minute left", Duration::from_secs(70), || {
        let t = now();
        (t % 3_600 < 3_540).then_some(t)
    });
    let minute = t / 60 * 60;
    let mut config = String::from("interval: 24h\ntimeout: 5m\nslow_latency: 4m\n");
    if down {
        // A window in progress for shade, one planned for both.
        let at = |unix: i64| time_label(unix, "%Y-%m-%dT%H:%M:%SZ");
        config.push_str(&format!(
            "maintenance:\n  - {{name: upgrade, monitors: [\"shade/*\"], start: \"{}\", end: \"{}\"}}\n  \
             - {{name: move, monitors: [\"*/*\"], start: \"{}\", end: \"{}\"}}\n",
            at(minute - 3_600),
            at(minute + 3_600),
            at(minute + 7_200),
            at(minute + 10_800)
        ));
    }
    config.push_str("monitors:\n");
    let names: &[&str] = if down { &["shade", "down"] } else { &["shade"] };
    for p in names {
        config.push_str(&format!("  - {{provider: {p}, service: chat, url: \"{}\", method: GET}}\n", quiet.url));
    }
    let ws = Workspace::new(&config);
    let mut conn = ws.db();
    let keys: Vec<MonitorKey> = names.iter().map(|p| MonitorKey::new(p, "chat", "")).collect();
    let ids = conn.monitor_ids(&keys).unwrap();
    let hour = t / 3_600 * 3_600;
    let probe = |id: i32, ts: i64, red: bool| Row {
        monitor_id: id,
        ts,
        status: if red { 0 } else { 1 },
        latency_ms: if red { 0 } else { 250 },
        reason: if red { "server_error" } else { "ok" }.into(),
        http_code: if red { 502 } else { 200 },
        detail: red.then(|| "HTTP 502: upstream connect error".to_string()),
        // A priced model: each answered probe cost 10,000 nano-USD.
        cost_nanos: (!red).then_some(10_000),
        ..Row::default()
    };
    let mut rows = Vec::new();
    // (hours back, green, red): 100 %, 99.9 %, 97 %, 80 %, 0 %.
    for (back, green, red) in [(1, 10, 0), (2, 999, 1), (3, 97, 3), (4, 8, 2), (5, 0, 3)] {
        let start = hour - back * 3_600;
        for i in 0..green + red {
            rows.push(probe(ids[0], start + (i * 3) % 3_600, i >= green));
        }
    }
    rows.sort_by_key(|r| r.ts);
    rows.push(probe(ids[0], t - 30, false));
    if down {
        rows.push(probe(ids[1], t - 20, true));
    }
    conn.insert(&rows).unwrap();
    (ws, hour, minute)
}

/// Buckets shaded by availability (100, 99.9, 97, 80, 0 %), a bucket's details opened by a
/// click and by the keyboard (Tab to the bar, arrow keys, Enter and Space), the headline
/// banner when some are down and when all are up, a red row's detail without a latency.
#[test]
fn the_page_shades_buckets_by_availability_and_opens_them_by_click_and_keyboard() {
    use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
    let test = "the_page_shades_buckets_by_availability_and_opens_them_by_click_and_keyboard";
    let Some((browser, _profile)) = browser(test, (1280, 900)) else { return };
    let quiet = crate::support::upstream::black_hole();
    let (ws, hour, minute) = shading_workspace(&quiet, true);
    let daemon = ws.start();
    let tab = browser.new_tab().unwrap();
    tab.navigate_to(&format!("{}/?theme=light&lang=en&period=24h", daemon.base))
        .unwrap()
        .wait_until_navigated()
        .unwrap();
    let eval = |js: &str| -> Value {
        let result = tab.evaluate(js, false).unwrap_or_else(|e| panic!("{js}: {e}"));
        let text = result.value.and_then(|v| v.as_str().map(String::from)).unwrap_or_else(|| "null".into());
        serde_json::from_str(&text).unwrap()
    };
    wait_for("the rows", Duration::from_secs(20), || {
        (eval("JSON.stringify(document.querySelectorAll('.monitor-row').length)") == 2).then_some(())
    });
    let bucket =
        |back: i64| format!(".monitor-row[data-provider='shade'] .bucket[data-timestamp='{}']", hour - back * 3_600);
    let colour = |back: i64| -> (String, [f64; 3]) {
        let v = eval(&format!(
            "JSON.stringify((() => {{ const b = document.querySelector(\"{}\"); return [b.className, getComputedStyle(b).backgroundColor]; }})())",
            bucket(back)
        ));
        let rgb: Vec<f64> = v[1]
            .as_str()
            .unwrap()
            .trim_start_matches("rgb(")
            .trim_end_matches(')')
            .split(',')
            .map(|x| x.trim().parse().unwrap())
            .collect();
        (v[0].as_str().unwrap().to_string(), [rgb[0], rgb[1], rgb[2]])
    };
    let distance =
        |a: [f64; 3], b: [f64; 3]| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt();
    for theme in ["light", "dark"] {
        eval(&format!("(() => {{ document.documentElement.dataset.theme = '{theme}'; return '1'; }})()"));
        let shades: Vec<(String, [f64; 3])> = (1..=5).map(colour).collect();
        let classes: Vec<&str> = shades.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(classes, ["bucket a100", "bucket a99", "bucket a95", "bucket a50", "bucket a0"]);
        let (full, none) = (shades[0].1, shades[4].1);
        // Every shade below 100 % differs from it; 99.9 % is nearer the 100 % colour than the
        // 0 % one; 97, 80 and 0 % are successively further from 100 %, and redder.
        for (class, rgb) in &shades[1..] {
            assert!(distance(*rgb, full) > 40.0, "{theme}: {class} {rgb:?} too close to the 100 % colour");
        }
        assert!(distance(shades[1].1, full) < distance(shades[1].1, none), "{theme}: 99.9 % reads closer to 100 %");
        let from_full: Vec<f64> = shades.iter().map(|(_, rgb)| distance(*rgb, full)).collect();
        assert!(from_full.windows(2).all(|w| w[0] < w[1]), "{theme}: shades in order: {from_full:?}");
        assert!(shades[1..].windows(2).all(|w| w[0].1[1] > w[1].1[1]), "{theme}: less green each step: {shades:?}");
    }
    eval("(() => { document.documentElement.dataset.theme = 'light'; return '1'; })()");

    // The banner: one of two down; the red row shows its detail and no latency.
    let banner = eval(
        "JSON.stringify([document.getElementById('banner').textContent, document.getElementById('banner').className])",
    );
    assert_eq!(banner, serde_json::json!(["1 of 2 down", "banner down"]));
    // Maintenance in progress and planned, announced at the top with UTC times.
    let notes = eval(
        "JSON.stringify([...document.querySelectorAll('#announcements li')].map(li => [li.className, li.textContent]))",
    );
    let t = minute;
    assert_eq!(notes.as_array().map(Vec::len), Some(2), "{notes}");
    assert_eq!(notes[0][0], "maint-now");
    let until = time_label(t + 3_600, "%b %-d, %Y %H:%M");
    assert!(notes[0][1].as_str().unwrap().contains(&format!("shade / chat (upgrade) until {until} UTC")), "{notes}");
    assert_eq!(notes[1][0], "maint-next");
    let next = format!("{}–{} UTC", time_label(t + 7_200, "%b %-d, %Y %H:%M"), time_label(t + 10_800, "%H:%M"));
    // One line for a window over both monitors, naming them.
    assert!(notes[1][1].as_str().unwrap().contains(&format!("shade / chat, down / chat (move) {next}")), "{notes}");
    // One probing node: no node switch (it shows from two on).
    assert_eq!(eval("JSON.stringify(getComputedStyle(document.getElementById('node-switch')).display)"), "none");
    let down = eval(
        "JSON.stringify((() => { const r = document.querySelector(\".monitor-row[data-provider='down']\"); \
         return [r.querySelector('.red-detail') && r.querySelector('.red-detail').textContent, !!r.querySelector('.latency'), !!document.querySelector(\".monitor-row[data-provider='shade'] .latency\")]; })())",
    );
    assert_eq!(down, serde_json::json!(["HTTP 502: upstream connect error", false, true]));
    // Axis labels and the update time carry the date or "UTC".
    let ticks = eval("JSON.stringify([...document.querySelectorAll('.monitor-row .ticks span')].map(s => s.textContent).concat([document.getElementById('summary').textContent]))");
    for text in ticks.as_array().unwrap() {
        assert!(text.as_str().unwrap().ends_with("UTC"), "{text}");
    }
    // Dates as English writes them: "Nov 26, 2026 02:00 UTC".
    let first_tick = ticks[0].as_str().unwrap();
    assert_eq!(first_tick, format!("{} UTC", time_label(hour - 23 * 3_600, "%b %-d, %Y %H:%M")));

    // A click opens the 97 % bucket's details: range with date and UTC, availability, counts,
    // the worst status, latency.
    let details = || eval("JSON.stringify([...document.querySelectorAll('.details li')].map(li => li.textContent))");
    tab.find_element(&bucket(3)).unwrap().click().unwrap();
    let lines = wait_for("the details after a click", Duration::from_secs(5), || {
        let v = details();
        (v.as_array().is_some_and(|a| !a.is_empty())).then_some(v)
    });
    let text = lines.to_string();
    let date = time_label(hour - 3 * 3_600, "%b %-d, %Y %H:%M");
    assert!(lines[0].as_str().unwrap().starts_with(&date) && lines[0].as_str().unwrap().ends_with("UTC"), "{text}");
    for part in [
        "availability: 97.00%",
        "Worst: Unavailable",
        "Normal 97 · Slow / limited 0 · Unavailable 3",
        "Latency: 250 ms",
        "Reasons: Server error ×3",
        // 97 answered probes at 10,000 nano-USD.
        "Cost: $0.000970",
    ] {
        assert!(text.contains(part), "{part} in {text}");
    }
    // The incident history, without a click: the runs of at least 2 red probes (the default
    // failure_threshold), newest first; the single red probes are no incident. Nothing was
    // probed for 55 minutes after each (history without an interval: a 15-minute gap ends a
    // run), so each ended at its last red probe, 3 s after the one before.
    let incidents =
        eval("JSON.stringify([...document.querySelectorAll('#incident-list li')].map(li => li.textContent))");
    let list: Vec<&str> = incidents.as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(list.len(), 3, "{incidents}");
    let start = hour - 3 * 3_600 + 97 * 3;
    assert_eq!(
        list[0],
        format!(
            "shade / chat {}–{} UTC (6 s)3 failed probes · Server error ×3",
            time_label(start, "%b %-d, %Y %H:%M"),
            time_label(start + 6, "%H:%M")
        )
    );
    assert!(
        list[1].contains("2 failed probes · Server error ×2") && list[2].contains("3 failed probes"),
        "{incidents}"
    );
    // The same incidents in the Atom feed, valid per RFC 4287.
    let atom = daemon.get("/feed.atom");
    crate::history::validate_atom(&atom.text);
    let feed = atom_syndication::Feed::read_from(atom.text.as_bytes()).unwrap();
    let titles: Vec<&str> = feed.entries().iter().map(|e| e.title().as_str()).collect();
    assert_eq!(titles.iter().filter(|t| t.starts_with("Resolved: shade / chat was down")).count(), 3, "{titles:?}");
    assert!(titles.iter().any(|t| t.starts_with("Maintenance in progress: upgrade")), "{titles:?}");
    assert!(titles.iter().any(|t| t.starts_with("Planned maintenance: move")), "{titles:?}");
    let png = tab.capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true).unwrap();
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    std::fs::write(shots.join("status-page-details.png"), &png).unwrap();
    eval("(() => { document.getElementById('incidents').scrollIntoView(); return '1'; })()");
    let png = tab.capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true).unwrap();
    std::fs::write(shots.join("status-page-incidents.png"), &png).unwrap();
    eval("(() => { window.scrollTo(0, 0); return '1'; })()");
    // A second click closes it.
    tab.find_element(&bucket(3)).unwrap().click().unwrap();
    wait_for("the details closed", Duration::from_secs(5), || (details() == serde_json::json!([])).then_some(()));

    // The keyboard: Tab from the top reaches a bar (its newest bucket), arrows move, Enter opens.
    eval("(() => { document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); return '1'; })()");
    let mut reached = false;
    for _ in 0..40 {
        tab.press_key("Tab").unwrap();
        if eval("JSON.stringify(document.activeElement.classList.contains('bucket') && document.activeElement.closest('.monitor-row').dataset.provider)") == "shade" {
            reached = true;
            break;
        }
    }
    assert!(reached, "Tab reaches the first bar");
    // The bar's Tab stop is where it was last (the bucket clicked above); End goes to the newest.
    assert_eq!(eval("JSON.stringify(Number(document.activeElement.dataset.timestamp))"), hour - 3 * 3_600);
    tab.press_key("End").unwrap();
    assert_eq!(eval("JSON.stringify(Number(document.activeElement.dataset.timestamp))"), hour);
    for _ in 0..4 {
        tab.press_key("ArrowLeft").unwrap();
    }
    assert_eq!(eval("JSON.stringify(Number(document.activeElement.dataset.timestamp))"), hour - 4 * 3_600);
    tab.press_key("Enter").unwrap();
    let lines = wait_for("the details after Enter", Duration::from_secs(5), || {
        let v = details();
        (v.as_array().is_some_and(|a| !a.is_empty())).then_some(v)
    });
    assert!(lines.to_string().contains("availability: 80.00%"), "{lines}");
    // Focus stays on the bucket; the next one by arrow and Space.
    assert_eq!(eval("JSON.stringify(document.activeElement.getAttribute('aria-expanded'))"), "true");
    tab.press_key("ArrowLeft").unwrap();
    tab.press_key(" ").unwrap();
    let lines = wait_for("the details after Space", Duration::from_secs(5), || {
        let v = details();
        v.to_string().contains("availability: 0.00%").then_some(v)
    });
    assert!(lines.to_string().contains("Unavailable 3"), "{lines}");
    tab.press_key("Escape").unwrap();
    wait_for("the details closed by Escape", Duration::from_secs(5), || {
        (details() == serde_json::json!([])).then_some(())
    });
    assert_eq!(
        eval("JSON.stringify(Number(document.activeElement.dataset.timestamp))"),
        hour - 5 * 3_600,
        "the focus goes back to the bucket"
    );
    // Switching the period closes the details (a day's bucket is not the hour's).
    tab.find_element(&bucket(3)).unwrap().click().unwrap();
    wait_for("the details again", Duration::from_secs(5), || (details() != serde_json::json!([])).then_some(()));
    tab.find_element("button[data-period='7d']").unwrap().click().unwrap();
    wait_for("the 7-day view without details", Duration::from_secs(10), || {
        (eval("JSON.stringify(document.body.dataset.loaded)") == "7d" && details() == serde_json::json!([]))
            .then_some(())
    });
    tab.find_element("button[data-period='24h']").unwrap().click().unwrap();
    wait_for("the 24-hour view", Duration::from_secs(10), || {
        (eval("JSON.stringify(document.body.dataset.loaded)") == "24h").then_some(())
    });
    // Screen readers get the same figures as the bucket's name.
    let label = eval(&format!("JSON.stringify(document.querySelector(\"{}\").getAttribute('aria-label'))", bucket(2)));
    assert!(label.as_str().unwrap().contains("availability: 99.90%"), "{label}");

    // All up: the other banner.
    let (ws_up, _, _) = shading_workspace(&quiet, false);
    let daemon_up = ws_up.start();
    tab.navigate_to(&format!("{}/?theme=light&lang=en", daemon_up.base)).unwrap().wait_until_navigated().unwrap();
    let banner = wait_for("the all-up banner", Duration::from_secs(20), || {
        let v = eval("JSON.stringify([document.getElementById('banner').textContent, document.getElementById('banner').className])");
        (v[0] != "").then_some(v)
    });
    assert_eq!(banner, serde_json::json!(["All systems operational", "banner up"]));
}

/// `unix` formatted in UTC with a strftime pattern (via chrono).
fn time_label(unix: i64, pattern: &str) -> String {
    chrono::DateTime::from_timestamp(unix, 0).unwrap().format(pattern).to_string()
}

fn page_config(quiet: &crate::support::upstream::BlackHole, title: &str) -> String {
    let mut config = format!(
        "interval: 24h\ntimeout: 5m\nslow_latency: 4m\npage:\n  title: \"{title}\"\n  description: \"Probed every minute\"\n  \
         logo_url: /favicon.svg\n  footer: \"Run by ops\"\n  groups: [Claude, OpenAI]\n  hidden: [\"test/*\"]\nmonitors:\n"
    );
    for (p, s, group) in [
        ("alpha", "chat", "OpenAI"),
        ("beta", "chat", "Claude"),
        ("gamma", "code", ""),
        ("test", "probe", ""),
        ("delta", "x", "openai"),
    ] {
        let group = if group.is_empty() { String::new() } else { format!(", group: {group}") };
        config.push_str(&format!("  - {{provider: {p}, service: {s}, url: \"{}\", method: GET{group}}}\n", quiet.url));
    }
    config
}

/// `page:` settings on the page (title, description, logo, footer), groups in the configured
/// order (then by provider), collapsible, hidden monitors left off, a reload applied, and
/// `?embed=1` without the page's chrome and framable.
#[test]
fn the_page_has_its_title_groups_hidden_monitors_and_an_embed_view() {
    let test = "the_page_has_its_title_groups_hidden_monitors_and_an_embed_view";
    let Some((browser, _profile)) = browser(test, (1280, 900)) else { return };
    let quiet = crate::support::upstream::black_hole();
    let ws = Workspace::new(&page_config(&quiet, "Relay status"));
    // Latest latencies that would put the groups in another order if sorting moved groups:
    // gamma slowest, then delta, alpha, beta.
    let mut conn = ws.db();
    let keys: Vec<MonitorKey> = [("alpha", "chat"), ("beta", "chat"), ("gamma", "code"), ("delta", "x")]
        .map(|(p, s)| MonitorKey::new(p, s, ""))
        .to_vec();
    let ids = conn.monitor_ids(&keys).unwrap();
    let rows: Vec<Row> = ids
        .iter()
        .zip([300, 100, 900, 500])
        .map(|(id, latency_ms)| Row {
            monitor_id: *id,
            ts: now() - 30,
            status: 1,
            latency_ms,
            reason: "ok".into(),
            http_code: 200,
            ..Row::default()
        })
        .collect();
    conn.insert(&rows).unwrap();
    drop(conn);
    let daemon = ws.start();
    let api = http_get(&format!("{}/api/page", daemon.base), &[]).json();
    assert_eq!(api["title"], "Relay status");
    assert_eq!(api["groups"], serde_json::json!(["Claude", "OpenAI"]));
    assert_eq!(api["hidden"], serde_json::json!(["test/*"]));
    assert_eq!(api["monitor_groups"].as_array().map(Vec::len), Some(3), "{api}");

    let tab = browser.new_tab().unwrap();
    let eval = |js: &str| -> Value {
        let result = tab.evaluate(js, false).unwrap_or_else(|e| panic!("{js}: {e}"));
        let text = result.value.and_then(|v| v.as_str().map(String::from)).unwrap_or_else(|| "null".into());
        serde_json::from_str(&text).unwrap()
    };
    let open = |query: &str| {
        tab.navigate_to(&format!("{}/{query}", daemon.base)).unwrap().wait_until_navigated().unwrap();
        wait_for("the groups", Duration::from_secs(20), || {
            (eval("JSON.stringify(document.querySelectorAll('.group').length)") == 3).then_some(())
        });
    };
    open("?lang=en&theme=light");
    let texts = eval(
        "JSON.stringify([document.getElementById('title').textContent, document.title, \
         document.getElementById('description').textContent, document.getElementById('page-footer').textContent, \
         document.getElementById('logo').getAttribute('src'), document.getElementById('logo').hidden])",
    );
    assert_eq!(
        texts,
        serde_json::json!(["Relay status", "Relay status", "Probed every minute", "Run by ops", "/favicon.svg", false])
    );
    let logo = wait_for("the logo loaded", Duration::from_secs(5), || {
        let w = eval("JSON.stringify(document.getElementById('logo').naturalWidth)");
        (w.as_i64().unwrap_or(0) > 0).then_some(w)
    });
    assert!(logo.as_i64().unwrap() > 0);
    let groups = eval(
        "JSON.stringify([...document.querySelectorAll('.group')].map(g => [g.dataset.group, \
         g.querySelector('.group-summary').textContent, [...g.querySelectorAll('.monitor-row')].map(r => r.dataset.provider)]))",
    );
    assert_eq!(
        groups,
        serde_json::json!([
            ["Claude", "1 monitor · all up", ["beta"]],
            ["OpenAI", "2 monitors · all up", ["alpha", "delta"]],
            ["gamma", "1 monitor · all up", ["gamma"]]
        ])
    );
    // The page asks for the compact view, revalidating: a refresh with nothing new is a 304.
    let refresh = tab
        .evaluate(
            "(async () => { await load(); return JSON.stringify(performance.getEntriesByType('resource')\
             .filter(r => r.name.includes('/api/status?') && r.name.includes('view=compact')).map(r => [r.responseStatus, r.transferSize, r.encodedBodySize])); })()",
            true,
        )
        .unwrap();
    let statuses: Value = serde_json::from_str(refresh.value.unwrap().as_str().unwrap()).unwrap();
    // [status, transferSize, encodedBodySize]: a revalidated answer shows as 200 from the cache,
    // but only its headers crossed the wire (the body did the first time).
    let (first, last) = (&statuses[0], &statuses[statuses.as_array().unwrap().len() - 1]);
    let n = |v: &Value| v.as_f64().unwrap();
    assert!(statuses.as_array().unwrap().len() >= 2, "{statuses}");
    assert!(n(&first[1]) > n(&first[2]), "the first load carried the body: {statuses}");
    assert!(n(&last[1]) + n(&last[2]) / 2.0 < n(&first[1]), "the refresh carried no body: {statuses}");
    // Sorting orders rows within groups (delta, the slower, before alpha), never the groups
    // (gamma's monitor is the slowest of all, and its group stays last).
    eval("(() => { const s = document.getElementById('sort'); s.value = 'latency'; s.dispatchEvent(new Event('change')); return '1'; })()");
    assert_eq!(
        eval("JSON.stringify([...document.querySelectorAll('.group')].map(g => [g.dataset.group, [...g.querySelectorAll('.monitor-row')].map(r => r.dataset.provider)]))"),
        serde_json::json!([["Claude", ["beta"]], ["OpenAI", ["delta", "alpha"]], ["gamma", ["gamma"]]])
    );
    eval("(() => { const s = document.getElementById('sort'); s.value = 'config'; s.dispatchEvent(new Event('change')); return '1'; })()");
    // The hidden monitor is left off, banner included.
    assert_eq!(eval("JSON.stringify(document.querySelectorAll(\".monitor-row[data-provider='test']\").length)"), 0);
    assert_eq!(eval("JSON.stringify(document.getElementById('banner').dataset.total)"), "4");
    // A group collapses and opens again.
    let openai = "document.querySelector(\".group[data-group='OpenAI']\")";
    tab.find_element(".group[data-group='OpenAI'] .group-head").unwrap().click().unwrap();
    let state = format!("JSON.stringify([{openai}.querySelector('.group-head').getAttribute('aria-expanded'), {openai}.querySelector('.group-rows').hidden])");
    wait_for("collapsed", Duration::from_secs(5), || {
        (eval(&state) == serde_json::json!(["false", true])).then_some(())
    });
    tab.find_element(".group[data-group='OpenAI'] .group-head").unwrap().click().unwrap();
    wait_for("opened", Duration::from_secs(5), || (eval(&state) == serde_json::json!(["true", false])).then_some(()));

    // A reload of the config changes the page.
    ws.write_config(&page_config(&quiet, "Relay status (new)"));
    wait_for("the new title in /api/page", Duration::from_secs(20), || {
        (http_get(&format!("{}/api/page", daemon.base), &[]).json()["title"] == "Relay status (new)").then_some(())
    });
    open("?lang=en");
    assert_eq!(eval("JSON.stringify(document.getElementById('title').textContent)"), "Relay status (new)");

    // Embedded: no tools, filters, legend or footer; the monitors; framable from anywhere.
    open("?embed=1&lang=en");
    let chrome = eval(
        "JSON.stringify(['.tools', '.controls', '.legend', '#page-footer'].map(s => document.querySelector(s).getClientRects().length))",
    );
    assert_eq!(chrome, serde_json::json!([0, 0, 0, 0]), "not rendered");
    assert_eq!(eval("JSON.stringify(document.querySelectorAll('.monitor-row').length)"), 4);
    let csp = |query: &str| {
        http_get(&format!("{}/{query}", daemon.base), &[]).header("content-security-policy").unwrap().to_string()
    };
    assert!(csp("?embed=1").contains("frame-ancestors *"), "{}", csp("?embed=1"));
    assert!(csp("").contains("frame-ancestors 'none'"));
}

/// On a 360 px phone: nothing wider than the screen (a long service name included), no figure
/// wrapped inside its value.
#[test]
fn the_page_fits_a_360_px_phone_without_wrapped_figures() {
    let test = "the_page_fits_a_360_px_phone_without_wrapped_figures";
    let Some((browser, _profile)) = browser(test, (800, 800)) else { return };
    let quiet = crate::support::upstream::black_hole();
    let long = "an-unusually-long-service-name-for-a-relay-channel-that-goes-on-and-on";
    let ws = Workspace::new(&format!(
        "interval: 24h\ntimeout: 5m\nmonitors:\n  - {{provider: alpha, service: {long}, url: \"{u}\", method: GET}}\n  \
         - {{provider: beta, service: chat, url: \"{u}\", method: GET}}\n",
        u = quiet.url
    ));
    let mut conn = ws.db();
    let ids = conn.monitor_ids(&[MonitorKey::new("alpha", long, ""), MonitorKey::new("beta", "chat", "")]).unwrap();
    let t = now();
    let rows: Vec<Row> = ids
        .iter()
        .map(|id| Row {
            monitor_id: *id,
            ts: t - 30,
            status: 1,
            latency_ms: 1_234,
            reason: "ok".into(),
            http_code: 200,
            ttft_ms: Some(456),
            ..Row::default()
        })
        .collect();
    conn.insert(&rows).unwrap();
    drop(conn);
    let daemon = ws.start();
    let tab = browser.new_tab().unwrap();
    // A phone's viewport (a headless window is never narrower than 500 px).
    tab.call_method(headless_chrome::protocol::cdp::Emulation::SetDeviceMetricsOverride {
        width: 360,
        height: 800,
        device_scale_factor: 2.0,
        mobile: true,
        scale: None,
        screen_width: None,
        screen_height: None,
        position_x: None,
        position_y: None,
        dont_set_visible_size: None,
        screen_orientation: None,
        viewport: None,
        display_feature: None,
        device_posture: None,
    })
    .unwrap();
    let eval = |js: &str| -> Value {
        let result = tab.evaluate(js, false).unwrap_or_else(|e| panic!("{js}: {e}"));
        let text = result.value.and_then(|v| v.as_str().map(String::from)).unwrap_or_else(|| "null".into());
        serde_json::from_str(&text).unwrap()
    };
    for theme in ["light", "dark"] {
        tab.navigate_to(&format!("{}/?lang=en&theme={theme}", daemon.base)).unwrap().wait_until_navigated().unwrap();
        wait_for("the rows", Duration::from_secs(20), || {
            (eval("JSON.stringify(document.querySelectorAll('.monitor-row .figures b').length)") == 6).then_some(())
        });
        let width = eval("JSON.stringify([window.innerWidth, document.documentElement.scrollWidth])");
        assert_eq!(width[0], 360, "the viewport");
        assert!(width[1].as_i64() <= width[0].as_i64(), "{theme}: the page is wider than the phone: {width}");
        // Every element inside the screen, and each figure ("Latency 1234 ms") on one line.
        let outside = eval(
            "JSON.stringify([...document.querySelectorAll('body *')].filter(e => e.getClientRects().length && \
             e.getBoundingClientRect().right > window.innerWidth + 0.5).map(e => e.tagName + '.' + e.className))",
        );
        assert_eq!(outside, serde_json::json!([]), "{theme}");
        let wrapped = eval(
            "JSON.stringify([...document.querySelectorAll('.figures > span')].filter(s => s.getClientRects().length !== 1).map(s => s.textContent))",
        );
        assert_eq!(wrapped, serde_json::json!([]), "{theme}");
    }
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let png = tab
        .capture_screenshot(headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption::Png, None, None, true)
        .unwrap();
    std::fs::write(shots.join("status-page-phone.png"), &png).unwrap();
}

/// axe-core's source: `LLM_MONITOR_AXE`, else `target/axe/axe.min.js` (`.ci/axe` fetches it);
/// None after printing SKIPPED (a panic when `LLM_MONITOR_REQUIRE_AXE` is set).
fn axe_source(test: &str) -> Option<String> {
    let path = std::env::var_os("LLM_MONITOR_AXE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/axe/axe.min.js"));
    match std::fs::read_to_string(&path) {
        Ok(source) => Some(source),
        Err(e) => {
            if std::env::var_os("LLM_MONITOR_REQUIRE_AXE").is_some() {
                panic!("LLM_MONITOR_REQUIRE_AXE is set but {} cannot be read: {e}", path.display());
            }
            eprintln!("SKIPPED {test}: no axe-core at {} (bash .ci/axe fetches it)", path.display());
            None
        }
    }
}

/// axe-core run in the page, light and dark, with a bucket's details open, in English and
/// Chinese, and embedded: no violation (the issue asks for none serious or critical).
#[test]
fn the_page_passes_an_automated_accessibility_check() {
    let test = "the_page_passes_an_automated_accessibility_check";
    let Some(axe) = axe_source(test) else { return };
    let Some((browser, _profile)) = browser(test, (1280, 900)) else { return };
    let quiet = crate::support::upstream::black_hole();
    let (ws, hour, _) = shading_workspace(&quiet, true);
    let daemon = ws.start();
    let tab = browser.new_tab().unwrap();
    let eval = |js: &str| -> Value {
        let result = tab.evaluate(js, false).unwrap_or_else(|e| panic!("{js}: {e}"));
        let text = result.value.and_then(|v| v.as_str().map(String::from)).unwrap_or_else(|| "null".into());
        serde_json::from_str(&text).unwrap()
    };
    let check = |what: &str| {
        // Evaluated over the DevTools protocol: the page's CSP does not apply to it.
        tab.evaluate(&axe, false).unwrap();
        let result = tab
            .evaluate(
                "(async () => { const r = await axe.run(document, { resultTypes: ['violations'] }); \
                 return JSON.stringify(r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help, \
                 nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ')) }))); })()",
                true,
            )
            .unwrap();
        let violations: Value = serde_json::from_str(result.value.unwrap().as_str().unwrap()).unwrap();
        // The issue asks for none serious or critical; the page has none of any impact.
        assert_eq!(violations, serde_json::json!([]), "{what}: {}", serde_json::to_string_pretty(&violations).unwrap());
    };
    for (query, what) in [
        ("?lang=en&theme=light", "light"),
        ("?lang=en&theme=dark", "dark"),
        ("?lang=zh&theme=light", "zh"),
        ("?lang=en&embed=1", "embedded"),
    ] {
        tab.navigate_to(&format!("{}/{query}", daemon.base)).unwrap().wait_until_navigated().unwrap();
        wait_for("the rows", Duration::from_secs(20), || {
            (eval("JSON.stringify(document.querySelectorAll('.monitor-row').length)") == 2).then_some(())
        });
        check(what);
    }
    tab.navigate_to(&format!("{}/?lang=en&theme=dark", daemon.base)).unwrap().wait_until_navigated().unwrap();
    let bucket = format!(".monitor-row[data-provider='shade'] .bucket[data-timestamp='{}']", hour - 3 * 3_600);
    wait_for("the bucket", Duration::from_secs(20), || tab.find_element(&bucket).ok()).click().unwrap();
    wait_for("the details", Duration::from_secs(5), || {
        (eval("JSON.stringify(document.querySelectorAll('.details li').length)").as_i64() > Some(3)).then_some(())
    });
    check("details open");
}
