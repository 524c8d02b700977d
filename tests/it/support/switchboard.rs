//! A fake upstream whose answers a test flips while the daemon runs, and a fake alert receiver
//! that records every message and answers as the test says: one in-process server for both.
//!
//! `/up/{name}`: 200 with an LLM-shaped body while `name` is "green" (the default), 500 while
//! "red", 429 with `Retry-After: <value>` while "limited:<value>" (`date+N`: an HTTP date N
//! seconds ahead); `/flap/{name}`: red and green in turn. Both record when each request came
//! ([`Switchboard::hits`]). `/hook/{name}`: records the request and
//! answers as `name`'s mode says: "ok" (the default; 200 `{"code":0,"errcode":0,"ok":true}`),
//! "down" (503), "reject" (400, for good), "feishu-fail" (200 `{"code":19021,...}`), "slow"
//! (200 after 2 s).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Message {
    pub hook: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// What the receiver answered: accepted (2xx and code 0) or not.
    pub accepted: bool,
}

impl Message {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The webhook's `event`.
    pub fn event(&self) -> String {
        self.json()["event"].as_str().unwrap_or_default().to_string()
    }
}

#[derive(Default)]
struct State {
    switches: HashMap<String, String>,
    flaps: HashMap<String, u64>,
    messages: Vec<Message>,
    hits: HashMap<String, Vec<std::time::Instant>>,
}

pub struct Switchboard {
    pub base: String,
    state: Arc<Mutex<State>>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for Switchboard {
    fn drop(&mut self) {
        super::stop_server(&self.handle);
    }
}

const GREEN: &str =
    r#"{"id":"x","model":"gpt-test","choices":[{"index":0,"message":{"role":"assistant","content":"OK"}}]}"#;

async fn respond(req: HttpRequest, body: web::Bytes, state: web::Data<Arc<Mutex<State>>>) -> HttpResponse {
    // A slow receiver answers after the lock is let go.
    match answer(&req, &body, &state) {
        Some(response) => response,
        None => {
            actix_rt::time::sleep(Duration::from_secs(2)).await;
            HttpResponse::Ok().content_type("application/json").body(r#"{"ok":true}"#)
        }
    }
}

/// The answer to a request, or `None` for a hook in "slow" mode.
fn answer(req: &HttpRequest, body: &[u8], state: &Mutex<State>) -> Option<HttpResponse> {
    let segments: Vec<String> = req.path().trim_start_matches('/').split('/').map(str::to_string).collect();
    let mut state = state.lock().unwrap();
    let mode = |state: &State, name: &str, default: &str| {
        state.switches.get(name).cloned().unwrap_or_else(|| default.to_string())
    };
    let response = match segments.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["up", name] => {
            state.hits.entry(name.to_string()).or_default().push(std::time::Instant::now());
            let mode = mode(&state, name, "green");
            if mode == "red" {
                HttpResponse::InternalServerError().body("upstream broken")
            } else if let Some(value) = mode.strip_prefix("limited:") {
                let value = match value.strip_prefix("date+") {
                    Some(secs) => httpdate::fmt_http_date(
                        std::time::SystemTime::now() + Duration::from_secs(secs.parse::<u64>().unwrap() + 1),
                    ),
                    None => value.to_string(),
                };
                HttpResponse::TooManyRequests()
                    .insert_header(("Retry-After", value))
                    .content_type("application/json")
                    .body(r#"{"error":{"message":"slow down"}}"#)
            } else {
                HttpResponse::Ok().content_type("application/json").body(GREEN)
            }
        }
        ["flap", name] => {
            state.hits.entry(name.to_string()).or_default().push(std::time::Instant::now());
            let n = state.flaps.entry(name.to_string()).or_default();
            *n += 1;
            if *n % 2 == 1 {
                HttpResponse::InternalServerError().body("blip")
            } else {
                HttpResponse::Ok().content_type("application/json").body(GREEN)
            }
        }
        ["hook", name] => {
            let answer = mode(&state, &format!("hook:{name}"), "ok");
            let accepted = answer == "ok" || answer == "slow";
            state.messages.push(Message {
                hook: name.to_string(),
                headers: req
                    .headers()
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect(),
                body: String::from_utf8_lossy(body).into_owned(),
                accepted,
            });
            match answer.as_str() {
                "slow" => return None,
                "down" => HttpResponse::ServiceUnavailable().body("receiver down"),
                "reject" => HttpResponse::BadRequest().body("unknown payload"),
                "feishu-fail" => HttpResponse::Ok().content_type("application/json").body(
                    r#"{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time"}"#,
                ),
                _ => HttpResponse::Ok().content_type("application/json").body(r#"{"code":0,"errcode":0,"ok":true}"#),
            }
        }
        _ => HttpResponse::NotFound().body("no such path"),
    };
    Some(response)
}

impl Switchboard {
    pub fn start() -> Switchboard {
        let state = Arc::new(Mutex::new(State::default()));
        let data = web::Data::new(state.clone());
        let (addr, handle) = super::serve_on_thread("the switchboard", move || {
            let server = HttpServer::new(move || App::new().app_data(data.clone()).default_service(web::to(respond)))
                .workers(1)
                .disable_signals()
                .bind("127.0.0.1:0")
                .unwrap();
            (server.addrs()[0], server.run())
        });
        Switchboard { base: format!("http://{addr}"), state, handle }
    }

    /// Sets upstream `name` to "red" or "green", or hook `hook:name` to "ok", "down" or "feishu-fail".
    pub fn set(&self, name: &str, mode: &str) {
        self.state.lock().unwrap().switches.insert(name.to_string(), mode.to_string());
    }

    /// When each request to `/up/{name}` or `/flap/{name}` came.
    pub fn hits(&self, name: &str) -> Vec<std::time::Instant> {
        self.state.lock().unwrap().hits.get(name).cloned().unwrap_or_default()
    }

    pub fn messages(&self) -> Vec<Message> {
        self.state.lock().unwrap().messages.clone()
    }

    /// The messages `hook` accepted, as their webhook `event`s.
    pub fn accepted_events(&self, hook: &str) -> Vec<String> {
        self.messages().iter().filter(|m| m.hook == hook && m.accepted).map(Message::event).collect()
    }
}
