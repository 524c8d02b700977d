//! A red probe's detail, from what the upstream sent: its JSON error message or the start of
//! its body, redacted and cut; and the parameter a model does not support, when it says so.

use super::classify::MAX_DETAIL_BYTES;
use super::sse;
use crate::secret::Redactor;

/// `HTTP 502: <what the body says>`, preferring a JSON error message over raw text.
pub(super) fn http_detail(code: u16, body: &[u8], redactor: &Redactor) -> String {
    let json = serde_json::from_slice::<serde_json::Value>(body).ok();
    let error = match &json {
        Some(serde_json::Value::Object(map)) if map.contains_key("error") => Some(&map["error"]),
        Some(value @ serde_json::Value::Object(map)) if map.contains_key("message") => Some(value),
        _ => None,
    };
    let text = match error {
        Some(error) => sse::error_message(error),
        None => lossy_prefix(body, 64 * 1024),
    };
    let text = redactor.excerpt(&text, MAX_DETAIL_BYTES);
    // A model that takes other parameters than the request sent (a reasoning model asked with
    // max_tokens): say which, so the fix (a template row or a body of its own) is obvious.
    if let Some(param) = (400..500).contains(&code).then(|| error.and_then(unsupported_parameter)).flatten() {
        return format!("HTTP {code}: parameter {} not supported by this model: {text}", redactor.excerpt(&param, 64));
    }
    if text.is_empty() {
        format!("HTTP {code}")
    } else {
        format!("HTTP {code}: {text}")
    }
}

/// The parameter an API error says it does not support (OpenAI's `unsupported_parameter` and
/// `unsupported_value` codes, or a message that says so), if it says one.
fn unsupported_parameter(error: &serde_json::Value) -> Option<String> {
    let message = error.get("message").and_then(serde_json::Value::as_str).unwrap_or("");
    let code = error.get("code").and_then(serde_json::Value::as_str).unwrap_or("");
    let says = matches!(code, "unsupported_parameter" | "unsupported_value")
        || message.contains("Unsupported parameter")
        || message.contains("Unsupported value")
        || message.contains("is not supported with this model");
    if !says {
        return None;
    }
    let named = error.get("param").and_then(serde_json::Value::as_str).filter(|p| !p.is_empty());
    // Else the first 'quoted' name in the message.
    let quoted = || message.split('\'').nth(1).filter(|p| !p.is_empty() && p.len() <= 64);
    Some(named.or_else(quoted).unwrap_or("(unnamed)").to_string())
}

/// The first `max` bytes of a body as text.
pub(super) fn lossy_prefix(body: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&body[..body.len().min(max)]).into_owned()
}
