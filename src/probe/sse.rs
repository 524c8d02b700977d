//! Reads an LLM's answer out of a response, streamed (`text/event-stream`) or not: OpenAI chat
//! chunks, OpenAI Responses events, Anthropic events and Gemini chunks. Incremental (fed chunk
//! by chunk as they arrive, so time to first token is measured where it happens), bounded
//! (line length, reassembled text) and total: any input gives an [`Answer`], never a panic.

use std::time::Duration;

use serde_json::Value;

/// Longest SSE line accepted; a longer one fails the stream (a real chunk is far smaller).
pub const MAX_LINE_BYTES: usize = 64 * 1024;
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
    /// Cache reads, when reported (`prompt_tokens_details.cached_tokens`,
    /// `input_tokens_details.cached_tokens`, `cache_read_input_tokens`,
    /// `cachedContentTokenCount`).
    pub cached_tokens: Option<u64>,
    /// Cache writes (Anthropic's `cache_creation_input_tokens`).
    pub cache_write_tokens: Option<u64>,
    /// Thinking tokens reported apart from the completion (Gemini's `thoughtsTokenCount`).
    pub thinking_tokens: Option<u64>,
    /// The model reasoned before answering (reasoning tokens reported, or thinking content
    /// seen): its completion count holds more than the reply's text.
    pub reasoned: bool,
    /// The usage came from Anthropic, whose input count leaves out cache reads and writes.
    pub input_excludes_cache: bool,
    /// Since the request was sent: when the last non-empty piece of text arrived, and how many
    /// pieces came (streams only).
    pub last_token_at: Option<Duration>,
    pub text_events: u32,
    /// Since the request was sent: when the first non-empty piece of text arrived (streams only).
    pub first_token_at: Option<Duration>,
    /// The stream ended with its proper terminator (`[DONE]`, `message_stop`,
    /// `response.completed`, Gemini's finish reason); always true for a whole JSON body.
    pub complete: bool,
    /// A finish reason was seen: the answer is over, its usage and terminator may follow.
    pub finished: bool,
    /// The stream said its last word (`[DONE]`, `message_stop`, `response.completed`,
    /// `response.failed`, an error): nothing after it is read, even if the connection stays open.
    pub terminated: bool,
    /// An error the upstream reported in band (an `error` event or object).
    pub upstream_error: Option<String>,
    /// Why the input could not be read as a stream at all.
    pub malformed: Option<String>,
    /// How many events were recognised as one of the four families.
    pub recognised: usize,
}

impl Answer {
    /// The cache and thinking counts of a usage object, whichever family's names it uses.
    fn cache_usage(&mut self, usage: &Value) {
        let cached = tokens(usage.pointer("/prompt_tokens_details/cached_tokens"))
            .or_else(|| tokens(usage.pointer("/input_tokens_details/cached_tokens")))
            .or_else(|| tokens(usage.get("cache_read_input_tokens")))
            .or_else(|| tokens(usage.get("cachedContentTokenCount")));
        self.cached_tokens = cached.or(self.cached_tokens);
        self.cache_write_tokens = tokens(usage.get("cache_creation_input_tokens")).or(self.cache_write_tokens);
        self.thinking_tokens = tokens(usage.get("thoughtsTokenCount")).or(self.thinking_tokens);
        let reasoning = tokens(usage.pointer("/completion_tokens_details/reasoning_tokens"))
            .or_else(|| tokens(usage.pointer("/output_tokens_details/reasoning_tokens")));
        if reasoning.or(self.thinking_tokens).is_some_and(|n| n > 0) {
            self.reasoned = true;
        }
    }

    /// The usage to price, and how its family counts the prompt (see `probe::cost`).
    pub fn usage(&self) -> Option<(super::cost::Usage, super::cost::Counting)> {
        use super::cost::{Counting, Usage};
        let (prompt, completion) = (self.prompt_tokens?, self.completion_tokens.unwrap_or(0));
        let usage = Usage {
            prompt,
            cached: self.cached_tokens.unwrap_or(0),
            cache_write: self.cache_write_tokens.unwrap_or(0),
            completion,
            thinking_apart: self.thinking_tokens.unwrap_or(0),
        };
        let counting =
            if self.input_excludes_cache { Counting::InputExcludesCache } else { Counting::PromptIncludesCached };
        Some((usage, counting))
    }

    fn push_text(&mut self, piece: &str, at: Option<Duration>) {
        if piece.is_empty() {
            return;
        }
        if self.first_token_at.is_none() {
            self.first_token_at = at;
        }
        if at.is_some() {
            self.last_token_at = at;
            self.text_events = self.text_events.saturating_add(1);
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

/// An `error` value that says something: `true`, a non-empty object, string or list, or a
/// non-zero number. `null`, `false`, `0`, `""`, `[]` and `{}` say "no error".
pub(crate) fn is_error(value: Option<&Value>) -> Option<&Value> {
    value.filter(|v| match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
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

/// An Anthropic content block of thinking (shown or redacted).
fn is_thinking(kind: Option<&Value>) -> bool {
    matches!(kind.and_then(Value::as_str), Some("thinking" | "redacted_thinking"))
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
            if let Some(usage) = data.pointer("/message/usage") {
                answer.cache_usage(usage);
            }
            answer.input_excludes_cache = true;
        }
        "content_block_start" => {
            if is_thinking(data.pointer("/content_block/type")) {
                answer.reasoned = true;
            }
            if let Some(text) = data.pointer("/content_block/text").and_then(Value::as_str) {
                answer.push_text(text, Some(at));
            }
        }
        "content_block_delta" => {
            if data.pointer("/delta/type").and_then(Value::as_str) == Some("thinking_delta") {
                answer.reasoned = true;
            }
            if let Some(text) = data.pointer("/delta/text").and_then(Value::as_str) {
                answer.push_text(text, Some(at));
            }
        }
        "message_delta" => {
            answer.completion_tokens = tokens(data.pointer("/usage/output_tokens")).or(answer.completion_tokens);
            if let Some(usage) = data.get("usage") {
                answer.cache_usage(usage);
            }
            answer.input_excludes_cache = true;
        }
        "message_stop" => {
            answer.complete = true;
            answer.terminated = true;
        }
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
            if let Some(usage) = data.pointer("/response/usage") {
                answer.cache_usage(usage);
            }
            answer.complete = true;
            answer.terminated = true;
        }
        "response.failed" => {
            let error = data.pointer("/response/error").cloned().unwrap_or(Value::String("response failed".into()));
            answer.error(&error);
            answer.terminated = true;
        }
        "error" => {
            answer.error(data.get("error").unwrap_or(data));
            answer.terminated = true;
        }
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
            if choice.pointer("/delta/reasoning_content").is_some_and(|r| !r.is_null()) {
                answer.reasoned = true;
            }
            if let Some(text) = choice.pointer("/delta/content").and_then(Value::as_str) {
                answer.push_text(text, Some(at));
            }
            // The end of the answer, not of the stream: `[DONE]` is its terminator.
            if choice.get("finish_reason").is_some_and(|f| !f.is_null()) {
                answer.finished = true;
            }
        }
    }
    // Gemini chunks.
    if let Some(candidates) = data.get("candidates").and_then(Value::as_array) {
        matched = true;
        answer.set_model(data.get("modelVersion"));
        for candidate in candidates {
            gemini_parts(answer, candidate, Some(at));
            // Gemini streams have no terminator of their own: the finish reason is the end.
            if candidate.get("finishReason").is_some_and(|f| !f.is_null()) {
                answer.complete = true;
                answer.finished = true;
            }
        }
    }
    // Usage, wherever the family puts it.
    if let Some(usage) = data.get("usage").filter(|u| u.is_object()) {
        matched = true;
        answer.prompt_tokens = tokens(usage.get("prompt_tokens")).or(answer.prompt_tokens);
        answer.completion_tokens = tokens(usage.get("completion_tokens")).or(answer.completion_tokens);
        answer.cache_usage(usage);
    }
    if let Some(usage) = data.get("usageMetadata") {
        matched = true;
        answer.prompt_tokens = tokens(usage.get("promptTokenCount")).or(answer.prompt_tokens);
        answer.completion_tokens = tokens(usage.get("candidatesTokenCount")).or(answer.completion_tokens);
        answer.cache_usage(usage);
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
                answer.reasoned = true;
                continue;
            }
            if let Some(text) = part.get("text").and_then(Value::as_str) {
                answer.push_text(text, at);
            }
        }
    }
}

/// An incremental `text/event-stream` reader, to the SSE specification: lines end in CRLF, LF
/// or a bare CR; a leading byte-order mark is skipped; an event is dispatched at the blank line
/// that ends it, so one cut off before that line is discarded.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    event: String,
    data: String,
    has_data: bool,
    answer: Answer,
    broken: bool,
    /// How much of a leading byte-order mark has been seen, until the first other byte.
    bom: usize,
    bom_done: bool,
    /// The last byte was a CR: an LF right after it ends no second line.
    after_cr: bool,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the stream has said its last word: read nothing more.
    pub fn terminated(&self) -> bool {
        self.answer.terminated || self.broken
    }

    /// Whether the answer is over (a finish reason or a terminator was seen): what may still
    /// come is its usage and terminator.
    pub fn ending(&self) -> bool {
        self.answer.finished || self.answer.complete
    }

    /// Feeds the next chunk of the body, which arrived `at` after the request was sent.
    pub fn feed(&mut self, chunk: &[u8], at: Duration) {
        if self.terminated() {
            return;
        }
        // A byte-order mark before the first line is not part of it.
        const BOM: &[u8] = b"\xEF\xBB\xBF";
        for &byte in chunk {
            if self.terminated() {
                return;
            }
            if !self.bom_done {
                if byte == BOM[self.bom] {
                    self.bom += 1;
                    self.bom_done = self.bom == BOM.len();
                    continue;
                }
                // Not a BOM after all: what looked like its start belongs to the first line.
                self.bom_done = true;
                self.line.extend_from_slice(&BOM[..self.bom]);
            }
            let after_cr = std::mem::replace(&mut self.after_cr, byte == b'\r');
            if byte == b'\n' && after_cr {
                continue;
            }
            if byte == b'\n' || byte == b'\r' {
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
            self.answer.terminated = true;
            self.answer.recognised += 1;
            return;
        }
        if let Ok(value) = serde_json::from_str::<Value>(&data) {
            apply_event(&mut self.answer, &event, &value, at);
        }
    }

    /// The answer so far. An event not ended by its blank line was cut off: per the SSE
    /// specification it is discarded (a `[DONE]` cut short does not complete a stream).
    pub fn finish(self, _at: Duration) -> Answer {
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
            if choice.pointer("/message/reasoning_content").is_some_and(|r| !r.is_null()) {
                answer.reasoned = true;
            }
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
        usage.inspect(|u| answer.cache_usage(u));
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
        usage.inspect(|u| answer.cache_usage(u));
    } else if value.get("type").and_then(Value::as_str) == Some("message") {
        // Anthropic Messages.
        answer.set_model(value.get("model"));
        for block in value.get("content").and_then(Value::as_array).into_iter().flatten() {
            if is_thinking(block.get("type")) {
                answer.reasoned = true;
            }
            if block.get("type").and_then(Value::as_str) == Some("text") {
                answer.push_text(block.get("text").and_then(Value::as_str).unwrap_or(""), None);
            }
        }
        answer.prompt_tokens = tokens(usage.and_then(|u| u.get("input_tokens")));
        answer.completion_tokens = tokens(usage.and_then(|u| u.get("output_tokens")));
        usage.inspect(|u| answer.cache_usage(u));
        answer.input_excludes_cache = true;
    } else if let Some(candidates) = value.get("candidates").and_then(Value::as_array) {
        // Gemini.
        answer.set_model(value.get("modelVersion"));
        for candidate in candidates.iter().take(1) {
            gemini_parts(&mut answer, candidate, None);
        }
        let meta = value.get("usageMetadata");
        answer.prompt_tokens = tokens(meta.and_then(|u| u.get("promptTokenCount")));
        answer.completion_tokens = tokens(meta.and_then(|u| u.get("candidatesTokenCount")));
        meta.inspect(|u| answer.cache_usage(u));
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
        let chunk = format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"{}\"}}}}]}}\n\n", "y".repeat(10_000));
        assert_eq!(parse_stream(chunk.repeat(10).as_bytes()).text.len(), MAX_TEXT_BYTES);
    }

    /// Line endings, a byte-order mark, a cut-off last event and what follows a terminator,
    /// as the SSE specification has them.
    #[test]
    fn sse_framing_table() {
        let chat =
            |text: &str| format!("data: {{\"model\":\"m\",\"choices\":[{{\"delta\":{{\"content\":\"{text}\"}}}}]}}");
        // (name, stream, text, complete)
        let rows: Vec<(&str, String, &str, bool)> = vec![
            ("LF", format!("{}\n\ndata: [DONE]\n\n", chat("85")), "85", true),
            ("CRLF", format!("{}\r\n\r\ndata: [DONE]\r\n\r\n", chat("85")), "85", true),
            ("bare CR", format!("{}\r\rdata: [DONE]\r\r", chat("85")), "85", true),
            ("BOM", format!("\u{feff}{}\n\ndata: [DONE]\n\n", chat("85")), "85", true),
            ("[DONE] cut before its blank line", format!("{}\n\ndata: [DONE]\n", chat("85")), "85", false),
            ("[DONE] cut mid-line", format!("{}\n\ndata: [DO", chat("85")), "85", false),
            ("last event cut off", format!("{}\n\n{}\n", chat("8"), chat("5")), "8", false),
            (
                "after [DONE], nothing counts",
                format!("{}\n\ndata: [DONE]\n\n{}\n\n", chat("85"), chat("99")),
                "85",
                true,
            ),
        ];
        for (name, stream, text, complete) in rows {
            for step in [1, 2, 3, 5, stream.len()] {
                let mut parser = SseParser::new();
                for chunk in stream.as_bytes().chunks(step) {
                    parser.feed(chunk, Duration::ZERO);
                }
                let answer = parser.finish(Duration::ZERO);
                assert_eq!((answer.text.as_str(), answer.complete), (text, complete), "{name} in chunks of {step}");
            }
        }
        // The terminator is known as soon as its event ends: the reader stops there.
        let mut parser = SseParser::new();
        parser.feed(format!("{}\n\ndata: [DONE]\n", chat("85")).as_bytes(), Duration::ZERO);
        assert!(!parser.terminated());
        parser.feed(b"\n", Duration::ZERO);
        assert!(parser.terminated());
        let mut anthropic = SseParser::new();
        anthropic.feed(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n", Duration::ZERO);
        assert!(anthropic.terminated());
        // A finish reason completes the answer, but usage and [DONE] may still follow.
        let mut finished = SseParser::new();
        finished.feed(b"data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n", Duration::ZERO);
        assert!(finished.ending() && !finished.terminated());
    }

    #[test]
    fn error_values_that_say_no_error() {
        for (value, error) in [
            ("null", false),
            ("false", false),
            ("0", false),
            ("\"\"", false),
            ("[]", false),
            ("{}", false),
            ("true", true),
            ("1", true),
            ("\"quota\"", true),
            ("[\"quota\"]", true),
            ("{\"message\":\"quota\"}", true),
        ] {
            let value: Value = serde_json::from_str(value).unwrap();
            assert_eq!(is_error(Some(&value)).is_some(), error, "{value}");
        }
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

    /// Each family's cache and thinking counts, in whole bodies and in streams, as the usage
    /// a probe's cost is computed from.
    #[test]
    fn cached_and_thinking_tokens_are_read_as_each_family_reports_them() {
        use crate::probe::cost::{Counting, Usage};
        let bodies = [
            (
                r#"{"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"85"}}],"usage":{"prompt_tokens":1000,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":400}}}"#,
                Usage { prompt: 1_000, cached: 400, completion: 2, ..Usage::default() },
                Counting::PromptIncludesCached,
            ),
            (
                r#"{"id":"r","object":"response","status":"completed","model":"gpt-4.1","output":[{"type":"message","content":[{"type":"output_text","text":"85"}]}],"usage":{"input_tokens":900,"output_tokens":2,"input_tokens_details":{"cached_tokens":512}}}"#,
                Usage { prompt: 900, cached: 512, completion: 2, ..Usage::default() },
                Counting::PromptIncludesCached,
            ),
            (
                r#"{"type":"message","model":"claude-sonnet-4-5","content":[{"type":"text","text":"85"}],"usage":{"input_tokens":20,"output_tokens":3,"cache_read_input_tokens":3000,"cache_creation_input_tokens":1000}}"#,
                Usage { prompt: 20, cached: 3_000, cache_write: 1_000, completion: 3, ..Usage::default() },
                Counting::InputExcludesCache,
            ),
            (
                r#"{"candidates":[{"content":{"parts":[{"text":"85"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":14,"candidatesTokenCount":1,"cachedContentTokenCount":8,"thoughtsTokenCount":120}}"#,
                Usage { prompt: 14, cached: 8, completion: 1, thinking_apart: 120, ..Usage::default() },
                Counting::PromptIncludesCached,
            ),
        ];
        for (body, usage, counting) in bodies {
            let answer = parse_json(body.as_bytes()).unwrap();
            assert_eq!(answer.usage(), Some((usage, counting)), "{body}");
        }
        let anthropic_stream = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":20,\"cache_read_input_tokens\":3000,\"cache_creation_input_tokens\":0,\"output_tokens\":1}}}\n\n\
             event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"85\"}}\n\n\
             event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":3}}\n\n\
             event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        let answer = parse_stream(anthropic_stream.as_bytes());
        assert_eq!(
            answer.usage(),
            Some((
                Usage { prompt: 20, cached: 3_000, completion: 3, ..Usage::default() },
                Counting::InputExcludesCache
            ))
        );
        let openai_stream = "data: {\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"85\"},\"finish_reason\":\"stop\"}]}\n\n\
             data: {\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":1000,\"completion_tokens\":2,\"prompt_tokens_details\":{\"cached_tokens\":400}}}\n\n\
             data: [DONE]\n\n";
        let answer = parse_stream(openai_stream.as_bytes());
        assert_eq!(
            answer.usage(),
            Some((
                Usage { prompt: 1_000, cached: 400, completion: 2, ..Usage::default() },
                Counting::PromptIncludesCached
            ))
        );
    }
}
