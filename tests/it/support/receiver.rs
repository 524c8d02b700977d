//! Fake alert receivers: an HTTP one served in-process (actix-web on its own thread and
//! System) that records every request and answers as its test says, and a real SMTP server
//! (Debian's aiosmtpd) run as a child process that records every message it accepts.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::Value;

use super::wait_for;

/// One request as the HTTP receiver got it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// The query string exactly as sent (still percent-encoded).
    pub query: String,
    pub headers: Vec<(String, String)>,
    /// The body's exact bytes (a signature is computed over them).
    pub body: Vec<u8>,
    /// The address the request came from (a proxy's, when it came through one).
    pub peer: Option<std::net::SocketAddr>,
    /// When it arrived.
    pub at: std::time::Instant,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// A query parameter's decoded value.
    pub fn query_param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes()).find(|(key, _)| key == name).map(|(_, v)| v.into_owned())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// What the receiver answers: a status and a JSON (or empty) body.
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<String>) -> Reply {
        Reply { status, body: body.into() }
    }
}

type Answer = dyn Fn(&Request) -> Reply + Send + Sync;

struct State {
    log: Arc<Mutex<Vec<Request>>>,
    answer: Box<Answer>,
}

pub struct HttpReceiver {
    pub base: String,
    log: Arc<Mutex<Vec<Request>>>,
    handle: actix_web::dev::ServerHandle,
}

impl HttpReceiver {
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }

    /// The one request it got (each request is recorded before it is answered, so a sender
    /// that has read its answer has been recorded).
    pub fn only_request(&self) -> Request {
        let all = self.requests();
        assert_eq!(all.len(), 1, "expected exactly one request, got {all:#?}");
        all.into_iter().next().unwrap()
    }
}

impl Drop for HttpReceiver {
    fn drop(&mut self) {
        super::stop_server(&self.handle);
    }
}

async fn receive(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let request = Request {
        method: req.method().to_string(),
        path: req.path().to_string(),
        query: req.query_string().to_string(),
        headers: req.headers().iter().map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string())).collect(),
        body: body.to_vec(),
        peer: req.peer_addr(),
        at: std::time::Instant::now(),
    };
    let reply = (state.answer)(&request);
    state.log.lock().unwrap().push(request);
    let status = actix_web::http::StatusCode::from_u16(reply.status).unwrap();
    if reply.body.is_empty() {
        HttpResponse::build(status).finish()
    } else {
        HttpResponse::build(status).content_type("application/json").body(reply.body)
    }
}

/// Starts an HTTP receiver on 127.0.0.1 on a free port that answers each request with
/// `answer(request)`.
pub fn http(answer: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> HttpReceiver {
    let log = Arc::new(Mutex::new(Vec::new()));
    let state = web::Data::new(State { log: log.clone(), answer: Box::new(answer) });
    let (addr, handle) = super::serve_on_thread("the fake receiver", move || {
        let server = HttpServer::new(move || App::new().app_data(state.clone()).default_service(web::to(receive)))
            .workers(1)
            .disable_signals()
            .bind("127.0.0.1:0")
            .unwrap();
        (server.addrs()[0], server.run())
    });
    HttpReceiver { base: format!("http://{addr}"), log, handle }
}

/// An HTTP receiver that answers every request the same.
pub fn answering(status: u16, body: &str) -> HttpReceiver {
    let body = body.to_string();
    http(move |_| Reply::new(status, body.clone()))
}

/// An SMTP server that accepts every message and prints each as one JSON line (envelope and
/// raw content), after a first line with the port it listens on (0 asked, the kernel chose).
const SMTP_SERVER: &str = r#"
import asyncio, json
from aiosmtpd.smtp import SMTP

class Record:
    async def handle_DATA(self, server, session, envelope):
        print(json.dumps({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                          "data": envelope.content.decode("utf-8", "replace")}), flush=True)
        return "250 2.0.0 queued by the test server"

async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Record(), hostname="smtp.test"), "127.0.0.1", 0)
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    await server.serve_forever()

asyncio.run(main())
"#;

/// One message the SMTP server accepted.
#[derive(Debug, Clone)]
pub struct Mail {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    /// Headers and body as they came after DATA.
    pub data: String,
}

impl Mail {
    /// A header's value, its folded lines joined.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or("");
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.split("\r\n").find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim().to_string())
        })
    }
}

/// The SMTP server's child process; killed when dropped, whether the test passed or not.
pub struct SmtpServer {
    child: Child,
    pub port: u16,
    lines: Arc<Mutex<Vec<String>>>,
}

impl SmtpServer {
    /// Waits for the first message it accepted.
    pub fn wait_mail(&self, timeout: Duration) -> Mail {
        let line = wait_for("a message at the SMTP server", timeout, || {
            self.lines.lock().unwrap().iter().find(|l| l.contains("\"mail_from\"")).cloned()
        });
        let v: Value = serde_json::from_str(&line).unwrap();
        Mail {
            mail_from: v["mail_from"].as_str().unwrap().to_string(),
            rcpt_tos: v["rcpt_tos"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect(),
            data: v["data"].as_str().unwrap().to_string(),
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Python that has aiosmtpd: Debian's own first (`python3-aiosmtpd` installs for it, and a
/// `python3` earlier in PATH, from pyenv or a venv, may not see it).
fn python_with_aiosmtpd() -> Option<&'static str> {
    ["/usr/bin/python3", "python3"].into_iter().find(|python| {
        Command::new(python)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Starts a real SMTP server on 127.0.0.1, or None (and SKIPPED) when aiosmtpd is not
/// installed, unless CI requires it.
pub fn smtp_server() -> Option<SmtpServer> {
    let Some(python) = python_with_aiosmtpd() else {
        assert!(
            std::env::var_os("LLM_MONITOR_REQUIRE_SMTP").is_none(),
            "aiosmtpd is required (LLM_MONITOR_REQUIRE_SMTP is set) but not installed (apt-get install python3-aiosmtpd)"
        );
        println!("SKIPPED: aiosmtpd not installed (apt-get install python3-aiosmtpd)");
        return None;
    };
    let mut child = Command::new(python)
        .args(["-u", "-c", SMTP_SERVER])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the SMTP server");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let stdout = child.stdout.take().unwrap();
    let seen = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            seen.lock().unwrap().push(line);
        }
    });
    let mut stream = child.stderr.take().unwrap();
    let mut stderr = Some(std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text);
        text
    }));
    let mut server = SmtpServer { child, port: 0, lines };
    server.port = wait_for("the SMTP server to listen", Duration::from_secs(20), || {
        if let Ok(Some(status)) = server.child.try_wait() {
            // It has exited: its stderr is closed and the reader ends with all it said.
            let said = stderr.take().map(|reader| reader.join().unwrap_or_default()).unwrap_or_default();
            panic!("the SMTP server exited early ({status}):\n{said}");
        }
        let lines = server.lines.lock().unwrap();
        let first: Value = serde_json::from_str(lines.first()?).ok()?;
        first["port"].as_u64().map(|p| p as u16)
    });
    Some(server)
}
