//! The multi-node benchmark (issue 12): several daemons ("nodes") sharing one PostgreSQL
//! database. Two nodes x 1,000 monitors probing every 5 s (start lateness on each monitor's
//! grid, none lost or doubled, how soon one node's probe shows on the other), the 30-day
//! `/api/status` on 4.32 M stored probes in PostgreSQL against SQLite, and bytes per stored
//! probe in each. Run with `cargo bench --bench nodes` (release build); it needs Debian's
//! `postgresql` package (it starts a private server, as the tests do) and prints SKIPPED
//! without it. See bench/README.md.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::{web, HttpRequest, HttpResponse};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use llm_monitor::clock::unix_now;
use llm_monitor::config::{MonitorKey, PgUrl};
use llm_monitor::probe::schedule::Grid;
use llm_monitor::store::db::{self, Row, WriteCache, Writing};
use llm_monitor::store::sql::pg;

mod common;
use common::{
    agent, clock_ticks, figure, get, percentile, proc_cpu_ticks, report, serve_upstream, start_daemon, total_probes,
    Daemon, Figure, Lcg,
};

/// The probing phase: this many monitors on each node, every `PROBE_INTERVAL_S`.
const NODE_MONITORS: usize = 1_000;
const PROBE_INTERVAL_S: u64 = 5;
const UPSTREAM_DELAY_MS: u64 = 50;
/// The nodes of the probing phase, by the index the upstream's paths use.
const NODES: [&str; 2] = ["a", "b"];
/// The measured window of the probing phase, unless `BENCH_NODES_SECS` says otherwise.
const DEFAULT_SECS: u64 = 180;
/// The history phase: 100 monitors x 30 days x one probe a minute, as in bench/scale.rs.
const HISTORY_MONITORS: usize = 100;
const HISTORY_DAYS: i64 = 30;
/// Rows per write of the generated history (50 minutes of 100 monitors).
const SLICE_ROWS: usize = 5_000;
/// The node the PostgreSQL history is written as, and its daemon runs as.
const HISTORY_NODE: &str = "h";

fn max_of(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NAN, f64::max)
}

/// Wall-clock milliseconds since the Unix epoch, with microseconds (the grids are on the wall
/// clock).
fn wall_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64() * 1e3
}

// ---------------------------------------------------------------------------------------------
// A private PostgreSQL server: the tests' own (tests/it/support/pg.rs), and its processes.

#[path = "../tests/it/support/pg.rs"]
#[allow(dead_code)]
mod pg_server;

/// The server's processes and CPU, for the benchmark's figures.
trait Processes {
    fn pids(&self) -> Vec<u32>;
    fn cpu_ticks(&self) -> HashMap<u32, u64>;
}

impl Processes for pg_server::PgServer {
    /// The server's processes: the postmaster (first line of `postmaster.pid`) and its children.
    fn pids(&self) -> Vec<u32> {
        let data = self.data_dir().expect("the benchmark's own server");
        let pid_file = std::fs::read_to_string(data.join("postmaster.pid")).unwrap_or_default();
        let Some(postmaster) = pid_file.lines().next().and_then(|l| l.trim().parse::<u32>().ok()) else {
            return Vec::new();
        };
        let mut pids = vec![postmaster];
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // The parent's pid is the second field after the command name (in parentheses).
            let parent = stat[stat.rfind(')').map_or(0, |i| i + 2)..].split_whitespace().nth(1).map(str::to_string);
            if parent.and_then(|p| p.parse::<u32>().ok()) == Some(postmaster) {
                pids.push(pid);
            }
        }
        pids
    }

    /// CPU ticks of each of the server's processes now, by pid.
    fn cpu_ticks(&self) -> HashMap<u32, u64> {
        self.pids().into_iter().map(|pid| (pid, proc_cpu_ticks(pid))).collect()
    }
}

/// `SELECT count(*)`-style answers.
#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn count(conn: &mut PgConnection, query: &str) -> i64 {
    diesel::sql_query(query).load::<Count>(conn).unwrap()[0].n
}

// ---------------------------------------------------------------------------------------------
// The upstream: every request's node, monitor and wall-clock arrival.

/// The upstream's requests: (node index, monitor, arrival in wall-clock ms).
#[derive(Clone, Default)]
struct Arrivals(Arc<Mutex<Vec<(usize, usize, f64)>>>);

/// `/m/<node>/<monitor>`: records the arrival, answers like a chat API after 50 ms.
async fn upstream_handler(req: HttpRequest, _body: web::Bytes, arrivals: web::Data<Arrivals>) -> HttpResponse {
    let arrived = wall_ms();
    let mut parts = req.path().trim_start_matches("/m/").split('/');
    let node = parts.next().and_then(|n| NODES.iter().position(|x| *x == n)).unwrap_or(usize::MAX);
    let monitor: usize = parts.next().and_then(|p| p.parse().ok()).unwrap_or(usize::MAX);
    arrivals.0.lock().unwrap().push((node, monitor, arrived));
    actix_rt::time::sleep(Duration::from_millis(UPSTREAM_DELAY_MS)).await;
    HttpResponse::Ok().content_type("application/json").body(r#"{"id":"x","choices":[{"message":{"content":"ok"}}]}"#)
}

fn start_upstream(arrivals: Arrivals) -> String {
    serve_upstream(arrivals, upstream_handler)
}

// ---------------------------------------------------------------------------------------------
// HTTP client helpers.

/// Waits for `GET base/health` to answer 200; the time since the daemon was spawned.
fn wait_healthy(client: &ureq::Agent, daemon: &Daemon) -> Duration {
    loop {
        if let Some((200, _)) = get(client, &format!("{}/health", daemon.base)) {
            return daemon.started.elapsed();
        }
        assert!(daemon.started.elapsed() < Duration::from_secs(60), "the daemon at {} never got healthy", daemon.base);
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// SIGTERM, then the exit status (a graceful stop writes everything waiting).
fn stop_gracefully(daemon: &mut Daemon) -> ExitStatus {
    use nix::sys::signal::{kill, Signal};
    kill(nix::unistd::Pid::from_raw(daemon.child.id() as i32), Signal::SIGTERM).unwrap();
    let status = daemon.child.wait().unwrap();
    // Nothing left for Drop to kill (the pid may be reused by now).
    daemon.child = Command::new("true").spawn().unwrap();
    status
}

// ---------------------------------------------------------------------------------------------
// Phase 1: two nodes x 1,000 monitors every 5 s into one PostgreSQL database.

fn monitor_key(i: usize) -> MonitorKey {
    MonitorKey::new("p", &format!("m{i}"), "")
}

/// Node `node`'s config: the same 1,000 monitors as every node (the same keys, so the same
/// grids), each probing the upstream at a path that names the node.
fn node_config(node: &str, url: &str, upstream: &str) -> String {
    let mut config = format!(
        "node: {node}\nlisten: \"127.0.0.1:0\"\ndatabase: \"{url}\"\ninterval: {PROBE_INTERVAL_S}s\ntimeout: 4s\nslow_latency: 3s\nmonitors:\n"
    );
    for i in 0..NODE_MONITORS {
        config
            .push_str(&format!("  - {{provider: p, service: m{i}, url: \"{upstream}/m/{node}/{i}\", method: GET}}\n"));
    }
    config
}

/// `nodes.<node>.last_probe` of monitor `i` in `base`'s `/api/status` (unix seconds).
fn last_probe(client: &ureq::Agent, base: &str, i: usize, node: &str) -> Option<i64> {
    let (code, body) = get(client, &format!("{base}/api/status?provider=p&service=m{i}"))?;
    if code != 200 {
        return None;
    }
    let answer: serde_json::Value = serde_json::from_str(&body).ok()?;
    answer["data"][0]["nodes"][node]["last_probe"].as_i64()
}

/// What the freshness samplers saw: lags (ms) and samples that timed out.
#[derive(Default)]
struct Freshness {
    lags_ms: Vec<f64>,
    /// Node a did not show its own new probe within 5 s.
    own_missed: usize,
    /// Node b did not show node a's probe within 10 s of node a showing it.
    other_missed: usize,
}

/// One freshness sampler: again and again, takes the monitor (of those `i % of == which`) due
/// next on its grid, waits for node a's `/api/status` to show a newer `nodes.a.last_probe` for
/// it, then times how long until node b's shows the same (both polled every 5 ms).
fn sample_freshness(a: &str, b: &str, grids: &[Grid], which: usize, of: usize, stop: &AtomicBool) -> Freshness {
    let client = agent();
    let mut out = Freshness::default();
    let poll = Duration::from_millis(5);
    while !stop.load(Ordering::Relaxed) {
        // The monitor whose next slot comes first, at least 150 ms from now (time to read the
        // last probe before it).
        let from = wall_ms() as i64 + 150;
        let (i, due) = (0..grids.len())
            .filter(|i| i % of == which)
            .map(|i| (i, grids[i].due(grids[i].first_from(from))))
            .min_by_key(|(_, due)| *due)
            .unwrap();
        let Some(before) = last_probe(&client, a, i, "a") else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        let wait = due as f64 - wall_ms();
        if wait > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(wait / 1e3));
        }
        let asked = Instant::now();
        let seen = loop {
            match last_probe(&client, a, i, "a") {
                Some(ts) if ts > before => break Some(ts),
                _ if asked.elapsed() > Duration::from_secs(5) => break None,
                _ => std::thread::sleep(poll),
            }
        };
        let Some(seen) = seen else {
            out.own_missed += 1;
            continue;
        };
        let shown = Instant::now();
        loop {
            if last_probe(&client, b, i, "a").is_some_and(|ts| ts >= seen) {
                out.lags_ms.push(shown.elapsed().as_secs_f64() * 1e3);
                break;
            }
            if shown.elapsed() > Duration::from_secs(10) {
                out.other_missed += 1;
                break;
            }
            std::thread::sleep(poll);
        }
    }
    out
}

/// Start lateness on the grid, by node, and the grid's slots run twice or skipped.
struct Lateness {
    by_node: Vec<Vec<f64>>,
    /// The due times (wall-clock ms) of the probes that started more than 20 ms late.
    over_20ms: Vec<f64>,
    doubled_slots: usize,
    skipped_slots: usize,
}

/// Each request's lateness against its monitor's grid (`offset(key) + k x interval` on the
/// wall clock, as src/probe/schedule.rs has it), for the slots due in `[from, to)` (ms).
fn lateness(arrivals: &[(usize, usize, f64)], grids: &[Grid], from: f64, to: f64) -> Lateness {
    let interval = (PROBE_INTERVAL_S * 1_000) as f64;
    let mut by_node = vec![Vec::new(); NODES.len()];
    let mut over_20ms = Vec::new();
    // Requests per (node, monitor, slot).
    let mut per_slot: HashMap<(usize, usize, i64), usize> = HashMap::new();
    for &(node, monitor, at) in arrivals {
        let Some(grid) = grids.get(monitor) else { continue };
        // The nearest slot: a request a hair early (timers) is not 5 s late.
        let k = ((at - grid.due(0) as f64) / interval).round() as i64;
        let due = grid.due(k) as f64;
        if due < from || due >= to || node >= NODES.len() {
            continue;
        }
        by_node[node].push(at - due);
        if at - due > 20.0 {
            over_20ms.push(due);
        }
        *per_slot.entry((node, monitor, k)).or_default() += 1;
    }
    let doubled_slots = per_slot.values().filter(|n| **n > 1).count();
    let mut skipped_slots = 0;
    for node in 0..NODES.len() {
        for (monitor, grid) in grids.iter().enumerate() {
            let mut k = grid.first_from(from.ceil() as i64);
            while (grid.due(k) as f64) < to {
                if !per_slot.contains_key(&(node, monitor, k)) {
                    skipped_slots += 1;
                }
                k += 1;
            }
        }
    }
    Lateness { by_node, over_20ms, doubled_slots, skipped_slots }
}

/// Stored probes per (node name, monitor number).
fn stored_per_monitor(url: &str) -> HashMap<(String, usize), i64> {
    #[derive(QueryableByName)]
    struct PerMonitor {
        #[diesel(sql_type = Text)]
        node: String,
        #[diesel(sql_type = Text)]
        service: String,
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let mut conn = PgConnection::establish(url).unwrap();
    let rows: Vec<PerMonitor> = diesel::sql_query(
        "SELECT n.name AS node, m.service AS service, count(*) AS n FROM probes p \
         JOIN monitors m ON m.id = p.monitor_id JOIN nodes n ON n.id = p.node_id GROUP BY n.name, m.service",
    )
    .load(&mut conn)
    .unwrap();
    rows.into_iter().filter_map(|r| Some(((r.node, r.service.strip_prefix('m')?.parse().ok()?), r.n))).collect()
}

fn nodes_phase(figures: &mut Vec<Figure>, dir: &Path, server: &pg_server::PgServer, measure: Duration) {
    eprintln!(
        "[1/3] {} nodes x {NODE_MONITORS} monitors every {PROBE_INTERVAL_S} s into one PostgreSQL database, {} s measured ...",
        NODES.len(),
        measure.as_secs()
    );
    let url = server.database();
    let arrivals = Arrivals::default();
    let upstream = start_upstream(arrivals.clone());
    let mut daemons: Vec<Daemon> = NODES
        .iter()
        .map(|node| {
            let node_dir = dir.join(format!("node-{node}"));
            std::fs::create_dir_all(&node_dir).unwrap();
            std::fs::write(node_dir.join("config.yaml"), node_config(node, &url, &upstream)).unwrap();
            start_daemon(&node_dir, "info")
        })
        .collect();
    let client = agent();
    for daemon in &daemons {
        wait_healthy(&client, daemon);
    }
    let grids: Vec<Grid> = (0..NODE_MONITORS)
        .map(|i| Grid::new(monitor_key(i).normalized(), Duration::from_secs(PROBE_INTERVAL_S)))
        .collect();

    // Warm up one full interval (the first probes come as the grids have them), then measure.
    std::thread::sleep(Duration::from_secs(PROBE_INTERVAL_S + 2));
    let window_from = wall_ms();
    let window_started = Instant::now();
    let daemon_ticks: Vec<u64> = daemons.iter().map(|d| proc_cpu_ticks(d.child.id())).collect();
    let pg_ticks = server.cpu_ticks();
    let stop = Arc::new(AtomicBool::new(false));
    // Two samplers (a monitor is due every 2.5 ms on average; one sample takes about a second).
    let samplers: Vec<_> = (0..2)
        .map(|which| {
            let (a, b, grids, stop) = (daemons[0].base.clone(), daemons[1].base.clone(), grids.clone(), stop.clone());
            std::thread::spawn(move || sample_freshness(&a, &b, &grids, which, 2, &stop))
        })
        .collect();
    std::thread::sleep(measure);
    let window_to = wall_ms();
    let elapsed = window_started.elapsed().as_secs_f64();
    let daemon_cpu: Vec<f64> = daemons
        .iter()
        .zip(&daemon_ticks)
        .map(|(d, before)| (proc_cpu_ticks(d.child.id()) - before) as f64 / clock_ticks() / elapsed * 100.0)
        .collect();
    let pg_cpu = server
        .cpu_ticks()
        .iter()
        .map(|(pid, now)| now.saturating_sub(pg_ticks.get(pid).copied().unwrap_or(0)))
        .sum::<u64>() as f64
        / clock_ticks()
        / elapsed
        * 100.0;
    stop.store(true, Ordering::Relaxed);
    let mut freshness = Freshness::default();
    for sampler in samplers {
        let part = sampler.join().unwrap();
        freshness.lags_ms.extend(part.lags_ms);
        freshness.own_missed += part.own_missed;
        freshness.other_missed += part.other_missed;
    }

    // A graceful stop of both; then every request the upstream saw must be stored once.
    let statuses: Vec<ExitStatus> = daemons.iter_mut().map(stop_gracefully).collect();
    let all = arrivals.0.lock().unwrap().clone();
    let stored = stored_per_monitor(&url);
    let mut made: HashMap<(String, usize), i64> = HashMap::new();
    for &(node, monitor, _) in &all {
        *made.entry((NODES.get(node).unwrap_or(&"?").to_string(), monitor)).or_default() += 1;
    }
    let (mut lost, mut doubled) = (0, 0);
    let mut unequal = Vec::new();
    for key in made.keys().chain(stored.keys()).collect::<BTreeSet<_>>() {
        let (m, s) = (made.get(key).copied().unwrap_or(0), stored.get(key).copied().unwrap_or(0));
        if m != s {
            unequal.push((key.clone(), m, s));
            lost += (m - s).max(0);
            doubled += (s - m).max(0);
        }
    }
    for ((node, monitor), m, s) in unequal.iter().take(10) {
        eprintln!("      node {node} monitor m{monitor}: {m} requests, {s} stored");
    }
    let late = lateness(&all, &grids, window_from, window_to - 1_000.0);

    // When the late starts were, by second of the window (a stall of the whole machine shows
    // on both nodes at once).
    let mut late_seconds: BTreeMap<i64, usize> = BTreeMap::new();
    for due in &late.over_20ms {
        *late_seconds.entry(((due - window_from) / 1e3).floor() as i64).or_default() += 1;
    }
    if !late_seconds.is_empty() {
        let seconds: Vec<String> = late_seconds.iter().map(|(s, n)| format!("{n} at {s} s")).collect();
        eprintln!("      probes more than 20 ms late (second of the window): {}", seconds.join(", "));
    }
    for (n, node) in NODES.iter().enumerate() {
        let mut values = late.by_node[n].clone();
        let (p50, p99, max) = (percentile(&mut values, 50.0), percentile(&mut values, 99.0), max_of(&values));
        figures.push(figure(
            &format!("node {node}: probe start lateness on the grid p50 / p99 / max"),
            format!("{p50:.1} / {p99:.1} / {max:.1} ms ({} probes)", values.len()),
            "p99 <= 20 ms",
            Some(p99 <= 20.0),
        ));
    }
    figures.push(figure(
        "  grid slots in the window skipped / run twice (both nodes)",
        format!("{} / {}", late.skipped_slots, late.doubled_slots),
        "0 / 0",
        Some(late.skipped_slots == 0 && late.doubled_slots == 0),
    ));
    let made_total: i64 = made.values().sum();
    let stored_total: i64 = stored.values().sum();
    figures.push(figure(
        "  probes made (upstream) / stored (PostgreSQL), both nodes, whole run",
        format!("{made_total} / {stored_total}"),
        "equal",
        Some(made_total == stored_total),
    ));
    figures.push(figure(
        "  probes lost / doubled (per node and monitor), clean exits",
        format!(
            "{lost} / {doubled}, exit {}",
            statuses
                .iter()
                .map(|s| s.code().map_or("by a signal".to_string(), |c| c.to_string()))
                .collect::<Vec<_>>()
                .join(" / ")
        ),
        "0 / 0, exit 0 / 0",
        Some(lost == 0 && doubled == 0 && statuses.iter().all(ExitStatus::success)),
    ));
    let lags = &mut freshness.lags_ms;
    let (p50, p99) = (percentile(lags, 50.0), percentile(lags, 99.0));
    let max = max_of(lags);
    figures.push(figure(
        "freshness: node a's new probe on node b after a shows it, p50 / p99 / max",
        format!(
            "{p50:.0} / {p99:.0} / {max:.0} ms ({} samples, {} + {} timed out)",
            lags.len(),
            freshness.own_missed,
            freshness.other_missed
        ),
        "<= 2000 ms (max)",
        Some(max <= 2_000.0 && freshness.other_missed == 0 && !lags.is_empty()),
    ));
    figures.push(figure(
        "  CPU, share of one core: node a / node b / PostgreSQL",
        format!("{:.1} % / {:.1} % / {pg_cpu:.1} %", daemon_cpu[0], daemon_cpu[1]),
        "(for reference)",
        None,
    ));
}

// ---------------------------------------------------------------------------------------------
// Phase 2: 30 days of history in PostgreSQL and in SQLite; the 30-day query on each; bytes.

/// One realistic LLM probe (the mix of bench/scale.rs: 97 % green, some yellow, some red with
/// details; TTFT, tokens/s, model and usage on the ones that answered).
fn history_row(rng: &mut Lcg, monitor_id: i32, i: usize, minute: i64, first: i64) -> Row {
    const MODELS: [&str; 3] = ["gpt-4o-mini-2024-07-18", "claude-3-5-haiku-20241022", "gemini-2.0-flash"];
    let (status, reason, http, detail) = match rng.next() % 1000 {
        0..=969 => (1, "ok", 200, None),
        970..=989 => (2, "slow", 200, None),
        990..=994 => (0, "server_error", 502, Some("HTTP 502: upstream connect error".to_string())),
        _ => (0, "timeout", 0, Some("no complete response within 20s".to_string())),
    };
    let latency = 400 + (rng.next() % 1_200) as i32;
    let answered = status != 0;
    Row {
        monitor_id,
        ts: first + minute * 60 + (i as i64 % 60),
        status,
        latency_ms: latency,
        reason: reason.to_string(),
        http_code: http,
        detail,
        // Connections are reused: one is opened about once an hour.
        connect_ms: (minute % 60 == 0).then_some(120),
        ttfb_ms: answered.then_some(latency / 3),
        ttft_ms: answered.then_some(latency / 2),
        tokens_per_s: answered.then_some(40.0 + (rng.next() % 400) as f64 / 10.0),
        model: answered.then(|| MODELS[i % 3].to_string()),
        prompt_tokens: answered.then_some(24),
        completion_tokens: answered.then_some(2 + (rng.next() % 4) as i64),
        cost_nanos: None,
        ..Row::default()
    }
}

/// Writes the same 100 x 30 d history, in time order and slices of 5,000 rows, to SQLite
/// (`db::insert`) and to PostgreSQL (`insert_staged` as node `h`, one write counter per slice,
/// as the daemon's writer would); the row count and the time each took.
fn generate_history(sqlite: &Path, pg_url: &str, keys: &[MonitorKey], now: i64) -> (usize, Duration, Duration) {
    let mut lite = db::open(sqlite).unwrap();
    let lite_ids = db::monitor_ids(&mut lite, keys).unwrap();
    let mut pgc = db::open_postgres(&PgUrl::parse(pg_url).unwrap(), HISTORY_NODE).unwrap();
    let node = pg::claim_node(&mut pgc, HISTORY_NODE).unwrap();
    let pg_ids = pg::monitor_ids(&mut pgc, keys).unwrap();
    let pg_id_of: HashMap<i32, i32> = lite_ids.iter().copied().zip(pg_ids).collect();
    let minutes = HISTORY_DAYS * 24 * 60;
    let first = now - HISTORY_DAYS * 86_400 + 30;
    let per_slice = (SLICE_ROWS / keys.len()) as i64;
    let mut rng = Lcg(7);
    let (mut lite_took, mut pg_took) = (Duration::ZERO, Duration::ZERO);
    let mut total = 0;
    let mut seq = 0;
    let mut minute = 0;
    while minute < minutes {
        let mut rows = Vec::with_capacity(SLICE_ROWS);
        for m in minute..(minute + per_slice).min(minutes) {
            for (i, id) in lite_ids.iter().enumerate() {
                rows.push(history_row(&mut rng, *id, i, m, first));
            }
        }
        let t = Instant::now();
        db::insert(&mut lite, &rows).unwrap();
        lite_took += t.elapsed();
        // The same rows under PostgreSQL's monitor ids.
        for row in &mut rows {
            row.monitor_id = pg_id_of[&row.monitor_id];
        }
        seq += 1;
        let t = Instant::now();
        pg::insert_staged(&mut pgc, &rows, &WriteCache::default(), Writing { node, seq }).unwrap();
        pg_took += t.elapsed();
        total += rows.len();
        minute += per_slice;
        if seq % 86 == 0 {
            eprintln!("      {:.0} % ({total} rows)", minute as f64 / minutes as f64 * 100.0);
        }
    }
    lite.batch_execute("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
    (total, lite_took, pg_took)
}

/// Bytes of a table (all of it, and its indexes' share), and its rows.
struct Sized {
    bytes: i64,
    indexes: i64,
    rows: i64,
}

/// `pg_total_relation_size` (table, TOAST and indexes) of `table`, `pg_indexes_size`, and its
/// rows, after a VACUUM ANALYZE (what autovacuum would leave).
fn pg_table_size(conn: &mut PgConnection, table: &str) -> Sized {
    conn.batch_execute(&format!("VACUUM ANALYZE {table}")).unwrap();
    let bytes = count(conn, &format!("SELECT pg_total_relation_size('{table}') AS n"));
    let indexes = count(conn, &format!("SELECT pg_indexes_size('{table}') AS n"));
    let rows = count(conn, &format!("SELECT count(*) AS n FROM {table}"));
    Sized { bytes, indexes, rows }
}

/// SQLite's pages by table (its indexes included), from the `dbstat` virtual table.
fn sqlite_table_bytes(conn: &mut SqliteConnection) -> Option<BTreeMap<String, i64>> {
    #[derive(QueryableByName)]
    struct TableBytes {
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = BigInt)]
        bytes: i64,
    }
    let rows: Vec<TableBytes> = diesel::sql_query(
        "SELECT m.tbl_name AS name, SUM(s.pgsize) AS bytes FROM dbstat s \
         JOIN sqlite_master m ON m.name = s.name GROUP BY m.tbl_name",
    )
    .load(conn)
    .ok()?;
    Some(rows.into_iter().map(|r| (r.name, r.bytes)).collect())
}

/// How many probes of the history written at `generated_at` a correct 30-day answer counts now:
/// those from the start of the day 29 days before today (UTC) on.
fn history_in_window(generated_at: i64) -> i64 {
    let window_start = (unix_now() / 86_400 - 29) * 86_400;
    let first = generated_at - HISTORY_DAYS * 86_400 + 30;
    let minutes = HISTORY_DAYS * 24 * 60;
    // Monitor i's probe of minute m is at first + 60 m + i % 60 (see history_row).
    (0..HISTORY_MONITORS as i64)
        .map(|i| {
            let from = (window_start - first - i % 60).max(0);
            minutes - ((from + 59) / 60).min(minutes)
        })
        .sum()
}

/// What the 30-day query measured on one store.
struct QueryFigures {
    startup: Duration,
    p50: f64,
    p99: f64,
    cold_p50: f64,
    cold_max: f64,
    size_kb: usize,
}

/// Starts the daemon in `dir` (its config written there) and times `/api/status?period=30d`:
/// the start-up until it counts every stored probe of the window (as [`history_in_window`]
/// counts them for history written at `generated_at`, give or take
/// two a monitor), 300 sequential keep-alive GETs, and 20 answers computed afresh (the first
/// request of a new second, when no answer can be reused).
fn time_queries(dir: &Path, generated_at: i64) -> QueryFigures {
    let mut daemon = start_daemon(dir, "info");
    let client = agent();
    let url = format!("{}/api/status?period=30d", daemon.base);
    let mut last = String::new();
    let startup = loop {
        let expected = history_in_window(generated_at);
        if let Some((200, body)) = get(&client, &url) {
            if (total_probes(&body) - expected).abs() <= HISTORY_MONITORS as i64 * 2 {
                break daemon.started.elapsed();
            }
            last = body;
        }
        if daemon.started.elapsed() > Duration::from_secs(120) {
            let counted = if last.is_empty() { 0 } else { total_probes(&last) };
            let first: serde_json::Value = serde_json::from_str(&last).unwrap_or_default();
            panic!(
                "no correct 30-day answer after 120 s: it counts {counted} probes of {}; its first monitor: {}",
                history_in_window(generated_at),
                first["data"][0]
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut times = Vec::new();
    let mut size_kb = 0;
    for _ in 0..300 {
        let t = Instant::now();
        let (code, body) = get(&client, &url).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(code, 200);
        size_kb = body.len() / 1024;
    }
    let mut cold = Vec::new();
    for _ in 0..20 {
        let next_second = 1_000.0 - wall_ms().rem_euclid(1_000.0);
        std::thread::sleep(Duration::from_secs_f64((next_second + 2.0) / 1e3));
        let t = Instant::now();
        get(&client, &url).unwrap();
        cold.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let _ = stop_gracefully(&mut daemon);
    QueryFigures {
        startup,
        p50: percentile(&mut times, 50.0),
        p99: percentile(&mut times, 99.0),
        cold_p50: percentile(&mut cold, 50.0),
        cold_max: max_of(&cold),
        size_kb,
    }
}

/// A config of the 100 history monitors that stores nothing while it is measured: a black hole
/// (a listener that never answers), a 24 h interval and a 5 min timeout. Retention is 35 days
/// so no purge runs during the measurement either.
fn quiet_config(keys: &[MonitorKey], head: &str, black_hole: &str) -> String {
    let mut config = format!(
        "{head}listen: \"127.0.0.1:0\"\ninterval: 24h\ntimeout: 5m\nslow_latency: 4m\nretention: 35d\nmonitors:\n"
    );
    for key in keys {
        config.push_str(&format!(
            "  - {{provider: {}, service: {}, url: \"{black_hole}\", method: GET}}\n",
            key.provider, key.service
        ));
    }
    config
}

fn history_phase(figures: &mut Vec<Figure>, dir: &Path, server: &pg_server::PgServer) {
    let now = unix_now();
    let pg_url = server.database();
    let sqlite_path = dir.join("history.db");
    let keys: Vec<MonitorKey> =
        (0..HISTORY_MONITORS).map(|i| MonitorKey::new("bench", &format!("m{i:03}"), "")).collect();
    eprintln!(
        "[2/3] writing {} probes of history to PostgreSQL and to SQLite ...",
        HISTORY_MONITORS as i64 * HISTORY_DAYS * 1_440
    );
    let (rows, lite_took, pg_took) = generate_history(&sqlite_path, &pg_url, &keys, now);
    eprintln!(
        "      {rows} rows: SQLite {:.1} s ({:.0} rows/s), PostgreSQL {:.1} s ({:.0} rows/s)",
        lite_took.as_secs_f64(),
        rows as f64 / lite_took.as_secs_f64(),
        pg_took.as_secs_f64(),
        rows as f64 / pg_took.as_secs_f64()
    );

    // Bytes per stored probe, before any daemon opens either store.
    let mut pgc = PgConnection::establish(&pg_url).unwrap();
    let probes = pg_table_size(&mut pgc, "probes");
    let rollups = pg_table_size(&mut pgc, "rollups");
    let latest = pg_table_size(&mut pgc, "latest");
    let models = pg_table_size(&mut pgc, "models");
    let monitors = pg_table_size(&mut pgc, "monitors");
    let per_probe = |bytes: i64| bytes as f64 / probes.rows.max(1) as f64;
    // A row's own size (tuple header and data, without its 4-byte line pointer), on a 1 % sample.
    let tuple = count(&mut pgc, "SELECT avg(pg_column_size(p.*))::bigint AS n FROM probes p TABLESAMPLE SYSTEM (1)");
    figures.push(figure(
        "PostgreSQL: probes (table + indexes) bytes per probe",
        format!(
            "{:.1} B (of which indexes {:.1} B; a row {tuple} B; {:.0} MB, {} rows)",
            per_probe(probes.bytes),
            per_probe(probes.indexes),
            probes.bytes as f64 / 1e6,
            probes.rows
        ),
        "(for reference)",
        None,
    ));
    figures.push(figure(
        "PostgreSQL: rollups (table + indexes) bytes per rollup / per probe",
        format!(
            "{:.0} B / {:.1} B (of which indexes {:.0} B / {:.1} B; {:.1} MB, {} rollups)",
            rollups.bytes as f64 / rollups.rows.max(1) as f64,
            per_probe(rollups.bytes),
            rollups.indexes as f64 / rollups.rows.max(1) as f64,
            per_probe(rollups.indexes),
            rollups.bytes as f64 / 1e6,
            rollups.rows
        ),
        "(for reference)",
        None,
    ));
    let pg_all = probes.bytes + rollups.bytes + latest.bytes + models.bytes + monitors.bytes;
    figures.push(figure(
        "PostgreSQL: probes + rollups + latest + monitors + models per probe",
        format!("{:.1} B ({:.0} MB)", per_probe(pg_all), pg_all as f64 / 1e6),
        "(for reference)",
        None,
    ));
    let mut lite = db::open(&sqlite_path).unwrap();
    lite.batch_execute("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
    let file = std::fs::metadata(&sqlite_path).map(|m| m.len()).unwrap_or(0);
    let lite_rollups: i64 = llm_monitor::store::schema::rollups::table.count().get_result(&mut lite).unwrap();
    if let Some(tables) = sqlite_table_bytes(&mut lite) {
        let probes_bytes = tables.get("probes").copied().unwrap_or(0);
        let rollups_bytes = tables.get("rollups").copied().unwrap_or(0);
        figures.push(figure(
            "SQLite: probes (table + indexes, dbstat) bytes per probe",
            format!("{:.1} B ({:.0} MB)", probes_bytes as f64 / rows as f64, probes_bytes as f64 / 1e6),
            "(for reference)",
            None,
        ));
        figures.push(figure(
            "SQLite: rollups (table + indexes, dbstat) bytes per rollup / per probe",
            format!(
                "{:.0} B / {:.1} B ({:.1} MB, {lite_rollups} rollups)",
                rollups_bytes as f64 / lite_rollups.max(1) as f64,
                rollups_bytes as f64 / rows as f64,
                rollups_bytes as f64 / 1e6
            ),
            "(for reference)",
            None,
        ));
    }
    let lite_per_probe = file as f64 / rows as f64;
    figures.push(figure(
        "SQLite: whole file (after a checkpoint) per probe",
        format!("{lite_per_probe:.1} B ({:.0} MB)", file as f64 / 1e6),
        "<= 48 B",
        Some(lite_per_probe <= 48.0),
    ));
    drop(lite);

    // The 30-day query on each store, from a daemon that stores nothing meanwhile.
    let black_hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let black_hole_url = format!("http://{}/", black_hole.local_addr().unwrap());
    let pg_dir = dir.join("history-pg");
    std::fs::create_dir_all(&pg_dir).unwrap();
    let head = format!("node: {HISTORY_NODE}\ndatabase: \"{pg_url}\"\n");
    std::fs::write(pg_dir.join("config.yaml"), quiet_config(&keys, &head, &black_hole_url)).unwrap();
    eprintln!("      the 30-day query on PostgreSQL ...");
    let on_pg = time_queries(&pg_dir, now);
    let lite_dir = dir.join("history-sqlite");
    std::fs::create_dir_all(&lite_dir).unwrap();
    let head = format!("database: \"{}\"\n", sqlite_path.display());
    std::fs::write(lite_dir.join("config.yaml"), quiet_config(&keys, &head, &black_hole_url)).unwrap();
    eprintln!("      the 30-day query on SQLite ...");
    let on_lite = time_queries(&lite_dir, now);
    for (store, q) in [("PostgreSQL", &on_pg), ("SQLite", &on_lite)] {
        figures.push(figure(
            &format!("{store}: /api/status?period=30d p50 / p99, one client ({} KB)", q.size_kb),
            format!("{:.2} / {:.2} ms", q.p50, q.p99),
            "<= 5 / <= 20 ms",
            Some(q.p50 <= 5.0 && q.p99 <= 20.0),
        ));
        figures.push(figure(
            &format!("{store}:   computed afresh (first of a second) p50 / max"),
            format!("{:.2} / {:.2} ms", q.cold_p50, q.cold_max),
            "(for reference)",
            None,
        ));
        figures.push(figure(
            &format!("{store}:   start-up to a correct 30-day answer"),
            format!("{:.0} ms", q.startup.as_secs_f64() * 1e3),
            "(for reference)",
            None,
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Phase 3: the retention purge on PostgreSQL while another node writes.

/// The retention phase: this many monitors, one probe a minute, over `RETENTION_DAYS` days, the
/// oldest of which is purged (1.44 M probes) in the daemon's steps of 5,000.
const RETENTION_MONITORS: i64 = 1_000;
const RETENTION_DAYS: i64 = 3;
const PURGE_STEP_ROWS: i64 = 5_000;
/// The other node's writes during the purge: 1,000 monitors every 5 s, a batch every 100 ms.
const WRITE_BATCH_ROWS: usize = 20;
const WRITE_EVERY: Duration = Duration::from_millis(100);
/// How long the other node writes before the purge starts (its latency without a purge).
const BASELINE: Duration = Duration::from_secs(15);

/// Fills `probes` with `RETENTION_DAYS` of one probe a minute per monitor, in time order (as
/// probes arrive), in one statement per day; the row count.
fn fill_retention_history(conn: &mut PgConnection, node: i32, first: i64) -> i64 {
    let ok = llm_monitor::domain::Reason::Ok.code();
    for day in 0..RETENTION_DAYS {
        diesel::sql_query(format!(
            "INSERT INTO probes (monitor_id, ts, status, latency_ms, reason, http_code, ttfb_ms, ttft_ms, \
             tps_x10, prompt_tokens, completion_tokens, node_id) \
             SELECT m.id, {first} + g.minute * 60 + m.id % 60, 1, 400 + (g.minute * 7 + m.id) % 1200, {ok}, 200, \
             150, 250, 500, 24, 3, {node} \
             FROM generate_series({from}, {to}) AS g(minute) CROSS JOIN monitors m ORDER BY g.minute, m.id",
            from = day * 1_440,
            to = day * 1_440 + 1_439,
        ))
        .execute(conn)
        .unwrap();
        eprintln!("      day {} of {RETENTION_DAYS} written", day + 1);
    }
    count(conn, "SELECT count(*) AS n FROM probes")
}

/// Another node's writer: a batch of `WRITE_BATCH_ROWS` probes every `WRITE_EVERY` (the
/// daemon's `insert_staged`), until `stop`; each batch's (start in ms, duration in ms).
fn other_node_writes(url: &str, stop: &AtomicBool) -> Vec<(f64, f64)> {
    let mut conn = db::open_postgres(&PgUrl::parse(url).unwrap(), "w").unwrap();
    let node = pg::claim_node(&mut conn, "w").unwrap();
    let ids: Vec<i32> = pg::monitor_ids(
        &mut conn,
        &(0..RETENTION_MONITORS).map(|i| MonitorKey::new("bench", &format!("w{i:04}"), "")).collect::<Vec<_>>(),
    )
    .unwrap();
    let mut rng = Lcg(11);
    let mut batches = Vec::new();
    let (mut seq, mut next) = (0, Instant::now());
    while !stop.load(Ordering::Relaxed) {
        let now = unix_now();
        let rows: Vec<Row> = (0..WRITE_BATCH_ROWS)
            .map(|k| {
                let i = (seq as usize * WRITE_BATCH_ROWS + k) % ids.len();
                history_row(&mut rng, ids[i], i, 0, now)
            })
            .collect();
        seq += 1;
        let started = wall_ms();
        let t = Instant::now();
        pg::insert_staged(&mut conn, &rows, &WriteCache::default(), Writing { node, seq }).unwrap();
        batches.push((started, t.elapsed().as_secs_f64() * 1e3));
        next += WRITE_EVERY;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    batches
}

fn retention_phase(figures: &mut Vec<Figure>, server: &pg_server::PgServer) {
    let url = server.database();
    let keys: Vec<MonitorKey> =
        (0..RETENTION_MONITORS).map(|i| MonitorKey::new("bench", &format!("r{i:04}"), "")).collect();
    let mut conn = db::open_postgres(&PgUrl::parse(&url).unwrap(), "r").unwrap();
    let node = pg::claim_node(&mut conn, "r").unwrap();
    pg::monitor_ids(&mut conn, &keys).unwrap();
    let now = unix_now();
    // The history ends an hour ago; its first day is older than the cutoff.
    let first = (now - 3_600 - RETENTION_DAYS * 86_400).div_euclid(3_600) * 3_600;
    let cutoff = first + 86_400;
    eprintln!(
        "[3/3] retention: {} probes over {RETENTION_DAYS} days; the oldest day purged while another node writes ...",
        RETENTION_MONITORS * RETENTION_DAYS * 1_440
    );
    let rows = fill_retention_history(&mut conn, node, first);
    conn.batch_execute("VACUUM ANALYZE").unwrap();
    let mut purging = llm_monitor::store::sql::Db::Pg(conn);

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (url, stop) = (url.clone(), stop.clone());
        std::thread::spawn(move || other_node_writes(&url, &stop))
    };
    std::thread::sleep(BASELINE);
    // The daemon's purge: steps of 5,000 probes, each its own transaction, until the last.
    let purge_from = wall_ms();
    let (mut steps, mut deleted, mut from) = (Vec::new(), 0, 0);
    loop {
        let t = Instant::now();
        let step = llm_monitor::store::sql::purge_step(&mut purging, cutoff, from, PURGE_STEP_ROWS).unwrap();
        steps.push(t.elapsed().as_secs_f64() * 1e3);
        deleted += step.deleted;
        match step.next {
            Some(next) => from = next,
            None => break,
        }
    }
    let purge_to = wall_ms();
    // As long again after the purge, then the writer stops.
    std::thread::sleep(BASELINE);
    stop.store(true, Ordering::Relaxed);
    let batches = writer.join().unwrap();
    let llm_monitor::store::sql::Db::Pg(mut conn) = purging else { unreachable!() };
    let left = count(&mut conn, &format!("SELECT count(*) AS n FROM probes WHERE ts < {cutoff}"));

    let mut quiet: Vec<f64> =
        batches.iter().filter(|(at, _)| *at < purge_from || *at > purge_to).map(|&(_, ms)| ms).collect();
    let mut during: Vec<f64> =
        batches.iter().filter(|(at, _)| *at >= purge_from && *at <= purge_to).map(|&(_, ms)| ms).collect();
    let took = (purge_to - purge_from) / 1e3;
    figures.push(figure(
        "PostgreSQL retention: the oldest day purged",
        format!(
            "{deleted} of {rows} probes in {took:.1} s ({:.0} probes/s, {} steps), {left} left",
            deleted as f64 / took,
            steps.len()
        ),
        "all of the day, none left",
        Some(deleted as i64 == RETENTION_MONITORS * 1_440 && left == 0),
    ));
    let max_step = max_of(&steps);
    let slowest = steps.iter().position(|&ms| ms == max_step).map_or(0, |i| i + 1);
    eprintln!(
        "      the slowest step: {slowest} of {}; the last took {:.1} ms",
        steps.len(),
        steps.last().unwrap_or(&0.0)
    );
    figures.push(figure(
        "PostgreSQL retention: step p50 / p99 / max (own writer's longest wait)",
        format!("{:.1} / {:.1} / {max_step:.1} ms", percentile(&mut steps, 50.0), percentile(&mut steps, 99.0)),
        "max <= 100 ms",
        Some(max_step <= 100.0),
    ));
    let (quiet_max, during_max) = (max_of(&quiet), max_of(&during));
    figures.push(figure(
        "PostgreSQL retention: other node's write p50 / p99 / max, no purge",
        format!(
            "{:.2} / {:.2} / {quiet_max:.2} ms ({} batches)",
            percentile(&mut quiet, 50.0),
            percentile(&mut quiet, 99.0),
            quiet.len()
        ),
        "(for reference)",
        None,
    ));
    let during_p99 = percentile(&mut during, 99.0);
    figures.push(figure(
        "PostgreSQL retention: other node's write p50 / p99 / max, purging",
        format!(
            "{:.2} / {during_p99:.2} / {during_max:.2} ms ({} batches)",
            percentile(&mut during, 50.0),
            during.len()
        ),
        "max <= 100 ms",
        Some(!during.is_empty() && during_max <= 100.0),
    ));
}

fn main() {
    if std::env::args().any(|a| a == "--help") {
        println!(
            "cargo bench --bench nodes   two nodes on one PostgreSQL database, then the 30-day history in \
             PostgreSQL and SQLite, then a retention purge under writes (BENCH_NODES_SECS, BENCH_PHASES=nodes,history,retention, BENCH_DIR)"
        );
        return;
    }
    // The benchmark's own server, never a shared one (its CPU is measured).
    let Some(server) = pg_server::own_server("nodes benchmark") else { return };
    // Two daemons' 1,000 connections end at the benchmark's upstream.
    llm_monitor::limits::raise_open_files();
    // BENCH_DIR keeps the configs and the SQLite database; by default they go with a temp dir.
    let temp = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("BENCH_DIR").map(PathBuf::from).unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    let measure = Duration::from_secs(
        std::env::var("BENCH_NODES_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_SECS),
    );
    // BENCH_PHASES picks phases by name (nodes, history, retention).
    let phases = std::env::var("BENCH_PHASES").unwrap_or_else(|_| "nodes,history,retention".into());
    let wanted = |name: &str| phases.split(',').any(|p| p.trim() == name);
    let mut figures = Vec::new();
    if wanted("nodes") {
        nodes_phase(&mut figures, &dir, &server, measure);
    }
    if wanted("history") {
        history_phase(&mut figures, &dir, &server);
    }
    if wanted("retention") {
        retention_phase(&mut figures, &server);
    }
    drop(server);
    report(&figures);
}
