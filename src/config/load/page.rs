//! `page:` (the status page's title, description, logo, footer, group order and hidden
//! monitors) and each monitor's `group:`.

use serde_yaml::{Mapping, Value};

use super::checks::check_url;
use super::fields::{describe, Errors, Fields};
use crate::alert::maintenance::Pattern;
use crate::config::{MonitorKey, PageConfig};

pub(super) const PAGE_KEYS: &[&str] = &["title", "description", "logo_url", "footer", "groups", "hidden"];
/// The longest title, group name; description or footer; logo URL (characters).
const MAX_TITLE: usize = 100;
const MAX_GROUP: usize = 64;
const MAX_TEXT: usize = 1_000;
const MAX_URL: usize = 2_048;

/// A text field: trimmed, not empty, at most `max` characters, no control characters.
fn text(fields: &Fields<'_>, key: &str, max: usize, errors: &mut Errors) -> Option<String> {
    let value: String = fields.get(key, errors)?;
    match check_text(&value, max) {
        Ok(()) => Some(value.trim().to_string()),
        Err(e) => {
            errors.push(&fields.place, key, e);
            None
        }
    }
}

fn check_text(value: &str, max: usize) -> Result<(), String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err("must not be empty (leave it out instead)".to_string());
    }
    if trimmed.chars().count() > max {
        return Err(format!("is longer than {max} characters"));
    }
    if trimmed.chars().any(|c| c.is_control() && c != '\n') {
        return Err("holds a control character".to_string());
    }
    Ok(())
}

/// `logo_url`: an http(s) URL, or a path on this daemon (`/logo.svg`).
fn check_logo(url: &str) -> Result<(), String> {
    if url.len() > MAX_URL {
        return Err(format!("is longer than {MAX_URL} characters"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control() || "\"'<>\\`".contains(c)) {
        return Err("holds a space, quote, angle bracket or backslash".to_string());
    }
    if url.starts_with('/') && !url.starts_with("//") {
        return Ok(());
    }
    check_url(url).map_err(|e| format!("{e} (an http(s) URL, or a path starting with /)"))?;
    crate::config::logo_origin(url).map(drop)
}

pub(super) fn parse_page(value: Option<&Value>, errors: &mut Errors) -> PageConfig {
    let mut page = PageConfig::default();
    let Some(value) = value else { return page };
    let Value::Mapping(map) = value else {
        errors.push("", "page", format!("must be a mapping, found {}", describe(value)));
        return page;
    };
    let fields = Fields { map, place: "page".to_string() };
    fields.check_keys(PAGE_KEYS, errors);
    page.title = text(&fields, "title", MAX_TITLE, errors);
    page.description = text(&fields, "description", MAX_TEXT, errors);
    page.footer = text(&fields, "footer", MAX_TEXT, errors);
    if let Some(url) = fields.get::<String>("logo_url", errors) {
        match check_logo(&url) {
            Ok(()) => page.logo_url = Some(url),
            Err(e) => errors.push("page", "logo_url", e),
        }
    }
    for name in fields.get::<Vec<String>>("groups", errors).unwrap_or_default() {
        match check_text(&name, MAX_GROUP) {
            Err(e) => errors.push("page", "groups", format!("{name:?} {e}")),
            Ok(()) if page.groups.iter().any(|g| g.eq_ignore_ascii_case(name.trim())) => {
                errors.push("page", "groups", format!("{name:?} is listed twice"))
            }
            Ok(()) => page.groups.push(name.trim().to_string()),
        }
    }
    for pattern in fields.get::<Vec<String>>("hidden", errors).unwrap_or_default() {
        match Pattern::parse(&pattern) {
            Ok(_) => page.hidden.push(pattern.trim().to_string()),
            Err(e) => errors.push("page", "hidden", e),
        }
    }
    page
}

/// A monitor's `group:` (the status page groups by provider without one).
pub(super) fn monitor_group(
    map: &Mapping,
    place: &str,
    key: &MonitorKey,
    errors: &mut Errors,
) -> Option<(MonitorKey, String)> {
    let fields = Fields { map, place: place.to_string() };
    let group = text(&fields, "group", MAX_GROUP, errors)?;
    Some((key.clone(), group))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> (PageConfig, Vec<String>) {
        let value: Value = serde_yaml::from_str(yaml).unwrap();
        let mut errors = Errors { lines: Vec::new() };
        let page = parse_page(Some(&value), &mut errors);
        (page, errors.lines)
    }

    #[test]
    fn page_settings_are_checked_and_kept() {
        let (page, errors) = parse(
            "{title: ' Relay status ', description: 'Probed every minute', logo_url: /favicon.svg, \
             footer: 'Run by ops', groups: [OpenAI, Claude], hidden: ['test/*', 'a/b/vip']}",
        );
        assert_eq!(errors, Vec::<String>::new());
        assert_eq!(page.title.as_deref(), Some("Relay status"));
        assert_eq!(page.logo_url.as_deref(), Some("/favicon.svg"));
        assert_eq!(page.groups, ["OpenAI", "Claude"]);
        assert_eq!(page.hidden, ["test/*", "a/b/vip"]);
        let (page, errors) = parse("{logo_url: 'https://cdn.example.com/logo.png'}");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(page.logo_url.as_deref(), Some("https://cdn.example.com/logo.png"));
    }

    #[test]
    fn bad_page_settings_are_named() {
        let (_, errors) = parse(
            "{title: '', logo_url: 'javascript:alert(1)', groups: [a, A], hidden: [nope], colour: red, \
             footer: \"x\\u0007\"}",
        );
        let text = errors.join("\n");
        for expected in [
            "page: colour: unknown key",
            "page: title: must not be empty",
            "page: logo_url: must start with http:// or https://",
            "page: groups: \"A\" is listed twice",
            "page: hidden: \"nope\" is not provider/service",
            "page: footer: holds a control character",
        ] {
            assert!(text.contains(expected), "{expected} in:\n{text}");
        }
        let (_, errors) = parse("{logo_url: 'https://me:pw@cdn.example.com/x.png'}");
        assert!(errors.iter().any(|e| e.contains("user name or password") && !e.contains("pw")), "{errors:?}");
        for bad in [
            "https://a.com;sandbox/x.png",
            "https://*/x.png",
            "https://a.com:99999/x.png",
            "https://a.com:/x.png",
            "https://a,b.com/x",
        ] {
            let (_, errors) = parse(&format!("{{logo_url: '{bad}'}}"));
            assert!(errors.iter().any(|e| e.contains("logo_url")), "{bad}: {errors:?}");
        }
        let (page, errors) = parse("{logo_url: 'https://cdn.example.com/x.png?u=a@b'}");
        assert!(errors.is_empty(), "an @ after the host is no credential: {errors:?}");
        assert_eq!(
            crate::config::logo_origin(page.logo_url.as_deref().unwrap()),
            Ok(Some("https://cdn.example.com".into()))
        );
        let (_, errors) = parse("{logo_url: '//evil.example/x.png', title: 'x'}");
        assert!(errors.iter().any(|e| e.contains("logo_url")), "{errors:?}");
        let (_, errors) = parse(&format!("{{title: '{}'}}", "t".repeat(101)));
        assert!(errors.iter().any(|e| e.contains("longer than 100")), "{errors:?}");
    }
}
