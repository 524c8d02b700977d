//! Probe templates: the request shape of an API family, so a monitor can be written as
//! `base_url, template, model, api_key`. Built-in ones are embedded in the binary; users add
//! their own as `data/templates/<name>.yaml` (same `data/` confinement as `!include`).

use serde::Deserialize;
use serde_yaml::Mapping;

use super::load::read_include;

const BUILTIN: &[(&str, &str)] = &[
    ("openai-chat", include_str!("templates/openai-chat.yaml")),
    ("openai-responses", include_str!("templates/openai-responses.yaml")),
    ("anthropic-messages", include_str!("templates/anthropic-messages.yaml")),
    ("gemini", include_str!("templates/gemini.yaml")),
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub method: String,
    #[serde(default)]
    headers: Mapping,
    pub plain: Form,
    pub stream: Form,
}

/// One form of a template: non-streaming or streaming.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Form {
    pub path: String,
    pub body: Option<String>,
}

impl Template {
    /// Header names and values in the order the template lists them.
    pub fn headers(&self) -> Vec<(String, String)> {
        self.headers.iter().filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string()))).collect()
    }

    pub fn form(&self, stream: bool) -> &Form {
        if stream {
            &self.stream
        } else {
            &self.plain
        }
    }
}

pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(name, _)| *name).collect()
}

fn parse(name: &str, text: &str) -> Result<Template, String> {
    let template: Template = serde_yaml::from_str(text).map_err(|e| format!("template {name:?}: {e}"))?;
    if template.headers.iter().any(|(k, v)| !k.is_string() || !v.is_string()) {
        return Err(format!("template {name:?}: header names and values must be strings"));
    }
    for form in [&template.plain, &template.stream] {
        if !form.path.starts_with('/') {
            return Err(format!("template {name:?}: path {:?} must start with /", form.path));
        }
    }
    Ok(template)
}

/// Finds a template: `data/templates/<name>.yaml` beside the config first, then the built-ins.
pub fn find(name: &str, base_dir: &std::path::Path) -> Result<Template, String> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !valid {
        return Err(format!("{name:?} is not a template name (lower-case letters, digits, - and _)"));
    }
    let relative = format!("data/templates/{name}.yaml");
    if base_dir.join(&relative).exists() {
        let text = read_include(base_dir, &relative).map_err(|e| format!("{relative}: {e}"))?;
        return parse(name, &text);
    }
    match BUILTIN.iter().find(|(n, _)| *n == name) {
        Some((_, text)) => parse(name, text),
        None => Err(format!("unknown template {name:?} (built-in: {}; or add {relative})", builtin_names().join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_parses_and_uses_the_placeholders() {
        for name in builtin_names() {
            let t = find(name, std::path::Path::new("/nonexistent")).unwrap();
            for form in [t.form(false), t.form(true)] {
                let body = form.body.as_deref().unwrap();
                assert!(body.contains("{{CHALLENGE}}"), "{name}");
                assert!(body.contains("{{MODEL}}") || form.path.contains("{{MODEL}}"), "{name}");
                let filled = body.replace("{{MODEL}}", "m").replace("{{CHALLENGE}}", "What is 1 + 2?");
                serde_json::from_str::<serde_json::Value>(&filled).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            assert!(t.headers().iter().any(|(_, v)| v.contains("{{API_KEY}}")), "{name}");
            assert!(
                t.form(true).body.as_deref().unwrap().contains("\"stream\": true")
                    || t.form(true).path.contains("stream"),
                "{name}"
            );
        }
    }

    #[test]
    fn user_templates_come_from_data_templates() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data/templates")).unwrap();
        std::fs::write(
            dir.path().join("data/templates/mine.yaml"),
            "method: POST\nheaders: {X-Key: \"{{API_KEY}}\"}\nplain: {path: /a, body: \"{{CHALLENGE}}\"}\nstream: {path: /b}\n",
        )
        .unwrap();
        let t = find("mine", dir.path()).unwrap();
        assert_eq!((t.plain.path.as_str(), t.stream.path.as_str()), ("/a", "/b"));
        assert_eq!(t.headers(), vec![("X-Key".to_string(), "{{API_KEY}}".to_string())]);
        assert!(find("../x", dir.path()).unwrap_err().contains("not a template name"));
        assert!(find("nope", dir.path()).unwrap_err().contains("unknown template \"nope\""));
        std::fs::write(
            dir.path().join("data/templates/bad.yaml"),
            "method: POST\nplain: {path: a}\nstream: {path: /b}\n",
        )
        .unwrap();
        assert!(find("bad", dir.path()).unwrap_err().contains("must start with /"));
    }
}
