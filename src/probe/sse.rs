//! Reads an LLM's answer out of a response, streamed (`text/event-stream`) or not: OpenAI chat
//! chunks, OpenAI Responses events, Anthropic events and Gemini chunks. Incremental (fed chunk
//! by chunk as they arrive, so time to first token is measured where it happens), bounded
//! (line length, reassembled text) and total: any input gives an [`Answer`], never a panic.

use std::time::Duration;

use serde_json::Value;

/// Longest SSE line accepted; a longer one fails the stream (a real chunk is far smaller).
pub const MAX_LINE_BYTES: usize = 256 * 1024;
/// The reassembled text is kept up to this size (the checks need only its beginning).
pub const MAX_TEXT_BYTES: usize = 64 * 1024;

/// What an LLM said and reported about itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    pub text: String,
    /// The model the response says served it.
    pub model: Option<String>,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    /// Since the request was sent: when the first non-empty piece of text arrived (streams only).
    pub first_token_at: Option<Duration>,
    /// The stream ended with its proper terminator (`[DONE]`, `message_stop`,
    /// `response.completed`, a finish reason); always true for a whole JSON body.
    pub complete: bool,
    /// An error the upstream reported in band (an `error` event or object).
    pub upstream_error: Option<String>,
    /// Why the input could not be read as a stream at all.
    pub malformed: Option<String>,
    /// How many events were recognised as one of the four families.
    pub recognised: usize,
}

impl Answer {
    fn push_text(&mut self, piece: &str, at: Option<Duration>) {
        if piece.is_empty() {
            return;
        }
        if self.first_token_at.is_none() {
            self.first_token_at = at;
        }
        let room = MAX_TEXT_BYTES.saturating_sub(self.text.len());
        if room > 0 {
            let mut cut = piece.len().min(room);
            while !piece.is_char_boundary(cut) {
                cut -= 1;
            }
            self.text.push_str(&piece[..cut]);
        }
    }

    fn set_model(&mut self, value: Option<&Value>) {
        if self.model.is_none() {
            // Kept whole (a line is bounded): cutting before redaction could keep part of a key.
            if let Some(model) = value.and_then(Value::as_str).filter(|m| !m.is_empty()) {
                self.model = Some(model.to_string());
            }
        }
    }

    fn error(&mut self, error: &Value) {
        if self.upstream_error.is_none() {
            // Kept whole (a line is bounded); redacted, then cut, when it becomes a detail.
            self.upstream_error = Some(error_message(error));
        }
    }
}

fn tokens(value: Option<&Value>) -> Option<u64> {
    value.and_then(Value::as_u64)
}

/// An `error` value that says something: not null, false, "" or {}.
pub(crate) fn is_error(value: Option<&Value>) -> Option<&Value> {
    value.filter(|v| match v {
        Value::Null | Value::Bool(false) => false,
        Value::String(s) => !s.is_empty(),
        Value::Object(m) => !m.is_empty(),
        _ => true,
    })
}

/// The human part of an `error` value: `error.message` if there is one.
pub(crate) fn error_message(error: &Value) -> String {
    match error {
        Value::String(s) => s.clone(),
        Value::Object(map) => match map.get("message") {
            Some(Value::String(s)) => s.clone(),
            _ => error.to_string(),
        },
        other => other.to_string(),
    }
}

/// Applies one streamed event (its SSE `event:` name, if any, and its JSON data).
fn apply_event(answer: &mut Answer, name: &str, data: &Value, at: Duration) {
    let kind = data.get("type").and_then(Value::as_str).unwrap_or(name);
    let mut matched = true;
    match kind {
        // Anthropic Messages.
        "message_start" => {
            answer.set_model(data.pointer("/message/model"));
            answer.prompt_tokens = tokens(data.pointer("/message/usage/input_tokens")).or(answer.prompt_tokens);
        }
        "content_block_start" => {
            if let Some(text) = data.pointer("/content_block/text").and_then(Value::as_str) {
                answer.push_text(text, Some(at));
            }
        }
        "content_block_delta" => {
            if let Some(text) = data.pointer("/delta/text").and_then(Value::as_str) {
                answer.push_text(text, Some(at));
            }
        }
        "message_delta" => {
            answer.completion_tokens = tokens(data.pointer("/usage/output_tokens")).or(answer.completion_tokens);
        }
        "message_stop" => answer.complete = true,
        "content_block_stop" | "ping" => {}
        // OpenAI Responses.
        "response.created" | "response.in_progress" => answer.set_model(data.pointer("/response/model")),
        "response.output_text.delta" => {
            if let Some(text) = data.get("delta").and_then(Value::as_str) {
                answer.push_text(text, Some(at));
            }
        }
        "response.completed" | "response.incomplete" => {
            answer.set_model(data.pointer("/response/model"));
            answer.prompt_tokens = tokens(data.pointer("/response/usage/input_tokens")).or(answer.prompt_tokens);
            answer.completion_tokens =
                tokens(data.pointer("/response/usage/output_tokens")).or(answer.completion_tokens);
            answer.complete = true;
        }
        "response.failed" => {
            let error = data.pointer("/response/error").cloned().unwrap_or(Value::String("response failed".into()));
            answer.error(&error);
        }
        "error" => answer.error(data.get("error").unwrap_or(data)),
        other => matched = other.starts_with("response."),
    }
    if kind.starts_with("response.") {
        answer.recognised += 1;
        return;
    }
    // OpenAI chat completion chunks.
    if let Some(choices) = data.get("choices").and_then(Value::as_array) {
        matched = true;
        answer.set_model(data.get("model"));
        for choice in choices {
            if let Some(text) = choice.pointer("/delta/content").and_then(Value::as_str) {
                answer.push_text(text, Some(at));
            }
            if choice.get("finish_reason").is_some_and(|f| !f.is_null()) {
                answer.complete = true;
            }
        }
    }
    // Gemini chunks.
    if let Some(candidates) = data.get("candidates").and_then(Value::as_array) {
        matched = true;
        answer.set_model(data.get("modelVersion"));
        for candidate in candidates {
            gemini_parts(answer, candidate, Some(at));
            if candidate.get("finishReason").is_some_and(|f| !f.is_null()) {
                answer.complete = true;
            }
        }
    }
    // Usage, wherever the family puts it.
    if let Some(usage) = data.get("usage").filter(|u| u.is_object()) {
        matched = true;
        answer.prompt_tokens = tokens(usage.get("prompt_tokens")).or(answer.prompt_tokens);
        answer.completion_tokens = tokens(usage.get("completion_tokens")).or(answer.completion_tokens);
    }
    if let Some(usage) = data.get("usageMetadata") {
        matched = true;
        answer.prompt_tokens = tokens(usage.get("promptTokenCount")).or(answer.prompt_tokens);
        answer.completion_tokens = tokens(usage.get("candidatesTokenCount")).or(answer.completion_tokens);
    }
    if kind != "error" {
        if let Some(error) = is_error(data.get("error")) {
            matched = true;
            answer.error(error);
        }
    }
    if matched {
        answer.recognised += 1;
    }
}

fn gemini_parts(answer: &mut Answer, candidate: &Value, at: Option<Duration>) {
    if let Some(parts) = candidate.pointer("/content/parts").and_then(Value::as_array) {
        for part in parts {
            // Thought summaries are not the answer.
            if part.get("thought").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            if let Some(text) = part.get("text").and_then(Value::as_str) {
                answer.push_text(text, at);
            }
        }
    }
}

/// An incremental `text/event-stream` reader.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    event: String,
    data: String,
    has_data: bool,
    answer: Answer,
    broken: bool,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next chunk of the body, which arrived `at` after the request was sent.
    pub fn feed(&mut self, chunk: &[u8], at: Duration) {
        if self.broken {
            return;
        }
        for &byte in chunk {
            if byte == b'\n' {
                let line = std::mem::take(&mut self.line);
                self.line(&line, at);
            } else if self.line.len() >= MAX_LINE_BYTES {
                self.answer.malformed = Some(format!("an event-stream line is longer than {MAX_LINE_BYTES} bytes"));
                self.broken = true;
                return;
            } else {
                self.line.push(byte);
            }
        }
    }

    fn line(&mut self, raw: &[u8], at: Duration) {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.is_empty() {
            self.dispatch(at);
            return;
        }
        let line = String::from_utf8_lossy(raw);
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => self.event = value.to_string(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                if self.data.len() + value.len() <= MAX_LINE_BYTES {
                    self.data.push_str(value);
                }
                self.has_data = true;
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, at: Duration) {
        let event = std::mem::take(&mut self.event);
        let data = std::mem::take(&mut self.data);
        if !std::mem::take(&mut self.has_data) {
            return;
        }
        if data.trim() == "[DONE]" {
            self.answer.complete = true;
            self.answer.recognised += 1;
            return;
        }
        if let Ok(value) = serde_json::from_str::<Value>(&data) {
            apply_event(&mut self.answer, &event, &value, at);
        }
    }

    /// The answer so far; a last event not followed by a blank line still counts.
    pub fn finish(mut self, at: Duration) -> Answer {
        if !self.broken {
            if !self.line.is_empty() {
                let line = std::mem::take(&mut self.line);
                self.line(&line, at);
            }
            self.dispatch(at);
        }
        self.answer
    }
}

/// Reads a whole (non-streamed) JSON reply of one of the four families; `None` when it is none
/// of them.
pub fn parse_json(body: &[u8]) -> Option<Answer> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let mut answer = Answer { complete: true, ..Answer::default() };
    if let Some(error) = is_error(value.get("error")) {
        answer.error(error);
        answer.recognised = 1;
        return Some(answer);
    }
    let usage = value.get("usage");
    if let Some(choices) = value.get("choices").and_then(Value::as_array) {
        // OpenAI chat completions.
        answer.set_model(value.get("model"));
        for choice in choices {
            match choice.pointer("/message/content") {
                Some(Value::String(text)) => answer.push_text(text, None),
                Some(Value::Array(parts)) => {
                    for part in parts {
                        if let Some(text) = part.get("text").and_then(Value::as_str) {
                            answer.push_text(text, None);
                        }
                    }
                }
                _ => {}
            }
        }
        answer.prompt_tokens = tokens(usage.and_then(|u| u.get("prompt_tokens")));
        answer.completion_tokens = tokens(usage.and_then(|u| u.get("completion_tokens")));
    } else if let Some(output) = value.get("output").and_then(Value::as_array) {
        // OpenAI Responses.
        answer.set_model(value.get("model"));
        for item in output {
            for part in item.get("content").and_then(Value::as_array).into_iter().flatten() {
                if part.get("type").and_then(Value::as_str) == Some("output_text") {
                    answer.push_text(part.get("text").and_then(Value::as_str).unwrap_or(""), None);
                }
            }
        }
        if value.get("status").and_then(Value::as_str) == Some("failed") {
            answer.error(value.get("error").unwrap_or(&Value::String("response failed".into())));
        }
        answer.prompt_tokens = tokens(usage.and_then(|u| u.get("input_tokens")));
        answer.completion_tokens = tokens(usage.and_then(|u| u.get("output_tokens")));
    } else if value.get("type").and_then(Value::as_str) == Some("message") {
        // Anthropic Messages.
        answer.set_model(value.get("model"));
        for block in value.get("content").and_then(Value::as_array).into_iter().flatten() {
            if block.get("type").and_then(Value::as_str) == Some("text") {
                answer.push_text(block.get("text").and_then(Value::as_str).unwrap_or(""), None);
            }
        }
        answer.prompt_tokens = tokens(usage.and_then(|u| u.get("input_tokens")));
        answer.completion_tokens = tokens(usage.and_then(|u| u.get("output_tokens")));
    } else if let Some(candidates) = value.get("candidates").and_then(Value::as_array) {
        // Gemini.
        answer.set_model(value.get("modelVersion"));
        for candidate in candidates.iter().take(1) {
            gemini_parts(&mut answer, candidate, None);
        }
        let meta = value.get("usageMetadata");
        answer.prompt_tokens = tokens(meta.and_then(|u| u.get("promptTokenCount")));
        answer.completion_tokens = tokens(meta.and_then(|u| u.get("candidatesTokenCount")));
    } else {
        return None;
    }
    answer.recognised = 1;
    Some(answer)
}

/// Reads a whole stream at once (for tests and the fuzz target).
pub fn parse_stream(body: &[u8]) -> Answer {
    let mut parser = SseParser::new();
    parser.feed(body, Duration::ZERO);
    parser.finish(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/streams").join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    struct Expect {
        file: &'static str,
        text: &'static str,
        model: Option<&'static str>,
        prompt: Option<u64>,
        completion: Option<u64>,
        complete: bool,
        error: Option<&'static str>,
    }

    #[test]
    fn real_format_streams() {
        let rows = [
            Expect {
                file: "openai_chat.sse",
                text: "The answer is 85.",
                model: Some("gpt-4o-mini-2024-07-18"),
                prompt: Some(23),
                completion: Some(6),
                complete: true,
                error: None,
            },
            Expect {
                file: "openai_chat_no_done.sse",
                text: "The answer",
                model: Some("gpt-4o-mini-2024-07-18"),
                prompt: None,
                completion: None,
                complete: false,
                error: None,
            },
            Expect {
                file: "openai_responses.sse",
                text: "85",
                model: Some("gpt-4.1-mini-2025-04-14"),
                prompt: Some(20),
                completion: Some(2),
                complete: true,
                error: None,
            },
            Expect {
                file: "anthropic.sse",
                text: "85",
                model: Some("claude-3-5-haiku-20241022"),
                prompt: Some(25),
                completion: Some(5),
                complete: true,
                error: None,
            },
            Expect {
                file: "anthropic_error.sse",
                text: "",
                model: Some("claude-3-5-haiku-20241022"),
                prompt: Some(25),
                completion: None,
                complete: false,
                error: Some("Overloaded"),
            },
            Expect {
                file: "gemini.sse",
                text: "85\n",
                model: Some("gemini-2.0-flash"),
                prompt: Some(14),
                completion: Some(2),
                complete: true,
                error: None,
            },
            Expect {
                file: "openai_chat_error.sse",
                text: "",
                model: None,
                prompt: None,
                completion: None,
                complete: false,
                error: Some("upstream overloaded"),
            },
            Expect {
                file: "crlf_multiline.sse",
                text: "Hello world",
                model: Some("m-1"),
                prompt: None,
                completion: None,
                complete: true,
                error: None,
            },
        ];
        for row in rows {
            let answer = parse_stream(&fixture(row.file));
            assert_eq!(answer.text, row.text, "{}", row.file);
            assert_eq!(answer.model.as_deref(), row.model, "{}", row.file);
            assert_eq!(answer.prompt_tokens, row.prompt, "{}", row.file);
            assert_eq!(answer.completion_tokens, row.completion, "{}", row.file);
            assert_eq!(answer.complete, row.complete, "{}", row.file);
            assert_eq!(answer.upstream_error.as_deref(), row.error, "{}", row.file);
            assert!(answer.recognised > 0, "{}", row.file);
            assert_eq!(answer.malformed, None, "{}", row.file);
        }
    }

    #[test]
    fn first_token_time_is_where_the_first_text_arrives() {
        let bytes = fixture("openai_chat.sse");
        let text = String::from_utf8(bytes).unwrap();
        let mut parser = SseParser::new();
        // Feed event by event, one millisecond apart: the role-only first chunk has no text.
        for (i, event) in text.split_inclusive("\n\n").enumerate() {
            parser.feed(event.as_bytes(), Duration::from_millis(i as u64 + 1));
        }
        let answer = parser.finish(Duration::from_millis(100));
        assert_eq!(answer.first_token_at, Some(Duration::from_millis(2)));
    }

    #[test]
    fn split_anywhere_gives_the_same_answer() {
        for file in ["openai_chat.sse", "anthropic.sse", "gemini.sse", "openai_responses.sse"] {
            let bytes = fixture(file);
            let whole = parse_stream(&bytes);
            for step in [1, 2, 3, 7, 64] {
                let mut parser = SseParser::new();
                for chunk in bytes.chunks(step) {
                    parser.feed(chunk, Duration::ZERO);
                }
                assert_eq!(parser.finish(Duration::ZERO), whole, "{file} in chunks of {step}");
            }
        }
    }

    #[test]
    fn garbage_is_total_and_bounded() {
        let long = vec![b'x'; MAX_LINE_BYTES + 10];
        let answer = parse_stream(&long);
        assert!(answer.malformed.is_some());
        for garbage in [
            &b""[..],
            b"\xff\xfe\n\n",
            b"data: {not json\n\n",
            b"data: [1,2]\n\n",
            b"event: x\n",
            b"<html>oops</html>",
            b"data: {\"choices\": 5}\n\n",
        ] {
            let answer = parse_stream(garbage);
            assert_eq!(answer.recognised, 0, "{garbage:?}");
            assert!(!answer.complete);
        }
        let huge_text =
            format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"{}\"}}}}]}}\n\n", "y".repeat(100_000));
        assert_eq!(parse_stream(huge_text.as_bytes()).text.len(), MAX_TEXT_BYTES);
    }

    #[test]
    fn whole_json_replies() {
        // (body, text, model, prompt tokens, completion tokens)
        type Row<'a> = (&'a str, &'a str, Option<&'a str>, Option<u64>, Option<u64>);
        let rows: [Row; 4] = [
            (
                r#"{"id":"c","object":"chat.completion","model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"85"},"finish_reason":"stop"}],"usage":{"prompt_tokens":20,"completion_tokens":1}}"#,
                "85",
                Some("gpt-4o-2024-08-06"),
                Some(20),
                Some(1),
            ),
            (
                r#"{"id":"r","object":"response","status":"completed","model":"gpt-4.1","output":[{"type":"message","content":[{"type":"output_text","text":"85"}]}],"usage":{"input_tokens":18,"output_tokens":2}}"#,
                "85",
                Some("gpt-4.1"),
                Some(18),
                Some(2),
            ),
            (
                r#"{"id":"m","type":"message","role":"assistant","model":"claude-3-opus-20240229","content":[{"type":"text","text":"85"}],"stop_reason":"end_turn","usage":{"input_tokens":21,"output_tokens":3}}"#,
                "85",
                Some("claude-3-opus-20240229"),
                Some(21),
                Some(3),
            ),
            (
                r#"{"candidates":[{"content":{"parts":[{"text":"85"}],"role":"model"},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":14,"candidatesTokenCount":1},"modelVersion":"gemini-1.5-flash-002"}"#,
                "85",
                Some("gemini-1.5-flash-002"),
                Some(14),
                Some(1),
            ),
        ];
        for (body, text, model, prompt, completion) in rows {
            let answer = parse_json(body.as_bytes()).unwrap_or_else(|| panic!("not recognised: {body}"));
            assert_eq!(
                (answer.text.as_str(), answer.model.as_deref(), answer.prompt_tokens, answer.completion_tokens),
                (text, model, prompt, completion)
            );
            assert!(answer.complete);
        }
        assert!(parse_json(b"<html></html>").is_none());
        assert!(parse_json(br#"{"hello":"world"}"#).is_none());
        assert_eq!(parse_json(br#"{"error":{"message":"bad"}}"#).unwrap().upstream_error.as_deref(), Some("bad"));
    }
}
