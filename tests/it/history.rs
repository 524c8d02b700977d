//! Incidents, the monthly report, the raw export and the feeds (issue 13), over a history with
//! known figures written into the database before the daemon starts, and over a live outage.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;

use llm_monitor::config::MonitorKey;
use llm_monitor::store::db::Row;

use crate::support::{http_get, wait_for, Workspace};

/// 2026-10-01 00:00:00 UTC, and the month after.
const OCT: i64 = 1_790_812_800;
const NOV: i64 = 1_793_491_200;
const STEP: i64 = 300;

fn at(day: i64, hour: i64, minute: i64) -> i64 {
    OCT + (day - 1) * 86_400 + hour * 3_600 + minute * 60
}

/// Red probes (every 5 minutes) of the generated history: (first, count). The first run and the
/// third are incidents (threshold 3), the second is too short; the last crosses into November.
const OUTAGES: [(i64, i64); 4] = [
    (1_791_021_600, 6), // 3 Oct 10:00, 10:00..10:25 red, 10:30 green: 1,800 s
    (1_791_626_400, 2), // 10 Oct 10:00: 2 red probes, no incident
    (1_792_497_600, 4), // 20 Oct 12:00..12:15 red, 12:20 green: 1,200 s
    (1_793_490_600, 4), // 31 Oct 23:50 .. 1 Nov 00:05 red, 00:10 green: 600 s in October
];

fn is_red(ts: i64) -> bool {
    OUTAGES.iter().any(|&(first, n)| ts >= first && ts < first + n * STEP)
}

/// Every 5 minutes from 1 October to 2 November: "Rep/chat" with the outages above and
/// latencies 100, 200, .. 1000 ms in turn; "Rep/code" always green at 300 ms, at the same
/// times; "Rep/gone" red from 15 October 10:00 to 10:20, then never probed again (a monitor
/// removed, or a node gone, while red).
fn generate(ws: &Workspace) -> Vec<MonitorKey> {
    let keys = vec![
        MonitorKey::new("Rep", "chat", ""),
        MonitorKey::new("Rep", "code", ""),
        MonitorKey::new("Rep", "gone", ""),
    ];
    let mut conn = ws.db();
    let ids = conn.monitor_ids(&keys).unwrap();
    let mut rows = Vec::new();
    for (i, ts) in (OCT..NOV + 86_400).step_by(STEP as usize).enumerate() {
        let red = is_red(ts);
        let latency = 100 + (i as i32 % 10) * 100;
        rows.push(Row {
            monitor_id: ids[0],
            ts,
            status: if red { 0 } else { 1 },
            latency_ms: latency,
            reason: if red { "server_error" } else { "ok" }.into(),
            http_code: if red { 502 } else { 200 },
            detail: red.then(|| "=cmd|' /C calc'!A0 (HTTP 502)".to_string()),
            ttft_ms: (!red).then_some(latency / 2),
            ..Row::default()
        });
        rows.push(Row {
            monitor_id: ids[1],
            ts,
            status: 1,
            latency_ms: 300,
            reason: "ok".into(),
            http_code: 200,
            ..Row::default()
        });
    }
    for ts in (at(15, 10, 0)..=at(15, 10, 20)).step_by(STEP as usize) {
        rows.push(Row { monitor_id: ids[2], ts, status: 0, latency_ms: 0, reason: "timeout".into(), ..Row::default() });
    }
    rows.sort_by_key(|r| r.ts);
    for chunk in rows.chunks(5_000) {
        conn.insert(chunk).unwrap();
    }
    keys
}

/// Two listed monitors that never store a probe while the test runs (see api.rs), the
/// first with a failure threshold of 3, the other at the default; history kept a year.
fn quiet_config(black_hole: &str) -> String {
    format!(
        "node: here\ninterval: 24h\ntimeout: 5m\nslow_latency: 4m\nretention: 365d\nmonitors:\n  - {{provider: Rep, service: chat, url: \"{black_hole}\", method: GET, failure_threshold: 3}}\n  - {{provider: Rep, service: code, url: \"{black_hole}\", method: GET}}\n  - {{provider: Rep, service: gone, url: \"{black_hole}\", method: GET, failure_threshold: 3}}\n"
    )
}

fn within(got: &Value, want: f64, what: &str) {
    let got = got.as_f64().unwrap_or_else(|| panic!("{what}: {got}"));
    assert!((got - want).abs() <= want * 0.03 + 0.5, "{what}: {got} vs {want}");
}

#[test]
fn the_report_of_a_generated_month_has_its_known_figures_in_json_and_csv() {
    let quiet = crate::support::upstream::black_hole();
    let ws = Workspace::new(&quiet_config(&quiet.url));
    generate(&ws);
    let daemon = ws.start();
    let report = daemon.get("/api/report?month=2026-10");
    assert_eq!(report.status, 200, "{}", report.text);
    let report = report.json();
    assert_eq!((report["from"].as_i64(), report["to"].as_i64()), (Some(OCT), Some(NOV)));
    assert_eq!(report["complete"], true);
    let chat = &report["monitors"][0];
    assert_eq!((chat["provider"].as_str(), chat["service"].as_str()), (Some("Rep"), Some("chat")), "{report}");
    let probes = 31 * 288;
    let reds = 6 + 2 + 4 + 2;
    assert_eq!(chat["probes"], probes);
    let uptime = ((probes - reds) as f64 * 100.0 / probes as f64 * 100.0).round() / 100.0;
    assert_eq!(chat["uptime"].as_f64(), Some(uptime), "{chat}");
    assert_eq!(chat["incidents"], 3, "{chat}");
    assert_eq!(chat["downtime_s"], 1_800 + 1_200 + 600, "{chat}");
    assert_eq!(chat["mttr_s"], 1_200, "{chat}");
    // Nearest rank over the green probes' latencies (100..1000 in turn): 500 and 1000 ms.
    within(&chat["latency_p50"], 500.0, "latency_p50");
    within(&chat["latency_p95"], 1_000.0, "latency_p95");
    within(&chat["ttft_p50"], 250.0, "ttft_p50");
    within(&chat["ttft_p95"], 500.0, "ttft_p95");
    let code = &report["monitors"][1];
    assert_eq!((code["uptime"].as_f64(), code["incidents"].as_i64()), (Some(100.0), Some(0)), "{code}");
    // Red until nothing probed it any more: down from its first red probe to its last, never
    // "ongoing" since.
    let gone = &report["monitors"][2];
    assert_eq!((gone["incidents"].as_i64(), gone["downtime_s"].as_i64()), (Some(1), Some(1_200)), "{gone}");
    assert_eq!((gone["uptime"].as_f64(), gone["probes"].as_i64()), (Some(0.0), Some(5)), "{gone}");
    assert!(report["retained_from"].as_i64() < Some(OCT), "{report}");
    // This node by name (SQLite's one node is named by the config), and its incidents' node.
    let mine = daemon.get("/api/report?month=2026-10&node=here");
    assert_eq!(mine.status, 200, "{}", mine.text);
    assert_eq!(mine.json()["monitors"][0]["downtime_s"], 3_600);
    assert_eq!((code["downtime_s"].as_i64(), code["mttr_s"].is_null()), (Some(0), true), "{code}");
    within(&code["latency_p50"], 300.0, "code latency_p50");
    assert!(code["ttft_p50"].is_null(), "{code}");

    // November holds the end of the last outage only (10 minutes) and a day of probes.
    let november = daemon.get("/api/report?month=2026-11").json();
    let chat = &november["monitors"][0];
    assert_eq!((chat["incidents"].as_i64(), chat["downtime_s"].as_i64()), (Some(1), Some(600)), "{chat}");

    let csv = daemon.get("/api/report?month=2026-10&format=csv");
    assert_eq!(csv.status, 200);
    assert_eq!(csv.text.lines().count(), 4, "a header and 3 monitors: {}", csv.text);
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    let mut lines = csv.text.lines();
    assert_eq!(
        lines.next(),
        Some("provider,service,channel,uptime,downtime_s,incidents,mttr_s,latency_p50,latency_p95,ttft_p50,ttft_p95,probes,model")
    );
    let first: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(&first[..7], &["Rep", "chat", "", &format!("{uptime:.2}"), "3600", "3", "1200"], "{}", csv.text);
    assert_eq!(first[11], probes.to_string());

    for (query, wrong) in [
        ("month=2026-13", "is not a month"),
        ("month=2026/10", "is not a month"),
        ("", "month is required"),
        ("month=2099-01", "has not started"),
        ("month=2026-10&format=xml", "format"),
        ("month=2026-10&node=nowhere", "is not a node"),
        ("month=2026-10&bogus=1", "unknown field"),
    ] {
        let answer = daemon.get(&format!("/api/report?{query}"));
        assert_eq!(answer.status, 400, "{query}: {}", answer.text);
        let message = answer.json()["error"]["message"].as_str().unwrap_or_default().to_string();
        assert!(message.contains(wrong), "{query}: {message}");
    }
}

#[test]
fn the_export_streams_raw_probes_of_a_half_open_range_in_pages_linked_by_next() {
    let quiet = crate::support::upstream::black_hole();
    let ws = Workspace::new(&quiet_config(&quiet.url));
    generate(&ws);
    let daemon = ws.start();
    // 3 Oct 09:55 to 10:40: probes at 09:55 .. 10:35 of both monitors (10:40 itself is out).
    let (from, to) = (at(3, 9, 55), at(3, 10, 40));
    let mut url = format!("/api/export?from=2026-10-03T09:55:00Z&to={to}&format=jsonl&limit=7");
    let (mut seen, mut pages) = (Vec::new(), 0);
    loop {
        let page = daemon.get(&url);
        assert_eq!(page.status, 200, "{url}: {}", page.text);
        assert_eq!(page.header("content-type"), Some("application/jsonl; charset=utf-8"));
        pages += 1;
        let rows: Vec<Value> = page.text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert!(rows.len() <= 7);
        seen.extend(rows);
        match page.header("link") {
            Some(link) => {
                assert!(link.ends_with(">; rel=\"next\""), "{link}");
                url = link.trim_start_matches('<').split('>').next().unwrap().to_string();
            }
            None => break,
        }
        assert!(pages < 10, "the pages never end");
    }
    assert_eq!(pages, 3, "18 rows, 7 a page");
    assert_eq!(seen.len(), 18, "09:55 .. 10:35 of both monitors");
    let ids: HashSet<i64> = seen.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 18, "no row twice");
    assert!(seen.iter().all(|r| (from..to).contains(&r["ts"].as_i64().unwrap())));
    let red: Vec<&Value> = seen.iter().filter(|r| r["status"] == "red").collect();
    assert_eq!(red.len(), 6, "10:00 .. 10:25 of Rep/chat");
    assert_eq!(red[0]["reason"], "server_error");
    assert!(red[0]["latency_ms"].is_null(), "a failed probe has no latency");
    assert_eq!(red[0]["time"], "2026-10-03T10:00:00Z");
    assert_eq!((red[0]["provider"].as_str(), red[0]["service"].as_str()), (Some("Rep"), Some("chat")));
    assert!(seen.iter().all(|r| r["node"] == "here"), "rows name their node");
    assert_eq!(red[0]["detail"], "=cmd|' /C calc'!A0 (HTTP 502)", "JSON lines keep the text as stored");

    // Gzipped for a client that asks, the same rows.
    let agent = ureq::Agent::new_with_config(ureq::config::Config::builder().http_status_as_error(false).build());
    let mut zipped = agent
        .get(&format!("{}/api/export?from={from}&to={to}&format=jsonl", daemon.base))
        .header("Accept-Encoding", "gzip")
        .call()
        .unwrap();
    assert_eq!(zipped.headers().get("content-encoding").map(|v| v.to_str().unwrap()), Some("gzip"));
    let packed = zipped.body_mut().read_to_vec().unwrap();
    let mut unpacked = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&packed[..]), &mut unpacked).unwrap();
    assert_eq!(unpacked.lines().count(), 18);

    let csv = daemon.get(&format!("/api/export?from={from}&to={to}&format=csv"));
    assert_eq!(csv.status, 200);
    assert!(csv.header("link").is_none());
    let mut reader = csv::Reader::from_reader(csv.text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 18);
    let detail = headers.iter().position(|h| h == "detail").unwrap();
    let red = records.iter().find(|r| &r[7] == "red").unwrap();
    assert_eq!(&red[detail], "'=cmd|' /C calc'!A0 (HTTP 502)", "a formula is defused with a leading quote");
    assert!(records.iter().all(|r| !r[detail].starts_with('=')), "no cell a spreadsheet runs");

    for (query, wrong) in [
        ("to=1", "from is required"),
        ("from=yesterday", "neither unix seconds nor an RFC 3339"),
        ("from=10&to=10", "must be after from"),
        ("from=1&format=xml", "format"),
        ("from=1&limit=0", "limit must be"),
        ("from=1&limit=10001", "limit must be"),
        ("from=1&cursor=zz", "cursor"),
    ] {
        let answer = daemon.get(&format!("/api/export?{query}"));
        assert_eq!(answer.status, 400, "{query}: {}", answer.text);
        let message = answer.json()["error"]["message"].as_str().unwrap_or_default().to_string();
        assert!(message.contains(wrong), "{query}: {message}");
    }
}

/// Two monitors of the switchboard's upstreams, one of them hidden from the page.
fn outage_config(url: &str) -> String {
    format!(
        "interval: 1s\ntimeout: 2s\nslow_latency: 1s\npage: {{title: \"Relay status\", hidden: [\"Hidden/*\"]}}\nalerts: {{failure_threshold: 3}}\nmonitors:\n  - {{provider: Live, service: chat, url: \"{url}/up/live\", method: GET}}\n  - {{provider: Hidden, service: chat, url: \"{url}/up/hidden\", method: GET}}\n"
    )
}

/// The Atom validator's verdict on `xml` (RFC 4287's RELAX NG schema and its Schematron rules,
/// through `tests/atom/validate.py`): None when it is not installed (`bash .ci/feedval`); CI
/// requires it with `LLM_MONITOR_REQUIRE_FEEDVAL=1`.
fn atom_verdict(xml: &str) -> Option<Result<(), String>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("target/feedval/bin/python3");
    if !python.exists() {
        assert!(
            std::env::var_os("LLM_MONITOR_REQUIRE_FEEDVAL").is_none(),
            "the Atom validator is required: run bash .ci/feedval"
        );
        eprintln!("SKIPPED: Atom validation (no validator: run bash .ci/feedval)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("feed.atom");
    std::fs::write(&file, xml).unwrap();
    let out = std::process::Command::new(python)
        .arg(root.join("tests/atom/validate.py"))
        .arg(&file)
        .arg("atom")
        .output()
        .unwrap();
    Some(if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) })
}

pub fn validate_atom(xml: &str) {
    if let Some(Err(e)) = atom_verdict(xml) {
        panic!("the feed is not valid Atom:\n{e}\n{xml}");
    }
}

#[test]
fn the_atom_validator_refuses_what_the_spec_refuses() {
    let feed = |entry_updated: &str| {
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><id>urn:x:feed</id>
<updated>2026-11-27T00:00:00Z</updated><author><name>a</name></author>
<entry><title>e</title><id>urn:x:1</id>{entry_updated}<summary>s</summary><link href="http://h/"/></entry></feed>"#
        )
    };
    let Some(valid) = atom_verdict(&feed("<updated>2026-11-27T00:00:00Z</updated>")) else { return };
    assert_eq!(valid, Ok(()));
    for (broken, why) in [
        ("", "updated"),
        ("<updated>Fri, 27 Nov 2026 00:00:00 GMT</updated>", "dateTime"),
        ("<updated>2026-11-27T00:00:00</updated>", "offset"),
    ] {
        let verdict = atom_verdict(&feed(broken)).unwrap();
        assert!(verdict.as_ref().is_err_and(|e| e.contains(why)), "{broken:?}: {verdict:?}");
    }
}

#[test]
fn a_live_outage_is_an_incident_in_the_api_and_in_valid_atom_and_rss_feeds() {
    let upstream = crate::support::switchboard::Switchboard::start();
    upstream.set("live", "red");
    upstream.set("hidden", "red");
    let ws = Workspace::new(&outage_config(&upstream.base));
    let daemon = ws.start();
    // Red long enough to be an incident (3 probes), then green again.
    wait_for("3 red probes", Duration::from_secs(30), || {
        let monitor = daemon.monitor("Live", "chat");
        (crate::support::probe_count(&monitor) >= 3).then_some(())
    });
    let ongoing = wait_for("an ongoing incident", Duration::from_secs(20), || {
        let answer = daemon.get("/api/incidents?period=24h").json();
        answer["incidents"]
            .as_array()
            .and_then(|list| list.iter().find(|i| i["provider"] == "Live" && i["ongoing"] == true).cloned())
    });
    assert!(ongoing["end"].is_null() && ongoing["red_probes"].as_i64() >= Some(3), "{ongoing}");
    upstream.set("live", "green");
    upstream.set("hidden", "green");
    let resolved = wait_for("the incident resolved", Duration::from_secs(30), || {
        let answer = daemon.get("/api/incidents?period=24h").json();
        answer["incidents"]
            .as_array()
            .and_then(|list| list.iter().find(|i| i["provider"] == "Live" && i["ongoing"] == false).cloned())
    });
    let (start, end) = (resolved["start"].as_i64().unwrap(), resolved["end"].as_i64().unwrap());
    assert!(end > start && resolved["duration_s"].as_i64() == Some(end - start), "{resolved}");
    assert!(resolved["reasons"]["server_error"].as_i64() >= Some(3), "{resolved}");

    // Nothing new (both incidents over): the same tag, and a 304 for a client that has it.
    let url = format!("{}/api/incidents?period=24h", daemon.base);
    let (tag, again) = wait_for("both incidents over", Duration::from_secs(20), || {
        let answer = http_get(&url, &[]);
        let over = answer.json()["incidents"].as_array()?.iter().all(|i| i["ongoing"] == false);
        over.then(|| (answer.header("etag").expect("an ETag").to_string(), http_get(&url, &[])))
    });
    assert_eq!(again.header("etag"), Some(tag.as_str()));
    let cached = http_get(&url, &[("If-None-Match", &tag)]);
    assert_eq!((cached.status, cached.text.as_str()), (304, ""));
    assert_eq!(http_get(&format!("{url}&node=nowhere"), &[("If-None-Match", &tag)]).status, 400);

    let atom = daemon.get("/feed.atom");
    assert_eq!(atom.status, 200);
    assert_eq!(atom.header("content-type"), Some("application/atom+xml; charset=utf-8"));
    validate_atom(&atom.text);
    let feed = atom_syndication::Feed::read_from(atom.text.as_bytes()).expect("Atom the crate reads back");
    assert_eq!(feed.title().as_str(), "Relay status");
    let entry = feed.entries().iter().find(|e| e.title().as_str().contains("Live / chat")).expect("the incident");
    assert!(entry.title().as_str().starts_with("Resolved: Live / chat was down"), "{}", entry.title().as_str());
    assert_eq!(entry.updated().timestamp(), end);
    assert!(feed.entries().iter().all(|e| !e.title().as_str().contains("Hidden")), "hidden monitors stay off");
    // A permanent id, and links to the host the request named, never to a forwarded one.
    assert_eq!(feed.id(), "urn:llm-monitor:feed");
    let forged = http_get(&format!("{}/feed.atom", daemon.base), &[("X-Forwarded-Host", "evil.example")]);
    assert!(!forged.text.contains("evil.example"), "{}", forged.text);
    assert!(forged.text.contains(&format!("href=\"{}/\"", daemon.base)), "{}", forged.text);

    let rss = daemon.get("/feed.rss");
    assert_eq!(rss.header("content-type"), Some("application/rss+xml; charset=utf-8"));
    let channel = rss::Channel::read_from(rss.text.as_bytes()).expect("RSS");
    rss::validation::Validate::validate(&channel).expect("valid RSS 2.0");
    assert!(channel.items().iter().any(|i| i.title().is_some_and(|t| t.starts_with("Resolved: Live / chat"))));

    let answer = daemon.get("/api/incidents?period=1y");
    assert_eq!(answer.status, 400);
    assert!(http_get(&format!("{}/api/incidents?node=nowhere", daemon.base), &[]).status == 400);
}

/// A monitor that fails twice in a row 1,100 times in a day: the answer lists the newest 1,000
/// incidents and says it was cut; the page shows the newest 50 and how many more there are.
#[test]
fn a_flapping_monitor_cannot_make_the_incident_list_unbounded() {
    let quiet = crate::support::upstream::black_hole();
    let ws = Workspace::new(&format!(
        "interval: 24h\ntimeout: 5m\nslow_latency: 4m\nmonitors:\n  - {{provider: Flap, service: chat, url: \"{}\", method: GET, failure_threshold: 2}}\n",
        quiet.url
    ));
    let mut conn = ws.db();
    let ids = conn.monitor_ids(&[MonitorKey::new("Flap", "chat", "")]).unwrap();
    let start = llm_monitor::clock::unix_now() - 80_000;
    let rows: Vec<Row> = (0..3_300i64)
        .map(|i| {
            let red = i % 3 != 2;
            Row {
                monitor_id: ids[0],
                ts: start + i * 20,
                status: if red { 0 } else { 1 },
                latency_ms: 100,
                reason: if red { "timeout" } else { "ok" }.into(),
                http_code: if red { 0 } else { 200 },
                ..Row::default()
            }
        })
        .collect();
    conn.insert(&rows).unwrap();
    drop(conn);
    let daemon = ws.start();
    let answer = daemon.get("/api/incidents?period=24h").json();
    let list = answer["incidents"].as_array().unwrap();
    assert_eq!((list.len(), answer["truncated"].as_bool()), (1_000, Some(true)));
    assert_eq!(list[0]["start"].as_i64(), Some(start + 1_099 * 60), "the newest first");
    assert!(list.iter().all(|i| i["red_probes"] == 2 && i["duration_s"] == 40 && i["reasons"]["timeout"] == 2));
    assert!(list.windows(2).all(|w| w[0]["start"].as_i64() > w[1]["start"].as_i64()));

    let test = "a_flapping_monitor_cannot_make_the_incident_list_unbounded";
    let Some((browser, _profile)) = crate::web::browser(test, (1280, 900)) else { return };
    let tab = browser.new_tab().unwrap();
    tab.navigate_to(&format!("{}/?lang=en", daemon.base)).unwrap().wait_until_navigated().unwrap();
    let shown = wait_for("the incident list", Duration::from_secs(20), || {
        let result = tab
            .evaluate(
                "JSON.stringify([...document.querySelectorAll('#incident-list li')].map(li => li.textContent))",
                false,
            )
            .ok()?;
        let list: Vec<String> = serde_json::from_str(result.value?.as_str()?).ok()?;
        (list.len() > 1).then_some(list)
    });
    assert_eq!(shown.len(), 51, "the newest 50, then how many more");
    assert_eq!(shown[50], "and over 950 more", "the answer was cut at 1,000");
}
