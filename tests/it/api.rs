//! `/api/status` and `/health` as SPEC section 6 describes them, over a history written into
//! the database before the daemon starts.

use std::time::Duration;

use diesel::prelude::*;
use serde_json::Value;

use llm_monitor::config::MonitorKey;
use llm_monitor::store::db::Row;

use crate::support::{wait_for, Workspace};

fn now() -> i64 {
    llm_monitor::clock::unix_now()
}

fn row(monitor_id: i32, ts: i64, status: i16, latency_ms: i32) -> Row {
    let reason = ["server_error", "ok", "slow"][status as usize].to_string();
    Row { monitor_id, ts, status, latency_ms, reason, http_code: 200, ..Row::default() }
}

/// Three listed monitors whose history the test writes directly. They probe a port that
/// never answers, with a 5 minute timeout: a probe the daemon makes during the test stays in
/// flight, so no result of its own joins the history.
fn config(black_hole: &str) -> String {
    format!(
        r#"
interval: 24h
timeout: 5m
slow_latency: 4m
degraded_weight: 0.5
monitors:
  - {{provider: Hist, service: chat, url: "{black_hole}", method: GET}}
  - {{provider: hist, service: code, channel: vip, url: "{black_hole}", method: GET}}
  - {{provider: other, service: chat, url: "{black_hole}", method: GET}}
  - {{provider: off, service: chat, url: "{black_hole}", method: GET, disabled: true}}
"#
    )
}

struct History {
    ws: Workspace,
    rows: Vec<Row>,
    _quiet: crate::support::upstream::BlackHole,
}

fn history() -> History {
    let quiet = crate::support::upstream::black_hole();
    let ws = Workspace::new(&config(&quiet.url));
    let mut conn = ws.db();
    let ids = conn.monitor_ids(&[MonitorKey::new("Hist", "chat", ""), MonitorKey::new("hist", "code", "vip")]).unwrap();
    let t = now();
    let h = 3_600;
    let d = 86_400;
    let two_hours_back = (t / h - 2) * h + h / 2;
    let mut rows = vec![
        // current hour, and four in the middle of the hour two hours back (so they share a bucket)
        row(ids[0], t - 1, 1, 100),
        row(ids[0], two_hours_back, 1, 200),
        row(ids[0], two_hours_back + 1, 1, 300),
        row(ids[0], two_hours_back + 2, 2, 900),
        row(ids[0], two_hours_back + 3, 0, 9_999),
        // outside 24 h, inside 7 d and 30 d
        row(ids[0], t - 3 * d, 1, 50),
        row(ids[0], t - 3 * d, 0, 10),
        // inside 30 d only
        row(ids[0], t - 12 * d, 2, 400),
        // the other monitor
        row(ids[1], t - 5 * h, 1, 10),
    ];
    // Older than retention (30 d): purged at start-up.
    let expired = row(ids[0], t - 45 * d, 1, 1);
    // Written as the daemon would have: in the order the probes ended.
    let mut written = [rows.clone(), vec![expired]].concat();
    written.sort_by_key(|r| r.ts);
    conn.insert(&written).unwrap();
    rows.retain(|r| r.ts > t - 45 * d);
    History { ws, rows, _quiet: quiet }
}

/// The expected timeline of `monitor_id`, computed independently from the raw rows.
fn expected(rows: &[Row], monitor_id: i32, generated_at: i64, size: i64, count: i64) -> Vec<(i64, i64, i64, i64)> {
    let last_start = generated_at / size * size;
    let first_start = last_start - (count - 1) * size;
    (0..count)
        .map(|i| {
            let start = first_start + i * size;
            let in_bucket: Vec<&Row> =
                rows.iter().filter(|r| r.monitor_id == monitor_id && r.ts >= start && r.ts < start + size).collect();
            let n = |s: i16| in_bucket.iter().filter(|r| r.status == s).count() as i64;
            (start, n(1), n(2), n(0))
        })
        .collect()
}

fn check_timeline(entry: &Value, rows: &[Row], monitor_id: i32, generated_at: i64, size: i64, count: i64, label: &str) {
    let timeline = entry["timeline"].as_array().unwrap();
    assert_eq!(timeline.len() as i64, count);
    assert_eq!(timeline.last().unwrap()["time"].as_str().unwrap().len(), label.len());
    let want = expected(rows, monitor_id, generated_at, size, count);
    let (mut total, mut weighted) = (0i64, 0f64);
    for (bucket, (start, green, yellow, red)) in timeline.iter().zip(want) {
        assert_eq!(bucket["timestamp"], start, "{bucket}");
        assert_eq!(
            bucket["counts"],
            serde_json::json!({"green": green, "yellow": yellow, "red": red, "maintenance": 0}),
            "{bucket}"
        );
        let n = green + yellow + red;
        total += n;
        weighted += green as f64 + 0.5 * yellow as f64;
        if n == 0 {
            assert_eq!(bucket["status"], -1);
            assert_eq!(bucket["availability"], -1.0);
        } else {
            let worst = if red > 0 {
                0
            } else if yellow > 0 {
                2
            } else {
                1
            };
            assert_eq!(bucket["status"], worst, "{bucket}");
            let availability = ((green as f64 + 0.5 * yellow as f64) * 100.0 / n as f64 * 100.0).round() / 100.0;
            assert_eq!(bucket["availability"].as_f64().unwrap(), availability, "{bucket}");
        }
    }
    let uptime = entry["uptime"].as_f64().unwrap();
    if total == 0 {
        assert_eq!(uptime, -1.0);
    } else {
        assert_eq!(uptime, (weighted * 100.0 / total as f64 * 100.0).round() / 100.0);
    }
}

#[test]
fn timelines_for_24h_7d_30d_have_the_right_shape_and_numbers() {
    let History { ws, rows, .. } = history();
    let daemon = ws.start();
    let id = rows[0].monitor_id;
    for (period, size, count, label) in
        [("24h", 3_600, 24, "HH:MM"), ("7d", 86_400, 7, "YYYY-MM-DD"), ("30d", 86_400, 30, "YYYY-MM-DD")]
    {
        let body = daemon.status(&format!("?period={period}"));
        assert_eq!(body["meta"]["period"], period);
        assert_eq!(body["meta"]["count"], 3, "disabled monitors are not listed");
        let generated_at = body["meta"]["generated_at"].as_i64().unwrap();
        let names: Vec<String> = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| format!("{}/{}", m["provider"].as_str().unwrap(), m["service"].as_str().unwrap()))
            .collect();
        assert_eq!(names, ["Hist/chat", "hist/code", "other/chat"], "config order");
        check_timeline(&body["data"][0], &rows, id, generated_at, size, count, label);
        check_timeline(&body["data"][1], &rows, rows.last().unwrap().monitor_id, generated_at, size, count, label);
        assert!(body["data"][2]["current_status"].is_null());
        assert_eq!(body["data"][2]["uptime"], -1.0);
    }
    // The 24 h bucket two hours back: mean latency of its non-red probes, worst status red.
    let body = daemon.status("?period=24h");
    let two_hours_ago =
        body["data"][0]["timeline"].as_array().unwrap().iter().find(|b| b["counts"]["red"] == 1).unwrap().clone();
    assert_eq!(two_hours_ago["latency"], (200 + 300 + 900) / 3 + 1, "{two_hours_ago}");
    assert_eq!(two_hours_ago["status"], 0);
    let current = &body["data"][0]["current_status"];
    assert_eq!(
        (current["status"].as_i64(), current["latency"].as_i64(), current["reason"].as_str()),
        (Some(1), Some(100), Some("ok"))
    );
    assert_eq!(body["data"][1]["channel"], "vip");
    // Labels: hours on the hour, days as dates.
    let hour = body["data"][0]["timeline"][0]["time"].as_str().unwrap().to_string();
    assert!(hour.ends_with(":00") && hour.len() == 5, "{hour}");
}

#[test]
fn retention_purges_expired_history_at_start_up() {
    let History { ws, rows, .. } = history();
    let _daemon = ws.start();
    // Purging goes by whole hours.
    let cutoff = (now() - 30 * 86_400) / 3_600 * 3_600;
    use llm_monitor::store::schema::probes::dsl::*;
    wait_for("the purge", Duration::from_secs(10), || {
        let old: i64 = crate::with_store!(ws, |conn| probes.filter(ts.lt(cutoff)).count().get_result(conn).unwrap());
        (old == 0).then_some(())
    });
    let kept: i64 = crate::with_store!(ws, |conn| probes.count().get_result(conn).unwrap());
    assert_eq!(kept, rows.len() as i64, "only the expired row goes");
}

#[test]
fn retention_purges_in_steps_through_a_crowded_second_and_finds_late_copies() {
    let quiet = crate::support::upstream::black_hole();
    let ws = Workspace::new(&config(&quiet.url));
    let mut conn = ws.db();
    let ids = conn.monitor_ids(&[MonitorKey::new("Hist", "chat", "")]).unwrap();
    let (t, d) = (now(), 86_400);
    // 12,000 expired probes (the daemon purges 5,000 a step): 7,000 of them in one second, so
    // a step ends inside it, then 5,000 a second apart.
    let crowded = t - 40 * d;
    let mut expired: Vec<Row> = (0..7_000).map(|_| row(ids[0], crowded, 1, 1)).collect();
    expired.extend((1..=5_000).map(|i| row(ids[0], crowded + i, 1, 2)));
    conn.insert(&expired).unwrap();
    if crate::support::on_postgres() {
        // History copied in later (migrate-store) has higher ids than newer probes.
        conn.insert(&(0..100).map(|i| row(ids[0], t - 50 * d + i, 1, 5)).collect::<Vec<_>>()).unwrap();
    }
    let kept = vec![row(ids[0], t - 3 * d, 1, 3), row(ids[0], t - 60, 1, 4)];
    conn.insert(&kept).unwrap();
    drop(conn);
    let _daemon = ws.start();
    let cutoff = (t - 30 * 86_400) / 3_600 * 3_600;
    use llm_monitor::store::schema::probes::dsl::*;
    wait_for("the purge", Duration::from_secs(20), || {
        let old: i64 = crate::with_store!(ws, |conn| probes.filter(ts.lt(cutoff)).count().get_result(conn).unwrap());
        (old == 0).then_some(())
    });
    let left: Vec<(i64, i32)> =
        crate::with_store!(ws, |conn| probes.select((ts, latency_ms)).order(ts).load(conn).unwrap());
    assert_eq!(left, kept.iter().map(|r| (r.ts, r.latency_ms)).collect::<Vec<_>>(), "only the expired probes go");
}

#[test]
fn an_unchanged_answer_is_a_304_and_a_change_is_a_new_etag() {
    let History { ws, .. } = history();
    let daemon = ws.start();
    let url = format!("{}/api/status?period=24h", daemon.base);
    let first = crate::support::http_get(&url, &[]);
    let etag = first.header("etag").expect("an ETag").to_string();
    assert!(etag.starts_with("W/\""), "{etag}");
    assert_eq!(first.header("cache-control"), Some("no-cache"));
    // A later second: generated anew, the same content, the same tag; a 304 without a body.
    let later = wait_for("an answer from a later second", Duration::from_secs(5), || {
        let r = crate::support::http_get(&url, &[]);
        (r.json()["meta"]["generated_at"] != first.json()["meta"]["generated_at"]).then_some(r)
    });
    assert_eq!(later.header("etag"), Some(etag.as_str()));
    let again = crate::support::http_get(&url, &[("If-None-Match", &etag)]);
    assert_eq!(again.status, 304);
    assert_eq!(again.text, "");
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    let gzipped =
        crate::support::http_get(&url, &[("If-None-Match", &format!("\"x\", {etag}")), ("Accept-Encoding", "gzip")]);
    assert_eq!(gzipped.status, 304, "one of a list, whatever the encoding");
    // Another tag, another period: a full answer.
    assert_eq!(crate::support::http_get(&url, &[("If-None-Match", "W/\"0000000000000000\"")]).status, 200);
    let week = crate::support::http_get(&format!("{}/api/status?period=7d", daemon.base), &[("If-None-Match", &etag)]);
    assert_eq!(week.status, 200);
    // A change (a monitor added by a reload): a new tag.
    let quiet = crate::support::upstream::black_hole();
    ws.write_config(&format!(
        "{}  - {{provider: added, service: chat, url: \"{}\", method: GET}}\n",
        config(&quiet.url),
        quiet.url
    ));
    let changed = wait_for("the new monitor", Duration::from_secs(20), || {
        let r = crate::support::http_get(&url, &[("If-None-Match", &etag)]);
        (r.status == 200).then_some(r)
    });
    let before = first.json()["meta"]["count"].as_i64().unwrap();
    assert_eq!(changed.json()["meta"]["count"], before + 1);
    assert_ne!(changed.header("etag"), Some(etag.as_str()));
}

#[test]
fn the_compact_view_says_what_the_full_answer_says_in_columns() {
    let History { ws, .. } = history();
    let daemon = ws.start();
    for period in ["24h", "7d", "30d"] {
        let full = daemon.status(&format!("?period={period}"));
        let compact = daemon.status(&format!("?period={period}&view=compact"));
        if full["meta"]["generated_at"] != compact["meta"]["generated_at"] {
            continue; // a second passed between the two: asked again below
        }
        assert_eq!(compact["meta"]["view"], "compact");
        assert_eq!(full["meta"].get("view"), None);
        for (f, c) in full["data"].as_array().unwrap().iter().zip(compact["data"].as_array().unwrap()) {
            for field in ["provider", "service", "channel", "current_status", "uptime", "maintenance"] {
                assert_eq!(f[field], c[field], "{period} {field}");
            }
            let columns = &c["timeline"];
            let buckets = f["timeline"].as_array().unwrap();
            assert_eq!(columns["start"], buckets[0]["timestamp"]);
            for (i, b) in buckets.iter().enumerate() {
                assert_eq!(
                    b["timestamp"].as_i64().unwrap(),
                    columns["start"].as_i64().unwrap() + i as i64 * columns["step"].as_i64().unwrap()
                );
                for field in ["status", "availability"] {
                    assert_eq!(b[field], columns[field][i], "{period} bucket {i} {field}");
                }
            }
            let keys: Vec<&String> = columns.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["availability", "start", "status", "step"]);
            for (name, node) in f["nodes"].as_object().unwrap() {
                let small = &c["nodes"][name];
                assert_eq!(small["status"], node["current_status"]["status"]);
                for field in ["uptime", "stale", "last_probe"] {
                    assert_eq!(small[field], node[field]);
                }
            }
        }
    }
    let bad = crate::support::http_get(&format!("{}/api/status?view=tiny", daemon.base), &[]);
    assert_eq!(bad.status, 400);
    assert!(bad.json()["error"]["message"].as_str().unwrap().contains("view \"tiny\" is not one of full, compact"));
    // Its own validator: a full answer's tag does not match it.
    let full_tag =
        crate::support::http_get(&format!("{}/api/status", daemon.base), &[]).header("etag").unwrap().to_string();
    let compact =
        crate::support::http_get(&format!("{}/api/status?view=compact", daemon.base), &[("If-None-Match", &full_tag)]);
    assert_eq!(compact.status, 200);
    let tag = compact.header("etag").unwrap().to_string();
    assert_eq!(
        crate::support::http_get(&format!("{}/api/status?view=compact", daemon.base), &[("If-None-Match", &tag)])
            .status,
        304
    );
}

/// The page's data for 500 monitors over 24 h (a probe every 5 minutes, varied latencies, a
/// few failures, each probe priced), gzipped as the page gets it, fits 100,000 bytes.
#[test]
fn five_hundred_monitors_over_24h_fit_100_kb_compact_and_gzipped() {
    let quiet = crate::support::upstream::black_hole();
    let mut config = String::from("interval: 24h\ntimeout: 5m\nslow_latency: 4m\nmonitors:\n");
    for i in 0..500 {
        config.push_str(&format!(
            "  - {{provider: relay{:02}, service: model-{i:03}, url: \"{}\", method: GET}}\n",
            i / 10,
            quiet.url
        ));
    }
    let ws = Workspace::new(&config);
    let mut conn = ws.db();
    let keys: Vec<MonitorKey> =
        (0..500).map(|i| MonitorKey::new(&format!("relay{:02}", i / 10), &format!("model-{i:03}"), "")).collect();
    let ids = conn.monitor_ids(&keys).unwrap();
    let t = now();
    let mut seed: u64 = 42;
    let mut next = || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        seed >> 33
    };
    let mut rows = Vec::with_capacity(500 * 288);
    for step in (0..288).rev() {
        for id in &ids {
            let roll = next() % 1000;
            let status = if roll < 15 {
                0
            } else if roll < 40 {
                2
            } else {
                1
            };
            let mut r = row(*id, t - step * 300 - (next() % 60) as i64, status, 300 + (next() % 2_500) as i32);
            r.ttft_ms = (status != 0).then(|| 150 + (next() % 900) as i32);
            // Priced: every probe that answered cost something.
            r.cost_nanos = (status != 0).then_some(4_200);
            rows.push(r);
        }
    }
    rows.sort_by_key(|r| r.ts);
    conn.insert(&rows).unwrap();
    drop(conn);
    let daemon = ws.start();
    let url = format!("{}/api/status?period=24h&view=compact", daemon.base);
    let agent = ureq::Agent::new_with_config(ureq::config::Config::builder().http_status_as_error(false).build());
    let mut response = agent.get(&url).header("Accept-Encoding", "gzip").call().unwrap();
    assert_eq!(response.headers().get("content-encoding").unwrap(), "gzip");
    let wire = response.body_mut().with_config().limit(10 << 20).read_to_vec().unwrap();
    let full = crate::support::http_get(&format!("{}/api/status?period=24h", daemon.base), &[]);
    // The page's other data requests: its settings and the period's incidents.
    let mut others = 0;
    for path in ["/api/page", "/api/incidents?period=24h"] {
        let mut response =
            agent.get(&format!("{}{path}", daemon.base)).header("Accept-Encoding", "gzip").call().unwrap();
        others += response.body_mut().with_config().limit(10 << 20).read_to_vec().unwrap().len();
    }
    let incidents = crate::support::http_get(&format!("{}/api/incidents?period=24h", daemon.base), &[]).json();
    let listed = incidents["incidents"].as_array().map_or(0, Vec::len);
    eprintln!(
        "500 x 24h: compact gzipped {} B, settings and {listed} incidents {others} B; full uncompressed {} B",
        wire.len(),
        full.text.len()
    );
    assert!(listed > 5, "the history holds incidents: {listed}");
    assert!(wire.len() + others <= 100_000, "the page's data is {} bytes", wire.len() + others);
    assert_eq!(full.json()["meta"]["count"], 500);
}

#[test]
fn gzip_is_served_to_clients_that_ask_and_says_the_same() {
    let History { ws, .. } = history();
    let daemon = ws.start();
    let url = format!("{}/api/status?period=30d", daemon.base);
    let agent = ureq::Agent::new_with_config(ureq::config::Config::builder().http_status_as_error(false).build());
    let mut response = agent.get(&url).header("Accept-Encoding", "gzip, br;q=0.5").call().unwrap();
    assert_eq!(response.headers().get("content-encoding").unwrap(), "gzip");
    assert!(response.headers().get("vary").unwrap().to_str().unwrap().contains("Accept-Encoding"));
    let compressed = response.body_mut().read_to_vec().unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&compressed[..]), &mut text).unwrap();
    let plain = crate::support::http_get(&url, &[]);
    assert_eq!(plain.header("content-encoding"), None);
    let (a, b): (Value, Value) = (serde_json::from_str(&text).unwrap(), plain.json());
    // Same answer, unless a second passed between the two requests.
    if a["meta"]["generated_at"] == b["meta"]["generated_at"] {
        assert_eq!(a, b);
    } else {
        assert_eq!(a["data"][0]["timeline"].as_array().unwrap().len(), 30);
    }
    assert!(compressed.len() * 3 < plain.text.len(), "{} vs {}", compressed.len(), plain.text.len());
    let refused = crate::support::http_get(&url, &[("Accept-Encoding", "gzip;q=0")]);
    assert_eq!(refused.header("content-encoding"), None);
}

#[test]
fn filters_are_case_insensitive_and_exact() {
    let History { ws, .. } = history();
    let daemon = ws.start();
    let names = |query: &str| -> Vec<String> {
        daemon.status(query)["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| format!("{}/{}", m["provider"].as_str().unwrap(), m["service"].as_str().unwrap()))
            .collect()
    };
    assert_eq!(names("?provider=HIST"), ["Hist/chat", "hist/code"]);
    assert_eq!(names("?provider=hist&service=CODE"), ["hist/code"]);
    assert_eq!(names("?service=chat"), ["Hist/chat", "other/chat"]);
    assert_eq!(names("?service=chat&period=7d&provider=other"), ["other/chat"]);
    assert_eq!(names("?provider=his"), Vec::<String>::new());
    assert_eq!(names("?channel=VIP"), ["hist/code"]);
    assert_eq!(daemon.status("?provider=nobody")["meta"]["count"], 0);
}

#[test]
fn bad_queries_get_a_400_with_a_json_error() {
    let ws = Workspace::new("monitors: []\n");
    let daemon = ws.start();
    for (query, needle) in [
        ("?period=1y", "period \"1y\" is not one of 24h, 7d, 30d"),
        ("?period=", "period \"\" is not one of"),
        ("?period=24H", "is not one of"),
        ("?provider=", "provider must not be empty"),
        ("?service=%20", "service must not be empty"),
        ("?perod=7d", "unknown field `perod`"),
        ("?period=7d&period=30d", "duplicate field `period`"),
    ] {
        let response = daemon.get(&format!("/api/status{query}"));
        assert_eq!(response.status, 400, "{query}: {}", response.text);
        assert!(response.header("content-type").unwrap().starts_with("application/json"));
        let body = response.json();
        assert_eq!(body["error"]["code"], "invalid_param", "{query}");
        assert!(body["error"]["message"].as_str().unwrap().contains(needle), "{query}: {body}");
    }
    let missing = daemon.get("/api/nope");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"]["code"], "not_found");
}

#[test]
fn health_and_cors() {
    let ws = Workspace::new("monitors: []\n");
    let daemon = ws.start();
    let health = daemon.get("/health");
    assert_eq!(health.status, 200);
    let body = health.json();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["store"]["writable"], true);
    assert_eq!(body["config"]["last_reload"]["ok"], true);
    assert!(body["config"]["last_reload"]["time"].as_i64().unwrap() > 0);

    let cross =
        crate::support::http_get(&format!("{}/api/status", daemon.base), &[("Origin", "https://status.example.org")]);
    assert_eq!(cross.status, 200);
    assert_eq!(cross.header("access-control-allow-origin"), Some("https://status.example.org"));
}

#[test]
fn cors_can_be_restricted() {
    let ws = Workspace::new("cors: {allowed_origins: [\"https://ok.example\"]}\nmonitors: []\n");
    let daemon = ws.start();
    let allowed = crate::support::http_get(&format!("{}/health", daemon.base), &[("Origin", "https://ok.example")]);
    assert_eq!(allowed.header("access-control-allow-origin"), Some("https://ok.example"));
    let other = crate::support::http_get(&format!("{}/health", daemon.base), &[("Origin", "https://evil.example")]);
    assert_eq!(other.header("access-control-allow-origin"), None);
}

/// Every endpoint answers HEAD like GET without the body, other methods get 405 with
/// `Allow`, and a badge's bad query gets an SVG (it is shown by an `<img>`).
#[test]
fn methods_head_and_badge_errors() {
    use crate::support::raw_http;
    let ws = Workspace::new("monitors:\n  - {provider: a, service: b, url: \"http://127.0.0.1:1/\", method: GET}\n");
    let daemon = ws.start();
    let header =
        |headers: &[(String, String)], name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    for path in ["/api/status", "/health", "/metrics", "/api/badge/a/b.svg", "/", "/assets/app.js", "/favicon.ico"] {
        let (get_status, get_headers, get_body) = raw_http(&daemon.base, "GET", path, &[]);
        let (status, headers, body) = raw_http(&daemon.base, "HEAD", path, &[]);
        assert_eq!((status, get_status), (200, 200), "{path}");
        assert!(body.is_empty(), "HEAD {path} sent a body");
        assert_eq!(header(&headers, "content-type"), header(&get_headers, "content-type"), "{path}");
        assert_eq!(header(&headers, "content-length"), Some(get_body.len().to_string()), "{path}");
        for method in ["POST", "PUT", "DELETE", "PATCH"] {
            let (status, headers, body) = raw_http(&daemon.base, method, path, &[("Content-Length", "0")]);
            assert_eq!(status, 405, "{method} {path}");
            assert_eq!(header(&headers, "allow").as_deref(), Some("GET, HEAD"), "{method} {path}");
            let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(error["error"]["code"], "method_not_allowed", "{method} {path}");
        }
    }
    let (status, _, body) = raw_http(&daemon.base, "GET", "/nope", &[]);
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("not_found"));
    assert_eq!(raw_http(&daemon.base, "POST", "/nope", &[("Content-Length", "0")]).0, 404);
    for query in ["colour=red", "period=7d&period=30d", "metric=uptime&metric=status"] {
        let (status, headers, body) = raw_http(&daemon.base, "GET", &format!("/api/badge/a/b.svg?{query}"), &[]);
        assert_eq!(status, 400, "{query}");
        assert!(header(&headers, "content-type").unwrap().starts_with("image/svg+xml"), "{query}");
        let text = String::from_utf8(body).unwrap();
        roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{query}: not XML ({e}): {text}"));
    }
    let (_, headers, _) = raw_http(&daemon.base, "GET", "/favicon.ico", &[]);
    assert_eq!(header(&headers, "content-type").as_deref(), Some("image/svg+xml"));
}

/// Pipelined requests are all answered, in order (the server paces how many it holds, not
/// what it answers).
#[test]
fn pipelined_requests_are_answered_in_order() {
    use std::io::{Read, Write};
    let ws = Workspace::new("monitors:\n  - {provider: a, service: b, url: \"http://127.0.0.1:1/\", method: GET}\n");
    let daemon = ws.start();
    let addr = daemon.base.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let paths: Vec<String> = (0..60).map(|i| format!("/nope/{i}")).collect();
    let mut batch = String::new();
    for (i, path) in paths.iter().enumerate() {
        let close = if i + 1 == paths.len() { "Connection: close\r\n" } else { "" };
        batch.push_str(&format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{close}\r\n"));
    }
    stream.write_all(batch.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let answered: Vec<&str> =
        text.match_indices("no such endpoint: ").map(|(i, _)| text[i + 18..].split('"').next().unwrap()).collect();
    assert_eq!(answered, paths, "{text}");
}

/// One address cannot hold every connection: past its share, new ones are closed at once,
/// and a closed one gives its place back.
#[test]
fn one_address_holds_at_most_128_connections() {
    use std::io::{Read, Write};
    let ws = Workspace::new("monitors:\n  - {provider: a, service: b, url: \"http://127.0.0.1:1/\", method: GET}\n");
    let daemon = ws.start();
    let addr = daemon.base.trim_start_matches("http://").to_string();
    let get = |stream: &mut std::net::TcpStream| -> Option<String> {
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        stream
            .write_all(format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
            .ok()?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).ok()?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        (!text.is_empty()).then_some(text)
    };
    // Each answers a request first, so it is surely counted before the next one opens.
    let mut held = Vec::new();
    for i in 0..128 {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        stream.write_all(format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).unwrap_or_else(|e| panic!("connection {i}: {e}"));
        assert_eq!(&head, b"HTTP/1.1 200", "connection {i}");
        held.push(stream);
    }
    let mut extra = std::net::TcpStream::connect(&addr).unwrap();
    assert_eq!(get(&mut extra), None, "the 129th connection is closed unanswered");
    drop(held.pop());
    let answered = crate::support::wait_for("a freed place", Duration::from_secs(5), || {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        get(&mut stream)
    });
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
}
