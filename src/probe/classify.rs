//! Pure classification of one probe's outcome into status + reason (SPEC section 4), and the
//! redaction every error detail goes through before it is stored or logged.

use std::sync::OnceLock;
use std::time::Duration;

use regex::Regex;
use serde::Serialize;

/// A probe's colour. The numbers are the API's and the database's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "i16")]
pub enum Status {
    Red = 0,
    Green = 1,
    Yellow = 2,
}

impl Status {
    pub fn from_i16(value: i16) -> Option<Status> {
        match value {
            0 => Some(Status::Red),
            1 => Some(Status::Green),
            2 => Some(Status::Yellow),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Status::Red => "red",
            Status::Green => "green",
            Status::Yellow => "yellow",
        }
    }
}

impl From<Status> for i16 {
    fn from(s: Status) -> i16 {
        s as i16
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Ok,
    Slow,
    RateLimited,
    ContentMismatch,
    AuthError,
    ClientError,
    ServerError,
    Timeout,
    NetworkError,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ok => "ok",
            Reason::Slow => "slow",
            Reason::RateLimited => "rate_limited",
            Reason::ContentMismatch => "content_mismatch",
            Reason::AuthError => "auth_error",
            Reason::ClientError => "client_error",
            Reason::ServerError => "server_error",
            Reason::Timeout => "timeout",
            Reason::NetworkError => "network_error",
        }
    }
}

/// What came back from one probe, before any judgement.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Response {
        http_code: u16,
        /// At most the body cap; `truncated` says whether more was on offer.
        body: Vec<u8>,
        truncated: bool,
        latency: Duration,
    },
    /// Nothing complete within the monitor's timeout.
    Timeout { latency: Duration },
    /// DNS, connect, TLS, or a failure while reading.
    NetworkError { detail: String, latency: Duration },
}

impl Outcome {
    pub fn latency(&self) -> Duration {
        match self {
            Outcome::Response { latency, .. }
            | Outcome::Timeout { latency }
            | Outcome::NetworkError { latency, .. } => *latency,
        }
    }

    pub fn http_code(&self) -> u16 {
        match self {
            Outcome::Response { http_code, .. } => *http_code,
            _ => 0,
        }
    }
}

/// What the checks of a monitor need to know.
#[derive(Debug, Clone)]
pub struct Checks<'a> {
    pub slow_latency: Duration,
    pub timeout: Duration,
    pub success_contains: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub status: Status,
    pub reason: Reason,
    /// Only for red results; not yet redacted.
    pub detail: Option<String>,
}

impl Verdict {
    fn green(reason: Reason) -> Self {
        Verdict {
            status: Status::Green,
            reason,
            detail: None,
        }
    }
    fn yellow(reason: Reason) -> Self {
        Verdict {
            status: Status::Yellow,
            reason,
            detail: None,
        }
    }
    fn red(reason: Reason, detail: String) -> Self {
        Verdict {
            status: Status::Red,
            reason,
            detail: Some(detail),
        }
    }
}

pub const MAX_DETAIL_BYTES: usize = 256;

pub fn classify(outcome: &Outcome, checks: &Checks<'_>) -> Verdict {
    match outcome {
        Outcome::Timeout { .. } => Verdict::red(
            Reason::Timeout,
            format!(
                "no complete response within {}",
                crate::config::duration::format(checks.timeout)
            ),
        ),
        Outcome::NetworkError { detail, .. } => Verdict::red(Reason::NetworkError, detail.clone()),
        Outcome::Response {
            http_code,
            body,
            truncated,
            latency,
        } => {
            let code = *http_code;
            match code {
                200..=299 => {
                    if let Some(problem) = content_problem(body, *truncated, checks.success_contains) {
                        return Verdict::red(Reason::ContentMismatch, format!("HTTP {code}: {problem}"));
                    }
                    if *latency > checks.slow_latency {
                        Verdict::yellow(Reason::Slow)
                    } else {
                        Verdict::green(Reason::Ok)
                    }
                }
                429 => Verdict::yellow(Reason::RateLimited),
                401 | 403 => Verdict::red(Reason::AuthError, http_detail(code, body)),
                300..=499 => Verdict::red(Reason::ClientError, http_detail(code, body)),
                // 5xx, and anything outside the registered ranges, is the server's fault.
                _ => Verdict::red(Reason::ServerError, http_detail(code, body)),
            }
        }
    }
}

/// Why a 2xx body does not count as an answer, if it does not.
fn content_problem(body: &[u8], truncated: bool, success_contains: Option<&str>) -> Option<String> {
    if truncated {
        return Some(format!(
            "body larger than the {} byte cap",
            crate::probe::request::MAX_BODY_BYTES
        ));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Some("empty body".to_string());
    }
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(error) = map.get("error").filter(|e| is_set(e)) {
            return Some(format!("JSON error in body: {}", error_message(error)));
        }
    }
    if let Some(needle) = success_contains {
        let text = String::from_utf8_lossy(body);
        if !text.contains(needle) {
            return Some(format!("body lacks {needle:?}"));
        }
    }
    None
}

fn is_set(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null | serde_json::Value::Bool(false) => false,
        serde_json::Value::String(s) => !s.is_empty(),
        serde_json::Value::Object(m) => !m.is_empty(),
        _ => true,
    }
}

/// The human part of an `error` value: `error.message` if there is one.
fn error_message(error: &serde_json::Value) -> String {
    match error {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(m) => match m.get("message") {
            Some(serde_json::Value::String(s)) => s.clone(),
            _ => error.to_string(),
        },
        other => other.to_string(),
    }
}

/// `HTTP 502: <what the body says>`, preferring a JSON error message over raw text.
fn http_detail(code: u16, body: &[u8]) -> String {
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) if map.contains_key("error") => error_message(&map["error"]),
        Ok(serde_json::Value::Object(map)) if map.contains_key("message") => {
            error_message(&serde_json::Value::Object(map))
        }
        _ => String::from_utf8_lossy(&body[..body.len().min(1024)]).into_owned(),
    };
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        format!("HTTP {code}")
    } else {
        format!("HTTP {code}: {text}")
    }
}

fn token_patterns() -> &'static [(Regex, &'static str)] {
    static PATTERNS: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        vec![
            (
                Regex::new(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=\-]+").expect("static regex"),
                "Bearer [REDACTED]",
            ),
            (
                Regex::new(r"\bsk-[A-Za-z0-9_\-]{3,}").expect("static regex"),
                "sk-[REDACTED]",
            ),
        ]
    })
}

/// Removes every secret and anything that looks like a bearer or `sk-` token, then cuts to
/// [`MAX_DETAIL_BYTES`] (after redaction, so no prefix of a secret survives a cut).
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    let mut secrets: Vec<&str> = secrets.iter().copied().filter(|s| !s.is_empty()).collect();
    // Longer first, so a secret containing another is removed whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for secret in secrets {
        out = out.replace(secret, "[REDACTED]");
    }
    for (pattern, replacement) in token_patterns() {
        out = pattern.replace_all(&out, *replacement).into_owned();
    }
    truncate_at_char(&mut out, MAX_DETAIL_BYTES);
    out
}

fn truncate_at_char(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(code: u16, body: &str, latency_ms: u64) -> Outcome {
        Outcome::Response {
            http_code: code,
            body: body.as_bytes().to_vec(),
            truncated: false,
            latency: Duration::from_millis(latency_ms),
        }
    }

    #[test]
    fn classification_table() {
        let checks = Checks {
            slow_latency: Duration::from_millis(500),
            timeout: Duration::from_secs(2),
            success_contains: None,
        };
        let contains = Checks {
            success_contains: Some("choices"),
            ..checks.clone()
        };
        let big = Outcome::Response {
            http_code: 200,
            body: vec![b'a'; 10],
            truncated: true,
            latency: Duration::ZERO,
        };
        let rows: Vec<(&str, Outcome, &Checks, Status, Reason)> = vec![
            (
                "2xx fast",
                response(200, "{\"choices\":[]}", 100),
                &checks,
                Status::Green,
                Reason::Ok,
            ),
            (
                "204 with text",
                response(204, "ok", 100),
                &checks,
                Status::Green,
                Reason::Ok,
            ),
            (
                "at the slow limit",
                response(200, "ok", 500),
                &checks,
                Status::Green,
                Reason::Ok,
            ),
            (
                "2xx slow",
                response(200, "ok", 501),
                &checks,
                Status::Yellow,
                Reason::Slow,
            ),
            (
                "429",
                response(429, "slow down", 10),
                &checks,
                Status::Yellow,
                Reason::RateLimited,
            ),
            (
                "empty body",
                response(200, "", 10),
                &checks,
                Status::Red,
                Reason::ContentMismatch,
            ),
            (
                "whitespace body",
                response(200, " \n", 10),
                &checks,
                Status::Red,
                Reason::ContentMismatch,
            ),
            (
                "JSON error object",
                response(200, "{\"error\":{\"message\":\"quota\"}}", 10),
                &checks,
                Status::Red,
                Reason::ContentMismatch,
            ),
            (
                "JSON error string",
                response(200, "{\"error\":\"quota\"}", 10),
                &checks,
                Status::Red,
                Reason::ContentMismatch,
            ),
            (
                "JSON error null is fine",
                response(200, "{\"error\":null,\"x\":1}", 10),
                &checks,
                Status::Green,
                Reason::Ok,
            ),
            (
                "success_contains present",
                response(200, "{\"choices\":[1]}", 10),
                &contains,
                Status::Green,
                Reason::Ok,
            ),
            (
                "success_contains missing",
                response(200, "<html>gateway</html>", 10),
                &contains,
                Status::Red,
                Reason::ContentMismatch,
            ),
            ("body over cap", big, &checks, Status::Red, Reason::ContentMismatch),
            (
                "slow but wrong is red",
                response(200, "", 900),
                &checks,
                Status::Red,
                Reason::ContentMismatch,
            ),
            (
                "401",
                response(401, "{\"error\":{\"message\":\"bad key\"}}", 10),
                &checks,
                Status::Red,
                Reason::AuthError,
            ),
            ("403", response(403, "", 10), &checks, Status::Red, Reason::AuthError),
            ("404", response(404, "", 10), &checks, Status::Red, Reason::ClientError),
            ("400", response(400, "", 10), &checks, Status::Red, Reason::ClientError),
            ("302", response(302, "", 10), &checks, Status::Red, Reason::ClientError),
            ("301", response(301, "", 10), &checks, Status::Red, Reason::ClientError),
            ("500", response(500, "", 10), &checks, Status::Red, Reason::ServerError),
            ("503", response(503, "", 10), &checks, Status::Red, Reason::ServerError),
            ("599", response(599, "", 10), &checks, Status::Red, Reason::ServerError),
            (
                "timeout",
                Outcome::Timeout {
                    latency: Duration::from_secs(2),
                },
                &checks,
                Status::Red,
                Reason::Timeout,
            ),
            (
                "network",
                Outcome::NetworkError {
                    detail: "connect: refused".into(),
                    latency: Duration::ZERO,
                },
                &checks,
                Status::Red,
                Reason::NetworkError,
            ),
        ];
        for (name, outcome, checks, status, reason) in rows {
            let verdict = classify(&outcome, checks);
            assert_eq!((verdict.status, verdict.reason), (status, reason), "{name}");
            assert_eq!(
                verdict.detail.is_some(),
                status == Status::Red,
                "{name}: detail only for red"
            );
        }
    }

    #[test]
    fn details_say_what_went_wrong() {
        let checks = Checks {
            slow_latency: Duration::from_secs(1),
            timeout: Duration::from_secs(3),
            success_contains: Some("choices"),
        };
        let detail = |o: Outcome| classify(&o, &checks).detail.unwrap();
        assert_eq!(
            detail(response(502, "{\"error\":{\"message\":\"upstream  down\"}}", 1)),
            "HTTP 502: upstream down"
        );
        assert_eq!(
            detail(response(500, "<h1>Bad\n gateway</h1>", 1)),
            "HTTP 500: <h1>Bad gateway</h1>"
        );
        assert_eq!(detail(response(404, "", 1)), "HTTP 404");
        assert_eq!(detail(response(200, "{}", 1)), "HTTP 200: body lacks \"choices\"");
        assert_eq!(
            detail(Outcome::Timeout {
                latency: Duration::ZERO
            }),
            "no complete response within 3s"
        );
    }

    #[test]
    fn redaction_removes_keys_and_tokens() {
        let cases = [
            ("key sk-live-123456 bad", vec![], "key sk-[REDACTED] bad"),
            (
                "Authorization: Bearer abc.def-ghi",
                vec![],
                "Authorization: Bearer [REDACTED]",
            ),
            ("bearer   xyz", vec![], "Bearer [REDACTED]"),
            (
                "invalid key my-secret-key!",
                vec!["my-secret-key"],
                "invalid key [REDACTED]!",
            ),
            ("ab abc", vec!["ab", "abc"], "[REDACTED] [REDACTED]"),
            ("nothing here", vec!["zzz"], "nothing here"),
        ];
        for (input, secrets, expected) in cases {
            assert_eq!(redact(input, &secrets), expected, "{input}");
        }
    }

    #[test]
    fn redaction_cuts_after_removing() {
        let secret = "S".repeat(40);
        let text = format!("{}{}", "x".repeat(240), secret);
        let out = redact(&text, &[&secret]);
        assert!(!out.contains('S'), "{out}");
        assert!(out.len() <= MAX_DETAIL_BYTES);
        let multibyte = "é".repeat(300);
        let out = redact(&multibyte, &[]);
        assert!(out.len() <= MAX_DETAIL_BYTES && out.chars().all(|c| c == 'é'));
    }
}
