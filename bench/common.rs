//! What the benchmarks share: the daemon under test, /proc readings, and the table of figures.
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
