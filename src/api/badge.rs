//! `GET /api/badge/{provider}/{service}.svg[?channel=&metric=status|uptime&period=24h|7d|30d&label=]`:
//! a shields-style SVG badge of a monitor's current status or its uptime.

use actix_web::http::header;
use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};

use super::{AppState, ACTOR_TIMEOUT};
use crate::store::timeline::Period;
use crate::store::GetSnapshot;

pub const GREEN: &str = "#4c1";
pub const YELLOW: &str = "#dfb317";
pub const RED: &str = "#e05d44";
pub const GREY: &str = "#9f9f9f";

/// The badge's query parameters. Read by hand rather than by an extractor, so a bad query gets
/// an SVG that says what is wrong (a badge URL lives in an `<img>`, which shows no JSON).
#[derive(Debug, Default, PartialEq)]
pub struct BadgeParams {
    channel: Option<String>,
    metric: Option<String>,
    period: Option<String>,
    label: Option<String>,
    model: Option<String>,
}

impl BadgeParams {
    pub fn parse(query: &str) -> Result<Self, String> {
        let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
            .map_err(|_| "malformed query".to_string())?
            .into_inner();
        let mut params = BadgeParams::default();
        for (name, value) in pairs {
            let slot = match name.as_str() {
                "channel" => &mut params.channel,
                "metric" => &mut params.metric,
                "period" => &mut params.period,
                "label" => &mut params.label,
                "model" => &mut params.model,
                _ => return Err(format!("unknown parameter {}", name.chars().take(24).collect::<String>())),
            };
            if slot.replace(value).is_some() {
                return Err(format!("{name} given twice"));
            }
        }
        Ok(params)
    }
}

/// Approximate width in pixels of `text` in 11 px Verdana (what shields.io renders with).
fn text_width(text: &str) -> f64 {
    text.chars()
        .map(|c| match c {
            'i' | 'l' | 'j' | '.' | ',' | ':' | ';' | '|' | '!' | '\'' | 'I' => 3.5,
            'f' | 't' | 'r' | ' ' | '(' | ')' | '[' | ']' | '/' | '-' => 4.8,
            'm' | 'w' | 'M' | 'W' | '%' | '@' => 10.5,
            'A'..='Z' => 7.6,
            '0'..='9' => 7.0,
            c if c.is_ascii() => 6.4,
            // CJK and other wide characters.
            _ => 11.0,
        })
        .sum()
}

fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&apos;".to_string(),
            c if c.is_control() => String::new(),
            c => c.to_string(),
        })
        .collect()
}

/// A flat two-part badge: a grey label and a coloured message.
pub fn render(label: &str, message: &str, color: &str) -> String {
    let label: String = label.chars().take(64).collect();
    let message: String = message.chars().take(64).collect();
    let label_width = (text_width(&label) + 10.0).round() as u32;
    let message_width = (text_width(&message) + 10.0).round() as u32;
    let width = label_width + message_width;
    let (label, message) = (escape(&label), escape(&message));
    let label_x = label_width * 5;
    let message_x = label_width * 10 + message_width * 5;
    let label_len = label_width.saturating_sub(10) * 10;
    let message_len = message_width.saturating_sub(10) * 10;
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" aria-label="{label}: {message}"><title>{label}: {message}</title><linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient><clipPath id="r"><rect width="{width}" height="20" rx="3" fill="#fff"/></clipPath><g clip-path="url(#r)"><rect width="{label_width}" height="20" fill="#555"/><rect x="{label_width}" width="{message_width}" height="20" fill="{color}"/><rect width="{width}" height="20" fill="url(#s)"/></g><g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" text-rendering="geometricPrecision" font-size="110"><text aria-hidden="true" x="{label_x}" y="150" fill="#010101" fill-opacity=".3" transform="scale(.1)" textLength="{label_len}">{label}</text><text x="{label_x}" y="140" transform="scale(.1)" fill="#fff" textLength="{label_len}">{label}</text><text aria-hidden="true" x="{message_x}" y="150" fill="#010101" fill-opacity=".3" transform="scale(.1)" textLength="{message_len}">{message}</text><text x="{message_x}" y="140" transform="scale(.1)" fill="#fff" textLength="{message_len}">{message}</text></g></svg>"##
    )
}

/// The message and colour of a status badge.
pub fn status_message(status: Option<i16>) -> (&'static str, &'static str) {
    match status {
        Some(1) => ("up", GREEN),
        Some(2) => ("degraded", YELLOW),
        Some(0) => ("down", RED),
        _ => ("unknown", GREY),
    }
}

/// The message and colour of an uptime badge (`uptime` is -1 without data).
pub fn uptime_message(uptime: f64) -> (String, &'static str) {
    if uptime < 0.0 {
        return ("no data".to_string(), GREY);
    }
    let color = if uptime >= 99.0 {
        GREEN
    } else if uptime >= 95.0 {
        "#a4a61d"
    } else if uptime >= 90.0 {
        YELLOW
    } else {
        RED
    };
    (format!("{uptime:.2}%"), color)
}

fn svg(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("image/svg+xml; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "max-age=60, s-maxage=60"))
        .body(body)
}

pub async fn badge(req: HttpRequest, state: web::Data<AppState>, path: web::Path<(String, String)>) -> HttpResponse {
    let (provider, file) = path.into_inner();
    let Some(service) = file.strip_suffix(".svg") else {
        return svg(StatusCode::NOT_FOUND, render("badge", "use .svg", GREY));
    };
    let params = match BadgeParams::parse(req.query_string()) {
        Ok(params) => params,
        Err(problem) => return svg(StatusCode::BAD_REQUEST, render("badge", &problem, GREY)),
    };
    let period_text = params.period.unwrap_or_else(|| "24h".to_string());
    let Some(period) = Period::parse(&period_text) else {
        return svg(StatusCode::BAD_REQUEST, render("badge", "period: 24h, 7d or 30d", GREY));
    };
    let uptime = match params.metric.as_deref() {
        None | Some("status") => false,
        Some("uptime") => true,
        Some(_) => return svg(StatusCode::BAD_REQUEST, render("badge", "metric: status or uptime", GREY)),
    };
    let channel = params.channel.unwrap_or_default();
    let name =
        if channel.is_empty() { format!("{provider}/{service}") } else { format!("{provider}/{service}/{channel}") };
    let snapshot = match state.store.send(GetSnapshot).timeout(ACTOR_TIMEOUT).await {
        Ok(snapshot) => snapshot,
        Err(_) => return svg(StatusCode::SERVICE_UNAVAILABLE, render(&name, "unavailable", GREY)),
    };
    // Exact provider/service/channel, case-insensitive (no channel: the monitor without one),
    // as /api/status answers it: a monitor of several models combined, or `model`'s own.
    let name = match &params.model {
        Some(model) => format!("{name} {model}"),
        None => name,
    };
    let query = super::status::Query {
        period,
        provider: Some(provider.clone()),
        service: Some(service.to_string()),
        channel: Some(channel),
        node: None,
        compact: false,
        model: params.model.clone(),
        now: state.clock.now(),
    };
    let Some(monitor) = super::status::answer(&snapshot, &query).ok().and_then(|found| found.into_iter().next()) else {
        return svg(StatusCode::NOT_FOUND, render(&name, "not found", GREY));
    };
    let label = params.label.unwrap_or_else(|| if uptime { format!("{name} {}", period.as_str()) } else { name });
    let body = if uptime {
        let (message, color) = uptime_message(monitor.uptime);
        render(&label, &message, color)
    } else {
        let (message, color) = status_message(monitor.current_status.map(|c| c.status));
        render(&label, message, color)
    };
    svg(StatusCode::OK, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn badges_are_well_formed_and_escaped() {
        let svg = render("a<b & \"c\"", "99.5%", GREEN);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.contains("a&lt;b &amp; &quot;c&quot;: 99.5%"));
        assert!(!svg.contains("a<b"));
        let wide = render("监控", "up", GREEN);
        let narrow = render("ab", "up", GREEN);
        let width = |s: &str| s.split("width=\"").nth(1).unwrap().split('"').next().unwrap().parse::<u32>().unwrap();
        assert!(width(&wide) > width(&narrow));
    }

    #[test]
    fn badge_queries() {
        assert_eq!(BadgeParams::parse(""), Ok(BadgeParams::default()));
        let p = BadgeParams::parse("metric=uptime&period=7d&label=88code%20VIP&channel=vip").unwrap();
        assert_eq!(
            (p.metric.as_deref(), p.period.as_deref(), p.label.as_deref(), p.channel.as_deref()),
            (Some("uptime"), Some("7d"), Some("88code VIP"), Some("vip"))
        );
        assert_eq!(BadgeParams::parse("colour=red"), Err("unknown parameter colour".to_string()));
        assert_eq!(BadgeParams::parse("period=7d&period=30d"), Err("period given twice".to_string()));
    }

    #[test]
    fn messages_and_colours() {
        assert_eq!(status_message(Some(1)), ("up", GREEN));
        assert_eq!(status_message(Some(2)), ("degraded", YELLOW));
        assert_eq!(status_message(Some(0)), ("down", RED));
        assert_eq!(status_message(None), ("unknown", GREY));
        assert_eq!(uptime_message(99.86), ("99.86%".to_string(), GREEN));
        assert_eq!(uptime_message(96.0).1, "#a4a61d");
        assert_eq!(uptime_message(91.0).1, YELLOW);
        assert_eq!(uptime_message(50.0).1, RED);
        assert_eq!(uptime_message(-1.0), ("no data".to_string(), GREY));
    }
}
