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
    naive: bool,
    incomplete: bool,
    error: bool,
    html: bool,
    reset: bool,
    /// Keep the connection open after the last event, as some relays do.
    linger: bool,
    /// A byte-order mark first, bare-CR line endings, a `[DONE]` cut before its blank line.
    bom: bool,
    cr: bool,
    cut_done: bool,
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
            "naive" => o.naive = true,
            "incomplete" => o.incomplete = true,
            "error" => o.error = true,
            "html" => o.html = true,
            "reset" => o.reset = true,
            "linger" => o.linger = true,
            "bom" => o.bom = true,
            "cr" => o.cr = true,
            "cutdone" => o.cut_done = true,
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

/// A number of the question, in digits or in words (0..99).
fn operand(text: &str) -> Option<u64> {
    let text = text.trim().trim_end_matches(['?', '.']);
    if let Ok(n) = text.parse() {
        return Some(n);
    }
    const UNITS: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 10] = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];
    let (tens, unit) = text.split_once('-').unwrap_or((text, ""));
    let unit_value = if unit.is_empty() { Some(0) } else { UNITS.iter().position(|u| *u == unit) };
    if let Some(t) = TENS.iter().position(|t| !t.is_empty() && *t == tens) {
        return Some((t * 10 + unit_value?) as u64);
    }
    UNITS.iter().position(|u| *u == text).map(|u| u as u64)
}

/// The answer to the question in a request, solved the way a model would: whichever of the
/// daemon's phrasings (+, -, *, digits or words) it is.
pub fn challenge_answer(body: &str) -> Option<u64> {
    let end = body
        .find(" Reply with the number only")
        .or_else(|| body.find("? Answer with the number only").map(|i| i + 1))?;
    let start = ["What is ", "Add ", "Subtract ", "Multiply "].iter().filter_map(|p| body[..end].rfind(p)).max()?;
    let question = &body[start..end];
    let between = |q: &str, left: &str, mid: &str| -> Option<(u64, u64)> {
        let rest = q.strip_prefix(left)?;
        let (a, b) = rest.split_once(mid)?;
        Some((operand(a)?, operand(b)?))
    };
    type Form<'a> = (&'a str, &'a str, fn(u64, u64) -> u64);
    let forms: [Form; 12] = [
        ("What is the sum of ", " and ", |a, b| a + b),
        ("What is the product of ", " and ", |a, b| a * b),
        ("What is left when you take ", " away from ", |b, a| a - b),
        ("Subtract ", " from ", |b, a| a - b),
        ("Add ", " and ", |a, b| a + b),
        ("Multiply ", " by ", |a, b| a * b),
        ("What is ", " + ", |a, b| a + b),
        ("What is ", " plus ", |a, b| a + b),
        ("What is ", " - ", |a, b| a - b),
        ("What is ", " minus ", |a, b| a - b),
        ("What is ", " * ", |a, b| a * b),
        ("What is ", " times ", |a, b| a * b),
    ];
    forms.iter().find_map(|(left, mid, f)| between(question, left, mid).map(|(a, b)| f(a, b)))
}

/// What a lazy mock does: adds the first two numbers written in digits.
pub fn naive_sum(body: &str) -> u64 {
    let end = body.find(" Reply with").unwrap_or(body.len());
    let numbers: Vec<u64> = body[..end].split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect();
    numbers.iter().rev().take(2).sum()
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
    let said = if o.naive {
        naive_sum(&body_text)
    } else if o.wrong {
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
    let mut prelude = if o.bom { format!("\u{feff}{prelude}") } else { prelude };
    let (mut body, mut tail) = (body, tail);
    if o.cut_done {
        tail = tail.strip_suffix("\n\n").map(|t| format!("{t}\n")).unwrap_or(tail);
    }
    if o.cr {
        for part in [&mut prelude, &mut body, &mut tail] {
            *part = part.replace('\n', "\r");
        }
    }
    let mut steps = vec![(0, prelude), (o.first_ms, body), (o.tail_ms, tail)];
    if o.linger {
        // Nothing more, but the connection stays open for a minute.
        steps.push((60_000, String::new()));
    }
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
