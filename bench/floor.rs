//! The floor of the stack: what the Uptime Kuma workload (500 monitors every 20 s, POST, one in
//! five answering after 2 s) costs with nothing but actix-rt and awc, the client the daemon is
//! built on: one thread, one pooled awc client, each request sent on its grid and its body read,
//! no classification, no metrics, no store, no other thread.
//!
//! `cargo bench --bench floor` prints CPU-seconds per 1,000 requests of that bare client
//! (measured as the daemon is in `scale`: the client is a child process, its CPU from
//! `/proc/<pid>/stat`), so the daemon's figure can be read against what the stack itself costs.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};

mod common;
use common::{clock_ticks, proc_cpu_ticks, serve_upstream};

const MONITORS: u64 = 500;
const INTERVAL: Duration = Duration::from_secs(20);
const SLOW_EVERY: u64 = 5;
const SLOW_MS: u64 = 2_000;
const MEASURE: Duration = Duration::from_secs(120);
const BODY: &str = r#"{"model":"m","messages":[{"role":"user","content":"ping"}]}"#;

async fn upstream_handler(req: HttpRequest, _body: web::Bytes, count: web::Data<Arc<AtomicU64>>) -> HttpResponse {
    count.fetch_add(1, Ordering::Relaxed);
    let delay: u64 = req.path().rsplit('/').next().and_then(|d| d.parse().ok()).unwrap_or(0);
    if delay > 0 {
        actix_rt::time::sleep(Duration::from_millis(delay)).await;
    }
    HttpResponse::Ok().content_type("application/json").body(r#"{"id":"x","choices":[{"message":{"content":"ok"}}]}"#)
}

fn start_upstream(count: Arc<AtomicU64>) -> String {
    serve_upstream(count, upstream_handler)
}

/// The child: 500 requests on their grids, forever.
fn client(upstream: String) {
    actix_rt::System::new().block_on(async move {
        let connector = awc::Connector::new()
            .limit(4_096)
            .conn_keep_alive(Duration::from_secs(600))
            .conn_lifetime(Duration::from_secs(3_600));
        let client = awc::Client::builder().connector(connector).disable_timeout().finish();
        let start = actix_rt::time::Instant::now();
        for i in 0..MONITORS {
            let client = client.clone();
            let delay = if i % SLOW_EVERY == 0 { SLOW_MS } else { 0 };
            let url = format!("{upstream}/m/{i}/{delay}");
            let offset = INTERVAL * i as u32 / MONITORS as u32;
            actix_rt::spawn(async move {
                let mut next = start + offset;
                loop {
                    actix_rt::time::sleep_until(next).await;
                    if let Ok(mut response) =
                        client.post(&url).insert_header(("content-type", "application/json")).send_body(BODY).await
                    {
                        let _ = response.body().limit(1 << 20).await;
                    }
                    next += INTERVAL;
                }
            });
        }
        std::future::pending::<()>().await;
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--floor-client") {
        client(args[i + 1].clone());
        return;
    }
    let count = Arc::new(AtomicU64::new(0));
    let upstream = start_upstream(count.clone());
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("--floor-client")
        .arg(&upstream)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    println!(
        "floor: bare awc client, {MONITORS} requests every {} s, POST, 1 in {SLOW_EVERY} answering after {SLOW_MS} ms",
        INTERVAL.as_secs()
    );
    std::thread::sleep(INTERVAL + Duration::from_secs(2));
    let ticks_before = proc_cpu_ticks(child.id());
    let made_before = count.load(Ordering::Relaxed);
    let started = Instant::now();
    std::thread::sleep(MEASURE);
    let ticks = proc_cpu_ticks(child.id()) - ticks_before;
    let made = count.load(Ordering::Relaxed) - made_before;
    let elapsed = started.elapsed().as_secs_f64();
    let _ = child.kill();
    let _ = child.wait();
    let cpu_s = ticks as f64 / clock_ticks();
    println!(
        "floor: {made} requests in {elapsed:.0} s, {cpu_s:.2} CPU-s: {:.3} CPU-s per 1,000 requests",
        cpu_s / made.max(1) as f64 * 1_000.0
    );
}
