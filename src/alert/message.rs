//! The words of an alert message: a title and a plain text (and the same as Telegram HTML),
//! in the configured language and time zone, from the templates in `templates/`.

use std::sync::OnceLock;

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use super::{EventKind, Language, Message, MonitorName};
use crate::secret::{one_line, prefix};

/// At most this many characters of title.
pub const TITLE_MAX_CHARS: usize = 256;
/// At most this many bytes of text (Telegram takes 4,096; the Discord sender cuts further).
pub const TEXT_MAX_BYTES: usize = 3_500;
/// A storm message lists at most this many monitors, then "and N more".
pub const STORM_LIST_MAX: usize = 20;
/// The probe's detail is cut to this many bytes, so the lines after it (the link) survive.
const DETAIL_MAX_BYTES: usize = 1_000;

/// How a message is rendered: from `alerts.language`, `alerts.timezone` and `public_url`.
#[derive(Debug, Clone, Copy)]
pub struct RenderContext<'a> {
    pub language: Language,
    pub timezone: chrono_tz::Tz,
    /// The dashboard's address, without a trailing slash; no link line when `None`.
    pub public_url: Option<&'a str>,
}

/// A message in words, plain text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub title: String,
    pub text: String,
}

/// The plain-text title (at most 256 characters) and text (at most 3,500 bytes).
pub fn render(message: &Message, ctx: &RenderContext) -> Rendered {
    let (title, text) = render_template(message, ctx, false);
    Rendered { title: cut_chars(&title, TITLE_MAX_CHARS), text: cut_bytes(&text, TEXT_MAX_BYTES) }
}

/// The same message for Telegram's `parse_mode: HTML`: every value escaped by the template
/// engine, the title in `<b>`, each part capped like [`render`]'s without splitting an entity.
pub fn render_html(message: &Message, ctx: &RenderContext) -> String {
    let (title, text) = render_template(message, ctx, true);
    let title = html_safe_cut(cut_chars(&title, TITLE_MAX_CHARS));
    let text = html_safe_cut(cut_bytes(&text, TEXT_MAX_BYTES));
    if text.is_empty() {
        format!("<b>{title}</b>")
    } else {
        format!("<b>{title}</b>\n{text}")
    }
}

/// The dashboard link of a message: `public_url` itself, or for a message about one monitor
/// `public_url` + `/#/<provider>/<service>[/<channel>]` with each part percent-encoded (every
/// byte but `A-Z a-z 0-9 - . _ ~`), so a `/` or `#` in a name cannot change the route.
pub fn link(message: &Message, public_url: Option<&str>) -> Option<String> {
    let base = public_url?.trim_end_matches('/');
    let Some(monitor) = &message.monitor else { return Some(base.to_string()) };
    let mut out = format!("{base}/#/{}/{}", encode_part(&monitor.provider), encode_part(&monitor.service));
    if !monitor.channel.is_empty() {
        out.push('/');
        out.push_str(&encode_part(&monitor.channel));
    }
    Some(out)
}

/// `provider / service / channel`, without the channel part when it is empty.
pub fn monitor_label(monitor: &MonitorName) -> String {
    let mut label = format!("{} / {}", monitor.provider, monitor.service);
    if !monitor.channel.is_empty() {
        label.push_str(" / ");
        label.push_str(&monitor.channel);
    }
    one_line(&label)
}

/// A reason code (`Reason::as_str`) in words; an unknown code is shown as it is.
pub fn reason_words(code: &str, language: Language) -> String {
    let words = match (code, language) {
        ("ok", Language::En) => "OK",
        ("ok", Language::Zh) => "正常",
        ("slow", Language::En) => "slow response",
        ("slow", Language::Zh) => "响应缓慢",
        ("rate_limited", Language::En) => "rate limited (HTTP 429)",
        ("rate_limited", Language::Zh) => "被限流（HTTP 429）",
        ("content_mismatch", Language::En) => "unexpected response content",
        ("content_mismatch", Language::Zh) => "响应内容不符合预期",
        ("auth_error", Language::En) => "authentication failed (HTTP 401/403)",
        ("auth_error", Language::Zh) => "认证失败（HTTP 401/403）",
        ("client_error", Language::En) => "request rejected (HTTP 4xx)",
        ("client_error", Language::Zh) => "请求被拒绝（HTTP 4xx）",
        ("server_error", Language::En) => "server error (HTTP 5xx)",
        ("server_error", Language::Zh) => "服务端错误（HTTP 5xx）",
        ("timeout", Language::En) => "timed out",
        ("timeout", Language::Zh) => "请求超时",
        ("network_error", Language::En) => "network error",
        ("network_error", Language::Zh) => "网络错误",
        ("wrong_answer", Language::En) => "wrong answer to the check question",
        ("wrong_answer", Language::Zh) => "校验问题回答错误",
        ("model_mismatch", Language::En) => "answered by a different model",
        ("model_mismatch", Language::Zh) => "回复的模型与请求的不一致",
        ("stream_incomplete", Language::En) => "stream ended early",
        ("stream_incomplete", Language::Zh) => "流式响应不完整",
        ("upstream_error", Language::En) => "error reported by the upstream",
        ("upstream_error", Language::Zh) => "上游返回错误",
        ("prompt_inflated", Language::En) => "prompt larger than the monitor sent (a prompt added by the relay?)",
        ("prompt_inflated", Language::Zh) => "提示词用量超出所发送的（中转站注入了提示词？）",
        ("usage_inflated", Language::En) => "more completion tokens billed than the reply can hold",
        ("usage_inflated", Language::Zh) => "计费的输出 token 多于回复可能的数量",
        ("buffered_stream", Language::En) => "the stream arrived all at once (not really streamed)",
        ("buffered_stream", Language::Zh) => "流式响应一次性到达（并非真正流式）",
        ("proxy_error", Language::En) => "the proxy failed (the target was not reached)",
        ("proxy_error", Language::Zh) => "代理失败（未能到达目标）",
        (other, _) => return one_line(other),
    };
    words.to_string()
}

/// `1h 5m 3s` / `1小时5分3秒`; zero parts left out, days for 24 hours and more.
pub fn format_duration(seconds: i64, language: Language) -> String {
    let seconds = seconds.max(0);
    let parts = [(seconds / 86_400, 0), (seconds / 3_600 % 24, 1), (seconds / 60 % 60, 2), (seconds % 60, 3)];
    let units: [&str; 4] = match language {
        Language::En => ["d", "h", "m", "s"],
        Language::Zh => ["天", "小时", "分", "秒"],
    };
    let separator = match language {
        Language::En => " ",
        Language::Zh => "",
    };
    let shown: Vec<String> =
        parts.iter().filter(|(value, _)| *value > 0).map(|(value, unit)| format!("{value}{}", units[*unit])).collect();
    if shown.is_empty() {
        format!("0{}", units[3])
    } else {
        shown.join(separator)
    }
}

/// A unix time in `timezone`: `2026-12-01 03:00:00 CST`.
pub fn format_time(unix_s: i64, timezone: chrono_tz::Tz) -> String {
    match chrono::DateTime::from_timestamp(unix_s, 0) {
        Some(utc) => utc.with_timezone(&timezone).format("%Y-%m-%d %H:%M:%S %Z").to_string(),
        None => unix_s.to_string(),
    }
}

/// What the templates see; every value is ready to print.
#[derive(Serialize)]
struct View {
    event: &'static str,
    monitor: Option<String>,
    /// The probing node (node_lost, node_back).
    node: Option<String>,
    /// A storm's monitors, at most [`STORM_LIST_MAX`].
    monitors: Vec<String>,
    /// How many of a storm's monitors are not listed.
    more: usize,
    /// How many monitors a storm has.
    count: usize,
    reason: Option<String>,
    detail: Option<String>,
    started_at: Option<String>,
    resolved_at: Option<String>,
    time: String,
    /// The outage so far (reminder) or in all (up).
    duration: Option<String>,
    link: Option<String>,
}

impl View {
    fn new(message: &Message, ctx: &RenderContext) -> View {
        let time = |unix_s: i64| format_time(unix_s, ctx.timezone);
        let duration_s = match message.event {
            EventKind::Up => message.duration_s(),
            EventKind::Reminder => message.started_at.map(|since| message.time - since).filter(|d| *d >= 0),
            _ => None,
        };
        let detail = message
            .detail
            .as_deref()
            .map(|detail| one_line(prefix(detail, DETAIL_MAX_BYTES)))
            .filter(|detail| !detail.is_empty());
        View {
            event: message.event.as_str(),
            monitor: message.monitor.as_ref().map(monitor_label),
            node: message.node.clone(),
            monitors: message.monitors.iter().take(STORM_LIST_MAX).map(monitor_label).collect(),
            more: message.monitors.len().saturating_sub(STORM_LIST_MAX),
            count: message.monitors.len(),
            reason: message.reason.as_deref().map(|code| reason_words(code, ctx.language)),
            detail,
            started_at: message.started_at.map(time),
            resolved_at: message.resolved_at.map(time),
            time: time(message.time),
            duration: duration_s.map(|d| format_duration(d, ctx.language)),
            link: link(message, ctx.public_url),
        }
    }
}

/// The templates, parsed once. Each source is registered twice: as `.txt` (plain) and as
/// `.html`, which minijinja auto-escapes.
fn environment() -> &'static Environment<'static> {
    static ENVIRONMENT: OnceLock<Environment<'static>> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        for (language, source) in [("en", include_str!("templates/en.txt")), ("zh", include_str!("templates/zh.txt"))] {
            for suffix in ["txt", "html"] {
                env.add_template_owned(format!("{language}.{suffix}"), source).expect("alert templates parse");
            }
        }
        env
    })
}

/// Title and text as the template gave them (the first line is the title), not yet capped.
fn render_template(message: &Message, ctx: &RenderContext, html: bool) -> (String, String) {
    let name = match (ctx.language, html) {
        (Language::En, false) => "en.txt",
        (Language::En, true) => "en.html",
        (Language::Zh, false) => "zh.txt",
        (Language::Zh, true) => "zh.html",
    };
    let rendered = environment().get_template(name).and_then(|template| template.render(View::new(message, ctx)));
    match rendered {
        Ok(out) => {
            let out = out.trim();
            match out.split_once('\n') {
                Some((title, text)) => (title.trim().to_string(), text.trim().to_string()),
                None => (out.to_string(), String::new()),
            }
        }
        Err(error) => {
            // The templates are compiled in and tested; still, an alert goes out in any case.
            log::error!("alert template {name}: {error}");
            (format!("llm-monitor: {}", message.event.as_str()), String::new())
        }
    }
}

/// At most `max` characters, ending in "…" when cut.
fn cut_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let kept: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{kept}…")
}

/// At most `max` bytes, cut on a character boundary, ending in "…" when cut.
fn cut_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    format!("{}…", prefix(text, max - '…'.len_utf8()))
}

/// An escaped text cut short may end inside an entity (`&am`): drop that piece.
fn html_safe_cut(mut text: String) -> String {
    let ellipsis = text.ends_with('…');
    let body_len = text.len() - if ellipsis { '…'.len_utf8() } else { 0 };
    if let Some(amp) = text[..body_len].rfind('&') {
        if !text[amp..body_len].contains(';') {
            text.replace_range(amp..body_len, "");
        }
    }
    text
}

/// Percent-encodes one part of the dashboard route.
fn encode_part(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    for byte in part.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(provider: &str, service: &str, channel: &str) -> MonitorName {
        MonitorName { provider: provider.into(), service: service.into(), channel: channel.into() }
    }

    /// 2026-12-01 03:00:00 in Shanghai (19:00 UTC the day before).
    const STARTED: i64 = 1_796_065_200;

    fn message(event: EventKind) -> Message {
        Message {
            id: 7,
            event,
            monitor: Some(name("88code", "cc", "")),
            monitors: Vec::new(),
            status: Some("red".into()),
            reason: Some("server_error".into()),
            detail: Some("HTTP 502 from upstream".into()),
            started_at: Some(STARTED),
            resolved_at: None,
            time: STARTED,
            down_id: None,
            node: None,
        }
    }

    fn ctx(language: Language) -> RenderContext<'static> {
        RenderContext { language, timezone: chrono_tz::Asia::Shanghai, public_url: Some("https://status.example.com") }
    }

    fn storm(event: EventKind, count: usize) -> Message {
        Message {
            monitor: None,
            monitors: (0..count).map(|i| name(&format!("p{i}"), "svc", "")).collect(),
            reason: None,
            detail: None,
            started_at: None,
            ..message(event)
        }
    }

    #[test]
    fn times_are_shown_in_the_configured_zone() {
        assert_eq!(format_time(STARTED, chrono_tz::Asia::Shanghai), "2026-12-01 03:00:00 CST");
        assert_eq!(format_time(STARTED, chrono_tz::UTC), "2026-11-30 19:00:00 UTC");
        // Daylight saving: the abbreviation follows the date.
        assert_eq!(format_time(1_782_000_000, chrono_tz::Europe::Berlin), "2026-06-21 02:00:00 CEST");
    }

    #[test]
    fn durations_in_both_languages() {
        let rows: &[(i64, &str, &str)] = &[
            (0, "0s", "0秒"),
            (59, "59s", "59秒"),
            (3_900, "1h 5m", "1小时5分"),
            (3_903, "1h 5m 3s", "1小时5分3秒"),
            (7_380, "2h 3m", "2小时3分"),
            (90_061, "1d 1h 1m 1s", "1天1小时1分1秒"),
            (-5, "0s", "0秒"),
        ];
        for (seconds, en, zh) in rows {
            assert_eq!(format_duration(*seconds, Language::En), *en);
            assert_eq!(format_duration(*seconds, Language::Zh), *zh);
        }
    }

    #[test]
    fn every_reason_code_has_words_in_both_languages() {
        for reason in crate::domain::Reason::ALL {
            for language in [Language::En, Language::Zh] {
                let words = reason_words(reason.as_str(), language);
                assert_ne!(words, reason.as_str(), "{reason:?} {language:?}");
                assert!(!words.is_empty());
            }
        }
        assert_eq!(reason_words("brand_new_code", Language::Zh), "brand_new_code");
    }

    #[test]
    fn down_in_english() {
        let out = render(&message(EventKind::Down), &ctx(Language::En));
        assert_eq!(out.title, "🔴 88code / cc is down");
        assert_eq!(
            out.text,
            "Reason: server error (HTTP 5xx)\nDetail: HTTP 502 from upstream\nSince: 2026-12-01 03:00:00 CST\n\
             https://status.example.com/#/88code/cc"
        );
        let with_channel = Message { monitor: Some(name("88code", "cc", "vip 1")), ..message(EventKind::Down) };
        let out = render(&with_channel, &ctx(Language::En));
        assert_eq!(out.title, "🔴 88code / cc / vip 1 is down");
        assert!(out.text.ends_with("https://status.example.com/#/88code/cc/vip%201"), "{}", out.text);
    }

    #[test]
    fn down_in_chinese() {
        let out = render(&message(EventKind::Down), &ctx(Language::Zh));
        assert_eq!(out.title, "🔴 88code / cc 故障");
        assert_eq!(
            out.text,
            "原因：服务端错误（HTTP 5xx）\n详情：HTTP 502 from upstream\n开始于：2026-12-01 03:00:00 CST\n\
             https://status.example.com/#/88code/cc"
        );
    }

    #[test]
    fn up_shows_how_long_the_outage_lasted() {
        let up = Message { resolved_at: Some(STARTED + 3_900), time: STARTED + 3_900, ..message(EventKind::Up) };
        let out = render(&up, &ctx(Language::En));
        assert_eq!(out.title, "✅ 88code / cc recovered");
        assert!(out.text.starts_with("Recovered after 1h 5m.\nDown since: 2026-12-01 03:00:00 CST\n"), "{}", out.text);
        assert!(out.text.contains("Recovered at: 2026-12-01 04:05:00 CST"), "{}", out.text);
        let out = render(&up, &ctx(Language::Zh));
        assert_eq!(out.title, "✅ 88code / cc 已恢复");
        assert!(out.text.starts_with("已恢复，持续 1小时5分\n故障开始：2026-12-01 03:00:00 CST"), "{}", out.text);
    }

    #[test]
    fn reminder_says_since_when_and_for_how_long() {
        let reminder = Message { time: STARTED + 7_380, ..message(EventKind::Reminder) };
        let out = render(&reminder, &ctx(Language::En));
        assert_eq!(out.title, "🔴 88code / cc is still down");
        assert!(out.text.starts_with("Still down since 2026-12-01 03:00:00 CST, for 2h 3m.\nReason: server error"));
        let out = render(&reminder, &ctx(Language::Zh));
        assert_eq!(out.title, "🔴 88code / cc 仍在故障");
        assert!(out.text.starts_with("自 2026-12-01 03:00:00 CST 起故障，已持续 2小时3分。\n原因：服务端错误"));
    }

    #[test]
    fn storms_list_at_most_twenty_monitors() {
        let out = render(&storm(EventKind::StormDown, 25), &ctx(Language::En));
        assert_eq!(out.title, "🔴 25 monitors down: likely this monitor's own network or a shared upstream");
        let listed: Vec<&str> = out.text.lines().filter(|line| line.starts_with("- ")).collect();
        assert_eq!(listed.len(), 20);
        assert_eq!(listed[0], "- p0 / svc");
        assert!(out.text.contains("\nand 5 more\n"), "{}", out.text);
        assert!(out.text.ends_with("https://status.example.com"), "{}", out.text);
        let out = render(&storm(EventKind::StormDown, 25), &ctx(Language::Zh));
        assert!(out.title.starts_with("🔴 25 个监控同时故障"), "{}", out.title);
        assert!(out.text.contains("\n另有 5 个\n"), "{}", out.text);

        let out = render(&storm(EventKind::StormUp, 3), &ctx(Language::En));
        assert_eq!(out.title, "✅ 3 monitors recovered");
        assert!(!out.text.contains("more"), "{}", out.text);
        assert_eq!(render(&storm(EventKind::StormUp, 3), &ctx(Language::Zh)).title, "✅ 3 个监控已恢复");
    }

    #[test]
    fn test_and_maintenance_messages() {
        let test = Message { id: 0, monitor: None, ..storm(EventKind::Test, 0) };
        let out = render(&test, &ctx(Language::En));
        assert_eq!(out.title, "Test message from llm-monitor");
        assert!(out.text.contains("Time: 2026-12-01 03:00:00 CST"), "{}", out.text);
        assert_eq!(render(&test, &ctx(Language::Zh)).title, "来自 llm-monitor 的测试消息");

        let start = message(EventKind::MaintenanceStart);
        assert_eq!(render(&start, &ctx(Language::En)).title, "🔧 Maintenance started: 88code / cc");
        assert_eq!(render(&start, &ctx(Language::Zh)).title, "🔧 维护开始：88code / cc");
        let end = Message { monitor: None, ..message(EventKind::MaintenanceEnd) };
        let out = render(&end, &ctx(Language::En));
        assert_eq!(out.title, "🔧 Maintenance ended");
        assert!(out.text.starts_with("Alerts are on again."), "{}", out.text);
        assert_eq!(render(&end, &ctx(Language::Zh)).title, "🔧 维护结束");
    }

    #[test]
    fn every_kind_renders_in_both_languages_without_leftovers() {
        for event in EventKind::STORED.into_iter().chain([EventKind::Test]) {
            for language in [Language::En, Language::Zh] {
                let out = render(&message(event), &ctx(language));
                assert!(!out.title.is_empty() && !out.title.contains("llm-monitor: "), "{event:?} {language:?}");
                for text in [&out.title, &out.text] {
                    assert!(!text.contains("none") && !text.contains("{{") && !text.contains("\n\n"), "{text}");
                }
            }
        }
    }

    #[test]
    fn no_link_line_without_public_url() {
        let out = render(&message(EventKind::Down), &RenderContext { public_url: None, ..ctx(Language::En) });
        assert!(out.text.ends_with("Since: 2026-12-01 03:00:00 CST"), "{}", out.text);
        assert_eq!(link(&message(EventKind::Down), None), None);
        let odd = Message { monitor: Some(name("a/b", "c#d", "é")), ..message(EventKind::Down) };
        assert_eq!(link(&odd, Some("https://x.example/")).unwrap(), "https://x.example/#/a%2Fb/c%23d/%C3%A9");
    }

    #[test]
    fn html_escapes_every_value() {
        let hostile = Message { detail: Some("<script>alert('x')</script> & more".into()), ..message(EventKind::Down) };
        let html = render_html(&hostile, &ctx(Language::En));
        // minijinja escapes `/` as well (`&#x2f;`), which Telegram reads like any numeric entity.
        assert!(html.starts_with("<b>🔴 88code &#x2f; cc is down</b>\nReason: server error (HTTP 5xx)\n"), "{html}");
        assert!(html.contains("Detail: &lt;script&gt;alert(&#x27;x&#x27;)&lt;&#x2f;script&gt; &amp; more"), "{html}");
        assert!(!html.contains("<script>"));
        let hostile_name = Message { monitor: Some(name("<i>p</i>", "s", "")), ..message(EventKind::Down) };
        let html = render_html(&hostile_name, &ctx(Language::Zh));
        assert!(html.starts_with("<b>🔴 &lt;i&gt;p&lt;&#x2f;i&gt; &#x2f; s 故障</b>"), "{html}");
        // The plain text is not escaped.
        assert!(render(&hostile, &ctx(Language::En)).text.contains("<script>"));
    }

    #[test]
    fn long_parts_are_capped_on_character_boundaries() {
        let long_name = Message { monitor: Some(name(&"长".repeat(300), "s", "")), ..message(EventKind::Down) };
        let out = render(&long_name, &ctx(Language::Zh));
        assert_eq!(out.title.chars().count(), TITLE_MAX_CHARS);
        assert!(out.title.ends_with('…'));
        let many = storm(EventKind::StormDown, 20);
        let many = Message {
            monitors: many.monitors.into_iter().map(|m| name(&"é&".repeat(100), &m.provider, "")).collect(),
            ..many
        };
        let out = render(&many, &ctx(Language::En));
        assert!(out.text.len() <= TEXT_MAX_BYTES && out.text.ends_with('…'), "{}", out.text.len());
        let html = render_html(&many, &ctx(Language::En));
        let text = html.split_once('\n').unwrap().1;
        assert!(text.len() <= TEXT_MAX_BYTES, "{}", text.len());
        let tail = &text[text.len() - 12..];
        assert!(!tail.contains('&') || tail[tail.rfind('&').unwrap()..].contains(';'), "{tail}");
        // A long detail is cut so the link stays.
        let chatty = Message { detail: Some("x".repeat(10_000)), ..message(EventKind::Down) };
        assert!(render(&chatty, &ctx(Language::En)).text.ends_with("/#/88code/cc"));
    }
}
