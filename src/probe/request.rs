//! Builds and sends one probe request and reads its answer, bounded in time and in size.

use std::time::{Duration, Instant};

use awc::error::{PayloadError, SendRequestError};
use futures_util::StreamExt;

use super::body::{BodyReader, Kind, Read};
use super::challenge::Challenge;
use super::classify::Outcome;
use super::connect::{credited, proxy_error_of, ConnectTime, TimedConnector};
use super::sse::SseParser;
use crate::config::{Method, Monitor, CHALLENGE_PLACEHOLDER};
use crate::proxy::{PerProxy, Proxy};
use crate::secret::Secret;
use awc::http::header::HeaderValue;

pub use super::body::MAX_BODY_BYTES;

/// After a finish reason, how long a stream may take to send its usage and terminator.
const SOFT_END_GRACE: Duration = Duration::from_secs(1);

const USER_AGENT: &str = concat!("llm-monitor/", env!("CARGO_PKG_VERSION"));

/// Idle connections are kept this long, longer than most intervals: a monitor probing more
/// often than this (of a server that keeps connections as long) reuses its connection, so its
/// probes measure the service, not a handshake.
pub const KEEP_ALIVE: Duration = Duration::from_secs(600);
/// No connection is used for longer than this (DNS changes are picked up).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(3_600);

/// How many probe clients a thread keeps (one per proxy setting, and per keep-alive mode);
/// past this, the least recently used is dropped.
const MAX_CLIENTS: usize = 64;

/// The probe client of this thread (arbiter) for one proxy setting (`None`: direct), shared
/// by all its monitors that use it: one connection pool (keyed by host, so monitors of one
/// relay reuse connections; a pool never mixes direct and proxied connections, or two
/// proxies), no redirects (a 3xx is a result and credentials never follow one to another
/// host), TLS through rustls with webpki roots. awc's Client is not `Send`, hence one per
/// thread. `fresh`: the client of `fresh_connection: true` monitors, which keeps no
/// connection, so every probe opens (and measures) its own.
pub fn client_for(proxy: Option<&Proxy>, fresh: bool) -> awc::Client {
    thread_local! {
        static CLIENTS: std::cell::RefCell<PerProxy<(Option<Proxy>, bool), awc::Client>> =
            const { std::cell::RefCell::new(PerProxy::new(MAX_CLIENTS)) };
    }
    CLIENTS.with(|clients| {
        clients.borrow_mut().get_or_insert_with((proxy.cloned(), fresh), |(proxy, fresh)| {
            build_client(if *fresh { Duration::ZERO } else { KEEP_ALIVE }, proxy.clone())
        })
    })
}

fn build_client(keep_alive: Duration, proxy: Option<Proxy>) -> awc::Client {
    // Each probe's own timeout (around the whole exchange) is what fires: awc's request timer
    // is off (one timer less per probe), and its connect timer runs past any probe's timeout
    // (at most 5 min), so a black-holed host is a `timeout`, not a connect error. Through a
    // proxy the TLS handshake gets as long (awc's own limit is 5 s).
    let slack = Duration::from_secs(301);
    let proxied = proxy.is_some();
    let mut connector = awc::Connector::new()
        .connector(TimedConnector::new(proxy))
        .timeout(slack)
        .limit(4_096)
        .conn_keep_alive(keep_alive)
        .conn_lifetime(CONNECTION_LIFETIME);
    if proxied {
        connector = connector.handshake_timeout(slack);
    }
    awc::Client::builder()
        .connector(connector)
        .disable_redirects()
        .disable_timeout()
        .add_default_header((awc::http::header::USER_AGENT, USER_AGENT))
        .finish()
}

fn method(m: Method) -> awc::http::Method {
    match m {
        Method::Get => awc::http::Method::GET,
        Method::Post => awc::http::Method::POST,
        Method::Put => awc::http::Method::PUT,
        Method::Delete => awc::http::Method::DELETE,
        Method::Patch => awc::http::Method::PATCH,
    }
}

/// One request, ready to send: the monitor's, with this probe's challenge filled in. Its url,
/// header values and body may hold the key, so they are [`Secret`]s (its `Debug` shows none).
#[derive(Debug, Clone)]
pub struct Prepared {
    pub method: Method,
    pub url: Secret,
    pub headers: Vec<(String, Secret)>,
    pub body: Option<Secret>,
    pub timeout: Duration,
    /// What the body reader needs to know of the checks.
    pub llm: bool,
    pub success_contains: Option<String>,
    /// Open a new connection for this probe, and close it after.
    pub fresh_connection: bool,
    /// Through this proxy (`None`: direct).
    pub proxy: Option<Proxy>,
}

impl Prepared {
    pub fn new(monitor: &Monitor, challenge: Option<&Challenge>) -> Self {
        let fill = |s: &Secret| match challenge {
            Some(c) if s.expose().contains(CHALLENGE_PLACEHOLDER) => {
                Secret::new(s.expose().replace(CHALLENGE_PLACEHOLDER, &c.question))
            }
            _ => s.clone(),
        };
        Prepared {
            method: monitor.method,
            url: fill(&monitor.url),
            headers: monitor.headers.iter().map(|(n, v)| (n.clone(), fill(v))).collect(),
            body: monitor.body.as_ref().map(fill),
            timeout: monitor.timeout,
            llm: monitor.llm,
            success_contains: monitor.success_contains.clone(),
            fresh_connection: monitor.fresh_connection,
            proxy: monitor.proxy.clone(),
        }
    }

    /// A stream check's request: the challenge asks to count from 1 to 40 after the answer,
    /// and the output limit is at least [`STREAM_CHECK_MAX_TOKENS`].
    pub fn stream_check(monitor: &Monitor, challenge: &Challenge) -> Self {
        let mut prepared = Prepared::new(monitor, Some(&challenge.with_count()));
        prepared.body = prepared.body.map(|body| Secret::new(with_max_tokens(body.expose(), STREAM_CHECK_MAX_TOKENS)));
        prepared
    }
}

/// The output limit of a stream check's request (raised to it, never lowered: a reasoning
/// model keeps the room it needs).
pub const STREAM_CHECK_MAX_TOKENS: u64 = 128;

/// `body` with each output limit it names (`max_tokens` and its kin) at least `at_least`.
fn with_max_tokens(body: &str, at_least: u64) -> String {
    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(body) else { return body.to_string() };
    for pointer in super::integrity::MAX_TOKENS_POINTERS {
        if let Some(limit) = value.pointer_mut(pointer) {
            if limit.as_u64().is_some_and(|n| n < at_least) {
                *limit = serde_json::Value::from(at_least);
            }
        }
    }
    value.to_string()
}

/// A header as sent: values that may be credentials are marked sensitive, so no log of the
/// HTTP/1 or HTTP/2 layer (`RUST_LOG=trace`) prints them.
fn header_value(name: &str, value: &Secret) -> Result<HeaderValue, String> {
    let mut value = HeaderValue::from_str(value.expose()).map_err(|_| format!("header {name} has an invalid value"))?;
    value.set_sensitive(crate::secret::is_secret_header(name));
    Ok(value)
}

/// One probe's outcome, and how long opening its connection took if it had to open one.
#[derive(Debug)]
pub struct Probed {
    pub outcome: Outcome,
    pub connect: Option<Duration>,
    /// A 429's `Retry-After`: how long the upstream asks us to wait (capped at
    /// [`MAX_RETRY_AFTER`]; none when it asks for nothing, in the past, or unreadably).
    pub retry_after: Option<Duration>,
}

/// The longest `Retry-After` honoured: a relay cannot silence its monitor for longer.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3_600);

/// A `Retry-After` value (RFC 9110 10.2.3): delay seconds, or an HTTP date (any of its three
/// forms) taken against `now`; capped at [`MAX_RETRY_AFTER`]; `None` for nothing to wait.
pub fn retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // More digits than a u64 holds is still "a long time".
        Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX).min(MAX_RETRY_AFTER.as_secs()))
    } else {
        httpdate::parse_http_date(value).ok()?.duration_since(now).ok()?
    };
    Some(wait.min(MAX_RETRY_AFTER)).filter(|w| !w.is_zero())
}

/// Sends the request and reads the response; everything (connect, headers, body) within its
/// timeout. Latency, time to first byte and time to first token run from the moment the
/// request could go out on an open connection (so they do not depend on whether the pool had
/// one); opening one, when the probe had to, is `connect`. An event stream is parsed as it
/// arrives, so the time of its first token is known.
pub async fn execute(request: &Prepared) -> Probed {
    let client = client_for(request.proxy.as_ref(), request.fresh_connection);
    let started = Instant::now();
    let connect_time = std::rc::Rc::new(ConnectTime::default());
    let asked_wait = std::cell::Cell::new(None);
    let exchange = credited(connect_time.clone(), exchange(&client, request, started, &asked_wait));
    let outcome = match actix_rt::time::timeout(request.timeout, exchange).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome::Timeout { latency: started.elapsed() },
    };
    let connect = connect_time.get();
    Probed { outcome: without_connect(outcome, connect), connect, retry_after: asked_wait.get() }
}

/// The outcome's times measured from an open connection.
fn without_connect(mut outcome: Outcome, connect: Option<Duration>) -> Outcome {
    let Some(connect) = connect else { return outcome };
    if let Outcome::Response { latency, ttfb, stream, .. } = &mut outcome {
        *latency = latency.saturating_sub(connect);
        *ttfb = ttfb.saturating_sub(connect);
        if let Some(answer) = stream.as_mut() {
            for at in [&mut answer.first_token_at, &mut answer.last_token_at].into_iter().flatten() {
                *at = at.saturating_sub(connect);
            }
        }
    }
    outcome
}

async fn exchange(
    client: &awc::Client,
    prepared: &Prepared,
    started: Instant,
    asked_wait: &std::cell::Cell<Option<Duration>>,
) -> Outcome {
    let mut request = client.request(method(prepared.method), prepared.url.expose());
    for (name, value) in &prepared.headers {
        match header_value(name, value) {
            Ok(value) => request = request.insert_header((name.as_str(), value)),
            Err(detail) => return Outcome::NetworkError { detail, latency: started.elapsed() },
        }
    }
    if prepared.fresh_connection {
        request = request.insert_header((awc::http::header::CONNECTION, "close"));
    }
    let sent = match &prepared.body {
        Some(body) => request.send_body(body.expose().to_string()).await,
        None => request.send().await,
    };
    let mut response = match sent {
        Ok(r) => r,
        Err(SendRequestError::Timeout | SendRequestError::Connect(awc::error::ConnectError::Timeout)) => {
            return Outcome::Timeout { latency: started.elapsed() }
        }
        Err(SendRequestError::Connect(awc::error::ConnectError::Io(e))) if proxy_error_of(&e).is_some() => {
            let detail = proxy_error_of(&e).map(ToString::to_string).unwrap_or_default();
            return Outcome::ProxyError { detail, latency: started.elapsed() };
        }
        Err(e) => return Outcome::NetworkError { detail: send_error(&e), latency: started.elapsed() },
    };
    let ttfb = started.elapsed();
    let http_code = response.status().as_u16();
    if http_code == 429 {
        let value = response.headers().get(awc::http::header::RETRY_AFTER).and_then(|v| v.to_str().ok());
        asked_wait.set(value.and_then(|v| retry_after(v, std::time::SystemTime::now())));
    }
    let success = (200..300).contains(&http_code);
    let is_stream = success
        && response
            .headers()
            .get(awc::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("text/event-stream"));
    let mut parser = is_stream.then(SseParser::new);
    let kind = match (is_stream, success) {
        (true, _) => Kind::Stream,
        (false, true) => Kind::Success,
        (false, false) => Kind::Failure,
    };
    let mut reader = BodyReader::new(kind, prepared.llm, prepared.success_contains.as_deref());
    // What the server promised, when the body reaches us as sent (not decompressed).
    let promised_len = response
        .headers()
        .get(awc::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .filter(|_| !response.headers().contains_key(awc::http::header::CONTENT_ENCODING));
    let mut stopped_early = false;
    // When a finish reason was seen: the usage and `[DONE]` that usually follow get a moment,
    // but a relay that then holds the connection open does not hold the probe.
    let mut soft_end: Option<Instant> = None;
    let mut last_data = ttfb;
    loop {
        let next = match soft_end {
            Some(at) => {
                match actix_rt::time::timeout(SOFT_END_GRACE.saturating_sub(at.elapsed()), response.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        stopped_early = true;
                        break;
                    }
                }
            }
            None => response.next().await,
        };
        let Some(chunk) = next else { break };
        match chunk {
            Ok(bytes) => {
                last_data = started.elapsed();
                let read = reader.feed(&bytes);
                if let Some(parser) = parser.as_mut() {
                    parser.feed(&bytes, last_data);
                    if parser.terminated() {
                        // The stream said its last word: whatever the connection does next
                        // is not part of the answer.
                        stopped_early = true;
                        break;
                    }
                    if parser.ending() && soft_end.is_none() {
                        soft_end = Some(Instant::now());
                    }
                }
                if read == Read::Enough {
                    stopped_early = true;
                    break;
                }
            }
            Err(PayloadError::Io(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
                return Outcome::Timeout { latency: started.elapsed() }
            }
            Err(e) => {
                // A stream that broke off is judged as a stream: cut off, `stream_incomplete`.
                if let Some(parser) = parser.take() {
                    let latency = started.elapsed();
                    let stream = Some(Box::new(parser.finish(latency)));
                    return Outcome::Response { http_code, body: reader.finish(), latency, ttfb, stream };
                }
                return Outcome::NetworkError {
                    detail: format!("HTTP {http_code}, then reading the body failed: {e}"),
                    latency: started.elapsed(),
                };
            }
        }
    }
    let body = reader.finish();
    if let Some(promised) = promised_len.filter(|&p| !stopped_early && !body.over_cap && body.len < p) {
        // The connection closed early; a cut-off answer is a failed read, not a short one.
        return Outcome::NetworkError {
            detail: format!("HTTP {http_code}, then the body ended after {} of {promised} bytes", body.len),
            latency: started.elapsed(),
        };
    }
    // A stream that ended after its finish reason ended with its last data.
    let latency = if soft_end.is_some() && stopped_early { last_data } else { started.elapsed() };
    let stream = parser.map(|p| Box::new(p.finish(latency)));
    Outcome::Response { http_code, body, latency, ttfb, stream }
}

/// A short description of why the request did not get a response. awc's messages never
/// carry the URL or headers, but they go through redaction anyway before being stored.
fn send_error(e: &SendRequestError) -> String {
    match e {
        SendRequestError::Connect(c) => format!("connect failed: {c}"),
        SendRequestError::Send(io) => format!("sending the request failed: {io}"),
        SendRequestError::Response(p) => format!("reading the response head failed: {p}"),
        SendRequestError::Http(h) => format!("invalid request: {h}"),
        SendRequestError::H2(h) => format!("HTTP/2 error: {h}"),
        SendRequestError::Url(u) => format!("invalid URL: {u}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MonitorKey;

    #[test]
    fn a_stream_check_raises_each_output_limit_to_128_and_never_lowers_one() {
        let body =
            r#"{"model":"m","max_tokens":16,"generationConfig":{"maxOutputTokens":8},"max_completion_tokens":1024}"#;
        let raised: serde_json::Value = serde_json::from_str(&with_max_tokens(body, 128)).unwrap();
        assert_eq!(raised["max_tokens"], 128);
        assert_eq!(raised["generationConfig"]["maxOutputTokens"], 128);
        assert_eq!(raised["max_completion_tokens"], 1024);
        assert_eq!(with_max_tokens("not json {{CHALLENGE}}", 128), "not json {{CHALLENGE}}");
    }

    #[test]
    fn retry_after_takes_seconds_or_any_http_date_and_caps_at_an_hour() {
        use std::time::UNIX_EPOCH;
        // 1994-11-06 08:49:37 UTC, RFC 9110's example.
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(retry_after("0", now), None, "nothing to wait");
        assert_eq!(retry_after("86400", now), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after("99999999999999999999999", now), Some(MAX_RETRY_AFTER));
        for date in ["Sun, 06 Nov 1994 08:50:07 GMT", "Sunday, 06-Nov-94 08:50:07 GMT", "Sun Nov  6 08:50:07 1994"] {
            assert_eq!(retry_after(date, now), Some(Duration::from_secs(30)), "{date}");
        }
        assert_eq!(retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now), None, "a date in the past");
        assert_eq!(retry_after("Mon, 07 Nov 1994 08:49:37 GMT", now), Some(MAX_RETRY_AFTER));
        for junk in ["", "-5", "1.5", "soon", "Sun, 06 Nov 1994 25:00:00 GMT"] {
            assert_eq!(retry_after(junk, now), None, "{junk:?}");
        }
    }

    #[test]
    fn a_prepared_request_and_its_headers_never_print_their_secrets() {
        let monitor = Monitor {
            key: MonitorKey::new("a", "b", ""),
            method: Method::Post,
            url: Secret::new("https://h/v1?key=query-secret-123"),
            headers: vec![
                ("Authorization".to_string(), Secret::new("Bearer header-secret-456")),
                ("Content-Type".to_string(), Secret::new("application/json")),
            ],
            body: Some(Secret::new("{\"key\": \"body-secret-789\", \"q\": \"{{CHALLENGE}}\"}")),
            interval: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            slow_latency: Duration::from_secs(5),
            slow_ttft: None,
            success_contains: None,
            api_key: Some(Secret::new("header-secret-456")),
            model: None,
            expect_model: None,
            require_model: false,
            challenge: true,
            llm: true,
            fresh_connection: false,
            proxy: None,
            model_rule: None,
            price: None,
            daily_budget_usd: None,
            confirm: 0,
            interval_when_failing: None,
            max_tokens: None,
            integrity_status: crate::domain::Status::Yellow,
            stream_check_every: None,
            redactor: Default::default(),
        };
        let challenge = Challenge::from_operands(1, 2);
        let prepared = Prepared::new(&monitor, Some(&challenge));
        assert!(prepared.body.as_ref().unwrap().expose().contains(&challenge.question));
        let printed = format!("{prepared:?} {monitor:?}");
        for secret in ["query-secret", "header-secret", "body-secret"] {
            assert!(!printed.contains(secret), "{printed}");
        }
        // Credentials go out marked sensitive, so the HTTP layers' own logs print "Sensitive".
        let auth = header_value("Authorization", &prepared.headers[0].1).unwrap();
        assert!(auth.is_sensitive());
        assert!(!format!("{auth:?}").contains("header-secret"));
        assert!(!header_value("Content-Type", &prepared.headers[1].1).unwrap().is_sensitive());
    }
}
