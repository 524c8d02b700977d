//! A fake LLM API served in-process (actix-web, on its own thread and System), whose
//! behaviour each path selects, and which records every request it gets.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub started: Instant,
    pub finished: Option<Instant>,
    /// The address the request came from (a proxy's, when it came through one).
    pub peer: Option<std::net::SocketAddr>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<Recorded>>>);

impl Log {
    pub fn all(&self) -> Vec<Recorded> {
        self.0.lock().unwrap().clone()
    }

    pub fn for_path(&self, path: &str) -> Vec<Recorded> {
        self.all().into_iter().filter(|r| r.path == path).collect()
    }

    fn start(&self, req: &HttpRequest, body: &[u8]) -> usize {
        let mut log = self.0.lock().unwrap();
        log.push(Recorded {
            path: req.path().to_string(),
            query: req.query_string().to_string(),
            headers: req.headers().iter().map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string())).collect(),
            body: String::from_utf8_lossy(body).into_owned(),
            started: Instant::now(),
            finished: None,
            peer: req.peer_addr(),
        });
        log.len() - 1
    }

    fn finish(&self, index: usize) {
        self.0.lock().unwrap()[index].finished = Some(Instant::now());
    }
}

pub struct Upstream {
    pub base: String,
    pub log: Log,
    /// TCP connections accepted so far.
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        super::stop_server(&self.handle);
    }
}

pub const OK_BODY: &str =
    r#"{"id":"x","model":"gpt-test","choices":[{"index":0,"message":{"role":"assistant","content":"OK"}}]}"#;

async fn respond(req: HttpRequest, body: web::Bytes, log: web::Data<Log>) -> HttpResponse {
    let index = log.start(&req, &body);
    let path = req.path().to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let response = match segments.as_slice() {
        ["ok"] | ["echo"] | ["redirect-target"] | ["m", _] => {
            HttpResponse::Ok().content_type("application/json").body(OK_BODY)
        }
        ["delay", ms] => {
            let ms: u64 = ms.parse().unwrap_or(0);
            actix_rt::time::sleep(Duration::from_millis(ms)).await;
            HttpResponse::Ok().content_type("application/json").body(OK_BODY)
        }
        ["status", code] => {
            let code: u16 = code.parse().unwrap_or(500);
            let mut builder = HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap());
            if (300..400).contains(&code) {
                builder.insert_header(("Location", "/redirect-target"));
            }
            builder
                .content_type("application/json")
                .body(format!(r#"{{"error":{{"message":"upstream says {code}"}}}}"#))
        }
        // Echoes the credential it was sent in its error, as careless relays do.
        ["reject-key"] => {
            let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
            HttpResponse::Unauthorized()
                .content_type("application/json")
                .body(format!(r#"{{"error":{{"message":"invalid key: {auth} ({})"}}}}"#, req.query_string()))
        }
        ["empty"] => HttpResponse::Ok().finish(),
        ["no-content"] => HttpResponse::NoContent().finish(),
        ["error-zero"] => HttpResponse::Ok().content_type("application/json").body(r#"{"error":0,"ok":true}"#),
        ["error-empty-list"] => HttpResponse::Ok().content_type("application/json").body(r#"{"error":[],"ok":true}"#),
        ["json-error"] => HttpResponse::Ok()
            .content_type("application/json")
            .body(r#"{"error":{"message":"quota exceeded","type":"insufficient_quota"}}"#),
        ["html"] => HttpResponse::Ok().content_type("text/html").body("<html><body>502 Bad Gateway</body></html>"),
        ["flood"] => HttpResponse::Ok().content_type("application/json").body(vec![b'a'; 3 * 1024 * 1024]),
        ["hang"] => {
            actix_rt::time::sleep(Duration::from_secs(60)).await;
            HttpResponse::Ok().body(OK_BODY)
        }
        ["llm", mode, rest @ ..] => super::llm::respond(mode, &rest.join("/"), &body).await,
        ["echo-key", mode, ..] => echo_key(&req, mode, &body),
        // A shared relay or cache that answers one client with another client's credential.
        ["echo-seen"] => {
            let seen: Vec<String> = log
                .all()
                .iter()
                .filter_map(|r| r.header("authorization").map(|v| v.trim_start_matches("Bearer ").to_string()))
                .filter(|v| !v.is_empty())
                .collect();
            HttpResponse::BadGateway()
                .content_type("text/plain")
                .body(format!("upstream refused keys: {}", seen.join(", ")))
        }
        _ => HttpResponse::NotFound().body("no such fake path"),
    };
    log.finish(index);
    response
}

/// The credential a request carried, wherever the monitor put it: after `Bearer `, in
/// `x-api-key` / `x-goog-api-key`, or in a `key=` query parameter.
fn credential(req: &HttpRequest) -> String {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    header("authorization")
        .map(|v| v.trim_start_matches("Bearer ").to_string())
        .or_else(|| header("x-api-key"))
        .or_else(|| header("x-goog-api-key"))
        .or_else(|| req.query_string().split('&').find_map(|p| p.strip_prefix("key=").map(str::to_string)))
        .unwrap_or_default()
}

/// A hostile upstream that puts the credential it received into whichever field `mode` names,
/// in the shape of an OpenAI chat reply (answering the challenge where the mode needs it).
fn echo_key(req: &HttpRequest, mode: &str, body: &[u8]) -> HttpResponse {
    let key = credential(req);
    let answer = super::llm::challenge_answer(&String::from_utf8_lossy(body)).unwrap_or(0);
    let json = |v: serde_json::Value| HttpResponse::Ok().content_type("application/json").body(v.to_string());
    let chat = |model: &str, text: &str| serde_json::json!({"model": model, "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]});
    match mode {
        // As the reply's model, alone and as the header it came in.
        "model" => json(chat(&key, &answer.to_string())),
        "model-header" => json(chat(&format!("Bearer {key}"), &answer.to_string())),
        // As a wrong answer, after enough text that a cut at 60 characters would split it.
        "text" => json(chat("m", &format!("I cannot say; my credential {key} is not allowed here"))),
        // As a page that is no LLM reply (its first 80 bytes are quoted).
        "html" => HttpResponse::Ok()
            .content_type("text/html")
            .body(format!("<html><body>denied for {key} -- contact support</body></html>")),
        // In an error event of a stream.
        "stream" => HttpResponse::Ok().content_type("text/event-stream").body(format!(
            "data: {}\n\n",
            serde_json::json!({"error": {"message": format!("upstream rejected {key}: quota; {}", "x".repeat(600))}})
        )),
        // In a 500's error message, with a newline that would forge a log line.
        _ => HttpResponse::InternalServerError().content_type("application/json").body(
            serde_json::json!({"error": {"message": format!(
                "bad credential {key}\n[2030-01-01T00:00:00Z INFO  llm_monitor] forged line"
            )}})
            .to_string(),
        ),
    }
}

/// Starts the fake upstream on 127.0.0.1 on a free port.
pub fn start() -> Upstream {
    let log = Log::default();
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connections.clone();
    let data = web::Data::new(log.clone());
    let (addr, handle) = super::serve_on_thread("the fake upstream", move || {
        let server = HttpServer::new(move || App::new().app_data(data.clone()).default_service(web::to(respond)))
            .on_connect(move |_, _| {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            })
            .keep_alive(Duration::from_secs(120))
            .workers(1)
            .disable_signals()
            .bind("127.0.0.1:0")
            .unwrap();
        (server.addrs()[0], server.run())
    });
    Upstream { base: format!("http://{addr}"), log, connections, handle }
}

/// A raw TCP server that answers every connection with `reply` and closes it (for resets and
/// broken bodies), recording the first bytes each connection sent.
pub struct RawServer {
    pub port: u16,
    pub first_bytes: Arc<Mutex<Vec<Vec<u8>>>>,
}

pub fn raw_server(reply: &'static [u8]) -> RawServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let first_bytes = Arc::new(Mutex::new(Vec::new()));
    let seen = first_bytes.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            stream.set_read_timeout(Some(Duration::from_secs(2))).ok();
            let mut buf = [0u8; 512];
            let n = stream.read(&mut buf).unwrap_or(0);
            seen.lock().unwrap().push(buf[..n].to_vec());
            let _ = stream.write_all(reply);
            // Dropping the stream closes it, mid-body when the reply promised more.
        }
    });
    RawServer { port, first_bytes }
}

/// A port nothing listens on.
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A port that takes connections and never answers (its listener never accepts: the kernel
/// completes the handshake and queues them). A probe sent there stays in flight until its
/// timeout, so a test's own history is never joined by a probe of the daemon.
pub struct BlackHole {
    _listener: TcpListener,
    pub url: String,
}

pub fn black_hole() -> BlackHole {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    BlackHole { _listener: listener, url }
}
