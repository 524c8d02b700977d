//! One attempt to deliver one message through one channel: the receiver's own payload, one
//! request bounded in time and in size, and that receiver's own rule for "accepted". Nothing
//! here retries or waits; the delivery actor decides what an [`Attempt`] means.

use std::time::Duration;

use awc::http::header::{self, HeaderName, HeaderValue};
use base64::Engine;
use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::Sha256;

use super::message::{link, render, render_html, RenderContext};
use super::{Channel, ChannelKind, EventKind, Message, MonitorName, Tls};
use crate::secret::{prefix, Redactor, Secret};

/// Every request (connect, send, answer) and every SMTP command gets this long.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// A whole SMTP exchange (greeting, EHLO, MAIL, RCPT, DATA, QUIT) gets this long.
const SMTP_EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);
/// At most this much of a receiver's answer is read.
pub const ANSWER_LIMIT: usize = 64 * 1024;
/// [`Attempt::answer`] is at most this long.
pub const ANSWER_MAX_BYTES: usize = 300;
/// A Discord message's limit (counted here in UTF-16 units, which is never more than Discord's
/// own count).
const DISCORD_MAX: usize = 2_000;
/// A WeCom robot's text message takes at most 2,048 bytes.
const WECOM_MAX_BYTES: usize = 2_048;

const USER_AGENT: &str = concat!("llm-monitor/", env!("CARGO_PKG_VERSION"));

/// The outcome of one attempt through one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The channel's own success rule accepted it.
    pub accepted: bool,
    /// The receiver asked us to wait (HTTP 429 Retry-After seconds, Telegram
    /// `parameters.retry_after`, Discord `retry_after`).
    pub retry_after: Option<Duration>,
    /// What the channel answered, for logs, /health and `alert-test`: e.g.
    /// `HTTP 200: {"code":19021,"msg":"sign match fail"}` or `SMTP 250 OK` or
    /// `connection refused`; redacted with the given redactor, then cut to 300 bytes, one line.
    pub answer: String,
    /// The receiver refused it for good (an HTTP 4xx other than 408, 425 and 429, a redirect,
    /// an SMTP 5xx): trying again will not help.
    pub permanent: bool,
}

impl Attempt {
    fn failed(answer: &str, redactor: &Redactor) -> Attempt {
        Attempt {
            accepted: false,
            retry_after: None,
            answer: redactor.excerpt(answer, ANSWER_MAX_BYTES),
            permanent: false,
        }
    }
}

/// The client for alert requests: redirects are never followed (a webhook's URL carries its
/// token; a 3xx is a failure), 10 s for connecting and for each request, our User-Agent.
/// awc's Client is not `Send`: build one per actor (or thread) and reuse it.
pub fn client(proxy: Option<&crate::proxy::Proxy>) -> awc::Client {
    // Through a proxy: TLS end to end to the receiver, and the 10 s cover the proxy's part.
    let connector = awc::Connector::new()
        .connector(crate::probe::connect::TimedConnector::new(proxy.cloned()))
        .timeout(TIMEOUT)
        .handshake_timeout(TIMEOUT);
    awc::Client::builder()
        .connector(connector)
        .disable_redirects()
        .timeout(TIMEOUT)
        .add_default_header((header::USER_AGENT, USER_AGENT))
        .finish()
}

/// Sends `message` once through `channel`. `now_ms` (unix milliseconds) signs Feishu and
/// DingTalk requests. The answer never holds a secret: it is passed through `redactor` (which
/// must know every channel secret), and no URL is ever formatted into it.
pub async fn send(
    channel: &Channel,
    message: &Message,
    ctx: &RenderContext<'_>,
    client: &awc::Client,
    redactor: &Redactor,
    now_ms: i64,
) -> Attempt {
    if let ChannelKind::Email { .. } = channel.kind {
        return send_email(&channel.kind, channel.proxy.as_ref(), message, ctx, redactor).await;
    }
    let outgoing = match build_request(&channel.kind, message, ctx, now_ms) {
        Ok(outgoing) => outgoing,
        Err(problem) => return Attempt::failed(&problem, redactor),
    };
    match exchange(client, &outgoing, TIMEOUT).await {
        Ok(answer) => judge(outgoing.rule, &answer, redactor),
        Err(problem) => Attempt::failed(&problem, redactor),
    }
}

/// What a receiver's answer must show, beyond a 2xx status, to count as accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// Nothing more.
    Status,
    /// JSON `ok: true` (Telegram).
    TelegramOk,
    /// JSON `code: 0`, or `StatusCode: 0` from older servers (Feishu).
    FeishuCode,
    /// JSON `errcode: 0` (DingTalk, WeCom).
    Errcode,
    /// Nothing more; a 429's JSON may carry `retry_after` in seconds (Discord).
    DiscordStatus,
}

/// A POST ready to go. Its url may carry a token, hence a [`Secret`].
struct Outgoing {
    url: Secret,
    /// Beyond `Content-Type: application/json`.
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Vec<u8>,
    rule: Rule,
}

/// The webhook's documented JSON: stable field names, unix seconds, `null` for what a message
/// does not have; `monitors` only for storm events.
#[derive(Serialize)]
struct WebhookBody<'a> {
    id: i64,
    event: &'static str,
    monitor: Option<&'a MonitorName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    monitors: Option<&'a [MonitorName]>,
    /// The probing node, for node_lost and node_back.
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<&'a str>,
    status: Option<&'a str>,
    reason: Option<&'a str>,
    detail: Option<&'a str>,
    started_at: Option<i64>,
    resolved_at: Option<i64>,
    duration_s: Option<i64>,
    url: Option<String>,
    title: &'a str,
    text: &'a str,
}

fn build_request(kind: &ChannelKind, message: &Message, ctx: &RenderContext, now_ms: i64) -> Result<Outgoing, String> {
    let rendered = render(message, ctx);
    let both = format!("{}\n{}", rendered.title, rendered.text).trim_end().to_string();
    let json_body = |value: Value| serde_json::to_vec(&value).expect("JSON values serialize");
    let plain =
        |url: &Secret, body: Vec<u8>, rule: Rule| Outgoing { url: url.clone(), headers: Vec::new(), body, rule };
    let outgoing = match kind {
        ChannelKind::Webhook { url, secret } => {
            let storm = matches!(message.event, EventKind::StormDown | EventKind::StormUp);
            let body = serde_json::to_vec(&WebhookBody {
                id: message.id,
                event: message.event.as_str(),
                monitor: message.monitor.as_ref(),
                monitors: storm.then_some(message.monitors.as_slice()),
                node: message.node.as_deref(),
                status: message.status.as_deref(),
                reason: message.reason.as_deref(),
                detail: message.detail.as_deref(),
                started_at: message.started_at,
                resolved_at: message.resolved_at,
                duration_s: message.duration_s(),
                url: link(message, ctx.public_url),
                title: &rendered.title,
                text: &rendered.text,
            })
            .expect("the webhook body serializes");
            let mut headers = vec![(HeaderName::from_static("x-llm-monitor-event-id"), HeaderValue::from(message.id))];
            if let Some(secret) = secret {
                let signature = format!("sha256={}", hex::encode(hmac_sha256(secret.expose().as_bytes(), &body)));
                headers.push((HeaderName::from_static("x-signature"), sensitive(&signature)?));
            }
            Outgoing { url: url.clone(), headers, body, rule: Rule::Status }
        }
        ChannelKind::Slack { url } => plain(url, json_body(json!({ "text": both })), Rule::Status),
        ChannelKind::Discord { url } => {
            // No @everyone or role pings, whatever a detail says.
            let body = json!({ "content": cut_utf16(&both, DISCORD_MAX), "allowed_mentions": { "parse": [] } });
            plain(url, json_body(body), Rule::DiscordStatus)
        }
        ChannelKind::Telegram { bot_token, chat_id, api_url } => {
            let url = Secret::new(format!("{}/bot{}/sendMessage", api_url.trim_end_matches('/'), bot_token.expose()));
            let body = json!({
                "chat_id": chat_id,
                "text": render_html(message, ctx),
                "parse_mode": "HTML",
                "disable_web_page_preview": true,
            });
            plain(&url, json_body(body), Rule::TelegramOk)
        }
        ChannelKind::Feishu { url, secret } => {
            let mut body = json!({ "msg_type": "text", "content": { "text": both } });
            if let Some(secret) = secret {
                let timestamp = now_ms.div_euclid(1_000).to_string();
                body["timestamp"] = json!(timestamp);
                body["sign"] = json!(feishu_sign(&timestamp, secret.expose()));
            }
            plain(url, json_body(body), Rule::FeishuCode)
        }
        ChannelKind::Dingtalk { url, secret } => {
            let url = match secret {
                Some(secret) => Secret::new(dingtalk_signed_url(url.expose(), secret.expose(), now_ms)),
                None => url.clone(),
            };
            plain(&url, json_body(json!({ "msgtype": "text", "text": { "content": both } })), Rule::Errcode)
        }
        ChannelKind::Wecom { url } => {
            let content = prefix(&both, WECOM_MAX_BYTES);
            plain(url, json_body(json!({ "msgtype": "text", "text": { "content": content } })), Rule::Errcode)
        }
        ChannelKind::Ntfy { url, token } => {
            let (server, topic) = ntfy_server_and_topic(url.expose())?;
            let tags: &[&str] = match message.event {
                EventKind::Down | EventKind::StormDown | EventKind::Reminder => &["rotating_light"],
                EventKind::Up | EventKind::StormUp => &["white_check_mark"],
                _ => &[],
            };
            let priority = if matches!(message.event, EventKind::Down | EventKind::StormDown) { 5 } else { 3 };
            let mut body = json!({
                "topic": topic,
                "title": rendered.title,
                "message": rendered.text,
                "priority": priority,
                "tags": tags,
            });
            if let Some(click) = link(message, ctx.public_url) {
                body["click"] = json!(click);
            }
            let mut headers = Vec::new();
            if let Some(token) = token {
                headers.push((header::AUTHORIZATION, sensitive(&format!("Bearer {}", token.expose()))?));
            }
            Outgoing { url: Secret::new(server), headers, body: json_body(body), rule: Rule::Status }
        }
        ChannelKind::Email { .. } => return Err("email is not sent over HTTP".to_string()),
    };
    // awc panics on some malformed hosts: only well-formed http(s) URLs go out.
    match url::Url::parse(outgoing.url.expose()) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host_str().is_some() => Ok(outgoing),
        _ => Err("the channel's URL is not a valid http(s) URL".to_string()),
    }
}

/// A header value no HTTP-layer log prints.
fn sensitive(value: &str) -> Result<HeaderValue, String> {
    let mut value = HeaderValue::from_str(value).map_err(|_| "a credential is not a valid header value".to_string())?;
    value.set_sensitive(true);
    Ok(value)
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Feishu's custom-bot signature: the key is `"<timestamp>\n<secret>"`, the message empty.
fn feishu_sign(timestamp: &str, secret: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(hmac_sha256(format!("{timestamp}\n{secret}").as_bytes(), b""))
}

/// DingTalk's signed robot URL: `timestamp` (ms) and `sign`, the URL-encoded base64 of
/// HMAC-SHA256 keyed by the secret over `"<timestamp>\n<secret>"`.
fn dingtalk_signed_url(url: &str, secret: &str, now_ms: i64) -> String {
    let signature = base64::engine::general_purpose::STANDARD
        .encode(hmac_sha256(secret.as_bytes(), format!("{now_ms}\n{secret}").as_bytes()));
    let sign: String = url::form_urlencoded::byte_serialize(signature.as_bytes()).collect();
    let joiner = if url.contains('?') { '&' } else { '?' };
    format!("{url}{joiner}timestamp={now_ms}&sign={sign}")
}

/// `https://ntfy.sh/alerts` → (`https://ntfy.sh/`, `alerts`): ntfy takes JSON at its root,
/// which is everything before the topic (a reverse proxy's path prefix stays).
fn ntfy_server_and_topic(url: &str) -> Result<(String, String), String> {
    let no_topic = || "the ntfy URL names no topic (expected https://server/topic)".to_string();
    let mut parsed = url::Url::parse(url).map_err(|_| no_topic())?;
    let mut segments: Vec<String> = parsed.path_segments().ok_or_else(no_topic)?.map(str::to_string).collect();
    if segments.last().is_some_and(String::is_empty) {
        segments.pop();
    }
    // ntfy topics are `[-_A-Za-z0-9]{1,64}`: nothing in them is percent-encoded.
    let Some((topic, prefix)) = segments.split_last().filter(|(topic, _)| !topic.is_empty()) else {
        return Err(no_topic());
    };
    let mut path = prefix.join("/");
    path.push('/');
    let topic = topic.clone();
    parsed.set_path(&path);
    parsed.set_query(None);
    parsed.set_fragment(None);
    Ok((parsed.to_string(), topic))
}

/// At most `max` UTF-16 units, cut on a character boundary.
fn cut_utf16(text: &str, max: usize) -> String {
    let mut units = 0;
    let mut out = String::new();
    for c in text.chars() {
        units += c.len_utf16();
        if units > max {
            break;
        }
        out.push(c);
    }
    out
}

/// What came back: the status, a Retry-After in seconds, and at most [`ANSWER_LIMIT`] bytes.
#[derive(Debug)]
struct Answer {
    status: u16,
    retry_after: Option<Duration>,
    body: Vec<u8>,
    /// The body went on past the limit (and was not read further).
    cut: bool,
}

/// Sends one POST and reads its answer, all within `timeout`.
async fn exchange(client: &awc::Client, outgoing: &Outgoing, timeout: Duration) -> Result<Answer, String> {
    let mut request =
        client.post(outgoing.url.expose()).timeout(timeout).insert_header((header::CONTENT_TYPE, "application/json"));
    for (name, value) in &outgoing.headers {
        request = request.insert_header((name.clone(), value.clone()));
    }
    let body = outgoing.body.clone();
    let attempt = async move {
        let mut response = request.send_body(body).await.map_err(|error| describe_send_error(&error, timeout))?;
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut body = Vec::new();
        let mut cut = false;
        while let Some(chunk) = response.next().await {
            let chunk = chunk.map_err(|_| "the answer broke off while being read".to_string())?;
            let room = ANSWER_LIMIT - body.len();
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                cut = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer { status: response.status().as_u16(), retry_after, body, cut })
    };
    match actix_rt::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(timed_out(timeout)),
    }
}

fn timed_out(timeout: Duration) -> String {
    if timeout.subsec_millis() == 0 {
        format!("timed out after {}s", timeout.as_secs())
    } else {
        format!("timed out after {}ms", timeout.as_millis())
    }
}

/// A failed request in words of our own: awc's texts may name the host or the URL.
fn describe_send_error(error: &awc::error::SendRequestError, timeout: Duration) -> String {
    use awc::error::{ConnectError, SendRequestError};
    use std::io::ErrorKind;
    let io_words = |error: &std::io::Error, doing: &str| match error.kind() {
        ErrorKind::ConnectionRefused => "connection refused".to_string(),
        ErrorKind::ConnectionReset => "connection reset".to_string(),
        ErrorKind::ConnectionAborted => "connection aborted".to_string(),
        ErrorKind::TimedOut => timed_out(timeout),
        // A TLS failure comes as an I/O error; its text says what was wrong with the certificate.
        _ => format!("{doing} failed: {error}"),
    };
    match error {
        SendRequestError::Url(_) => "the channel's URL is not a valid http(s) URL".to_string(),
        SendRequestError::Connect(ConnectError::Io(error)) => match crate::probe::connect::proxy_error_of(error) {
            Some(proxy) => format!("proxy error: {proxy}"),
            None => io_words(error, "connecting"),
        },
        SendRequestError::Connect(ConnectError::Resolver(_) | ConnectError::NoRecords | ConnectError::Unresolved) => {
            "could not resolve the receiver's host name".to_string()
        }
        SendRequestError::Connect(ConnectError::Timeout) | SendRequestError::Timeout => timed_out(timeout),
        SendRequestError::Connect(ConnectError::SslIsNotSupported) => "TLS is not available in this build".to_string(),
        SendRequestError::Connect(_) => "connecting failed".to_string(),
        SendRequestError::Send(error) => io_words(error, "sending"),
        SendRequestError::Response(_) => "the answer is not valid HTTP".to_string(),
        _ => "the request failed".to_string(),
    }
}

/// The channel's rule applied to its answer.
fn judge(rule: Rule, answer: &Answer, redactor: &Redactor) -> Attempt {
    let status = answer.status;
    let text = String::from_utf8_lossy(&answer.body);
    let json: Option<Value> = serde_json::from_slice(&answer.body).ok();
    let field = |path: &[&str]| path.iter().try_fold(json.as_ref()?, |value, key| value.get(key));
    let is_zero = |path: &[&str]| field(path).and_then(Value::as_i64) == Some(0);

    let words = if (300..400).contains(&status) {
        format!("HTTP {status}: redirect refused")
    } else if answer.cut {
        format!("HTTP {status} (answer over {} KiB, not read in full): {text}", ANSWER_LIMIT / 1024)
    } else if text.trim().is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {text}")
    };
    let success_status = (200..300).contains(&status);
    let accepted = success_status
        && match rule {
            Rule::Status | Rule::DiscordStatus => true,
            Rule::TelegramOk => field(&["ok"]).and_then(Value::as_bool) == Some(true),
            Rule::FeishuCode => is_zero(&["code"]) || is_zero(&["StatusCode"]),
            Rule::Errcode => is_zero(&["errcode"]),
        };
    let retry_after = (status == 429)
        .then(|| {
            let asked = match rule {
                Rule::TelegramOk => field(&["parameters", "retry_after"]),
                Rule::DiscordStatus => field(&["retry_after"]),
                _ => None,
            };
            asked
                .and_then(Value::as_f64)
                .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
                .or(answer.retry_after)
        })
        .flatten();
    let permanent = !accepted
        && ((300..400).contains(&status) || ((400..500).contains(&status) && ![408, 425, 429].contains(&status)));
    Attempt { accepted, retry_after, answer: redactor.excerpt(&words, ANSWER_MAX_BYTES), permanent }
}

/// Email through SMTP with lettre: one connection per message.
async fn send_email(
    kind: &ChannelKind,
    proxy: Option<&crate::proxy::Proxy>,
    message: &Message,
    ctx: &RenderContext<'_>,
    redactor: &Redactor,
) -> Attempt {
    use lettre::message::{header::ContentType, Mailbox};
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

    let ChannelKind::Email { host, port, tls, username, password, from, to } = kind else {
        return Attempt::failed("not an email channel", redactor);
    };
    let rendered = render(message, ctx);
    let from: Mailbox = match from.parse() {
        Ok(mailbox) => mailbox,
        Err(error) => return Attempt::failed(&format!("invalid from address: {error}"), redactor),
    };
    let mut email = lettre::Message::builder().from(from).subject(rendered.title).header(ContentType::TEXT_PLAIN);
    for address in to {
        match address.parse::<Mailbox>() {
            Ok(mailbox) => email = email.to(mailbox),
            Err(error) => return Attempt::failed(&format!("invalid to address {address:?}: {error}"), redactor),
        }
    }
    let email = match email.body(rendered.text) {
        Ok(email) => email,
        Err(error) => return Attempt::failed(&format!("the email could not be built: {error}"), redactor),
    };
    let credentials = username
        .as_ref()
        .zip(password.as_ref())
        .map(|(username, password)| Credentials::new(username.clone(), password.expose().to_string()));
    if let Some(proxy) = proxy {
        let sent = smtp_through_proxy(proxy, host, *port, *tls, credentials.as_ref(), &email);
        let words = match actix_rt::time::timeout(SMTP_EXCHANGE_TIMEOUT, sent).await {
            Err(_) => Err((timed_out(SMTP_EXCHANGE_TIMEOUT), false)),
            Ok(Err(ThroughProxy::Proxy(error))) => Err((format!("proxy error: {error}"), false)),
            Ok(Err(ThroughProxy::Tls(error))) => Err((format!("SMTP TLS failed: {error}"), false)),
            Ok(Err(ThroughProxy::Resolve)) => Err(("could not resolve the mail server's host name".to_string(), false)),
            Ok(Err(ThroughProxy::Smtp(error))) => Err(smtp_failure(&error)),
            Ok(Ok(response)) => Ok(smtp_answer(&response)),
        };
        return email_attempt(words, redactor);
    }
    let builder = match tls {
        Tls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())),
        Tls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host),
        Tls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host),
    };
    let mut builder = match builder {
        Ok(builder) => builder.port(*port).timeout(Some(TIMEOUT)),
        Err(error) => return Attempt::failed(&format!("SMTP TLS setup for the host failed: {error}"), redactor),
    };
    if let Some(credentials) = credentials {
        builder = builder.credentials(credentials);
    }
    let transport = builder.build();
    let words = match actix_rt::time::timeout(SMTP_EXCHANGE_TIMEOUT, transport.send(email)).await {
        Err(_) => Err((timed_out(SMTP_EXCHANGE_TIMEOUT), false)),
        Ok(Ok(response)) => Ok(smtp_answer(&response)),
        Ok(Err(error)) => Err(smtp_failure(&error)),
    };
    email_attempt(words, redactor)
}

fn smtp_answer(response: &lettre::transport::smtp::response::Response) -> String {
    let lines: Vec<&str> = response.message().collect();
    format!("SMTP {} {}", response.code(), lines.join(" "))
}

/// An SMTP failure in words, and whether it is permanent.
fn smtp_failure(error: &lettre::transport::smtp::Error) -> (String, bool) {
    if error.is_timeout() {
        return (timed_out(TIMEOUT), false);
    }
    let words = match error.status() {
        // "permanent error (550): mailbox unavailable"
        Some(code) => format!("SMTP {code}: {error}"),
        None => format!("SMTP {error}"),
    };
    (words, error.is_permanent())
}

fn email_attempt(words: Result<String, (String, bool)>, redactor: &Redactor) -> Attempt {
    match words {
        Ok(words) => Attempt {
            accepted: true,
            retry_after: None,
            answer: redactor.excerpt(&words, ANSWER_MAX_BYTES),
            permanent: false,
        },
        Err((words, permanent)) => Attempt { permanent, ..Attempt::failed(&words, redactor) },
    }
}

/// Why a message sent through a proxy was not accepted.
enum ThroughProxy {
    Proxy(crate::proxy::ProxyError),
    Resolve,
    Tls(std::io::Error),
    Smtp(lettre::transport::smtp::Error),
}

impl From<lettre::transport::smtp::Error> for ThroughProxy {
    fn from(error: lettre::transport::smtp::Error) -> Self {
        ThroughProxy::Smtp(error)
    }
}

/// One SMTP session through a tunnel: what lettre's transport does on a connection of its own
/// (implicit TLS first, or STARTTLS required; then AUTH, the message and QUIT), on the tunnel.
async fn smtp_through_proxy(
    proxy: &crate::proxy::Proxy,
    host: &str,
    port: u16,
    tls: Tls,
    credentials: Option<&lettre::transport::smtp::authentication::Credentials>,
    email: &lettre::Message,
) -> Result<lettre::transport::smtp::response::Response, ThroughProxy> {
    use lettre::transport::smtp::authentication::DEFAULT_MECHANISMS;
    use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
    use lettre::transport::smtp::extension::ClientId;

    let tunnel = crate::proxy::open(proxy, host, port).await.map_err(|e| match e {
        crate::proxy::OpenError::Proxy(error) => ThroughProxy::Proxy(error),
        crate::proxy::OpenError::Resolve(_) => ThroughProxy::Resolve,
    })?;
    let stream: Box<dyn AsyncTokioStream> = match tls {
        Tls::Tls => Box::new(ImplicitTls::connect(tunnel, host).await.map_err(ThroughProxy::Tls)?),
        Tls::None | Tls::Starttls => Box::new(tunnel),
    };
    let hello = ClientId::default();
    let mut connection = AsyncSmtpConnection::connect_with_transport(stream, &hello).await?;
    if tls == Tls::Starttls {
        connection.starttls(TlsParameters::new(host.to_string())?, &hello).await?;
    }
    if let Some(credentials) = credentials {
        connection.auth(DEFAULT_MECHANISMS, credentials).await?;
    }
    let response = connection.send(email.envelope(), &email.formatted()).await?;
    let _ = connection.quit().await;
    Ok(response)
}

/// TLS from the first byte (SMTPS, port 465) over a tunnel, as lettre takes a stream: rustls
/// with the webpki roots, for the server's name.
#[derive(Debug)]
struct ImplicitTls(actix_tls::connect::rustls_0_23::reexports::AsyncTlsStream<tokio::net::TcpStream>);

impl ImplicitTls {
    async fn connect(tunnel: tokio::net::TcpStream, host: &str) -> std::io::Result<ImplicitTls> {
        use actix_service::Service;
        use actix_tls::connect::rustls_0_23::{reexports::ClientConfig, webpki_roots_cert_store, TlsConnector};
        let config = ClientConfig::builder().with_root_certificates(webpki_roots_cert_store()).with_no_client_auth();
        let connection = actix_tls::connect::Connection::new(host.to_string(), tunnel);
        let stream = TlsConnector::service(std::sync::Arc::new(config)).call(connection).await?;
        Ok(ImplicitTls(stream.into_parts().0))
    }
}

impl tokio::io::AsyncRead for ImplicitTls {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for ImplicitTls {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, data)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl lettre::transport::smtp::client::AsyncTokioStream for ImplicitTls {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::mpsc;
    use std::thread;

    use super::*;
    use crate::alert::Language;

    /// One request as the fake receiver saw it.
    #[derive(Debug)]
    struct Seen {
        method: String,
        /// Path and query.
        target: String,
        /// Names lower-cased.
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
        }

        fn json(&self) -> Value {
            serde_json::from_slice(&self.body).expect("a JSON body")
        }
    }

    /// A fake receiver on 127.0.0.1: answers every request with the same canned answer and
    /// reports each request (before answering it, so a followed redirect would be seen).
    struct Receiver {
        base: String,
        seen: mpsc::Receiver<Seen>,
    }

    impl Receiver {
        fn next(&self) -> Seen {
            self.seen.recv_timeout(Duration::from_secs(5)).expect("a request reached the receiver")
        }
    }

    fn receiver(status: u16, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let body = body.into();
        let mut head = format!("HTTP/1.1 {status} Canned\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let (tx, seen) = mpsc::channel();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(request) = read_request(&mut stream) else { continue };
                if tx.send(request).is_err() {
                    return;
                }
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
            }
        });
        Receiver { base, seen }
    }

    fn read_request(stream: &mut TcpStream) -> Option<Seen> {
        let mut reader = BufReader::new(stream.try_clone().ok()?);
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let mut parts = line.split_whitespace();
        let (method, target) = (parts.next()?.to_string(), parts.next()?.to_string());
        let mut headers = Vec::new();
        loop {
            line.clear();
            reader.read_line(&mut line).ok()?;
            let Some((name, value)) = line.trim_end().split_once(':') else { break };
            headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
        }
        let length = headers.iter().find(|(n, _)| n == "content-length").map_or(0, |(_, v)| v.parse().unwrap());
        let mut body = vec![0; length];
        reader.read_exact(&mut body).ok()?;
        Some(Seen { method, target, headers, body })
    }

    fn test_client() -> awc::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        client(None)
    }

    fn down() -> Message {
        Message {
            id: 42,
            event: EventKind::Down,
            monitor: Some(MonitorName { provider: "88code".into(), service: "cc".into(), channel: String::new() }),
            monitors: Vec::new(),
            status: Some("red".into()),
            reason: Some("server_error".into()),
            detail: Some("HTTP 502 <b>bad gateway</b>".into()),
            started_at: Some(1_796_065_200),
            resolved_at: None,
            time: 1_796_065_260,
            down_id: None,
            node: None,
        }
    }

    const CTX: RenderContext<'static> =
        RenderContext { language: Language::En, timezone: chrono_tz::UTC, public_url: Some("https://status.example") };
    const NOW_MS: i64 = 1_700_000_000_123;

    fn channel(kind: ChannelKind) -> Channel {
        Channel { name: "test".into(), kind, proxy: None }
    }

    async fn attempt(channel: &Channel, message: &Message) -> Attempt {
        let redactor = Redactor::new(channel.secrets());
        send(channel, message, &CTX, &test_client(), &redactor, NOW_MS).await
    }

    fn hmac_hex(key: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    #[actix_rt::test]
    async fn webhook_posts_the_documented_json_signed() {
        let fake = receiver(200, &[], "ok");
        let url = format!("{}/hooks/in", fake.base);
        let hook = channel(ChannelKind::Webhook { url: url.into(), secret: Some("whsec-123456".into()) });
        let outcome = attempt(&hook, &down()).await;
        assert_eq!(
            outcome,
            Attempt { accepted: true, retry_after: None, answer: "HTTP 200: ok".into(), permanent: false }
        );
        let seen = fake.next();
        assert_eq!((seen.method.as_str(), seen.target.as_str()), ("POST", "/hooks/in"));
        assert_eq!(seen.header("content-type"), Some("application/json"));
        assert_eq!(seen.header("x-llm-monitor-event-id"), Some("42"));
        assert!(seen.header("user-agent").unwrap().starts_with("llm-monitor/"));
        let expected = format!("sha256={}", hmac_hex("whsec-123456", &seen.body));
        assert_eq!(seen.header("x-signature"), Some(expected.as_str()));
        let body = seen.json();
        let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
        let mut expected_keys = [
            "id",
            "event",
            "monitor",
            "status",
            "reason",
            "detail",
            "started_at",
            "resolved_at",
            "duration_s",
            "url",
            "title",
            "text",
        ];
        expected_keys.sort();
        let mut keys = keys;
        keys.sort();
        assert_eq!(keys, expected_keys);
        assert_eq!(body["id"], 42);
        assert_eq!(body["event"], "down");
        assert_eq!(body["monitor"], json!({"provider": "88code", "service": "cc", "channel": ""}));
        assert_eq!((&body["status"], &body["reason"]), (&json!("red"), &json!("server_error")));
        assert_eq!(body["started_at"], 1_796_065_200);
        assert_eq!((&body["resolved_at"], &body["duration_s"]), (&Value::Null, &Value::Null));
        assert_eq!(body["url"], "https://status.example/#/88code/cc");
        assert_eq!(body["title"], "🔴 88code / cc is down");
        assert!(body["text"].as_str().unwrap().contains("HTTP 502 <b>bad gateway</b>"));
    }

    #[actix_rt::test]
    async fn webhook_storms_carry_their_monitors_and_no_secret_means_no_signature() {
        let fake = receiver(204, &[], "");
        let hook = channel(ChannelKind::Webhook { url: format!("{}/h", fake.base).into(), secret: None });
        let monitors: Vec<MonitorName> = (0..3)
            .map(|i| MonitorName { provider: format!("p{i}"), service: "s".into(), channel: String::new() })
            .collect();
        let storm = Message { event: EventKind::StormDown, monitor: None, monitors, ..down() };
        let outcome = attempt(&hook, &storm).await;
        assert!(outcome.accepted);
        assert_eq!(outcome.answer, "HTTP 204");
        let seen = fake.next();
        assert_eq!(seen.header("x-signature"), None);
        let body = seen.json();
        assert_eq!(body["event"], "storm_down");
        assert_eq!(body["monitor"], Value::Null);
        assert_eq!(body["monitors"].as_array().unwrap().len(), 3);
        assert_eq!(body["url"], "https://status.example");
    }

    #[actix_rt::test]
    async fn slack_gets_title_and_text() {
        let fake = receiver(200, &[], "ok");
        let slack =
            channel(ChannelKind::Slack { url: format!("{}/services/T0/B0/XXXXXXXXXXXXXXXXXXXX", fake.base).into() });
        assert!(attempt(&slack, &down()).await.accepted);
        let seen = fake.next();
        assert_eq!(seen.target, "/services/T0/B0/XXXXXXXXXXXXXXXXXXXX");
        let text = seen.json()["text"].as_str().unwrap().to_string();
        assert!(text.starts_with("🔴 88code / cc is down\nReason: server error (HTTP 5xx)\n"), "{text}");
        assert_eq!(seen.json().as_object().unwrap().len(), 1);
    }

    #[actix_rt::test]
    async fn discord_content_is_cut_to_its_limit_and_its_429_says_how_long() {
        let fake = receiver(204, &[], "");
        let discord = channel(ChannelKind::Discord { url: format!("{}/api/webhooks/1/tok", fake.base).into() });
        let long = Message { detail: Some("x".repeat(900)), ..down() };
        let many = Message {
            event: EventKind::StormDown,
            monitor: None,
            monitors: (0..20)
                .map(|i| MonitorName { provider: "p".repeat(150), service: format!("s{i}"), channel: String::new() })
                .collect(),
            ..long
        };
        let outcome = attempt(&discord, &many).await;
        assert_eq!((outcome.accepted, outcome.answer.as_str()), (true, "HTTP 204"));
        let body = fake.next().json();
        let content = body["content"].as_str().unwrap();
        assert!(content.encode_utf16().count() <= 2_000 && content.chars().count() > 1_900, "{}", content.len());
        assert_eq!(body["allowed_mentions"], json!({"parse": []}));

        let limited =
            receiver(429, &[("Retry-After", "9")], r#"{"message":"You are being rate limited.","retry_after":1.5}"#);
        let discord = channel(ChannelKind::Discord { url: format!("{}/api/webhooks/1/tok", limited.base).into() });
        let outcome = attempt(&discord, &down()).await;
        assert!(!outcome.accepted);
        assert_eq!(outcome.retry_after, Some(Duration::from_millis(1_500)));
    }

    #[actix_rt::test]
    async fn telegram_sends_html_and_never_shows_its_token() {
        let token = "123456789:AAHsecretTokenPart_abcdef";
        let fake = receiver(200, &[], r#"{"ok":true,"result":{"message_id":1}}"#);
        let telegram = channel(ChannelKind::Telegram {
            bot_token: token.into(),
            chat_id: "-100123".into(),
            api_url: format!("{}/", fake.base),
        });
        let outcome = attempt(&telegram, &down()).await;
        assert!(outcome.accepted, "{outcome:?}");
        let seen = fake.next();
        assert_eq!(seen.target, format!("/bot{token}/sendMessage"));
        let body = seen.json();
        assert_eq!(body["chat_id"], "-100123");
        assert_eq!(body["parse_mode"], "HTML");
        assert_eq!(body["disable_web_page_preview"], true);
        let text = body["text"].as_str().unwrap();
        // minijinja escapes `/` too; Telegram reads numeric entities.
        assert!(text.starts_with("<b>🔴 88code &#x2f; cc is down</b>\n"), "{text}");
        assert!(text.contains("&lt;b&gt;bad gateway&lt;&#x2f;b&gt;"), "{text}");

        // `ok: false` is not accepted, and an answer echoing the token is redacted.
        let echo = format!(r#"{{"ok":false,"error_code":404,"description":"Not Found: /bot{token}/sendMessage"}}"#);
        let fake = receiver(404, &[], echo);
        let telegram =
            channel(ChannelKind::Telegram { bot_token: token.into(), chat_id: "1".into(), api_url: fake.base.clone() });
        let outcome = attempt(&telegram, &down()).await;
        assert!(!outcome.accepted);
        assert!(!outcome.answer.contains("AAHsecret") && outcome.answer.contains("[REDACTED]"), "{}", outcome.answer);

        let limited = receiver(
            429,
            &[],
            r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 7","parameters":{"retry_after":7}}"#,
        );
        let telegram = channel(ChannelKind::Telegram {
            bot_token: token.into(),
            chat_id: "1".into(),
            api_url: limited.base.clone(),
        });
        let outcome = attempt(&telegram, &down()).await;
        assert_eq!((outcome.accepted, outcome.retry_after), (false, Some(Duration::from_secs(7))));
        // A refused connection says so, without the URL.
        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let telegram = channel(ChannelKind::Telegram { bot_token: token.into(), chat_id: "1".into(), api_url: base });
        let outcome = attempt(&telegram, &down()).await;
        assert_eq!((outcome.accepted, outcome.answer.as_str()), (false, "connection refused"));
    }

    #[actix_rt::test]
    async fn feishu_is_signed_and_needs_code_zero() {
        let rejected = receiver(
            200,
            &[],
            r#"{"code":19021,"data":{},"msg":"sign match fail or timestamp is not within one hour from current time"}"#,
        );
        let feishu = |base: &str| {
            channel(ChannelKind::Feishu {
                url: format!("{base}/open-apis/bot/v2/hook/0000-1111-2222-3333").into(),
                secret: Some("feishu-secret".into()),
            })
        };
        let outcome = attempt(&feishu(&rejected.base), &down()).await;
        assert!(!outcome.accepted);
        assert!(outcome.answer.starts_with(r#"HTTP 200: {"code":19021,"#), "{}", outcome.answer);
        let body = rejected.next().json();
        assert_eq!(body["msg_type"], "text");
        assert!(body["content"]["text"].as_str().unwrap().starts_with("🔴 88code / cc is down\n"));
        assert_eq!(body["timestamp"], "1700000000");
        // HMAC-SHA256 keyed by "1700000000\nfeishu-secret" over nothing (computed with Python).
        assert_eq!(body["sign"], "OrBzY1Y01Gq+HgJsl+7OfWcMVwc7YocohQm5iiZwjhU=");

        let ok = receiver(200, &[], r#"{"code":0,"data":{},"msg":"success"}"#);
        assert!(attempt(&feishu(&ok.base), &down()).await.accepted);
        let old = receiver(200, &[], r#"{"Extra":null,"StatusCode":0,"StatusMessage":"success"}"#);
        assert!(attempt(&feishu(&old.base), &down()).await.accepted);
        let unsigned = channel(ChannelKind::Feishu { url: format!("{}/hook/x", ok.base).into(), secret: None });
        assert!(attempt(&unsigned, &down()).await.accepted);
        let body = ok.next().json();
        let body = if body.get("sign").is_some() { ok.next().json() } else { body };
        assert!(body.get("sign").is_none() && body.get("timestamp").is_none(), "{body}");
    }

    #[actix_rt::test]
    async fn dingtalk_signs_in_the_query_and_needs_errcode_zero() {
        let fake = receiver(200, &[], r#"{"errcode":0,"errmsg":"ok"}"#);
        let dingtalk = channel(ChannelKind::Dingtalk {
            url: format!("{}/robot/send?access_token=abcdef0123456789", fake.base).into(),
            secret: Some("SECxyz".into()),
        });
        assert!(attempt(&dingtalk, &down()).await.accepted);
        let seen = fake.next();
        let (path, query) = seen.target.split_once('?').unwrap();
        assert_eq!(path, "/robot/send");
        assert!(query.ends_with("&sign=xh8ClKxXkGcVcMyoCVaoyF%2FwqY5Q4Hajbs0xYHUZLa4%3D"), "{query}");
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        let value = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(value("access_token"), "abcdef0123456789");
        assert_eq!(value("timestamp"), NOW_MS.to_string());
        let recomputed = base64::engine::general_purpose::STANDARD
            .encode(hex::decode(hmac_hex("SECxyz", format!("{NOW_MS}\nSECxyz").as_bytes())).unwrap());
        assert_eq!(value("sign"), recomputed);
        assert_eq!(seen.json(), json!({"msgtype": "text", "text": {"content": seen.json()["text"]["content"]}}));
        assert!(seen.json()["text"]["content"].as_str().unwrap().starts_with("🔴 88code / cc is down"));

        let rejected = receiver(200, &[], r#"{"errcode":310000,"errmsg":"sign not match"}"#);
        let dingtalk = channel(ChannelKind::Dingtalk {
            url: format!("{}/robot/send", rejected.base).into(),
            secret: Some("SECxyz".into()),
        });
        assert!(!attempt(&dingtalk, &down()).await.accepted);
        assert!(rejected.next().target.starts_with(&format!("/robot/send?timestamp={NOW_MS}&sign=")));
    }

    #[actix_rt::test]
    async fn wecom_needs_errcode_zero() {
        let fake = receiver(200, &[], r#"{"errcode":0,"errmsg":"ok"}"#);
        let wecom =
            channel(ChannelKind::Wecom { url: format!("{}/cgi-bin/webhook/send?key=693a91f6", fake.base).into() });
        assert!(attempt(&wecom, &down()).await.accepted);
        let seen = fake.next();
        assert_eq!(seen.target, "/cgi-bin/webhook/send?key=693a91f6");
        assert_eq!(seen.json()["msgtype"], "text");
        assert!(seen.json()["text"]["content"].as_str().unwrap().contains("Reason: server error"));
        let long = Message {
            event: EventKind::StormDown,
            monitor: None,
            monitors: (0..20)
                .map(|i| MonitorName { provider: "细".repeat(50), service: format!("s{i}"), channel: String::new() })
                .collect(),
            ..down()
        };
        assert!(attempt(&wecom, &long).await.accepted);
        let content = fake.next().json()["text"]["content"].as_str().unwrap().to_string();
        assert!(content.len() <= WECOM_MAX_BYTES && content.len() > 1_900, "{}", content.len());
        let rejected = receiver(200, &[], r#"{"errcode":93000,"errmsg":"invalid webhook url"}"#);
        let wecom =
            channel(ChannelKind::Wecom { url: format!("{}/cgi-bin/webhook/send?key=693a91f6", rejected.base).into() });
        let outcome = attempt(&wecom, &down()).await;
        assert!(!outcome.accepted);
        assert!(!outcome.answer.contains("693a91f6"), "{}", outcome.answer);
    }

    #[actix_rt::test]
    async fn ntfy_publishes_json_to_the_server_root() {
        let fake = receiver(200, &[], r#"{"id":"abc","event":"message"}"#);
        let ntfy = channel(ChannelKind::Ntfy {
            url: format!("{}/ntfy/llm-alerts", fake.base).into(),
            token: Some("tk_ntfytoken123".into()),
        });
        assert!(attempt(&ntfy, &down()).await.accepted);
        let seen = fake.next();
        assert_eq!(seen.target, "/ntfy/");
        assert_eq!(seen.header("authorization"), Some("Bearer tk_ntfytoken123"));
        let body = seen.json();
        assert_eq!(body["topic"], "llm-alerts");
        assert_eq!(body["title"], "🔴 88code / cc is down");
        assert!(body["message"].as_str().unwrap().starts_with("Reason: server error"));
        assert_eq!(body["priority"], 5);
        assert_eq!(body["tags"], json!(["rotating_light"]));
        assert_eq!(body["click"], "https://status.example/#/88code/cc");

        let up = Message { event: EventKind::Up, resolved_at: Some(1_796_068_800), ..down() };
        let ntfy = channel(ChannelKind::Ntfy { url: format!("{}/llm-alerts", fake.base).into(), token: None });
        assert!(attempt(&ntfy, &up).await.accepted);
        let seen = fake.next();
        assert_eq!((seen.target.as_str(), seen.header("authorization")), ("/", None));
        assert_eq!((&seen.json()["priority"], &seen.json()["tags"]), (&json!(3), &json!(["white_check_mark"])));
    }

    #[test]
    fn ntfy_urls_split_into_server_and_topic() {
        let rows = [
            ("https://ntfy.sh/my-topic", Ok(("https://ntfy.sh/", "my-topic"))),
            ("https://example.com/ntfy/alerts?x=1", Ok(("https://example.com/ntfy/", "alerts"))),
            ("https://ntfy.sh/my-topic/", Ok(("https://ntfy.sh/", "my-topic"))),
            ("https://ntfy.sh/", Err(())),
            ("https://ntfy.sh", Err(())),
            ("not a url", Err(())),
        ];
        for (url, expected) in rows {
            let got = ntfy_server_and_topic(url);
            match expected {
                Ok((server, topic)) => assert_eq!(got, Ok((server.to_string(), topic.to_string())), "{url}"),
                Err(()) => assert!(got.is_err(), "{url}"),
            }
        }
    }

    #[actix_rt::test]
    async fn a_429_retry_after_header_is_kept() {
        let fake = receiver(429, &[("Retry-After", "30")], "slow down");
        let slack = channel(ChannelKind::Slack { url: format!("{}/services/x", fake.base).into() });
        let outcome = attempt(&slack, &down()).await;
        assert_eq!(
            outcome,
            Attempt {
                accepted: false,
                retry_after: Some(Duration::from_secs(30)),
                answer: "HTTP 429: slow down".into(),
                permanent: false
            }
        );
    }

    #[actix_rt::test]
    async fn client_errors_are_permanent_server_errors_and_timeouts_are_not() {
        for (code, permanent) in
            [(400, true), (404, true), (403, true), (408, false), (429, false), (500, false), (503, false)]
        {
            let fake = receiver(code, &[], "no");
            let hook = channel(ChannelKind::Webhook { url: format!("{}/hook", fake.base).into(), secret: None });
            let outcome = attempt(&hook, &down()).await;
            assert_eq!((outcome.accepted, outcome.permanent), (false, permanent), "HTTP {code}");
        }
    }

    /// A channel's proxy that refuses the tunnel: the answer says so, and it is retried (not
    /// permanent: the receiver never saw the message).
    #[actix_rt::test]
    async fn a_proxy_refusal_is_the_answer_and_is_retried() {
        let proxy = receiver(407, &[("Proxy-Authenticate", "Basic realm=\"x\"")], "");
        let receiver_url = "http://receiver.invalid/hook";
        let mut hook = channel(ChannelKind::Webhook { url: receiver_url.into(), secret: None });
        let address = proxy.base.trim_start_matches("http://");
        hook.proxy = Some(crate::proxy::Proxy::parse(&format!("http://u:proxy-pass-77@{address}")).unwrap());
        let redactor = Redactor::new(hook.secrets());
        let client = client(hook.proxy.as_ref());
        let outcome = send(&hook, &down(), &CTX, &client, &redactor, NOW_MS).await;
        assert_eq!((outcome.accepted, outcome.permanent), (false, false));
        assert_eq!(outcome.answer, "proxy error: CONNECT: HTTP 407 Canned");
        let asked = proxy.seen.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!((asked.method.as_str(), asked.target.as_str()), ("CONNECT", "receiver.invalid:80"));
    }

    #[actix_rt::test]
    async fn a_redirect_is_refused_not_followed() {
        let fake = receiver(302, &[("Location", "/elsewhere")], "");
        let hook = channel(ChannelKind::Webhook { url: format!("{}/hook", fake.base).into(), secret: None });
        let outcome = attempt(&hook, &down()).await;
        assert!(!outcome.accepted);
        assert_eq!(outcome.answer, "HTTP 302: redirect refused");
        assert!(outcome.permanent, "a redirect will not go away by retrying");
        assert_eq!(fake.next().target, "/hook");
        assert!(fake.seen.recv_timeout(Duration::from_millis(300)).is_err(), "the redirect was followed");
    }

    #[actix_rt::test]
    async fn secrets_echoed_in_an_answer_are_redacted() {
        let url_token = "T0KEN0123456789abcdef";
        let fake =
            receiver(403, &[], format!("signature whsec-987654 does not match for /hooks/{url_token}\nforged: line"));
        let hook = channel(ChannelKind::Webhook {
            url: format!("{}/hooks/{url_token}", fake.base).into(),
            secret: Some("whsec-987654".into()),
        });
        let outcome = attempt(&hook, &down()).await;
        assert!(!outcome.accepted);
        assert_eq!(outcome.answer, "HTTP 403: signature [REDACTED] does not match for /hooks/[REDACTED] forged: line",);
    }

    #[actix_rt::test]
    async fn an_oversized_answer_is_read_only_up_to_the_limit() {
        let huge = format!("{{\"code\":0,\"pad\":\"{}\"}}", "x".repeat(1024 * 1024));
        let fake = receiver(200, &[], huge.clone());
        let hook = channel(ChannelKind::Webhook { url: format!("{}/hook", fake.base).into(), secret: None });
        let outcome = attempt(&hook, &down()).await;
        // A webhook only needs its 2xx; the answer says the body was cut.
        assert!(outcome.accepted);
        assert!(outcome.answer.starts_with("HTTP 200 (answer over 64 KiB, not read in full): {"), "{}", outcome.answer);
        assert!(outcome.answer.len() <= ANSWER_MAX_BYTES);
        // Feishu needs to read its JSON: a cut one is not accepted.
        let fake = receiver(200, &[], huge);
        let feishu = channel(ChannelKind::Feishu { url: format!("{}/hook", fake.base).into(), secret: None });
        assert!(!attempt(&feishu, &down()).await.accepted);
    }

    #[actix_rt::test]
    async fn a_receiver_that_never_answers_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        thread::spawn(move || {
            let held: Vec<TcpStream> = listener.incoming().take(1).filter_map(Result::ok).collect();
            thread::sleep(Duration::from_secs(3));
            drop(held);
        });
        let outgoing = Outgoing {
            url: format!("{base}/hook").into(),
            headers: Vec::new(),
            body: b"{}".to_vec(),
            rule: Rule::Status,
        };
        let started = std::time::Instant::now();
        let result = exchange(&test_client(), &outgoing, Duration::from_millis(200)).await;
        assert_eq!(result.unwrap_err(), "timed out after 200ms");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(timed_out(TIMEOUT), "timed out after 10s");
    }

    #[actix_rt::test]
    async fn an_invalid_url_is_refused_before_sending() {
        let hook =
            channel(ChannelKind::Webhook { url: "ftp://example.com/secret-path-0123456789".into(), secret: None });
        let outcome = attempt(&hook, &down()).await;
        assert_eq!(
            (outcome.accepted, outcome.answer.as_str()),
            (false, "the channel's URL is not a valid http(s) URL")
        );
    }

    /// What the test SMTP responder was told.
    #[derive(Debug, Default)]
    struct Mail {
        commands: Vec<String>,
        data: String,
    }

    /// Speaks just enough SMTP for one message, over one connection.
    fn smtp_responder(final_reply: &'static str) -> (u16, mpsc::Receiver<Mail>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let Ok((mut stream, _)) = listener.accept() else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut mail = Mail::default();
            let mut in_data = false;
            let _ = stream.write_all(b"220 fake.test ESMTP\r\n");
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                if in_data {
                    if line == ".\r\n" {
                        in_data = false;
                        let _ = stream.write_all(final_reply.as_bytes());
                    } else {
                        mail.data.push_str(&line);
                    }
                } else {
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    mail.commands.push(line.trim_end().to_string());
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 fake.test\r\n",
                        "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 OK\r\n",
                        "DATA" => {
                            in_data = true;
                            b"354 go ahead\r\n"
                        }
                        "QUIT" => {
                            let _ = stream.write_all(b"221 bye\r\n");
                            break;
                        }
                        _ => b"502 not implemented\r\n",
                    };
                    let _ = stream.write_all(reply);
                }
                line.clear();
            }
            let _ = tx.send(mail);
        });
        (port, rx)
    }

    /// The decoded value of a header of a message, unfolding lines and RFC 2047 words.
    fn mail_header(data: &str, name: &str) -> String {
        let unfolded = data.replace("\r\n ", " ").replace("\r\n\t", " ");
        let raw = unfolded
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in {data}"));
        // Whitespace between two encoded words is not part of the text (RFC 2047).
        let mut out = String::new();
        let mut previous_encoded = false;
        for word in raw.split(' ') {
            let decoded = word.strip_prefix("=?utf-8?b?").and_then(|w| w.strip_suffix("?=")).map(|encoded| {
                String::from_utf8(base64::engine::general_purpose::STANDARD.decode(encoded).unwrap()).unwrap()
            });
            let joined_words = previous_encoded && decoded.is_some();
            if !out.is_empty() && !joined_words {
                out.push(' ');
            }
            previous_encoded = decoded.is_some();
            out.push_str(decoded.as_deref().unwrap_or(word));
        }
        out
    }

    fn email(port: u16, from: &str) -> Channel {
        channel(ChannelKind::Email {
            host: "127.0.0.1".into(),
            port,
            tls: Tls::None,
            username: None,
            password: None,
            from: from.into(),
            to: vec!["ops@example.com".into(), "Oncall <oncall@example.com>".into()],
        })
    }

    #[actix_rt::test]
    async fn email_goes_through_smtp() {
        let (port, mail) = smtp_responder("250 2.0.0 queued as 42\r\n");
        let outcome = attempt(&email(port, "llm-monitor <monitor@example.com>"), &down()).await;
        assert_eq!(
            outcome,
            Attempt {
                accepted: true,
                retry_after: None,
                answer: "SMTP 250 2.0.0 queued as 42".into(),
                permanent: false
            }
        );
        let mail = mail.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(mail.commands.contains(&"MAIL FROM:<monitor@example.com>".to_string()), "{:?}", mail.commands);
        assert!(mail.commands.contains(&"RCPT TO:<ops@example.com>".to_string()));
        assert!(mail.commands.contains(&"RCPT TO:<oncall@example.com>".to_string()));
        assert_eq!(mail_header(&mail.data, "From"), "llm-monitor <monitor@example.com>");
        assert_eq!(mail_header(&mail.data, "To"), "ops@example.com, Oncall <oncall@example.com>");
        assert_eq!(mail_header(&mail.data, "Subject"), "🔴 88code / cc is down");
        assert!(mail.data.contains("text/plain; charset=utf-8"), "{}", mail.data);
    }

    #[actix_rt::test]
    async fn email_failures_say_what_went_wrong() {
        let outcome = attempt(&email(1, "not an address"), &down()).await;
        assert!(!outcome.accepted);
        assert!(outcome.answer.starts_with("invalid from address"), "{}", outcome.answer);
        let (port, _mail) = smtp_responder("550 5.7.1 relaying denied\r\n");
        let outcome = attempt(&email(port, "monitor@example.com"), &down()).await;
        assert!(!outcome.accepted);
        assert!(outcome.answer.starts_with("SMTP 550"), "{}", outcome.answer);
        assert!(outcome.answer.contains("relaying denied"), "{}", outcome.answer);
    }
}
