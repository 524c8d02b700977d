//! A fake LLM API for the four families (OpenAI chat, OpenAI Responses, Anthropic, Gemini), in
//! streaming and whole-JSON form. It reads the challenge out of the request and answers it;
//! its behaviour comes from the first path segment after `/llm/`, `+`-joined options:
//! `correct`, `wrong`, `cached`, `mismatch`, `incomplete`, `error`, `html`, `first-<ms>`
//! (first-token delay), `tail-<ms>` (delay before the last events), `tokens-<n>` (reported
//! completion tokens).

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

#[derive(Debug, Default, Clone)]
struct Options {
    wrong: bool,
    cached: bool,
    mismatch: bool,
    incomplete: bool,
    error: bool,
    html: bool,
    reset: bool,
    first_ms: u64,
    tail_ms: u64,
    tokens: u64,
}

fn options(mode: &str) -> Options {
    let mut o = Options { tokens: 2, ..Options::default() };
    for part in mode.split('+') {
        match part {
            "wrong" => o.wrong = true,
            "cached" => o.cached = true,
            "mismatch" => o.mismatch = true,
            "incomplete" => o.incomplete = true,
            "error" => o.error = true,
            "html" => o.html = true,
            "reset" => o.reset = true,
            other => {
                if let Some(ms) = other.strip_prefix("first-") {
                    o.first_ms = ms.parse().unwrap();
                } else if let Some(ms) = other.strip_prefix("tail-") {
                    o.tail_ms = ms.parse().unwrap();
                } else if let Some(n) = other.strip_prefix("tokens-") {
                    o.tokens = n.parse().unwrap();
                }
            }
        }
    }
    o
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Family {
    Chat,
    Responses,
    Anthropic,
    Gemini,
}

/// The sum the question asks for: "What is A + B? ..."
pub fn challenge_answer(body: &str) -> Option<u64> {
    let rest = &body[body.find("What is ")? + 8..];
    let (a, rest) = rest.split_once(" + ")?;
    let b: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some(a.parse::<u64>().ok()? + b.parse::<u64>().ok()?)
}

fn first_answer() -> &'static Mutex<Option<u64>> {
    static FIRST: OnceLock<Mutex<Option<u64>>> = OnceLock::new();
    FIRST.get_or_init(|| Mutex::new(None))
}

fn sse(events: &[(Option<&str>, Value)]) -> String {
    events
        .iter()
        .map(|(name, data)| match name {
            Some(n) => format!("event: {n}\ndata: {data}\n\n"),
            None => format!("data: {data}\n\n"),
        })
        .collect()
}

/// (before the first token, the text, the final events) for a stream.
fn stream_parts(family: Family, model: &str, text: &str, o: &Options) -> (String, String, String) {
    let done = !o.incomplete;
    match family {
        Family::Chat => {
            let chunk = |delta: Value, finish: Value| json!({"id":"c","object":"chat.completion.chunk","model":model,"choices":[{"index":0,"delta":delta,"finish_reason":finish}]});
            let prelude = sse(&[(None, chunk(json!({"role":"assistant","content":""}), Value::Null))]);
            let body = sse(&[(None, chunk(json!({"content": text}), Value::Null))]);
            let mut tail = String::new();
            if o.error {
                tail = sse(&[(None, json!({"error":{"message":"fake upstream failure","type":"server_error"}}))]);
            } else if done {
                tail = sse(&[
                    (None, chunk(json!({}), json!("stop"))),
                    (
                        None,
                        json!({"id":"c","object":"chat.completion.chunk","model":model,"choices":[],"usage":{"prompt_tokens":20,"completion_tokens":o.tokens}}),
                    ),
                ]);
                tail.push_str("data: [DONE]\n\n");
            }
            (prelude, body, tail)
        }
        Family::Responses => {
            let prelude = sse(&[(
                Some("response.created"),
                json!({"type":"response.created","response":{"id":"r","status":"in_progress","model":model}}),
            )]);
            let body =
                sse(&[(Some("response.output_text.delta"), json!({"type":"response.output_text.delta","delta":text}))]);
            let tail = if o.error {
                sse(&[(Some("error"), json!({"type":"error","message":"fake upstream failure"}))])
            } else if done {
                sse(&[(
                    Some("response.completed"),
                    json!({"type":"response.completed","response":{"id":"r","status":"completed","model":model,"usage":{"input_tokens":20,"output_tokens":o.tokens}}}),
                )])
            } else {
                String::new()
            };
            (prelude, body, tail)
        }
        Family::Anthropic => {
            let prelude = sse(&[
                (
                    Some("message_start"),
                    json!({"type":"message_start","message":{"id":"m","type":"message","role":"assistant","content":[],"model":model,"usage":{"input_tokens":20,"output_tokens":1}}}),
                ),
                (
                    Some("content_block_start"),
                    json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
                ),
            ]);
            let body = sse(&[(
                Some("content_block_delta"),
                json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":text}}),
            )]);
            let tail = if o.error {
                sse(&[(
                    Some("error"),
                    json!({"type":"error","error":{"type":"overloaded_error","message":"fake upstream failure"}}),
                )])
            } else if done {
                sse(&[
                    (Some("content_block_stop"), json!({"type":"content_block_stop","index":0})),
                    (
                        Some("message_delta"),
                        json!({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":o.tokens}}),
                    ),
                    (Some("message_stop"), json!({"type":"message_stop"})),
                ])
            } else {
                String::new()
            };
            (prelude, body, tail)
        }
        Family::Gemini => {
            let body = sse(&[(
                None,
                json!({"candidates":[{"content":{"parts":[{"text":text}],"role":"model"}}],"modelVersion":model}),
            )]);
            let tail = if o.error {
                sse(&[(None, json!({"error":{"code":503,"message":"fake upstream failure","status":"UNAVAILABLE"}}))])
            } else if done {
                sse(&[(
                    None,
                    json!({"candidates":[{"content":{"parts":[{"text":""}],"role":"model"},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":20,"candidatesTokenCount":o.tokens},"modelVersion":model}),
                )])
            } else {
                String::new()
            };
            (String::new(), body, tail)
        }
    }
}

fn whole(family: Family, model: &str, text: &str, o: &Options) -> Value {
    match family {
        Family::Chat => {
            json!({"id":"c","object":"chat.completion","model":model,"choices":[{"index":0,"message":{"role":"assistant","content":text},"finish_reason":"stop"}],"usage":{"prompt_tokens":20,"completion_tokens":o.tokens}})
        }
        Family::Responses => {
            json!({"id":"r","object":"response","status":"completed","model":model,"output":[{"type":"message","role":"assistant","content":[{"type":"output_text","text":text}]}],"usage":{"input_tokens":20,"output_tokens":o.tokens}})
        }
        Family::Anthropic => {
            json!({"id":"m","type":"message","role":"assistant","model":model,"content":[{"type":"text","text":text}],"stop_reason":"end_turn","usage":{"input_tokens":20,"output_tokens":o.tokens}})
        }
        Family::Gemini => {
            json!({"candidates":[{"content":{"parts":[{"text":text}],"role":"model"},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":20,"candidatesTokenCount":o.tokens},"modelVersion":model})
        }
    }
}

pub async fn respond(mode: &str, rest: &str, body: &[u8]) -> HttpResponse {
    let o = options(mode);
    if o.html {
        return HttpResponse::Ok()
            .content_type("text/html")
            .body("<html><body><h1>Welcome to nginx!</h1></body></html>");
    }
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let body_text = String::from_utf8_lossy(body);
    let (family, stream, model) = if rest.starts_with("v1/chat/completions") {
        (Family::Chat, request["stream"] == true, request["model"].as_str().unwrap_or("").to_string())
    } else if rest.starts_with("v1/responses") {
        (Family::Responses, request["stream"] == true, request["model"].as_str().unwrap_or("").to_string())
    } else if rest.starts_with("v1/messages") {
        (Family::Anthropic, request["stream"] == true, request["model"].as_str().unwrap_or("").to_string())
    } else if let Some(models) = rest.strip_prefix("v1beta/models/") {
        let (model, method) = models.split_once(':').unwrap_or((models, ""));
        (Family::Gemini, method.starts_with("streamGenerateContent"), model.to_string())
    } else {
        return HttpResponse::NotFound().body("unknown fake LLM path");
    };
    let Some(answer) = challenge_answer(&body_text) else {
        return HttpResponse::BadRequest().body("no challenge in the request");
    };
    let said = if o.wrong {
        answer + 1
    } else if o.cached {
        *first_answer().lock().unwrap().get_or_insert(answer)
    } else {
        answer
    };
    let text = format!("{said}");
    // Relays report dated model names; a swapped one reports something else entirely.
    let served = if o.mismatch { "cheap-model-1".to_string() } else { format!("{model}-20240229") };
    if !stream {
        return HttpResponse::Ok().content_type("application/json").body(whole(family, &served, &text, &o).to_string());
    }
    let (prelude, body, tail) = stream_parts(family, &served, &text, &o);
    let reset = o.reset;
    let steps = vec![(0, prelude), (o.first_ms, body), (o.tail_ms, tail)];
    let stream = futures_util::stream::iter(steps.into_iter().enumerate()).then(move |(i, (delay, text))| async move {
        if delay > 0 {
            actix_rt::time::sleep(Duration::from_millis(delay)).await;
        }
        // `reset`: the connection breaks off after the first piece of text.
        if reset && i == 2 {
            return Err(actix_web::error::ErrorInternalServerError("connection reset"));
        }
        Ok::<_, actix_web::Error>(web::Bytes::from(text))
    });
    HttpResponse::Ok().content_type("text/event-stream").streaming(stream)
}

use futures_util::StreamExt;
