//! Pure classification of one probe's outcome into status + reason (SPEC section 4): the body
//! checks, the LLM checks (model, challenge) and the latency thresholds, in that order.

use std::time::Duration;

use super::body::{Body, MAX_BODY_BYTES};
use super::challenge::Challenge;
use super::detail::{http_detail, lossy_prefix};
use super::model::same_model;
pub use super::outcome::Outcome;
use super::sse::{self, Answer};
use crate::domain::{Reason, Status};
use crate::secret::Redactor;

/// What the checks of a monitor need to know.
#[derive(Debug, Clone, Default)]
pub struct Checks<'a> {
    pub slow_latency: Duration,
    pub slow_ttft: Option<Duration>,
    pub timeout: Duration,
    pub success_contains: Option<&'a str>,
    /// The reply must be a recognisable LLM answer.
    pub llm: bool,
    pub expect_model: Option<&'a str>,
    /// `expect_model` was set explicitly: a reply that names no model fails it too.
    pub require_model: bool,
    pub challenge: Option<&'a Challenge>,
    /// A stream check: the challenge asked to count from 1 to 40 after the answer.
    pub counted: bool,
    /// The monitor's secrets: every piece of upstream text in a detail is redacted before it
    /// is cut.
    pub redactor: Option<&'a Redactor>,
}

impl Checks<'_> {
    fn redactor(&self) -> &Redactor {
        static NONE: std::sync::OnceLock<Redactor> = std::sync::OnceLock::new();
        self.redactor.unwrap_or_else(|| NONE.get_or_init(Redactor::default))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub status: Status,
    pub reason: Reason,
    /// Only for red results. Upstream text in it is already redacted and cut; the whole goes
    /// through [`Redactor::excerpt`] once more before it is stored.
    pub detail: Option<String>,
}

impl Verdict {
    fn green(reason: Reason) -> Self {
        Verdict { status: Status::Green, reason, detail: None }
    }
    fn yellow(reason: Reason) -> Self {
        Verdict { status: Status::Yellow, reason, detail: None }
    }
    fn red(reason: Reason, detail: String) -> Self {
        Verdict { status: Status::Red, reason, detail: Some(detail) }
    }
}

pub const MAX_DETAIL_BYTES: usize = 256;

/// Judges an outcome; `answer` is `outcome.answer()`, passed in so it is parsed once.
pub fn classify(outcome: &Outcome, answer: Option<&Answer>, checks: &Checks<'_>) -> Verdict {
    match outcome {
        Outcome::Timeout { .. } => Verdict::red(
            Reason::Timeout,
            format!("no complete response within {}", crate::config::duration::format(checks.timeout)),
        ),
        Outcome::NetworkError { detail, .. } => {
            Verdict::red(Reason::NetworkError, checks.redactor().excerpt(detail, MAX_DETAIL_BYTES))
        }
        // Red, as the target could not be reached; the detail is the proxy's own answer.
        Outcome::ProxyError { detail, .. } => {
            Verdict::red(Reason::ProxyError, checks.redactor().excerpt(detail, MAX_DETAIL_BYTES))
        }
        Outcome::Response { http_code, body, latency, stream, .. } => {
            let code = *http_code;
            match code {
                // No Content: nothing to check for a plain health check; an LLM reply or an
                // expected text cannot be in it.
                204 | 205 if !checks.llm && checks.success_contains.is_none() && body.is_blank() => {
                    if *latency > checks.slow_latency {
                        Verdict::yellow(Reason::Slow)
                    } else {
                        Verdict::green(Reason::Ok)
                    }
                }
                200..=299 => {
                    let problem = if body.over_cap {
                        Some((Reason::ContentMismatch, format!("body larger than the {MAX_BODY_BYTES} byte cap")))
                    } else if let Some(stream) = stream {
                        stream_problem(stream, checks.redactor())
                    } else {
                        body_problem(body, answer, checks.llm, checks.redactor())
                    };
                    let problem = problem
                        .or_else(|| answer.and_then(|a| answer_problem(a, checks)))
                        .or_else(|| contains_problem(body, checks.success_contains));
                    if let Some((reason, detail)) = problem {
                        return Verdict::red(reason, format!("HTTP {code}: {detail}"));
                    }
                    let ttft = answer.and_then(|a| a.first_token_at);
                    let slow_start = checks.slow_ttft.zip(ttft).is_some_and(|(limit, t)| t > limit);
                    if *latency > checks.slow_latency || slow_start {
                        Verdict::yellow(Reason::Slow)
                    } else {
                        Verdict::green(Reason::Ok)
                    }
                }
                429 => Verdict::yellow(Reason::RateLimited),
                401 | 403 => Verdict::red(Reason::AuthError, http_detail(code, &body.kept, checks.redactor())),
                300..=499 => Verdict::red(Reason::ClientError, http_detail(code, &body.kept, checks.redactor())),
                // 5xx, and anything outside the registered ranges, is the server's fault.
                _ => Verdict::red(Reason::ServerError, http_detail(code, &body.kept, checks.redactor())),
            }
        }
    }
}

fn stream_problem(stream: &Answer, redactor: &Redactor) -> Option<(Reason, String)> {
    if let Some(malformed) = &stream.malformed {
        return Some((Reason::ContentMismatch, malformed.clone()));
    }
    if let Some(error) = &stream.upstream_error {
        return Some((Reason::UpstreamError, format!("error event in stream: {}", redactor.excerpt(error, 200))));
    }
    if stream.recognised == 0 {
        return Some((Reason::ContentMismatch, "an event stream with no recognisable LLM events".to_string()));
    }
    if !stream.complete {
        return Some((
            Reason::StreamIncomplete,
            format!("the stream ended without its terminator after {} bytes of text", stream.text.len()),
        ));
    }
    None
}

/// Why a whole (non-streamed) 2xx body does not count as an answer, if it does not.
fn body_problem(body: &Body, answer: Option<&Answer>, llm: bool, redactor: &Redactor) -> Option<(Reason, String)> {
    if body.is_blank() {
        return Some((Reason::ContentMismatch, "empty body".to_string()));
    }
    let json = body.whole.then(|| serde_json::from_slice::<serde_json::Value>(&body.kept).ok()).flatten();
    if let Some(serde_json::Value::Object(map)) = json {
        if let Some(error) = sse::is_error(map.get("error")) {
            let message = redactor.excerpt(&sse::error_message(error), MAX_DETAIL_BYTES);
            return Some((Reason::ContentMismatch, format!("JSON error in body: {message}")));
        }
    }
    if llm && answer.is_none() {
        let start = redactor.excerpt(&lossy_prefix(&body.kept, 4096), 80);
        return Some((Reason::ContentMismatch, format!("not a recognisable LLM reply: {start}")));
    }
    None
}

/// Model identity, the challenge, and an answer with no text at all.
fn answer_problem(answer: &Answer, checks: &Checks<'_>) -> Option<(Reason, String)> {
    match (checks.expect_model, answer.model.as_deref()) {
        (Some(expected), Some(reported)) if !same_model(expected, reported) => {
            let reported = checks.redactor().excerpt(reported, 128);
            return Some((Reason::ModelMismatch, format!("expected model {expected}, the reply says {reported}")));
        }
        (Some(expected), None) if checks.require_model => {
            return Some((Reason::ModelMismatch, format!("expected model {expected}, the reply names none")));
        }
        _ => {}
    }
    if let Some(challenge) = checks.challenge.filter(|_| checks.counted) {
        if !challenge.is_answered_with_count(&answer.text) {
            let said = checks.redactor().excerpt(&answer.text, 60);
            return Some((
                Reason::WrongAnswer,
                format!("asked for {} and a count from 1 to 40, the reply was \"{said}\"", challenge.answer),
            ));
        }
    } else if let Some(challenge) = checks.challenge {
        if !challenge.is_answered_by(&answer.text) {
            let said = checks.redactor().excerpt(&answer.text, 60);
            return Some((Reason::WrongAnswer, format!("asked for {}, the reply was \"{said}\"", challenge.answer)));
        }
    } else if checks.llm && answer.text.trim().is_empty() {
        return Some((Reason::ContentMismatch, "the reply has no text".to_string()));
    }
    None
}

fn contains_problem(body: &Body, success_contains: Option<&str>) -> Option<(Reason, String)> {
    let needle = success_contains?;
    (!body.has(needle)).then(|| (Reason::ContentMismatch, format!("body lacks {needle:?}")))
}

#[cfg(test)]
mod tests {
    use super::super::measure::{metrics, Measurements};
    use super::*;

    fn response(code: u16, body: &str, latency_ms: u64) -> Outcome {
        Outcome::Response {
            http_code: code,
            body: Body::whole(body),
            latency: Duration::from_millis(latency_ms),
            ttfb: Duration::from_millis(latency_ms / 2),
            stream: None,
        }
    }

    fn stream(text: &str, model: &str, complete: bool, first_token_ms: u64, latency_ms: u64) -> Outcome {
        Outcome::Response {
            http_code: 200,
            body: Body::default(),
            latency: Duration::from_millis(latency_ms),
            ttfb: Duration::from_millis(5),
            stream: Some(Box::new(Answer {
                text: text.into(),
                model: Some(model.into()),
                first_token_at: Some(Duration::from_millis(first_token_ms)),
                complete,
                recognised: 3,
                ..Answer::default()
            })),
        }
    }

    fn judge(outcome: &Outcome, checks: &Checks<'_>) -> Verdict {
        classify(outcome, outcome.answer().as_ref(), checks)
    }

    #[test]
    fn classification_table() {
        let checks =
            Checks { slow_latency: Duration::from_millis(500), timeout: Duration::from_secs(2), ..Checks::default() };
        let contains = Checks { success_contains: Some("choices"), ..checks.clone() };
        let big = Outcome::Response {
            http_code: 200,
            body: Body { kept: vec![b'a'; 10], over_cap: true, len: MAX_BODY_BYTES, ..Body::default() },
            latency: Duration::ZERO,
            ttfb: Duration::ZERO,
            stream: None,
        };
        let rows: Vec<(&str, Outcome, &Checks, Status, Reason)> = vec![
            ("2xx fast", response(200, "{\"choices\":[]}", 100), &checks, Status::Green, Reason::Ok),
            ("204 with text", response(204, "ok", 100), &checks, Status::Green, Reason::Ok),
            ("at the slow limit", response(200, "ok", 500), &checks, Status::Green, Reason::Ok),
            ("2xx slow", response(200, "ok", 501), &checks, Status::Yellow, Reason::Slow),
            ("429", response(429, "slow down", 10), &checks, Status::Yellow, Reason::RateLimited),
            ("empty body", response(200, "", 10), &checks, Status::Red, Reason::ContentMismatch),
            ("whitespace body", response(200, " \n", 10), &checks, Status::Red, Reason::ContentMismatch),
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
            ("success_contains present", response(200, "{\"choices\":[1]}", 10), &contains, Status::Green, Reason::Ok),
            (
                "success_contains missing",
                response(200, "<html>gateway</html>", 10),
                &contains,
                Status::Red,
                Reason::ContentMismatch,
            ),
            ("body over cap", big, &checks, Status::Red, Reason::ContentMismatch),
            ("slow but wrong is red", response(200, "", 900), &checks, Status::Red, Reason::ContentMismatch),
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
            ("timeout", Outcome::Timeout { latency: Duration::from_secs(2) }, &checks, Status::Red, Reason::Timeout),
            (
                "network",
                Outcome::NetworkError { detail: "connect: refused".into(), latency: Duration::ZERO },
                &checks,
                Status::Red,
                Reason::NetworkError,
            ),
        ];
        for (name, outcome, checks, status, reason) in rows {
            let verdict = judge(&outcome, checks);
            assert_eq!((verdict.status, verdict.reason), (status, reason), "{name}");
            assert_eq!(verdict.detail.is_some(), status == Status::Red, "{name}: detail only for red");
        }
    }

    #[test]
    fn llm_checks_table() {
        let challenge = Challenge::from_operands(37, 48);
        let llm = Checks {
            slow_latency: Duration::from_secs(5),
            slow_ttft: Some(Duration::from_millis(800)),
            timeout: Duration::from_secs(10),
            llm: true,
            expect_model: Some("claude-3-opus"),
            challenge: Some(&challenge),
            ..Checks::default()
        };
        let no_challenge = Checks { challenge: None, ..llm.clone() };
        let required = Checks { require_model: true, ..llm.clone() };
        let chat = |content: &str, model: &str| {
            response(200, &format!(r#"{{"model":"{model}","choices":[{{"message":{{"content":"{content}"}}}}]}}"#), 100)
        };
        let with_error = Outcome::Response {
            http_code: 200,
            body: Body::default(),
            latency: Duration::from_millis(10),
            ttfb: Duration::ZERO,
            stream: Some(Box::new(Answer {
                upstream_error: Some("Overloaded".into()),
                recognised: 1,
                ..Answer::default()
            })),
        };
        let unrecognised = Outcome::Response {
            http_code: 200,
            body: Body::whole("data: hi"),
            latency: Duration::from_millis(10),
            ttfb: Duration::ZERO,
            stream: Some(Box::new(Answer::default())),
        };
        let rows: Vec<(&str, Outcome, &Checks, Status, Reason)> = vec![
            ("right answer", chat("85", "claude-3-opus-20240229"), &llm, Status::Green, Reason::Ok),
            ("wrong answer", chat("84", "claude-3-opus"), &llm, Status::Red, Reason::WrongAnswer),
            ("cached answer", chat("42", "claude-3-opus"), &llm, Status::Red, Reason::WrongAnswer),
            ("swapped model", chat("85", "claude-3-haiku-20240307"), &llm, Status::Red, Reason::ModelMismatch),
            (
                "html page",
                response(200, "<html><body>502 Bad Gateway</body></html>", 10),
                &llm,
                Status::Red,
                Reason::ContentMismatch,
            ),
            ("json but not an llm", response(200, "{\"ok\":true}", 10), &llm, Status::Red, Reason::ContentMismatch),
            (
                "empty text, no challenge",
                chat("", "claude-3-opus"),
                &no_challenge,
                Status::Red,
                Reason::ContentMismatch,
            ),
            ("any text, no challenge", chat("hello", "claude-3-opus"), &no_challenge, Status::Green, Reason::Ok),
            ("stream ok", stream("85", "claude-3-opus", true, 300, 600), &llm, Status::Green, Reason::Ok),
            ("stream slow start", stream("85", "claude-3-opus", true, 900, 1000), &llm, Status::Yellow, Reason::Slow),
            (
                "stream cut off",
                stream("8", "claude-3-opus", false, 300, 600),
                &llm,
                Status::Red,
                Reason::StreamIncomplete,
            ),
            ("stream error event", with_error, &llm, Status::Red, Reason::UpstreamError),
            ("stream of nothing known", unrecognised, &llm, Status::Red, Reason::ContentMismatch),
            ("stream wrong model", stream("85", "gpt-4o", true, 300, 600), &llm, Status::Red, Reason::ModelMismatch),
            (
                "no model named, not required",
                response(200, r#"{"choices":[{"message":{"content":"85"}}]}"#, 10),
                &llm,
                Status::Green,
                Reason::Ok,
            ),
            (
                "no model named, required",
                response(200, r#"{"choices":[{"message":{"content":"85"}}]}"#, 10),
                &required,
                Status::Red,
                Reason::ModelMismatch,
            ),
        ];
        for (name, outcome, checks, status, reason) in rows {
            let verdict = judge(&outcome, checks);
            assert_eq!((verdict.status, verdict.reason), (status, reason), "{name}: {:?}", verdict.detail);
        }
    }

    #[test]
    fn metrics_from_usage_and_text() {
        let mut outcome = stream("85", "m", true, 100, 600);
        if let Outcome::Response { stream: Some(a), .. } = &mut outcome {
            a.completion_tokens = Some(50);
            a.prompt_tokens = Some(20);
        }
        let m = metrics(&outcome, outcome.answer().as_ref());
        assert_eq!(
            (m.ttfb_ms, m.ttft_ms, m.prompt_tokens, m.completion_tokens),
            (Some(5), Some(100), Some(20), Some(50))
        );
        assert_eq!(m.tokens_per_s, Some(100.0));
        assert_eq!(m.model.as_deref(), Some("m"));
        // No usage: four characters a token, over the whole latency for a non-streamed reply.
        let reply = response(200, r#"{"model":"m","choices":[{"message":{"content":"abcdefgh"}}]}"#, 200);
        let m = metrics(&reply, reply.answer().as_ref());
        assert_eq!((m.ttft_ms, m.tokens_per_s), (None, Some(10.0)));
        assert_eq!(metrics(&Outcome::Timeout { latency: Duration::ZERO }, None), Measurements::default());
    }

    #[test]
    fn details_say_what_went_wrong() {
        let checks = Checks {
            slow_latency: Duration::from_secs(1),
            timeout: Duration::from_secs(3),
            success_contains: Some("choices"),
            ..Checks::default()
        };
        let detail = |o: Outcome| judge(&o, &checks).detail.unwrap();
        assert_eq!(detail(response(502, "{\"error\":{\"message\":\"upstream  down\"}}", 1)), "HTTP 502: upstream down");
        assert_eq!(detail(response(500, "<h1>Bad\n gateway</h1>", 1)), "HTTP 500: <h1>Bad gateway</h1>");
        assert_eq!(detail(response(404, "", 1)), "HTTP 404");
        let openai = r#"{"error":{"message":"Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.","type":"invalid_request_error","param":"max_tokens","code":"unsupported_parameter"}}"#;
        assert_eq!(
            detail(response(400, openai, 1)),
            "HTTP 400: parameter max_tokens not supported by this model: Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."
        );
        let no_param = r#"{"error":{"message":"Unsupported value: 'temperature' does not support 0 with this model.","code":null}}"#;
        assert!(detail(response(400, no_param, 1)).starts_with("HTTP 400: parameter temperature not supported"));
        assert_eq!(detail(response(200, "{}", 1)), "HTTP 200: body lacks \"choices\"");
        assert_eq!(detail(Outcome::Timeout { latency: Duration::ZERO }), "no complete response within 3s");
        let challenge = Challenge::from_operands(1, 2);
        let llm = Checks { challenge: Some(&challenge), llm: true, expect_model: Some("a"), ..checks.clone() };
        let wrong = response(200, r#"{"model":"a","choices":[{"message":{"content":"4"}}]}"#, 1);
        assert_eq!(judge(&wrong, &llm).detail.unwrap(), "HTTP 200: asked for 3, the reply was \"4\"");
        let swapped = response(200, r#"{"model":"b","choices":[{"message":{"content":"3"}}]}"#, 1);
        assert_eq!(judge(&swapped, &llm).detail.unwrap(), "HTTP 200: expected model a, the reply says b");
    }
}
