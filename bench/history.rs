//! The history benchmark: incidents, monthly reports and the raw export over 30 days of stored
//! probes with outages (2.16 M probes on SQLite), start-up on that database, and the cost of
//! rebuilding the rollups and runs of red probes from the raw probes (a migration's).
//! Run with `cargo bench --bench history` (release build); it prints one table of every figure
//! next to its target. See bench/README.md.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use llm_monitor::clock::unix_now;
use llm_monitor::config::MonitorKey;
use llm_monitor::store::db::{self, Row};
use llm_monitor::store::schema::red_runs;

mod common;
use common::{agent, figure, get, percentile, proc_status_kb, report, start_daemon, Figure, Lcg};

const MONITORS: usize = 100;
const DAYS: i64 = 30;
const STEP_S: i64 = 120;
const STEPS: i64 = DAYS * 86_400 / STEP_S;
/// A run of red probes starts at about one probe in this many (runs of 1 to 6: ~1 red in 50).
const RUN_START_ONE_IN: u64 = 175;
/// The monitor that flaps (red, red, green, ...) for the whole day that ends 2 days before now.
const FLAPPER: usize = 0;
const CHUNK: usize = 5_000;
const INCIDENT_REQUESTS: usize = 50;
const INCIDENT_COMPUTED: usize = 10;
const REPORT_REQUESTS: usize = 20;
const EXPORT_PAGES: usize = 5;

/// What the generator wrote.
struct Written {
    keys: Vec<MonitorKey>,
    rows: usize,
    reds: usize,
    runs: usize,
    took: Duration,
}

/// 100 monitors x 30 days x one probe every 2 minutes ending now, with runs of red probes,
/// written in time order through `db::insert` in slices of 5,000.
fn generate(path: &Path, now: i64) -> Written {
    let mut conn = db::open(path).unwrap();
    let keys: Vec<MonitorKey> = (0..MONITORS).map(|i| MonitorKey::new("bench", &format!("m{i:03}"), "")).collect();
    let ids = db::monitor_ids(&mut conn, &keys).unwrap();
    let first = now - DAYS * 86_400;
    let flap = (now - 3 * 86_400)..(now - 2 * 86_400);
    let mut rng = Lcg(20_261_127);
    // Per monitor: red probes still to come in its current run, and whether its last was red.
    let mut left = [0u64; MONITORS];
    let mut was_red = [false; MONITORS];
    let (mut rows, mut reds, mut runs) = (0, 0, 0);
    let started = Instant::now();
    let mut batch = Vec::with_capacity(CHUNK);
    for step in 0..STEPS {
        for (i, id) in ids.iter().enumerate() {
            let ts = first + step * STEP_S + i as i64;
            let red = if i == FLAPPER && flap.contains(&ts) {
                left[i] = 0;
                step % 3 != 2
            } else if left[i] > 0 {
                left[i] -= 1;
                true
            } else if rng.next() % RUN_START_ONE_IN == 0 {
                left[i] = rng.next() % 6;
                true
            } else {
                false
            };
            if red && !was_red[i] {
                runs += 1;
            }
            was_red[i] = red;
            let latency = 100 + (rng.next() % 1_901) as i32;
            batch.push(if red {
                reds += 1;
                let timeout = rng.next() % 3 == 0;
                Row {
                    monitor_id: *id,
                    ts,
                    status: 0,
                    latency_ms: latency,
                    reason: if timeout { "timeout" } else { "server_error" }.to_string(),
                    http_code: if timeout { 0 } else { 502 },
                    detail: Some(
                        if timeout { "no complete response within 20s" } else { "HTTP 502: upstream connect error" }
                            .to_string(),
                    ),
                    ..Row::default()
                }
            } else {
                Row {
                    monitor_id: *id,
                    ts,
                    status: 1,
                    latency_ms: latency,
                    reason: "ok".to_string(),
                    http_code: 200,
                    // Half the monitors stream, and have a first token.
                    ttft_ms: (i % 2 == 0).then_some(latency / 2),
                    ..Row::default()
                }
            });
            if batch.len() == CHUNK {
                db::insert(&mut conn, &batch).unwrap();
                rows += batch.len();
                batch.clear();
            }
        }
    }
    db::insert(&mut conn, &batch).unwrap();
    rows += batch.len();
    conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
    Written { keys, rows, reds, runs, took: started.elapsed() }
}

fn file_bytes(path: &Path) -> u64 {
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) + std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0)
}

/// The stored runs of red probes: how many, and their red probes.
fn stored_runs(conn: &mut SqliteConnection) -> (i64, i64) {
    let reds: Vec<i64> = red_runs::table.select(red_runs::reds).load(conn).unwrap();
    (reds.len() as i64, reds.iter().sum())
}

/// Monitors that never store a probe while the bench runs: a day's interval, and an upstream
/// that accepts connections and never answers.
fn quiet_config(keys: &[MonitorKey], db_path: &Path, black_hole: &str) -> String {
    let mut config = format!(
        "listen: \"127.0.0.1:0\"\ndatabase: \"{}\"\ninterval: 24h\ntimeout: 5m\nslow_latency: 4m\nretention: 60d\nmonitors:\n",
        db_path.display()
    );
    for key in keys {
        config.push_str(&format!(
            "  - {{provider: {}, service: {}, url: \"{black_hole}\", method: GET}}\n",
            key.provider, key.service
        ));
    }
    config
}

/// Milliseconds of `n` sequential GETs of `url`, and the last body.
fn time_gets(client: &ureq::Agent, url: &str, n: usize) -> (Vec<f64>, String) {
    let mut times = Vec::with_capacity(n);
    let mut last = String::new();
    for _ in 0..n {
        let t = Instant::now();
        let (code, body) = get(client, url).unwrap_or_else(|| panic!("GET {url} failed"));
        times.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(code, 200, "GET {url}: {body}");
        last = body;
    }
    (times, last)
}

fn size(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MB", bytes as f64 / 1e6)
    } else {
        format!("{:.1} KB", bytes as f64 / 1e3)
    }
}

/// The UTC month of `ts` and the one before, as `YYYY-MM`.
fn months(ts: i64) -> (String, String) {
    use chrono::Datelike;
    let date = chrono::DateTime::from_timestamp(ts, 0).unwrap().date_naive();
    let (y, m) = (date.year(), date.month());
    let (py, pm) = if m == 1 { (y - 1, 12) } else { (y, m - 1) };
    (format!("{y:04}-{m:02}"), format!("{py:04}-{pm:02}"))
}

/// One export page: milliseconds, body bytes, rows (`X-Export-Rows`), the next page's path.
fn export_page(client: &ureq::Agent, url: &str) -> (f64, usize, usize, Option<String>) {
    let t = Instant::now();
    let mut response = client.get(url).call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let rows: usize = header("x-export-rows").and_then(|v| v.parse().ok()).unwrap_or(0);
    let next = header("link").and_then(|link| {
        let (target, rel) = link.split_once(';')?;
        rel.contains("rel=\"next\"").then(|| target.trim().trim_start_matches('<').trim_end_matches('>').to_string())
    });
    let body = response.body_mut().with_config().limit(256 * 1024 * 1024).read_to_vec().unwrap();
    let ms = t.elapsed().as_secs_f64() * 1e3;
    assert_eq!(status, 200, "GET {url}: {}", String::from_utf8_lossy(&body[..body.len().min(500)]));
    assert_eq!(body.iter().filter(|&&b| b == b'\n').count(), rows, "X-Export-Rows against the JSON lines");
    (ms, body.len(), rows, next)
}

fn main() {
    if std::env::args().any(|a| a == "--help") {
        println!(
            "cargo bench --bench history   incidents, reports and the raw export over 30 days of history \
             with outages (2.16 M probes, SQLite), and the rebuild of rollups and runs of red probes (BENCH_DIR)"
        );
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("BENCH_DIR").map(PathBuf::from).unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    let db_path = dir.join("history.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db_path.display()));
    }
    let mut figures: Vec<Figure> = Vec::new();
    let now = unix_now();

    // 1. The history.
    eprintln!("[1/6] writing {} probes of history ...", MONITORS as i64 * STEPS);
    let written = generate(&db_path, now);
    let bytes = file_bytes(&db_path);
    figures.push(figure(
        "history written through db::insert (slices of 5,000)",
        format!(
            "{} probes ({} red, {} runs) in {:.1} s ({:.0} probes/s)",
            written.rows,
            written.reds,
            written.runs,
            written.took.as_secs_f64(),
            written.rows as f64 / written.took.as_secs_f64()
        ),
        "(for reference)",
        None,
    ));
    figures.push(figure(
        "database file (after a checkpoint)",
        format!("{:.0} MB ({:.1} B a probe)", bytes as f64 / 1e6, bytes as f64 / written.rows as f64),
        "(for reference)",
        None,
    ));
    let mut conn = db::open(&db_path).unwrap();
    let as_written = stored_runs(&mut conn);
    drop(conn);
    figures.push(figure(
        "runs of red probes stored as written (runs, red probes)",
        format!("{} / {}", as_written.0, as_written.1),
        "= generated",
        Some(as_written == (written.runs as i64, written.reds as i64)),
    ));

    // 2. The daemon on it.
    let black_hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let black_hole_url = format!("http://{}/", black_hole.local_addr().unwrap());
    std::fs::write(dir.join("config.yaml"), quiet_config(&written.keys, &db_path, &black_hole_url)).unwrap();
    eprintln!("[2/6] starting the daemon ...");
    let daemon = start_daemon(&dir, "info");
    let listening = daemon.started.elapsed();
    let client = agent();
    let healthy = loop {
        if let Some((200, _)) = get(&client, &format!("{}/health", daemon.base)) {
            break daemon.started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    figures.push(figure(
        "start-up to listening / to /health 200",
        format!("{:.0} / {:.0} ms", listening.as_secs_f64() * 1e3, healthy.as_secs_f64() * 1e3),
        "(for reference)",
        None,
    ));
    let pid = daemon.child.id();
    let rss_idle = proc_status_kb(pid, "VmRSS");

    // 3. Incidents.
    eprintln!("[3/6] /api/incidents ...");
    for period in ["24h", "30d"] {
        let url = format!("{}/api/incidents?period={period}", daemon.base);
        // Computed: each request at a fresh second (answers are reused within a second).
        let mut computed = Vec::with_capacity(INCIDENT_COMPUTED);
        let mut body = String::new();
        for _ in 0..INCIDENT_COMPUTED {
            let second = unix_now();
            while unix_now() == second {
                std::thread::sleep(Duration::from_millis(5));
            }
            let (times, last) = time_gets(&client, &url, 1);
            computed.extend(times);
            body = last;
        }
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        let listed = value["incidents"].as_array().map_or(0, Vec::len);
        let truncated = value["truncated"].as_bool().unwrap_or(false);
        let (p50, max) = (percentile(&mut computed, 50.0), computed.iter().cloned().fold(0.0, f64::max));
        let target = if period == "30d" { "p50 <= 50 ms" } else { "(for reference)" };
        figures.push(figure(
            &format!(
                "/api/incidents?period={period} computed: p50 / max of {INCIDENT_COMPUTED} ({listed} incidents{}, {})",
                if truncated { ", truncated" } else { "" },
                size(body.len())
            ),
            format!("{p50:.1} / {max:.1} ms"),
            target,
            (period == "30d").then_some(p50 <= 50.0),
        ));
        let (mut times, _) = time_gets(&client, &url, INCIDENT_REQUESTS);
        let (p50, p95) = (percentile(&mut times, 50.0), percentile(&mut times, 95.0));
        figures.push(figure(
            &format!(
                "/api/incidents?period={period}, {INCIDENT_REQUESTS} in a row (reused within a second): p50 / p95"
            ),
            format!("{p50:.2} / {p95:.2} ms"),
            "(for reference)",
            None,
        ));
    }

    // 4. Reports.
    eprintln!("[4/6] /api/report ...");
    let (this_month, last_month) = months(now);
    for month in [&this_month, &last_month] {
        for format in ["json", "csv"] {
            let url = format!("{}/api/report?month={month}&format={format}", daemon.base);
            let (mut times, body) = time_gets(&client, &url, REPORT_REQUESTS);
            let incidents: i64 = if format == "json" {
                let value: serde_json::Value = serde_json::from_str(&body).unwrap();
                value["monitors"].as_array().unwrap().iter().filter_map(|m| m["incidents"].as_i64()).sum()
            } else {
                let header = body.lines().next().unwrap_or("").split(',').position(|c| c == "incidents").unwrap();
                body.lines().skip(1).filter_map(|l| l.split(',').nth(header)?.parse::<i64>().ok()).sum()
            };
            let (p50, p95) = (percentile(&mut times, 50.0), percentile(&mut times, 95.0));
            figures.push(figure(
                &format!(
                    "/api/report?month={month}&format={format} p50 / p95 ({incidents} incidents, {})",
                    size(body.len())
                ),
                format!("{p50:.1} / {p95:.1} ms"),
                "p50 <= 500 ms",
                Some(p50 <= 500.0),
            ));
        }
    }

    // 5. The raw export.
    eprintln!("[5/6] /api/export ...");
    let mut url = format!("{}/api/export?from={}&format=jsonl", daemon.base, now - DAYS * 86_400);
    let (mut times, mut page_bytes, mut total_rows) = (Vec::new(), Vec::new(), 0);
    for _ in 0..EXPORT_PAGES {
        let (ms, bytes, rows, next) = export_page(&client, &url);
        times.push(ms);
        page_bytes.push(bytes);
        total_rows += rows;
        match next {
            Some(path) => url = format!("{}{path}", daemon.base),
            None => break,
        }
    }
    let total_ms: f64 = times.iter().sum();
    let pages = times.len();
    let (p50, p95) = (percentile(&mut times, 50.0), percentile(&mut times, 95.0));
    figures.push(figure(
        &format!("/api/export?from=now-30d&format=jsonl, {pages} pages: p50 / p95 a page"),
        format!("{p50:.1} / {p95:.1} ms"),
        "p50 <= 500 ms",
        Some(p50 <= 500.0 && pages == EXPORT_PAGES),
    ));
    figures.push(figure(
        "  bytes a page / rows / rows per second",
        format!(
            "{} / {total_rows} / {:.0}",
            size(page_bytes.iter().sum::<usize>() / pages.max(1)),
            total_rows as f64 / (total_ms / 1e3)
        ),
        "(for reference)",
        None,
    ));
    // A window near the end of the history: its first page, 29 days of older rows before it.
    let recent = format!("{}/api/export?from={}&format=jsonl", daemon.base, now - 86_400);
    let mut recent_times = Vec::new();
    for _ in 0..3 {
        recent_times.push(export_page(&client, &recent).0);
    }
    // A page of one row: what a page costs besides its rows.
    let one = format!("{}/api/export?from={}&format=jsonl&limit=1", daemon.base, now - DAYS * 86_400);
    let mut one_times = Vec::new();
    for _ in 0..3 {
        one_times.push(export_page(&client, &one).0);
    }
    figures.push(figure(
        "/api/export?from=now-30d&format=jsonl&limit=1 (a page's fixed cost), p50 of 3",
        format!("{:.1} ms", percentile(&mut one_times, 50.0)),
        "(for reference)",
        None,
    ));
    figures.push(figure(
        "/api/export?from=now-24h&format=jsonl first page, p50 of 3",
        format!("{:.1} ms", percentile(&mut recent_times, 50.0)),
        "(for reference)",
        None,
    ));

    // 7. The daemon's memory after the reports and the export.
    let (rss, hwm) = (proc_status_kb(pid, "VmRSS"), proc_status_kb(pid, "VmHWM"));
    figures.push(figure(
        "daemon RSS at start / after reports and export (peak)",
        format!("{:.1} / {:.1} MB ({:.1} MB)", rss_idle as f64 / 1024.0, rss as f64 / 1024.0, hwm as f64 / 1024.0),
        "(for reference)",
        None,
    ));
    drop(daemon);
    drop(black_hole);

    // 6. The rebuild: from the raw probes, as a migration asks.
    eprintln!("[6/6] rebuilding rollups and runs of red probes ...");
    let mut conn = db::open(&db_path).unwrap();
    conn.batch_execute(
        "DELETE FROM red_runs; UPDATE rollups SET reasons=''; INSERT INTO meta (key, value) VALUES ('rebuild_rollups','1');",
    )
    .unwrap();
    conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
    drop(conn);
    let t = Instant::now();
    let mut conn = db::open(&db_path).unwrap();
    let took = t.elapsed();
    let rebuilt = stored_runs(&mut conn);
    figures.push(figure(
        "rebuild of rollups and runs on open (db::open)",
        format!("{:.1} s ({:.0} probes/s)", took.as_secs_f64(), written.rows as f64 / took.as_secs_f64()),
        "(for reference)",
        None,
    ));
    figures.push(figure(
        "runs of red probes rebuilt (runs, red probes)",
        format!("{} / {}", rebuilt.0, rebuilt.1),
        "= as written",
        Some(rebuilt == as_written),
    ));
    drop(conn);
    report(&figures);
}
