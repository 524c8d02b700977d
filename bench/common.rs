//! What the benchmarks share: the daemon under test, /proc readings, an upstream's thread, and
//! the table of figures.
// Each benchmark is its own crate and uses part of this.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary under test; `LLM_MONITOR_BIN` measures another build (an older commit, say).
pub fn bin() -> String {
    std::env::var("LLM_MONITOR_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_llm-monitor").to_string())
}

/// One line of the final table.
pub struct Figure {
    pub what: String,
    pub value: String,
    pub target: String,
    pub ok: Option<bool>,
}

pub fn figure(what: &str, value: String, target: &str, ok: Option<bool>) -> Figure {
    eprintln!("      {what}: {value}");
    Figure { what: what.to_string(), value, target: target.to_string(), ok }
}

/// Prints the table; exits non-zero when a target was missed.
pub fn report(figures: &[Figure]) {
    let width = figures.iter().map(|f| f.what.len()).max().unwrap_or(10);
    let vwidth = figures.iter().map(|f| f.value.len()).max().unwrap_or(10);
    println!();
    println!("| {:width$} | {:vwidth$} | target | met |", "figure", "measured");
    println!("|{}|{}|---|---|", "-".repeat(width + 2), "-".repeat(vwidth + 2));
    for f in figures {
        let met = match f.ok {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        println!("| {:width$} | {:vwidth$} | {} | {met} |", f.what, f.value, f.target);
    }
    let failed = figures.iter().filter(|f| f.ok == Some(false)).count();
    println!(
        "\n{} of {} targets met",
        figures.iter().filter(|f| f.ok == Some(true)).count(),
        figures.iter().filter(|f| f.ok.is_some()).count()
    );
    if failed > 0 {
        std::process::exit(1);
    }
}

/// The daemon, killed when dropped.
pub struct Daemon {
    pub child: Child,
    pub base: String,
    pub started: Instant,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the daemon on `dir/config.yaml` and waits for it to listen.
pub fn start_daemon(dir: &Path, rust_log: &str) -> Daemon {
    let started = Instant::now();
    let mut child = Command::new(bin())
        .arg("--config")
        .arg(dir.join("config.yaml"))
        .current_dir(dir)
        .env("RUST_LOG", rust_log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let first_lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = first_lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on ").nth(1) {
                let _ = tx.send(rest.trim().to_string());
            }
            let mut kept = kept.lock().unwrap();
            if kept.len() < 20 {
                kept.push(line);
            }
        }
    });
    let base = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|e| {
        panic!("the daemon did not start ({e}); it said:\n{}", first_lines.lock().unwrap().join("\n"))
    });
    Daemon { child, base, started }
}

/// utime + stime of a `/proc/.../stat` file, in clock ticks; 0 if unreadable.
pub fn stat_cpu_ticks(stat_path: &str) -> u64 {
    let Ok(stat) = std::fs::read_to_string(stat_path) else { return 0 };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

/// CPU time of process `pid` so far, in clock ticks.
pub fn proc_cpu_ticks(pid: u32) -> u64 {
    stat_cpu_ticks(&format!("/proc/{pid}/stat"))
}

/// Clock ticks per second (`getconf CLK_TCK`).
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Runs an HTTP server (a benchmark's upstream) on a thread and actix System of its own; gives
/// its base URL. `bind` builds and binds the server inside that System.
pub fn serve_on_thread<F>(bind: F) -> String
where
    F: FnOnce() -> (actix_web::dev::Server, std::net::SocketAddr) + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let (server, addr) = bind();
            tx.send(addr).unwrap();
            server.await.unwrap();
        })
    });
    format!("http://{}", rx.recv().unwrap())
}

/// A benchmark's upstream on [`serve_on_thread`]: `handler` answers every path, with `data` as
/// its `web::Data`; 2 workers, keep-alive 600 s, room for 50,000 connections.
pub fn serve_upstream<D, H, Args>(data: D, handler: H) -> String
where
    D: Send + Sync + 'static,
    H: actix_web::Handler<Args> + Clone + Send + 'static,
    Args: actix_web::FromRequest + 'static,
    H::Output: actix_web::Responder + 'static,
{
    serve_on_thread(move || {
        let data = actix_web::web::Data::new(data);
        let server = actix_web::HttpServer::new(move || {
            actix_web::App::new().app_data(data.clone()).default_service(actix_web::web::to(handler.clone()))
        })
        .workers(2)
        .backlog(4_096)
        .max_connections(50_000)
        .keep_alive(Duration::from_secs(600))
        .disable_signals()
        .bind("127.0.0.1:0")
        .unwrap();
        let addr = server.addrs()[0];
        (server.run(), addr)
    })
}

/// A `/proc/<pid>/status` field in kB (`VmRSS:`, `VmHWM:`), 0 if unreadable.
pub fn proc_status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The nearest-rank percentile (the daemon's own definition); NaN without values.
pub fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    llm_monitor::stats::percentile(values, p).unwrap_or(f64::NAN)
}

/// A cheap deterministic generator, so every run writes the same history.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// An HTTP client that returns error statuses as answers, 10 s at most a request.
pub fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::config::Config::builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build(),
    )
}

/// `GET url`: the status and body (up to 64 MiB); None when the request failed.
pub fn get(agent: &ureq::Agent, url: &str) -> Option<(u16, String)> {
    let mut response = agent.get(url).call().ok()?;
    let status = response.status().as_u16();
    let body = response.body_mut().with_config().limit(64 * 1024 * 1024).read_to_string().ok()?;
    Some((status, body))
}

/// The sum of every bucket's probe counts in a `/api/status` answer.
pub fn total_probes(body: &str) -> i64 {
    let value: serde_json::Value = serde_json::from_str(body).unwrap();
    value["data"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["timeline"].as_array().unwrap().iter())
        .map(|b| ["green", "yellow", "red"].iter().map(|c| b["counts"][c].as_i64().unwrap()).sum::<i64>())
        .sum()
}
