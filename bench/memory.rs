//! Memory under hostile input, on the release binary: what big streamed replies, big error
//! pages and clients that pipeline requests without reading the answers cost the daemon.
//! `cargo bench --bench memory`; exits non-zero when a target is missed. See bench/README.md.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MIB: f64 = 1024.0 * 1024.0;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

mod common;
use common::{figure, proc_status_kb, report, serve_on_thread, start_daemon, Daemon};
use futures_util::StreamExt;

/// One event of a chat-completions stream carrying `text`.
fn chat_event(text: &str) -> String {
    format!("data: {{\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}}}}]}}\n\n")
}

/// The upstream's answers, made once and shared (the benchmark measures the daemon, not this).
struct Replies {
    small_stream: web::Bytes,
    big_stream: Vec<web::Bytes>,
    big_error: web::Bytes,
    requests: AtomicU64,
}

impl Replies {
    fn new() -> Self {
        let end = format!(
            "{}data: [DONE]\n\n",
            "data: {\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
        );
        let small = format!("{}{end}", chat_event("42"));
        // 900 KB: the answer, then about 900 events of padding text, then the end.
        let padding = chat_event(&"x".repeat(1_000));
        let mut big = vec![web::Bytes::from(chat_event("42"))];
        big.extend(std::iter::repeat_n(web::Bytes::from(padding), 900));
        big.push(web::Bytes::from(end));
        Replies {
            small_stream: web::Bytes::from(small),
            big_stream: big,
            big_error: web::Bytes::from(format!("<html><body>{}</body></html>", "e".repeat(2 * 1024 * 1024))),
            requests: AtomicU64::new(0),
        }
    }
}

async fn upstream(req: HttpRequest, replies: web::Data<Replies>) -> HttpResponse {
    replies.requests.fetch_add(1, Ordering::Relaxed);
    match req.path() {
        p if p.starts_with("/small-stream") => {
            HttpResponse::Ok().content_type("text/event-stream").body(replies.small_stream.clone())
        }
        p if p.starts_with("/big-stream") => {
            // Half the reply, a second's pause, the rest: all 200 probes are in the middle of
            // their replies at once.
            let chunks = replies.big_stream.clone();
            let half = chunks.len() / 2;
            let stream =
                futures_util::stream::iter(chunks.into_iter().enumerate()).then(move |(i, chunk)| async move {
                    if i == half {
                        actix_rt::time::sleep(Duration::from_secs(1)).await;
                    }
                    Ok::<_, actix_web::Error>(chunk)
                });
            HttpResponse::Ok().content_type("text/event-stream").streaming(stream)
        }
        p if p.starts_with("/big-error") => {
            HttpResponse::BadGateway().content_type("text/html").body(replies.big_error.clone())
        }
        _ => HttpResponse::BadGateway().content_type("text/html").body("<html>bad gateway</html>"),
    }
}

fn start_upstream(replies: Arc<Replies>) -> String {
    serve_on_thread(move || {
        let data = web::Data::from(replies);
        let server = HttpServer::new(move || App::new().app_data(data.clone()).default_service(web::to(upstream)))
            .workers(2)
            .backlog(4_096)
            .max_connections(50_000)
            .disable_signals()
            .bind("127.0.0.1:0")
            .unwrap();
        let addr = server.addrs()[0];
        (server.run(), addr)
    })
}

fn start(dir: &Path, config: &str) -> Daemon {
    std::fs::write(
        dir.join("config.yaml"),
        format!("listen: \"127.0.0.1:0\"\ndatabase: \"{}\"\n{config}", dir.join("monitor.db").display()),
    )
    .unwrap();
    start_daemon(dir, "warn,llm_monitor::app=info")
}

fn peak_mib(daemon: &Daemon) -> f64 {
    proc_status_kb(daemon.child.id(), "VmHWM:") as f64 * 1024.0 / MIB
}

fn rss_mib(daemon: &Daemon) -> f64 {
    proc_status_kb(daemon.child.id(), "VmRSS:") as f64 * 1024.0 / MIB
}

/// A set of monitors probing one kind of reply.
struct Load {
    path: &'static str,
    monitors: usize,
    interval: &'static str,
    /// Measured once the upstream has seen this many rounds of requests.
    rounds: u64,
    stream: bool,
}

/// Runs `load` against the upstream and returns the daemon's peak RSS.
fn probing_peak(dir: &Path, upstream: &str, replies: &Replies, load: Load) -> f64 {
    let Load { path, monitors, interval, rounds, stream } = load;
    let mut config = format!("interval: {interval}\ntimeout: 30s\nslow_latency: 20s\nmonitors:\n");
    for i in 0..monitors {
        if stream {
            config.push_str(&format!(
                "  - {{provider: p, service: s{i}, base_url: \"{upstream}/{path}/{i}\", template: openai-chat, model: m}}\n"
            ));
        } else {
            config.push_str(&format!(
                "  - {{provider: p, service: s{i}, url: \"{upstream}/{path}/{i}\", method: GET}}\n"
            ));
        }
    }
    let daemon = start(dir, &config);
    let start = replies.requests.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(300);
    while replies.requests.load(Ordering::Relaxed) - start < rounds * monitors as u64 {
        assert!(Instant::now() < deadline, "{path}: the upstream saw too few requests");
        std::thread::sleep(Duration::from_millis(100));
    }
    let peak = peak_mib(&daemon);
    drop(daemon);
    let _ = std::fs::remove_file(dir.join("monitor.db"));
    peak
}

/// `connections` clients each send `per_connection` pipelined requests for `path` and read
/// nothing; returns the daemon's RSS while they wait.
fn pipelining_attack(daemon: &Daemon, connections: usize, per_connection: usize, path: &str) -> f64 {
    let addr = daemon.base.trim_start_matches("http://").to_string();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").repeat(per_connection);
    let mut sockets = Vec::new();
    for _ in 0..connections {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        // A client that reads nothing, with the smallest receive window it can ask for.
        socket.set_recv_buffer_size(4_096).unwrap();
        socket.connect(&addr.parse::<std::net::SocketAddr>().unwrap().into()).unwrap();
        let mut stream: std::net::TcpStream = socket.into();
        stream.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = stream.write_all(request.as_bytes());
        sockets.push(stream);
    }
    // Let the server do all it will do for them.
    let mut during = rss_mib(daemon);
    for _ in 0..30 {
        std::thread::sleep(Duration::from_millis(100));
        during = during.max(rss_mib(daemon));
    }
    drop(sockets);
    during
}

fn main() {
    if std::env::args().any(|a| a == "--help") {
        println!("cargo bench --bench memory   streams, error pages and pipelining clients (about 2 minutes)");
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let replies = Arc::new(Replies::new());
    let upstream = start_upstream(replies.clone());
    let mut figures = Vec::new();

    // 1. 200 streaming monitors: small replies, then 900 KB replies.
    let streams = |path| Load { path, monitors: 200, interval: "2s", rounds: 3, stream: true };
    let small = probing_peak(dir, &upstream, &replies, streams("small-stream"));
    let big = probing_peak(dir, &upstream, &replies, streams("big-stream"));
    figures.push(figure("200 streaming monitors, peak RSS with small replies", format!("{small:.1} MiB"), "-", None));
    figures.push(figure("200 streaming monitors, peak RSS with 900 KB replies", format!("{big:.1} MiB"), "-", None));
    figures.push(figure(
        "900 KB streams add (peak RSS)",
        format!("{:.1} MiB", big - small),
        "<= 40 MiB",
        Some(big - small <= 40.0),
    ));

    // 2. 2,000 monitors whose relay answers 502 with a 2 MB page.
    let errors = |path| Load { path, monitors: 2_000, interval: "5s", rounds: 2, stream: false };
    let small = probing_peak(dir, &upstream, &replies, errors("small-error"));
    let big = probing_peak(dir, &upstream, &replies, errors("big-error"));
    figures.push(figure("2,000 monitors, peak RSS with small 502 pages", format!("{small:.1} MiB"), "-", None));
    figures.push(figure("2,000 monitors, peak RSS with 2 MB 502 pages", format!("{big:.1} MiB"), "-", None));
    figures.push(figure(
        "2 MB error pages add (peak RSS)",
        format!("{:.1} MiB", big - small),
        "<= 64 MiB",
        Some(big - small <= 64.0),
    ));

    // 3. Clients that pipeline requests and never read the answers.
    let daemon = start(
        dir,
        "monitors:\n  - {provider: a, service: b, url: \"http://127.0.0.1:1/\", method: GET, interval: 10s}\n",
    );
    std::thread::sleep(Duration::from_millis(500));
    let before = rss_mib(&daemon);
    let first = pipelining_attack(&daemon, 100, 300, "/api/status");
    let after_first = rss_mib(&daemon);
    let second = pipelining_attack(&daemon, 300, 500, "/api/status");
    std::thread::sleep(Duration::from_secs(2));
    let after = rss_mib(&daemon);
    figures.push(figure("pipelining: RSS before", format!("{before:.1} MiB"), "-", None));
    figures.push(figure(
        "100 x 300 pipelined /api/status, unread: RSS added",
        format!("{:.1} MiB", first - before),
        "<= 50 MiB",
        Some(first - before <= 50.0),
    ));
    figures.push(figure(
        "300 x 500 pipelined /api/status, unread: RSS added",
        format!("{:.1} MiB", second - before),
        "<= 50 MiB",
        Some(second - before <= 50.0),
    ));
    figures.push(figure(
        "after the clients left: RSS added (and after the first attack)",
        format!("{:.1} MiB ({:.1} MiB)", after - before, after_first - before),
        "no growth from one attack to the next",
        Some(after - after_first <= 10.0),
    ));
    let health = ureq::get(&format!("{}/health", daemon.base)).call().map(|r| r.status().as_u16()).unwrap_or(0);
    figures.push(figure("/health after the attacks", health.to_string(), "200", Some(health == 200)));
    drop(daemon);

    report(&figures);
}
