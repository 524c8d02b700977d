//! LLM-aware probes against the fake LLM upstream: each template's request shape, challenge
//! answers, model identity, broken streams, and streaming timings.

use std::time::Duration;

use serde_json::Value;

use crate::support::llm::challenge_answer;
use crate::support::upstream::{self, Upstream};
use crate::support::{wait_for, Workspace};

const KEY: &str = "sk-template-key-0123456789";

fn templated(
    service: &str,
    up: &Upstream,
    mode: &str,
    template: &str,
    model: &str,
    stream: bool,
    extra: &str,
) -> String {
    format!(
        "  - {{provider: llm, service: \"{service}\", base_url: \"{}/llm/{mode}\", template: {template}, model: \"{model}\", stream: {stream}, api_key: \"{KEY}\"{extra}}}\n",
        up.base
    )
}

struct Shape {
    template: &'static str,
    stream: bool,
    path: &'static str,
    query: &'static str,
    auth: (&'static str, &'static str),
}

#[test]
fn every_template_sends_its_request_shape_and_a_correct_reply_is_green() {
    let up = upstream::start();
    let shapes = [
        Shape {
            template: "openai-chat",
            stream: false,
            path: "/v1/chat/completions",
            query: "",
            auth: ("authorization", "Bearer "),
        },
        Shape {
            template: "openai-chat",
            stream: true,
            path: "/v1/chat/completions",
            query: "",
            auth: ("authorization", "Bearer "),
        },
        Shape {
            template: "openai-responses",
            stream: false,
            path: "/v1/responses",
            query: "",
            auth: ("authorization", "Bearer "),
        },
        Shape {
            template: "openai-responses",
            stream: true,
            path: "/v1/responses",
            query: "",
            auth: ("authorization", "Bearer "),
        },
        Shape {
            template: "anthropic-messages",
            stream: false,
            path: "/v1/messages",
            query: "",
            auth: ("x-api-key", ""),
        },
        Shape {
            template: "anthropic-messages",
            stream: true,
            path: "/v1/messages",
            query: "",
            auth: ("x-api-key", ""),
        },
        Shape {
            template: "gemini",
            stream: false,
            path: "/v1beta/models/gemini-test:generateContent",
            query: "",
            auth: ("x-goog-api-key", ""),
        },
        Shape {
            template: "gemini",
            stream: true,
            path: "/v1beta/models/gemini-test:streamGenerateContent",
            query: "alt=sse",
            auth: ("x-goog-api-key", ""),
        },
    ];
    let mut config = String::from("interval: 2s\nmonitors:\n");
    for (i, s) in shapes.iter().enumerate() {
        let model = if s.template == "gemini" { "gemini-test" } else { "model-x" };
        // Each monitor gets its own base path so the upstream's log tells them apart.
        let mode = format!("correct+n{i}");
        config.push_str(&templated(&format!("s{i}"), &up, &mode, s.template, model, s.stream, ""));
    }
    let ws = Workspace::new(&config);
    let daemon = ws.start();
    for (i, s) in shapes.iter().enumerate() {
        let name = format!("{} stream={}", s.template, s.stream);
        let current = daemon.wait_current("llm", &format!("s{i}"), Duration::from_secs(15));
        assert_eq!(
            (current["status"].as_i64(), current["reason"].as_str()),
            (Some(1), Some("ok")),
            "{name}: {current}"
        );
        let model = if s.template == "gemini" { "gemini-test" } else { "model-x" };
        assert_eq!(current["model"], format!("{model}-20240229"), "{name}: the reported model is stored");
        assert_eq!(current["prompt_tokens"], 20, "{name}");
        assert_eq!(current["completion_tokens"], 2, "{name}");
        assert!(current["tokens_per_s"].as_f64().unwrap() > 0.0, "{name}");
        assert_eq!(current["ttft"].is_number(), s.stream, "{name}: ttft only for streams: {current}");

        let request =
            up.log.for_path(&format!("/llm/correct+n{i}{}", s.path)).into_iter().next().unwrap_or_else(|| {
                panic!(
                    "{name}: no request at {}: {:?}",
                    s.path,
                    up.log.all().iter().map(|r| r.path.clone()).collect::<Vec<_>>()
                )
            });
        assert_eq!(request.query, s.query, "{name}");
        assert_eq!(request.header(s.auth.0), Some(format!("{}{KEY}", s.auth.1).as_str()), "{name}");
        assert_eq!(request.header("content-type"), Some("application/json"), "{name}");
        if s.template == "anthropic-messages" {
            assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
        }
        let body: Value = serde_json::from_str(&request.body)
            .unwrap_or_else(|e| panic!("{name}: body not JSON ({e}): {}", request.body));
        assert!(challenge_answer(&request.body).is_some(), "{name}: no challenge in {}", request.body);
        assert!(request.body.contains("Reply with the number only, in digits."), "{name}");
        if s.template != "gemini" {
            assert_eq!(body["model"], "model-x", "{name}");
            assert_eq!(body["stream"] == true, s.stream, "{name}: {body}");
        }
    }
    // Every probe asks a fresh question: two probes of one monitor ask different ones.
    let path = format!("/llm/correct+n0{}", shapes[0].path);
    let asked = wait_for("three probes of one monitor", Duration::from_secs(15), || {
        let asked: Vec<u64> = up.log.for_path(&path).iter().filter_map(|r| challenge_answer(&r.body)).collect();
        (asked.len() >= 3).then_some(asked)
    });
    assert!(asked.windows(2).any(|w| w[0] != w[1]), "the same question every time: {asked:?}");
    let logs = daemon.logs();
    assert!(!logs.contains(KEY), "a key in the logs");
    assert!(!daemon.get("/api/status").text.contains(KEY));
}

#[test]
fn broken_replies_are_red_with_their_reason() {
    let up = upstream::start();
    let rows: Vec<(&str, &str, &str, bool, i64, &str)> = vec![
        ("wrong", "wrong", "openai-chat", false, 0, "wrong_answer"),
        ("wrong-stream", "wrong", "anthropic-messages", true, 0, "wrong_answer"),
        ("mismatch", "mismatch", "openai-chat", true, 0, "model_mismatch"),
        ("mismatch-gemini", "mismatch", "gemini", false, 0, "model_mismatch"),
        ("incomplete-chat", "incomplete", "openai-chat", true, 0, "stream_incomplete"),
        ("incomplete-anthropic", "incomplete", "anthropic-messages", true, 0, "stream_incomplete"),
        ("incomplete-responses", "incomplete", "openai-responses", true, 0, "stream_incomplete"),
        ("incomplete-gemini", "incomplete", "gemini", true, 0, "stream_incomplete"),
        ("error-anthropic", "error", "anthropic-messages", true, 0, "upstream_error"),
        ("error-chat", "error", "openai-chat", true, 0, "upstream_error"),
        ("error-responses", "error", "openai-responses", true, 0, "upstream_error"),
        ("html", "html", "openai-chat", false, 0, "content_mismatch"),
        ("reset-mid-stream", "reset+tail-100", "anthropic-messages", true, 0, "stream_incomplete"),
    ];
    let mut config = String::from("interval: 1s\nmonitors:\n");
    for (service, mode, template, stream, _, _) in &rows {
        config.push_str(&templated(service, &up, mode, template, "model-x", *stream, ""));
    }
    let ws = Workspace::new(&config);
    let daemon = ws.start();
    for (service, _, _, _, status, reason) in &rows {
        let current = daemon.wait_current("llm", service, Duration::from_secs(15));
        assert_eq!(
            (current["status"].as_i64(), current["reason"].as_str()),
            (Some(*status), Some(*reason)),
            "{service}: {current}"
        );
        assert!(current["detail"].as_str().is_some_and(|d| !d.is_empty()), "{service}");
    }
    let mismatch = daemon.monitor("llm", "mismatch")["current_status"].clone();
    assert_eq!(mismatch["model"], "cheap-model-1", "what was served is stored");
    assert!(mismatch["detail"].as_str().unwrap().contains("expected model model-x, the reply says cheap-model-1"));
    let wrong = daemon.monitor("llm", "wrong")["current_status"]["detail"].as_str().unwrap().to_string();
    assert!(wrong.contains("asked for"), "{wrong}");
}

#[test]
fn a_cached_reply_fails_the_next_challenge() {
    let up = upstream::start();
    let ws = Workspace::new(&format!(
        "interval: 1s\nmonitors:\n{}",
        templated("cached", &up, "cached", "openai-chat", "m", false, "")
    ));
    let daemon = ws.start();
    // The first probe is answered right; the relay then replays that answer to new questions.
    let red = wait_for("a wrong_answer from the replayed reply", Duration::from_secs(20), || {
        let m = daemon.monitor("llm", "cached");
        let reds: i64 = m["timeline"].as_array().unwrap().iter().map(|b| b["counts"]["red"].as_i64().unwrap()).sum();
        (reds > 0 && crate::support::probe_count(&m) >= 4).then_some(m)
    });
    let greens: i64 = red["timeline"].as_array().unwrap().iter().map(|b| b["counts"]["green"].as_i64().unwrap()).sum();
    assert!(greens >= 1, "the first, live answer was right: {red}");
}

#[test]
fn streaming_timings_ttft_tokens_per_second_and_slow_ttft() {
    let up = upstream::start();
    let mut config = String::from("interval: 2s\nmonitors:\n");
    config.push_str(&templated("ttft", &up, "correct+first-300", "openai-chat", "m", true, ""));
    config.push_str(&templated(
        "speed",
        &up,
        "correct+first-100+tail-500+tokens-50",
        "anthropic-messages",
        "m",
        true,
        "",
    ));
    config.push_str(&templated("slow-start", &up, "correct+first-300", "gemini", "m", true, ", slow_ttft: 200ms"));
    config.push_str(&templated("expect", &up, "correct", "openai-responses", "m", true, ", expect_model: other-model"));
    let ws = Workspace::new(&config);
    let daemon = ws.start();

    let ttft = daemon.wait_current("llm", "ttft", Duration::from_secs(15));
    assert_eq!(ttft["status"], 1, "{ttft}");
    let first = ttft["ttft"].as_i64().unwrap();
    assert!((300..=400).contains(&first), "ttft {first} ms for a 300 ms first token");
    assert!(ttft["ttfb"].as_i64().unwrap() < 250, "headers come at once: {ttft}");
    assert!(ttft["latency"].as_i64().unwrap() >= first);

    let speed = daemon.wait_current("llm", "speed", Duration::from_secs(15));
    let tps = speed["tokens_per_s"].as_f64().unwrap();
    // 50 tokens over the ~500 ms after the first token.
    assert!((60.0..=101.0).contains(&tps), "tokens/s {tps}: {speed}");
    assert_eq!(speed["completion_tokens"], 50);

    let slow = daemon.wait_current("llm", "slow-start", Duration::from_secs(15));
    assert_eq!((slow["status"].as_i64(), slow["reason"].as_str()), (Some(2), Some("slow")), "{slow}");

    let expect = daemon.wait_current("llm", "expect", Duration::from_secs(15));
    assert_eq!(expect["reason"], "model_mismatch", "expect_model overrides model: {expect}");

    // Per-bucket percentiles of latency and ttft.
    let bucket = wait_for("a bucket with ttft percentiles", Duration::from_secs(10), || {
        let m = daemon.monitor("llm", "ttft");
        m["timeline"].as_array().unwrap().iter().find(|b| b["ttft_p50"].is_number()).cloned()
    });
    // Percentiles come from a sketch: exact to within ~3% (a 300 ms value may read 299).
    let p50 = bucket["ttft_p50"].as_i64().unwrap();
    assert!((290..=400).contains(&p50), "{bucket}");
    assert!(bucket["ttft_p95"].as_i64().unwrap() >= p50);
    assert!(bucket["latency_p95"].as_i64().unwrap() >= bucket["latency_p50"].as_i64().unwrap());
}

#[test]
fn user_templates_and_explicit_overrides() {
    let up = upstream::start();
    let ws = Workspace::new(&format!(
        r#"interval: 1s
monitors:
  - provider: llm
    service: mine
    base_url: "{b}/llm/correct"
    template: my-relay
    model: m
    api_key: "{KEY}"
  - provider: llm
    service: override
    base_url: "{b}/unused"
    url: "{b}/llm/correct/v1/chat/completions"
    template: openai-chat
    model: m
    stream: false
    api_key: "{KEY}"
    headers:
      Authorization: "Token {{{{API_KEY}}}}"
      X-Extra: "yes"
    body: '{{"model": "{{{{MODEL}}}}", "messages": [{{"role": "user", "content": "{{{{CHALLENGE}}}} Be brief."}}]}}'
"#,
        b = up.base
    ));
    std::fs::create_dir_all(ws.path().join("data/templates")).unwrap();
    std::fs::write(
        ws.path().join("data/templates/my-relay.yaml"),
        "method: POST\nheaders:\n  X-Relay-Key: \"{{API_KEY}}\"\n  Content-Type: application/json\nplain:\n  path: /v1/chat/completions\n  body: '{\"model\": \"{{MODEL}}\", \"messages\": [{\"role\": \"user\", \"content\": \"{{CHALLENGE}}\"}]}'\nstream:\n  path: /v1/chat/completions\n  body: '{\"model\": \"{{MODEL}}\", \"stream\": true, \"messages\": [{\"role\": \"user\", \"content\": \"{{CHALLENGE}}\"}]}'\n",
    )
    .unwrap();
    let daemon = ws.start();
    for service in ["mine", "override"] {
        let current = daemon.wait_current("llm", service, Duration::from_secs(15));
        assert_eq!(current["status"], 1, "{service}: {current}");
    }
    let requests = up.log.for_path("/llm/correct/v1/chat/completions");
    let mine = requests.iter().find(|r| r.header("x-relay-key").is_some()).expect("a request from the user template");
    assert_eq!(mine.header("x-relay-key"), Some(KEY));
    assert!(mine.body.contains("\"stream\": true"), "stream form by default: {}", mine.body);
    let over = requests.iter().find(|r| r.header("x-extra").is_some()).expect("a request with the explicit headers");
    assert_eq!(over.header("authorization"), Some(format!("Token {KEY}").as_str()));
    assert!(over.body.ends_with("Be brief.\"}]}"), "{}", over.body);
    assert!(challenge_answer(&over.body).is_some());
    assert!(up.log.all().iter().all(|r| !r.path.starts_with("/unused")), "url overrides base_url");
}

/// The questions vary (+, -, *, digits or words, several phrasings): a mock that adds the two
/// numbers it finds in the question is caught, while a model that reads it stays green.
#[test]
fn a_mock_that_adds_the_numbers_it_finds_is_caught() {
    let up = upstream::start();
    let mut config = String::from("interval: 1s\nmonitors:\n");
    config.push_str(&templated("naive", &up, "naive", "openai-chat", "model-x", false, ""));
    config.push_str(&templated("reader", &up, "correct", "openai-chat", "model-x", false, ""));
    let ws = Workspace::new(&config);
    let daemon = ws.start();
    let wrong = wait_for("the adding mock to answer a question wrong", Duration::from_secs(30), || {
        let current = daemon.monitor("llm", "naive")["current_status"].clone();
        (current["reason"] == "wrong_answer").then_some(current)
    });
    assert!(wrong["detail"].as_str().unwrap().contains("asked for"), "{wrong}");
    wait_for("eight probes of the reader", Duration::from_secs(30), || {
        (crate::support::probe_count(&daemon.monitor("llm", "reader")) >= 8).then_some(())
    });
    let reader = daemon.monitor("llm", "reader");
    let red: i64 = reader["timeline"].as_array().unwrap().iter().map(|b| b["counts"]["red"].as_i64().unwrap()).sum();
    assert_eq!(red, 0, "a model that reads the question failed: {reader}");
}

/// Event-stream framing as relays really send it: a connection held open after the
/// terminator, a byte-order mark, bare-CR line endings; and a `[DONE]` cut off before its blank
/// line, which per the SSE specification never arrived.
#[test]
fn stream_framing_as_relays_send_it() {
    let up = upstream::start();
    let rows: Vec<(&str, &str, &str, i64, &str)> = vec![
        ("linger-chat", "linger", "openai-chat", 1, "ok"),
        ("linger-anthropic", "linger", "anthropic-messages", 1, "ok"),
        ("linger-responses", "linger", "openai-responses", 1, "ok"),
        ("bom", "bom", "openai-chat", 1, "ok"),
        ("bare-cr", "cr", "anthropic-messages", 1, "ok"),
        ("cut-done", "cutdone", "openai-chat", 0, "stream_incomplete"),
    ];
    let mut config = String::from("interval: 2s\ntimeout: 10s\nslow_latency: 5s\nmonitors:\n");
    for (service, mode, template, _, _) in &rows {
        config.push_str(&templated(service, &up, mode, template, "model-x", true, ""));
    }
    let ws = Workspace::new(&config);
    let daemon = ws.start();
    for (service, _, _, status, reason) in &rows {
        let current = daemon.wait_current("llm", service, Duration::from_secs(15));
        assert_eq!(
            (current["status"].as_i64(), current["reason"].as_str()),
            (Some(*status), Some(*reason)),
            "{service}: {current}"
        );
        if service.starts_with("linger") {
            assert!(current["latency"].as_i64().unwrap() < 1_000, "{service} waited for the connection: {current}");
        }
    }
}

/// The built-in templates work unchanged for today's flagship models of each family and the
/// older ones, against a fake that behaves like the real APIs: it refuses `max_tokens` and a
/// temperature for OpenAI reasoning models with OpenAI's own error, and thinking models spend
/// their output budget thinking (so a 16- or 32-token budget leaves no answer).
#[test]
fn built_in_templates_fit_todays_flagship_models() {
    let up = upstream::start();
    // (template, model, stream, what the request must carry, what it must not)
    type Row<'a> = (&'a str, &'a str, bool, Vec<(&'a str, Value)>, Vec<&'a str>);
    let rows: Vec<Row> = vec![
        (
            "openai-chat",
            "gpt-5",
            true,
            vec![("/reasoning_effort", "minimal".into())],
            vec!["/max_tokens", "/temperature"],
        ),
        ("openai-chat", "gpt-5-mini", false, vec![("/max_completion_tokens", 256.into())], vec!["/max_tokens"]),
        ("openai-chat", "gpt-5.1", true, vec![("/reasoning_effort", "none".into())], vec!["/temperature"]),
        ("openai-chat", "o3", false, vec![("/reasoning_effort", "low".into())], vec!["/max_tokens", "/temperature"]),
        ("openai-chat", "o4-mini", true, vec![("/max_completion_tokens", 1024.into())], vec!["/max_tokens"]),
        ("openai-chat", "o1-mini", false, vec![("/max_completion_tokens", 2048.into())], vec!["/reasoning_effort"]),
        ("openai-chat", "gpt-5-chat-latest", true, vec![("/max_completion_tokens", 64.into())], vec!["/max_tokens"]),
        ("openai-chat", "gpt-4o", true, vec![("/max_tokens", 16.into()), ("/temperature", 0.into())], vec![]),
        ("openai-chat", "openai/gpt-5", false, vec![("/reasoning_effort", "minimal".into())], vec!["/max_tokens"]),
        ("openai-responses", "gpt-5", true, vec![("/reasoning/effort", "minimal".into())], vec!["/temperature"]),
        ("openai-responses", "o3", false, vec![("/max_output_tokens", 1024.into())], vec![]),
        ("openai-responses", "gpt-4.1", true, vec![("/max_output_tokens", 16.into())], vec!["/reasoning"]),
        ("anthropic-messages", "claude-sonnet-4-5-20250929", true, vec![("/max_tokens", 16.into())], vec!["/thinking"]),
        (
            "anthropic-messages",
            "claude-sonnet-4-5-20250929-thinking",
            true,
            vec![("/thinking/budget_tokens", 1024.into()), ("/max_tokens", 2048.into())],
            vec![],
        ),
        ("anthropic-messages", "claude-opus-4-1-thinking", false, vec![("/thinking/type", "enabled".into())], vec![]),
        ("anthropic-messages", "claude-3-5-haiku-20241022", false, vec![("/max_tokens", 16.into())], vec![]),
        (
            "gemini",
            "gemini-2.5-pro",
            true,
            vec![("/generationConfig/thinkingConfig/thinkingBudget", 128.into())],
            vec![],
        ),
        (
            "gemini",
            "gemini-2.5-flash",
            false,
            vec![("/generationConfig/thinkingConfig/thinkingBudget", 0.into())],
            vec![],
        ),
        (
            "gemini",
            "gemini-2.5-flash-lite",
            true,
            vec![("/generationConfig/thinkingConfig/thinkingBudget", 0.into())],
            vec![],
        ),
        (
            "gemini",
            "gemini-3-pro-preview",
            true,
            vec![("/generationConfig/thinkingConfig/thinkingLevel", "low".into())],
            vec!["/generationConfig/temperature"],
        ),
        (
            "gemini",
            "gemini-2.0-flash",
            false,
            vec![("/generationConfig/maxOutputTokens", 32.into())],
            vec!["/generationConfig/thinkingConfig"],
        ),
    ];
    let mut config = String::from("interval: 2s\nmonitors:\n");
    for (i, (template, model, stream, _, _)) in rows.iter().enumerate() {
        config.push_str(&templated(&format!("f{i}"), &up, &format!("correct+f{i}"), template, model, *stream, ""));
    }
    // Without the table: a hand-written body with max_tokens for a reasoning model is refused,
    // and the detail says which parameter.
    config.push_str(&format!(
        "  - {{provider: llm, service: handmade, url: \"{}/llm/correct/v1/chat/completions\", method: POST, model: gpt-5, api_key: k, body: '{{\"model\": \"gpt-5\", \"max_tokens\": 16, \"messages\": [{{\"role\": \"user\", \"content\": \"{{{{CHALLENGE}}}}\"}}]}}'}}\n",
        up.base
    ));
    let ws = Workspace::new(&config);
    let daemon = ws.start();
    for (i, (template, model, stream, carries, lacks)) in rows.iter().enumerate() {
        let name = format!("{template} {model} stream={stream}");
        let current = daemon.wait_current("llm", &format!("f{i}"), Duration::from_secs(15));
        assert_eq!(
            (current["status"].as_i64(), current["reason"].as_str()),
            (Some(1), Some("ok")),
            "{name}: {current}"
        );
        let request = up
            .log
            .all()
            .into_iter()
            .find(|r| r.path.starts_with(&format!("/llm/correct+f{i}/")))
            .unwrap_or_else(|| panic!("{name}: no request"));
        let body: Value = serde_json::from_str(&request.body).unwrap();
        for (pointer, value) in carries {
            assert_eq!(body.pointer(pointer), Some(value), "{name}: {pointer} in {body}");
        }
        for pointer in lacks {
            assert!(body.pointer(pointer).is_none(), "{name}: {pointer} in {body}");
        }
    }
    let handmade = daemon.wait_current("llm", "handmade", Duration::from_secs(15));
    assert_eq!(handmade["reason"], "client_error", "{handmade}");
    assert!(
        handmade["detail"].as_str().unwrap().starts_with("HTTP 400: parameter max_tokens not supported by this model"),
        "{handmade}"
    );
}
