//! A fake LLM API for the four families (OpenAI chat, OpenAI Responses, Anthropic, Gemini), in
//! streaming and whole-JSON form. It reads the challenge out of the request and answers it;
//! its behaviour comes from the first path segment after `/llm/`, `+`-joined options:
//! `correct`, `wrong`, `cached`, `mismatch`, `incomplete`, `error`, `html`, `first-<ms>`
//! (first-token delay), `tail-<ms>` (delay before the last events), `tokens-<n>` (reported
//! completion tokens), and the rest of the usage each family reports its own way:
//! `prompt-<n>` (the prompt, 20 by default; Anthropic's excludes the cache), `hit-<n>` (cache
//! reads), `write-<n>` (Anthropic's cache writes), `think-<n>` (Gemini's thoughts, apart);
//! `inject-<k>-<n>`: from the (k+1)-th request of this mode on, `n` more prompt tokens (a
//! relay that starts adding a hidden prompt). Asked to count from 1 to 40 after the answer (a
//! stream check), it does; a stream's text then goes a word an event: `pace-<ms>` apart, or
//! with `burst` all in one piece (a relay that buffers the whole reply).

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
    /// Thinking shown before the answer (set from the request, not the path).
    thinks: bool,
    /// Keep the connection open after the last event, as some relays do.
    linger: bool,
    /// A byte-order mark first, bare-CR line endings, a `[DONE]` cut before its blank line.
    bom: bool,
    cr: bool,
    cut_done: bool,
    first_ms: u64,
    tail_ms: u64,
    tokens: u64,
    prompt: u64,
    /// (after this many requests, this many more prompt tokens)
    inject: Option<(u64, u64)>,
    pace_ms: Option<u64>,
    burst: bool,
    hit: u64,
    write: u64,
    think: u64,
}

fn options(mode: &str) -> Options {
    let mut o = Options { tokens: 2, prompt: 20, ..Options::default() };
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
            "burst" => o.burst = true,
            other => {
                if let Some(ms) = other.strip_prefix("first-") {
                    o.first_ms = ms.parse().unwrap();
                } else if let Some(ms) = other.strip_prefix("tail-") {
                    o.tail_ms = ms.parse().unwrap();
                } else if let Some(n) = other.strip_prefix("tokens-") {
                    o.tokens = n.parse().unwrap();
                } else if let Some(n) = other.strip_prefix("prompt-") {
                    o.prompt = n.parse().unwrap();
                } else if let Some(n) = other.strip_prefix("hit-") {
                    o.hit = n.parse().unwrap();
                } else if let Some(n) = other.strip_prefix("write-") {
                    o.write = n.parse().unwrap();
                } else if let Some(n) = other.strip_prefix("think-") {
                    o.think = n.parse().unwrap();
                } else if let Some(ms) = other.strip_prefix("pace-") {
                    o.pace_ms = Some(ms.parse().unwrap());
                } else if let Some((k, n)) = other.strip_prefix("inject-").and_then(|r| r.split_once('-')) {
                    o.inject = Some((k.parse().unwrap(), n.parse().unwrap()));
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

/// The usage object as `family` reports it (`usage`, or Gemini's `usageMetadata`); for
/// Anthropic's stream, the part its `message_start` carries (`delta` false) or its
/// `message_delta` (true).
fn usage(family: Family, o: &Options, delta: bool) -> Value {
    match family {
        Family::Chat => {
            let mut u =
                json!({"prompt_tokens": o.prompt, "completion_tokens": o.tokens, "total_tokens": o.prompt + o.tokens});
            if o.hit > 0 {
                u["prompt_tokens_details"] = json!({"cached_tokens": o.hit});
            }
            u
        }
        Family::Responses => {
            let mut u =
                json!({"input_tokens": o.prompt, "output_tokens": o.tokens, "total_tokens": o.prompt + o.tokens});
            if o.hit > 0 {
                u["input_tokens_details"] = json!({"cached_tokens": o.hit});
            }
            u
        }
        Family::Anthropic if delta => json!({"output_tokens": o.tokens}),
        Family::Anthropic => {
            let mut u = json!({"input_tokens": o.prompt, "output_tokens": 1});
            if o.hit > 0 || o.write > 0 {
                u["cache_read_input_tokens"] = json!(o.hit);
                u["cache_creation_input_tokens"] = json!(o.write);
            }
            u
        }
        Family::Gemini => {
            let mut u = json!({"promptTokenCount": o.prompt, "candidatesTokenCount": o.tokens});
            if o.hit > 0 {
                u["cachedContentTokenCount"] = json!(o.hit);
            }
            if o.think > 0 {
                u["thoughtsTokenCount"] = json!(o.think);
            }
            u
        }
    }
}

/// Anthropic's whole-body usage: the stream's two parts in one.
fn anthropic_whole(o: &Options) -> Value {
    let mut u = usage(Family::Anthropic, o, false);
    u["output_tokens"] = json!(o.tokens);
    u
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
                        json!({"id":"c","object":"chat.completion.chunk","model":model,"choices":[],"usage":usage(family, o, false)}),
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
                    json!({"type":"response.completed","response":{"id":"r","status":"completed","model":model,"usage":usage(family, o, false)}}),
                )])
            } else {
                String::new()
            };
            (prelude, body, tail)
        }
        Family::Anthropic => {
            let prelude = sse(&[(
                Some("message_start"),
                json!({"type":"message_start","message":{"id":"m","type":"message","role":"assistant","content":[],"model":model,"usage":usage(family, o, false)}}),
            )]);
            let thinking = if o.thinks {
                sse(&[
                    (
                        Some("content_block_start"),
                        json!({"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}),
                    ),
                    (
                        Some("content_block_delta"),
                        json!({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Adding 12 and 30 first..."}}),
                    ),
                    (Some("content_block_stop"), json!({"type":"content_block_stop","index":0})),
                ])
            } else {
                String::new()
            };
            let text_index = usize::from(o.thinks);
            let prelude = prelude
                + &thinking
                + &sse(&[(
                    Some("content_block_start"),
                    json!({"type":"content_block_start","index":text_index,"content_block":{"type":"text","text":""}}),
                )]);
            let body = sse(&[(
                Some("content_block_delta"),
                json!({"type":"content_block_delta","index":text_index,"delta":{"type":"text_delta","text":text}}),
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
                        json!({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":usage(family, o, true)}),
                    ),
                    (Some("message_stop"), json!({"type":"message_stop"})),
                ])
            } else {
                String::new()
            };
            (prelude, body, tail)
        }
        Family::Gemini => {
            let thought = if o.thinks {
                sse(&[(
                    None,
                    json!({"candidates":[{"content":{"parts":[{"text":"Thinking about 12 and 30...","thought":true}],"role":"model"}}],"modelVersion":model}),
                )])
            } else {
                String::new()
            };
            let body = sse(&[(
                None,
                json!({"candidates":[{"content":{"parts":[{"text":text}],"role":"model"}}],"modelVersion":model}),
            )]);
            let body = thought + &body;
            let tail = if o.error {
                sse(&[(None, json!({"error":{"code":503,"message":"fake upstream failure","status":"UNAVAILABLE"}}))])
            } else if done {
                sse(&[(
                    None,
                    json!({"candidates":[{"content":{"parts":[{"text":""}],"role":"model"},"finishReason":"STOP"}],"usageMetadata":usage(family, o, false),"modelVersion":model}),
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
            json!({"id":"c","object":"chat.completion","model":model,"choices":[{"index":0,"message":{"role":"assistant","content":text},"finish_reason":"stop"}],"usage":usage(family, o, false)})
        }
        Family::Responses => {
            json!({"id":"r","object":"response","status":"completed","model":model,"output":[{"type":"message","role":"assistant","content":[{"type":"output_text","text":text}]}],"usage":usage(family, o, false)})
        }
        Family::Anthropic => {
            let mut content = Vec::new();
            if o.thinks {
                content.push(json!({"type":"thinking","thinking":"Adding 12 and 30 first...","signature":"sig"}));
            }
            content.push(json!({"type":"text","text":text}));
            json!({"id":"m","type":"message","role":"assistant","model":model,"content":content,"stop_reason":"end_turn","usage":anthropic_whole(o)})
        }
        Family::Gemini => {
            let mut parts = Vec::new();
            if o.thinks {
                parts.push(json!({"text":"Thinking about 12 and 30...","thought":true}));
            }
            parts.push(json!({"text":text}));
            json!({"candidates":[{"content":{"parts":parts,"role":"model"},"finishReason":"STOP"}],"usageMetadata":usage(family, o, false),"modelVersion":model})
        }
    }
}

/// What a real API does with this request for this model: refuse it as the real API would
/// (with its error body), or think first and perhaps spend the whole budget doing so.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Behaviour {
    /// Tokens left for the answer after thinking; none means the reply has no text.
    answers: bool,
    /// Emits visible thinking (Anthropic thinking blocks, Gemini thought parts).
    thinks: bool,
}

fn invalid(message: &str, param: &str, code: &str) -> Box<HttpResponse> {
    Box::new(
        HttpResponse::BadRequest().content_type("application/json").body(
            json!({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}})
                .to_string(),
        ),
    )
}

fn api_behaviour(family: Family, model: &str, request: &Value) -> Result<Behaviour, Box<HttpResponse>> {
    let plain = Behaviour { answers: true, thinks: false };
    let reasoning = (model.starts_with("gpt-5") && !model.starts_with("gpt-5-chat"))
        || ["o1", "o3", "o4"].iter().any(|p| model.starts_with(p));
    match family {
        Family::Chat | Family::Responses if reasoning => {
            if family == Family::Chat && request.get("max_tokens").is_some() {
                return Err(invalid(
                    "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
                    "max_tokens",
                    "unsupported_parameter",
                ));
            }
            if let Some(t) = request.get("temperature").filter(|t| t.as_f64() != Some(1.0)) {
                return Err(invalid(
                    &format!("Unsupported value: 'temperature' does not support {t} with this model. Only the default (1) value is supported."),
                    "temperature",
                    "unsupported_value",
                ));
            }
            let effort = match family {
                Family::Chat => request["reasoning_effort"].as_str(),
                _ => request.pointer("/reasoning/effort").and_then(Value::as_str),
            }
            .unwrap_or("medium");
            let o_series = model.starts_with('o');
            if (o_series && matches!(effort, "minimal" | "none"))
                || (!o_series && model.starts_with("gpt-5.") && effort == "minimal")
            {
                return Err(invalid(
                    &format!("Unsupported value: 'reasoning_effort' does not support '{effort}' with this model."),
                    "reasoning_effort",
                    "unsupported_value",
                ));
            }
            let spent = match effort {
                "none" | "minimal" => 0,
                "low" => 200,
                "medium" => 600,
                _ => 1_500,
            };
            let budget = match family {
                Family::Chat => request["max_completion_tokens"].as_u64(),
                _ => request["max_output_tokens"].as_u64(),
            }
            .unwrap_or(16_000);
            Ok(Behaviour { answers: budget >= spent + 4, thinks: false })
        }
        Family::Anthropic if model.contains("-thinking") => {
            let budget = request.pointer("/thinking/budget_tokens").and_then(Value::as_u64).unwrap_or(1_024);
            if budget < 1_024 {
                return Err(invalid(
                    "thinking.budget_tokens: Input should be greater than or equal to 1024",
                    "thinking",
                    "invalid",
                ));
            }
            if request["max_tokens"].as_u64().unwrap_or(0) <= budget {
                return Err(invalid(
                    "`max_tokens` must be greater than `thinking.budget_tokens`",
                    "max_tokens",
                    "invalid",
                ));
            }
            Ok(Behaviour { answers: true, thinks: true })
        }
        Family::Gemini if model.starts_with("gemini-2.5") || model.starts_with("gemini-3") => {
            let config = &request["generationConfig"];
            let budget = config.pointer("/thinkingConfig/thinkingBudget").and_then(Value::as_i64);
            if model.starts_with("gemini-2.5-pro") && budget == Some(0) {
                return Err(Box::new(HttpResponse::BadRequest().content_type("application/json").body(
                    r#"{"error":{"code":400,"message":"Budget 0 is invalid. This model only works in thinking mode.","status":"INVALID_ARGUMENT"}}"#,
                )));
            }
            let spent = match (budget, config.pointer("/thinkingConfig/thinkingLevel").and_then(Value::as_str)) {
                (Some(b), _) if b >= 0 => (b as u64).min(200),
                (_, Some("low")) => 100,
                _ => 300,
            };
            let max = config["maxOutputTokens"].as_u64().unwrap_or(8_192);
            Ok(Behaviour { answers: max >= spent + 4, thinks: spent > 0 })
        }
        _ => Ok(plain),
    }
}

/// The name a real API reports for `model`: its dated snapshot (an alias such as `-latest`
/// resolved to one; a relay's `-thinking` mode is the model itself).
fn served_model(model: &str) -> String {
    let model = model.strip_suffix("-thinking").unwrap_or(model);
    let dated =
        model.rsplit('-').next().is_some_and(|last| last.len() == 8 && last.bytes().all(|b| b.is_ascii_digit()));
    if dated {
        model.to_string()
    } else {
        format!("{}-20240229", model.strip_suffix("-latest").unwrap_or(model))
    }
}

pub async fn respond(mode: &str, rest: &str, body: &[u8]) -> HttpResponse {
    let mut o = options(mode);
    if let Some((after, more)) = o.inject {
        static SEEN: OnceLock<Mutex<std::collections::HashMap<String, u64>>> = OnceLock::new();
        let mut seen = SEEN.get_or_init(Default::default).lock().unwrap();
        let n = seen.entry(mode.to_string()).or_default();
        *n += 1;
        if *n > after {
            o.prompt += more;
        }
    }
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
    let behaviour = match api_behaviour(family, &model, &request) {
        Ok(b) => b,
        Err(refusal) => return *refusal,
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
    // A thinking model that used its whole budget thinking answers nothing.
    let mut text = if behaviour.answers { format!("{said}") } else { String::new() };
    if behaviour.answers && body_text.contains("Then count from 1 to 40") {
        let count: Vec<String> = (1..=40).map(|n| n.to_string()).collect();
        text = format!("{text}\n{}", count.join(" "));
        // What a real tokenizer bills for it: about two tokens a number.
        o.tokens = o.tokens.max(82);
    }
    let o = Options { thinks: behaviour.thinks, ..o };
    // Relays report dated model names (a `-latest` alias as the snapshot it points at); a
    // swapped one reports something else entirely.
    let served = if o.mismatch { "cheap-model-1".to_string() } else { served_model(&model) };
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
    if o.pace_ms.is_some() || o.burst {
        // A word an event: paced, or all in one piece.
        let words: Vec<String> = text.split_inclusive([' ', '\n']).map(str::to_string).collect();
        let events: Vec<String> = words.iter().map(|w| stream_parts(family, &served, w, &o).1).collect();
        let tail = steps.pop().unwrap();
        steps.pop();
        if o.burst {
            steps.push((o.first_ms, events.concat()));
        } else {
            for (i, event) in events.into_iter().enumerate() {
                steps.push((if i == 0 { o.first_ms } else { o.pace_ms.unwrap_or(0) }, event));
            }
        }
        steps.push(tail);
    }
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
