//! The scale benchmark (issue 5): history queries over 4.32 M stored probes, start-up,
//! StoreActor ingest, 2,000 monitors probing on two cores, and bytes per stored probe.
//! Run with `cargo bench --bench scale` (release build); it prints one table of every figure
//! next to its target. See bench/README.md.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use llm_monitor::clock::unix_now;
use llm_monitor::config::MonitorKey;
use llm_monitor::probe::measure::Measurements;
use llm_monitor::probe::{Reason, Status};
use llm_monitor::store::db::{self, Row};
use llm_monitor::store::{Close, Flush, LoadHistory, ProbeResult, RegisterMonitors};

mod common;
use common::{
    agent, clock_ticks, figure, get, percentile, proc_cpu_ticks, proc_status_kb, report, serve_upstream, start_daemon,
    stat_cpu_ticks, total_probes, Figure, Lcg,
};

const HISTORY_MONITORS: usize = 100;
const HISTORY_DAYS: i64 = 30;
const PROBE_MONITORS: usize = 2_000;
const PROBE_INTERVAL_S: u64 = 5;
const UPSTREAM_DELAY_MS: u64 = 50;
/// The upstream path number of the monitor used to time freshness.
const FRESH: u32 = 999_999;

/// 100 monitors x 30 days x one probe a minute, realistic LLM probes, written in time order.
fn generate_history(path: &Path, now: i64) -> (Vec<MonitorKey>, usize, Duration) {
    let mut conn = db::open(path).unwrap();
    let keys: Vec<MonitorKey> =
        (0..HISTORY_MONITORS).map(|i| MonitorKey::new("bench", &format!("m{i:03}"), "")).collect();
    let ids = db::monitor_ids(&mut conn, &keys).unwrap();
    let models = ["gpt-4o-mini-2024-07-18", "claude-3-5-haiku-20241022", "gemini-2.0-flash"];
    let minutes = HISTORY_DAYS * 24 * 60;
    let first = now - HISTORY_DAYS * 86_400 + 30;
    let mut rng = Lcg(7);
    let started = Instant::now();
    let mut batch = Vec::with_capacity(20_000);
    let mut total = 0;
    for minute in 0..minutes {
        for (i, id) in ids.iter().enumerate() {
            let roll = rng.next() % 1000;
            let (status, reason, http, detail) = match roll {
                0..=969 => (1, "ok", 200, None),
                970..=989 => (2, "slow", 200, None),
                990..=994 => (0, "server_error", 502, Some("HTTP 502: upstream connect error".to_string())),
                _ => (0, "timeout", 0, Some("no complete response within 20s".to_string())),
            };
            let latency = 400 + (rng.next() % 1_200) as i32;
            batch.push(Row {
                monitor_id: *id,
                ts: first + minute * 60 + (i as i64 % 60),
                status,
                latency_ms: latency,
                reason: reason.to_string(),
                http_code: http,
                detail,
                // Connections are reused: one is opened about once an hour.
                connect_ms: (minute % 60 == 0).then_some(120),
                ttfb_ms: (status != 0).then_some(latency / 3),
                ttft_ms: (status != 0).then_some(latency / 2),
                tokens_per_s: (status != 0).then_some(40.0 + (rng.next() % 400) as f64 / 10.0),
                model: (status != 0).then(|| models[i % 3].to_string()),
                prompt_tokens: (status != 0).then_some(24),
                completion_tokens: (status != 0).then_some(2 + (rng.next() % 4) as i64),
                // The 4.32 M case of issue 5: plain probes, no price (a priced one stores its cost too).
                cost_nanos: None,
                maintenance: false,
                node_id: 0,
                interval_s: None,
            });
            if batch.len() == 20_000 {
                db::insert(&mut conn, &batch).unwrap();
                total += batch.len();
                batch.clear();
            }
        }
    }
    db::insert(&mut conn, &batch).unwrap();
    total += batch.len();
    conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
    (keys, total, started.elapsed())
}

fn file_bytes(path: &Path) -> u64 {
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) + std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0)
}

/// Counts the upstream's requests per monitor, with their arrival times.
#[derive(Clone, Default)]
struct Arrivals(Arc<Mutex<Vec<(u32, Instant)>>>);

/// `/m/<monitor>/<delay ms>`: records the arrival, waits the delay, answers like a chat API.
/// It reads the request body, as an API does (one left unread makes actix close the connection).
async fn upstream_handler(req: HttpRequest, _body: web::Bytes, arrivals: web::Data<Arrivals>) -> HttpResponse {
    let arrived = Instant::now();
    let mut parts = req.path().trim_start_matches("/m/").split('/');
    let monitor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(u32::MAX);
    let delay: u64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(UPSTREAM_DELAY_MS);
    arrivals.0.lock().unwrap().push((monitor, arrived));
    if delay > 0 {
        actix_rt::time::sleep(Duration::from_millis(delay)).await;
    }
    HttpResponse::Ok().content_type("application/json").body(r#"{"id":"x","choices":[{"message":{"content":"ok"}}]}"#)
}

fn start_upstream(arrivals: Arrivals) -> String {
    serve_upstream(arrivals, upstream_handler)
}

/// The size of the body as sent (compressed when `gzip`).
fn fetch_len(agent: &ureq::Agent, url: &str, gzip: bool) -> usize {
    let mut request = agent.get(url);
    if gzip {
        request = request.header("Accept-Encoding", "gzip");
    }
    let mut response = request.call().unwrap();
    let mut reader = response.body_mut().with_config().limit(64 * 1024 * 1024).reader();
    std::io::copy(&mut reader, &mut std::io::sink()).unwrap() as usize
}

/// Fetches `url` and throws the body away (as raw bytes: no decompression, no UTF-8 check, so
/// the load generator costs as little as it can); the status code.
fn fetch(agent: &ureq::Agent, url: &str, gzip: bool) -> Option<u16> {
    let mut request = agent.get(url);
    if gzip {
        request = request.header("Accept-Encoding", "gzip");
    }
    let mut response = request.call().ok()?;
    let status = response.status().as_u16();
    let mut reader = response.body_mut().with_config().limit(64 * 1024 * 1024).reader();
    std::io::copy(&mut reader, &mut std::io::sink()).ok()?;
    Some(status)
}

/// Requests per second that `threads` keep-alive clients sustain on `url` for `duration`.
fn load(url: &str, threads: usize, duration: Duration, gzip: bool) -> (f64, u64) {
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (done, errors, stop, url) = (done.clone(), errors.clone(), stop.clone(), url.to_string());
            std::thread::spawn(move || {
                let agent = agent();
                while !stop.load(Ordering::Relaxed) {
                    match fetch(&agent, &url, gzip) {
                        Some(200) => done.fetch_add(1, Ordering::Relaxed),
                        _ => errors.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    (done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64(), errors.load(Ordering::Relaxed))
}

/// CPU ticks of each thread of `pid`, by thread name.
fn thread_ticks(pid: u32) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default().trim().to_string();
        *out.entry(name).or_insert(0) += stat_cpu_ticks(&path.join("stat").to_string_lossy());
    }
    out
}

fn history_phase(figures: &mut Vec<Figure>, dir: &Path) {
    let db_path = dir.join("history.db");
    let now = unix_now();
    eprintln!("[1/6] generating {} probes of history ...", HISTORY_MONITORS as i64 * HISTORY_DAYS * 1_440);
    let (keys, rows, took) = generate_history(&db_path, now);
    eprintln!(
        "      {rows} rows in {:.1} s ({:.0} rows/s through db::insert)",
        took.as_secs_f64(),
        rows as f64 / took.as_secs_f64()
    );
    let bytes = file_bytes(&db_path);
    let per_probe = bytes as f64 / rows as f64;
    figures.push(figure(
        "database bytes per stored probe (4.32 M, indexes + rollups included)",
        format!("{per_probe:.1} B ({:.0} MB)", bytes as f64 / 1e6),
        "<= 48 B",
        Some(per_probe <= 48.0),
    ));

    // The daemon on that database: the same 100 monitors, probing a local upstream every minute.
    let arrivals = Arrivals::default();
    let upstream = start_upstream(arrivals.clone());
    let mut config = format!("listen: \"127.0.0.1:0\"\ndatabase: \"{}\"\ninterval: 1m\nmonitors:\n", db_path.display());
    for key in &keys {
        config.push_str(&format!(
            "  - {{provider: {}, service: {}, url: \"{upstream}/m/0\", method: GET}}\n",
            key.provider, key.service
        ));
    }
    // One more, probed every second, to time how soon a stored probe shows in the API.
    config.push_str(&format!(
        "  - {{provider: bench, service: fresh, url: \"{upstream}/m/{FRESH}\", method: GET, interval: 1s}}\n"
    ));
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    eprintln!("[2/6] starting the daemon on it, measuring queries ...");
    let daemon = start_daemon(dir, "info");
    let client = agent();
    let health_at = loop {
        if let Some((200, _)) = get(&client, &format!("{}/health", daemon.base)) {
            break daemon.started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // Correct = the 30-day answer counts every generated probe inside its window.
    let window_start = (now / 86_400 - 29) * 86_400;
    let expected = (HISTORY_MONITORS as i64) * ((now - window_start) / 60).min(HISTORY_DAYS * 1_440);
    let status_at = loop {
        if let Some((200, body)) = get(&client, &format!("{}/api/status?period=30d", daemon.base)) {
            let counted = total_probes(&body);
            if (counted - expected).abs() <= HISTORY_MONITORS as i64 * 2 {
                break daemon.started.elapsed();
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    figures.push(figure(
        "start-up to /health 200",
        format!("{:.0} ms", health_at.as_secs_f64() * 1e3),
        "<= 1000 ms",
        Some(health_at <= Duration::from_secs(1)),
    ));
    figures.push(figure(
        "start-up to a correct /api/status?period=30d",
        format!("{:.0} ms", status_at.as_secs_f64() * 1e3),
        "<= 1000 ms",
        Some(status_at <= Duration::from_secs(1)),
    ));

    for period in ["24h", "7d", "30d"] {
        let url = format!("{}/api/status?period={period}", daemon.base);
        let mut times: Vec<f64> = Vec::new();
        let mut size = 0;
        for _ in 0..300 {
            let t = Instant::now();
            let (code, body) = get(&client, &url).unwrap();
            assert_eq!(code, 200);
            times.push(t.elapsed().as_secs_f64() * 1e3);
            size = body.len();
        }
        let p50 = percentile(&mut times, 50.0);
        let p99 = percentile(&mut times, 99.0);
        figures.push(figure(
            &format!("/api/status?period={period} p50 / p99, one client ({} KB)", size / 1024),
            format!("{p50:.2} / {p99:.2} ms"),
            "<= 5 / <= 20 ms",
            Some(p50 <= 5.0 && p99 <= 20.0),
        ));
    }

    let status_url = format!("{}/api/status?period=30d", daemon.base);
    let gzipped = fetch_len(&client, &status_url, true);
    let (health_rate, health_errors) = load(&format!("{}/health", daemon.base), 64, Duration::from_secs(8), true);
    let (gzip_rate, gzip_errors) = load(&status_url, 64, Duration::from_secs(8), true);
    let (plain_rate, plain_errors) = load(&status_url, 64, Duration::from_secs(8), false);
    let ratio = gzip_rate / health_rate;
    figures.push(figure(
        "64 connections: /health req/s",
        format!("{health_rate:.0} ({health_errors} errors)"),
        "-",
        None,
    ));
    figures.push(figure(
        &format!("64 connections: /api/status?period=30d req/s, gzip ({} KB)", gzipped / 1024),
        format!("{gzip_rate:.0} ({gzip_errors} errors)"),
        ">= 0.5 x /health",
        Some(ratio >= 0.5 && gzip_errors == 0),
    ));
    figures.push(figure("  ratio status (gzip) / health", format!("{ratio:.2}"), ">= 0.50", Some(ratio >= 0.5)));
    figures.push(figure(
        "64 connections: /api/status?period=30d req/s, uncompressed",
        format!("{plain_rate:.0} ({plain_errors} errors, ratio {:.2})", plain_rate / health_rate),
        "(for reference)",
        None,
    ));

    // Freshness: from the upstream answering a probe to the API counting it, five times.
    let fresh_url = format!("{}/api/status?service=fresh", daemon.base);
    let fresh_arrivals = || arrivals.0.lock().unwrap().iter().filter(|(m, _)| *m == FRESH).count();
    let mut lags = Vec::new();
    for _ in 0..5 {
        let seen = fresh_arrivals();
        while fresh_arrivals() == seen {
            std::thread::sleep(Duration::from_millis(1));
        }
        // Its result is not stored before the upstream answers, 50 ms from now.
        let before = total_probes(&get(&client, &fresh_url).unwrap().1);
        let answered_at = Instant::now() + Duration::from_millis(UPSTREAM_DELAY_MS);
        let deadline = answered_at + Duration::from_secs(5);
        loop {
            if total_probes(&get(&client, &fresh_url).unwrap().1) > before || Instant::now() > deadline {
                lags.push(Instant::now().saturating_duration_since(answered_at).as_secs_f64() * 1e3);
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let worst = lags.iter().cloned().fold(0.0, f64::max);
    figures.push(figure(
        "a stored probe visible in /api/status after (worst of 5)",
        format!("{worst:.0} ms"),
        "<= 1000 ms (no TTL cache)",
        Some(worst <= 1000.0),
    ));
    // The first answer in a new second is computed afresh (answers are only reused within the
    // same second and until the next write): its cost, for 30d.
    let mut cold = Vec::new();
    for _ in 0..8 {
        use llm_monitor::clock::Clock;
        let next_second = 1_000 - llm_monitor::clock::SystemClock.now_ms().rem_euclid(1_000) as u64;
        std::thread::sleep(Duration::from_millis(next_second + 2));
        let t = Instant::now();
        get(&client, &status_url).unwrap();
        cold.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let cold_p50 = percentile(&mut cold, 50.0);
    let cold_max = cold.iter().cloned().fold(0.0, f64::max);
    figures.push(figure(
        "/api/status?period=30d computed afresh (first of a second) p50 / max",
        format!("{cold_p50:.2} / {cold_max:.2} ms"),
        "<= 5 / <= 20 ms",
        Some(cold_p50 <= 5.0 && cold_max <= 20.0),
    ));
    drop(daemon);

    // Retention: a day more of probes while the oldest day is purged: the file must not grow.
    eprintln!("      one more day with retention purging ...");
    let mut conn = db::open(&db_path).unwrap();
    conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
    let size_before = file_bytes(&db_path);
    let ids = db::monitor_ids(&mut conn, &keys).unwrap();
    for hour in 0..24 {
        let base = now + 3_600 + hour * 3_600;
        let rows: Vec<Row> = (0..60)
            .flat_map(|minute| {
                ids.iter().map(move |id| Row {
                    monitor_id: *id,
                    ts: base + minute * 60,
                    status: 1,
                    latency_ms: 700,
                    reason: "ok".into(),
                    http_code: 200,
                    ttfb_ms: Some(200),
                    ttft_ms: Some(350),
                    tokens_per_s: Some(55.5),
                    model: Some("gpt-4o-mini-2024-07-18".into()),
                    prompt_tokens: Some(24),
                    completion_tokens: Some(3),
                    cost_nanos: Some(45_000),
                    ..Row::default()
                })
            })
            .collect();
        db::insert(&mut conn, &rows).unwrap();
        db::purge(&mut conn, base + 3_600 - HISTORY_DAYS * 86_400).unwrap();
    }
    conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
    let size_after = file_bytes(&db_path);
    let growth = (size_after as f64 - size_before as f64) / size_before as f64 * 100.0;
    figures.push(figure(
        "file growth over one more day with retention purging",
        format!("{growth:+.2} %"),
        "~0 (stops growing)",
        Some(growth < 1.0),
    ));
}

fn ingest_phase(figures: &mut Vec<Figure>, dir: &Path) {
    eprintln!("[3/6] StoreActor ingest ...");
    let path = dir.join("ingest.db");
    let total: usize = 200_000;
    let (elapsed, stored) = actix_rt::System::new().block_on(async move {
        let conn = db::open(&path).unwrap();
        let retention = Duration::from_secs(30 * 86_400);
        let (store, inbox) = llm_monitor::store::start(
            db::Db::Sqlite(conn),
            llm_monitor::store::Place {
                database: llm_monitor::config::Database::Sqlite(path.clone()),
                node: "bench".to_string(),
            },
            llm_monitor::clock::system(),
            retention,
            0.7,
            Default::default(),
            Default::default(),
        );
        store.send(LoadHistory).await.unwrap().unwrap();
        let keys: Vec<MonitorKey> = (0..2_000).map(|i| MonitorKey::new("ingest", &format!("m{i}"), "")).collect();
        store.do_send(RegisterMonitors {
            keys: keys.clone(),
            degraded_weight: 0.7,
            retention,
            intervals: Default::default(),
            quorum: Default::default(),
            model_rules: Default::default(),
        });
        let now = unix_now();
        let started = Instant::now();
        for i in 0..total {
            inbox.send(ProbeResult {
                key: keys[i % keys.len()].clone(),
                timestamp: now - 600 + (i / keys.len()) as i64,
                status: Status::Green,
                latency_ms: 500 + (i % 300) as u32,
                reason: Reason::Ok,
                http_code: 200,
                detail: None,
                measured: Measurements {
                    ttft_ms: Some(200),
                    tokens_per_s: Some(50.0),
                    model: Some("gpt-4o-mini".into()),
                    ..Measurements::default()
                },
            });
            // At most 100,000 results wait (the rest are dropped), so the sender waits for the
            // writer after every 50,000: this measures sustained ingest, not the cap.
            if i % 50_000 == 49_999 {
                store.send(Flush { deadline: Duration::from_secs(60) }).await.unwrap().unwrap();
            }
        }
        store.send(Flush { deadline: Duration::from_secs(60) }).await.unwrap().unwrap();
        let elapsed = started.elapsed();
        store.send(Close { deadline: Duration::from_secs(10) }).await.unwrap().unwrap();
        let mut conn = db::open(&path).unwrap();
        let stored: i64 = llm_monitor::store::schema::probes::table.count().get_result(&mut conn).unwrap();
        (elapsed, stored)
    });
    let rate = total as f64 / elapsed.as_secs_f64();
    figures.push(figure(
        "StoreActor ingest, batched transactions",
        format!("{rate:.0} results/s ({stored} of {total} stored)"),
        ">= 20,000/s, all stored",
        Some(rate >= 20_000.0 && stored as usize == total),
    ));
}

/// A probing workload: `monitors` monitors every `interval_s` against the in-process upstream,
/// every `slow_every`-th one answering after `slow_ms`, the rest after `fast_ms`.
struct Workload {
    name: &'static str,
    monitors: usize,
    interval_s: u64,
    post: bool,
    slow_every: usize,
    slow_ms: u64,
    fast_ms: u64,
    measure: Duration,
}

impl Workload {
    fn delay(&self, monitor: usize) -> u64 {
        if self.slow_every > 0 && monitor % self.slow_every == self.slow_every - 1 {
            self.slow_ms
        } else {
            self.fast_ms
        }
    }
}

/// What a workload measured.
struct Measured {
    lateness_p50: f64,
    lateness_p99: f64,
    overhead_p50: f64,
    overhead_p99: f64,
    cpu_share: f64,
    cpu_s_per_1000: f64,
    rss_peak_mb: f64,
    hwm_mb: f64,
    /// CPU-s per 1,000 probes by thread name, largest first.
    by_thread: Vec<(String, f64)>,
    made: usize,
    stored: usize,
    greens: usize,
    doubled: usize,
    missing: usize,
    clean_exit: bool,
}

impl Measured {
    fn none_lost(&self) -> bool {
        self.made == self.stored && self.doubled == 0 && self.missing == 0 && self.clean_exit
    }

    /// The row every probing phase ends with: no probe lost or doubled.
    fn none_lost_figure(&self) -> Figure {
        figure(
            "  probes: made / stored / green / doubled / monitors never probed",
            format!("{} / {} / {} / {} / {}", self.made, self.stored, self.greens, self.doubled, self.missing),
            "made = stored, 0 doubled, 0 missing",
            Some(self.none_lost()),
        )
    }

    /// Peak RSS, sampled and VmHWM, against `limit_mb` (none: for reference).
    fn rss_figure(&self, target: &str, limit_mb: Option<f64>) -> Figure {
        figure(
            "  daemon RSS peak (sampled / VmHWM)",
            format!("{:.1} / {:.1} MB", self.rss_peak_mb, self.hwm_mb),
            target,
            limit_mb.map(|limit| self.hwm_mb <= limit),
        )
    }
}

fn run_workload(w: &Workload, dir: &Path) -> Measured {
    let arrivals = Arrivals::default();
    let upstream = start_upstream(arrivals.clone());
    let dir = dir.join(w.name);
    std::fs::create_dir_all(&dir).unwrap();
    let db_path = dir.join("probing.db");
    let mut config = format!(
        "listen: \"127.0.0.1:0\"\ndatabase: \"{}\"\ninterval: {}s\ntimeout: {}s\nslow_latency: {}s\nmonitors:\n",
        db_path.display(),
        w.interval_s,
        (w.interval_s - 1).min(10),
        (w.interval_s - 1).min(10).min(5)
    );
    for i in 0..w.monitors {
        let delay = w.delay(i);
        if w.post {
            config.push_str(&format!(
                "  - {{provider: probe, service: m{i}, url: \"{upstream}/m/{i}/{delay}\", method: POST, headers: {{Content-Type: application/json}}, body: '{{\"model\":\"m\",\"messages\":[{{\"role\":\"user\",\"content\":\"ping\"}}]}}', success_contains: choices}}\n"
            ));
        } else {
            config.push_str(&format!(
                // Short lines: 10,000 of them must stay under the config file's 1 MiB cap.
                "  - {{provider: p, service: m{i}, url: \"{upstream}/m/{i}/{delay}\", method: GET}}\n"
            ));
        }
    }
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let mut daemon = start_daemon(&dir, "info");
    let pid = daemon.child.id();
    // Warm up one full interval (first probes are spread over it), then measure.
    std::thread::sleep(Duration::from_secs(w.interval_s + 2));
    let ticks_before = proc_cpu_ticks(pid);
    let threads_before = thread_ticks(pid);
    let made_before = arrivals.0.lock().unwrap().len();
    let window_start = Instant::now();
    let mut rss_peak_kb = 0;
    while window_start.elapsed() < w.measure {
        std::thread::sleep(Duration::from_millis(500));
        rss_peak_kb = rss_peak_kb.max(proc_status_kb(pid, "VmRSS:"));
    }
    let cpu_s = (proc_cpu_ticks(pid) - ticks_before) as f64 / clock_ticks();
    let made_in_window = arrivals.0.lock().unwrap().len() - made_before;
    let per_1000 = |ticks: u64| ticks as f64 / clock_ticks() / made_in_window.max(1) as f64 * 1_000.0;
    let mut by_thread: Vec<(String, f64)> = thread_ticks(pid)
        .into_iter()
        .map(|(name, ticks)| {
            let spent = ticks.saturating_sub(threads_before.get(&name).copied().unwrap_or(0));
            (name, per_1000(spent))
        })
        .filter(|(_, v)| *v > 0.0)
        .collect();
    by_thread.sort_by(|a, b| b.1.total_cmp(&a.1));
    let cpu_share = cpu_s / window_start.elapsed().as_secs_f64() * 100.0;
    let hwm_kb = proc_status_kb(pid, "VmHWM:");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = daemon.child.wait().unwrap();
    daemon.child = Command::new("true").spawn().unwrap();

    // Lateness: each monitor's arrivals against its own grid, anchored at its least late probe.
    let all = arrivals.0.lock().unwrap().clone();
    let mut per_monitor: HashMap<u32, Vec<Instant>> = HashMap::new();
    for (monitor, at) in &all {
        per_monitor.entry(*monitor).or_default().push(*at);
    }
    let interval = Duration::from_secs(w.interval_s);
    let mut lateness = Vec::new();
    let mut doubled = 0;
    for times in per_monitor.values_mut() {
        times.sort();
        let anchor = times.iter().enumerate().map(|(n, t)| *t - interval * n as u32).min().unwrap();
        for (n, t) in times.iter().enumerate() {
            lateness.push(t.duration_since(anchor + interval * n as u32).as_secs_f64() * 1e3);
        }
        doubled += times.windows(2).filter(|w| w[1] - w[0] < interval / 2).count();
    }

    let mut conn = db::open(&db_path).unwrap();
    use llm_monitor::store::schema::{monitors, probes};
    let rows: Vec<(String, i32, i16)> = probes::table
        .inner_join(monitors::table.on(monitors::id.eq(probes::monitor_id)))
        .select((monitors::service, probes::latency_ms, probes::status))
        .load(&mut conn)
        .unwrap();
    let mut overhead: Vec<f64> = rows
        .iter()
        .map(|(service, latency, _)| {
            let monitor: usize = service.trim_start_matches('m').parse().unwrap();
            f64::from(*latency) - w.delay(monitor) as f64
        })
        .collect();
    Measured {
        lateness_p50: percentile(&mut lateness, 50.0),
        lateness_p99: percentile(&mut lateness, 99.0),
        overhead_p50: percentile(&mut overhead, 50.0),
        overhead_p99: percentile(&mut overhead, 99.0),
        cpu_share,
        cpu_s_per_1000: cpu_s / made_in_window.max(1) as f64 * 1_000.0,
        rss_peak_mb: rss_peak_kb as f64 / 1024.0,
        hwm_mb: hwm_kb as f64 / 1024.0,
        by_thread,
        made: all.len(),
        stored: rows.len(),
        greens: rows.iter().filter(|(_, _, s)| *s == 1).count(),
        doubled,
        missing: w.monitors - per_monitor.len(),
        clean_exit: status.success(),
    }
}

fn announce(w: &Workload, step: &str) {
    let slow = if w.slow_every > 0 {
        format!(", one in {} answering after {} ms", w.slow_every, w.slow_ms)
    } else {
        String::new()
    };
    eprintln!(
        "[{step}] {} monitors every {} s, {}, upstream after {} ms{slow} ...",
        w.monitors,
        w.interval_s,
        if w.post { "POST" } else { "GET" },
        w.fast_ms
    );
}

fn probing_phase(figures: &mut Vec<Figure>, dir: &Path) {
    let w = Workload {
        name: "probing",
        monitors: PROBE_MONITORS,
        interval_s: PROBE_INTERVAL_S,
        post: false,
        slow_every: 0,
        slow_ms: 0,
        fast_ms: UPSTREAM_DELAY_MS,
        measure: Duration::from_secs(60),
    };
    announce(&w, "4/6");
    let m = run_workload(&w, dir);
    figures.push(figure(
        &format!("{PROBE_MONITORS} monitors: probe start lateness p50 / p99"),
        format!("{:.1} / {:.1} ms", m.lateness_p50, m.lateness_p99),
        "p99 <= 20 ms",
        Some(m.lateness_p99 <= 20.0),
    ));
    figures.push(figure(
        "  reported latency over the upstream's delay p50 / p99",
        format!("{:.1} / {:.1} ms", m.overhead_p50, m.overhead_p99),
        "<= 1 / <= 5 ms",
        Some(m.overhead_p50 <= 1.0 && m.overhead_p99 <= 5.0),
    ));
    figures.push(figure(
        "  daemon CPU (share of one core)",
        format!("{:.1} %", m.cpu_share),
        "<= 25 %",
        Some(m.cpu_share <= 25.0),
    ));
    figures.push(m.rss_figure("<= 64 MB", Some(64.0)));
    figures.push(m.none_lost_figure());
}

/// The workload of the side-by-side run with Uptime Kuma 2.5.3 (issue 10): 500 monitors every
/// 20 s, POST, one in five slow. Its figure is CPU time per 1,000 probes.
fn kuma_phase(figures: &mut Vec<Figure>, dir: &Path) {
    let w = Workload {
        name: "kuma",
        monitors: 500,
        interval_s: 20,
        post: true,
        slow_every: 5,
        slow_ms: 2_000,
        fast_ms: 0,
        measure: Duration::from_secs(120),
    };
    announce(&w, "5/6");
    let m = run_workload(&w, dir);
    figures.push(figure(
        "Kuma workload (500 x 20 s, POST, 1 in 5 slow): CPU per 1,000 probes",
        format!("{:.3} CPU-s", m.cpu_s_per_1000),
        "<= 0.17 CPU-s (Kuma 2.5.3: 3.37)",
        Some(m.cpu_s_per_1000 <= 0.17),
    ));
    figures.push(figure(
        "  of which, by thread (CPU-s per 1,000 probes)",
        m.by_thread.iter().take(4).map(|(name, v)| format!("{name} {v:.3}")).collect::<Vec<_>>().join(", "),
        "",
        None,
    ));
    figures.push(figure(
        "  probe start lateness p50 / p99",
        format!("{:.1} / {:.1} ms", m.lateness_p50, m.lateness_p99),
        "p99 <= 20 ms",
        Some(m.lateness_p99 <= 20.0),
    ));
    figures.push(m.rss_figure("(Kuma 2.5.3: 232.8 MiB)", None));
    figures.push(m.none_lost_figure());
}

/// 10,000 monitors every 10 s on the 2-core machine (issue 10).
fn ten_thousand_phase(figures: &mut Vec<Figure>, dir: &Path) {
    let w = Workload {
        name: "ten-thousand",
        monitors: 10_000,
        interval_s: 10,
        post: false,
        slow_every: 0,
        slow_ms: 0,
        fast_ms: UPSTREAM_DELAY_MS,
        measure: Duration::from_secs(60),
    };
    announce(&w, "6/6");
    let m = run_workload(&w, dir);
    figures.push(figure(
        "10,000 monitors every 10 s: probe start lateness p50 / p99",
        format!("{:.1} / {:.1} ms", m.lateness_p50, m.lateness_p99),
        "p99 <= 20 ms",
        Some(m.lateness_p99 <= 20.0),
    ));
    figures.push(figure(
        "  daemon CPU (share of one core)",
        format!("{:.1} % ({:.3} CPU-s per 1,000 probes)", m.cpu_share, m.cpu_s_per_1000),
        "<= 50 %",
        Some(m.cpu_share <= 50.0),
    ));
    figures.push(m.rss_figure("<= 128 MB", Some(128.0)));
    figures.push(m.none_lost_figure());
}

fn main() {
    if std::env::args().any(|a| a == "--help") {
        println!("cargo bench --bench scale   runs every phase (about 10 minutes on 2 cores)");
        return;
    }
    // The 10,000-monitor phase holds 10,000 connections at each end.
    llm_monitor::limits::raise_open_files();
    // BENCH_DIR keeps the databases for a closer look; by default they go with a temp dir.
    let temp = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("BENCH_DIR").map(PathBuf::from).unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    let mut figures = Vec::new();
    // BENCH_PHASES picks phases by name (history, ingest, probing, kuma, ten-thousand).
    let phases = std::env::var("BENCH_PHASES").unwrap_or_else(|_| "history,ingest,probing,kuma,ten-thousand".into());
    let wanted = |name: &str| phases.split(',').any(|p| p.trim() == name);
    if wanted("history") {
        history_phase(&mut figures, &dir);
    }
    if wanted("ingest") {
        ingest_phase(&mut figures, &dir);
    }
    if wanted("probing") {
        probing_phase(&mut figures, &dir);
    }
    if wanted("kuma") {
        kuma_phase(&mut figures, &dir);
    }
    if wanted("ten-thousand") {
        ten_thousand_phase(&mut figures, &dir);
    }

    report(&figures);
}
