//! Probe templates: the request shape of an API family, so a monitor can be written as
//! `base_url, template, model, api_key`. Built-in ones are embedded in the binary; users add
//! their own as `data/templates/<name>.yaml` (same `data/` confinement as `!include`), whole or
//! `extends:` a built-in. A template's `models:` table changes the request body by model name
//! (reasoning models take other parameters than chat models), first match wins.

use serde::Deserialize;
use serde_yaml::Mapping;

use super::load::read_include;

const BUILTIN: &[(&str, &str)] = &[
    ("openai-chat", include_str!("templates/openai-chat.yaml")),
    ("openai-responses", include_str!("templates/openai-responses.yaml")),
    ("anthropic-messages", include_str!("templates/anthropic-messages.yaml")),
    ("gemini", include_str!("templates/gemini.yaml")),
];

#[derive(Debug, Clone)]
pub struct Template {
    pub method: String,
    headers: Mapping,
    pub plain: Form,
    pub stream: Form,
    /// Body changes by model name, first match wins.
    pub models: Vec<ModelRule>,
}

/// A template file as written: whole, or `extends:` a built-in and changes some of it (its
/// `models:` rows come before the built-in's).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateFile {
    extends: Option<String>,
    method: Option<String>,
    headers: Option<Mapping>,
    plain: Option<Form>,
    stream: Option<Form>,
    #[serde(default)]
    models: Vec<ModelRule>,
}

/// One row of a `models:` table: for model names matching `match` (`*` is any text, case is
/// ignored, a `vendor/` prefix too), remove the dotted JSON paths in `remove` from the body,
/// then merge `set` into it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelRule {
    #[serde(rename = "match")]
    pub patterns: Vec<String>,
    #[serde(default)]
    pub remove: Vec<String>,
    #[serde(default)]
    pub set: serde_json::Map<String, serde_json::Value>,
}

impl ModelRule {
    pub fn matches(&self, model: &str) -> bool {
        let name = model.rsplit('/').next().unwrap_or(model).to_ascii_lowercase();
        self.patterns.iter().any(|p| glob(&p.to_ascii_lowercase(), &name))
    }
}

/// `*` matches any run of characters; everything else itself.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(text) = text.strip_prefix(head) else { return false };
            (0..=text.len()).filter(|&i| text.is_char_boundary(i)).any(|i| glob(rest, &text[i..]))
        }
    }
}

fn merge(into: &mut serde_json::Map<String, serde_json::Value>, from: &serde_json::Map<String, serde_json::Value>) {
    for (key, value) in from {
        match (into.get_mut(key), value) {
            (Some(serde_json::Value::Object(inner)), serde_json::Value::Object(more)) => merge(inner, more),
            _ => {
                into.insert(key.clone(), value.clone());
            }
        }
    }
}

fn remove(body: &mut serde_json::Map<String, serde_json::Value>, path: &str) {
    match path.split_once('.') {
        None => {
            body.remove(path);
        }
        Some((head, rest)) => {
            if let Some(serde_json::Value::Object(inner)) = body.get_mut(head) {
                remove(inner, rest);
            }
        }
    }
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

    /// The first `models:` row for `model`, if any.
    pub fn rule_for(&self, model: &str) -> Option<&ModelRule> {
        self.models.iter().find(|rule| rule.matches(model))
    }

    /// `body` (a form's, placeholders still in it) as `model` needs it: unchanged when no row
    /// matches, else with the row's removals and settings applied.
    pub fn body_for(&self, body: &str, model: &str) -> Result<String, String> {
        let Some(rule) = self.rule_for(model) else { return Ok(body.to_string()) };
        let mut value: serde_json::Value = serde_json::from_str(body)
            .map_err(|e| format!("the template's body is not JSON, so models: cannot apply ({e})"))?;
        let serde_json::Value::Object(map) = &mut value else {
            return Err("the template's body is not a JSON object, so models: cannot apply".to_string());
        };
        for path in &rule.remove {
            remove(map, path);
        }
        merge(map, &rule.set);
        Ok(value.to_string())
    }
}

pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(name, _)| *name).collect()
}

fn parse(name: &str, text: &str) -> Result<Template, String> {
    let file: TemplateFile = serde_yaml::from_str(text).map_err(|e| format!("template {name:?}: {e}"))?;
    let template = match &file.extends {
        Some(base) => {
            let Some((_, base_text)) = BUILTIN.iter().find(|(n, _)| n == base) else {
                return Err(format!(
                    "template {name:?}: extends {base:?}, which is not a built-in ({})",
                    builtin_names().join(", ")
                ));
            };
            let base = parse(base, base_text)?;
            let mut models = file.models;
            models.extend(base.models);
            Template {
                method: file.method.unwrap_or(base.method),
                headers: file.headers.unwrap_or(base.headers),
                plain: file.plain.unwrap_or(base.plain),
                stream: file.stream.unwrap_or(base.stream),
                models,
            }
        }
        None => match (file.method, file.plain, file.stream) {
            (Some(method), Some(plain), Some(stream)) => {
                Template { method, headers: file.headers.unwrap_or_default(), plain, stream, models: file.models }
            }
            _ => {
                return Err(format!(
                    "template {name:?}: method, plain and stream are required (or extends: a built-in)"
                ))
            }
        },
    };
    if template.headers.iter().any(|(k, v)| !k.is_string() || !v.is_string()) {
        return Err(format!("template {name:?}: header names and values must be strings"));
    }
    for form in [&template.plain, &template.stream] {
        if !form.path.starts_with('/') {
            return Err(format!("template {name:?}: path {:?} must start with /", form.path));
        }
    }
    for rule in &template.models {
        if rule.patterns.is_empty() || rule.patterns.iter().any(|p| p.trim().is_empty()) {
            return Err(format!("template {name:?}: every models: row needs a non-empty match"));
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

    /// Each built-in row, for a model it is meant for: the body it makes.
    #[test]
    fn model_rows_change_the_body() {
        let body = |template: &str, model: &str, stream: bool| -> serde_json::Value {
            let t = find(template, std::path::Path::new("/nonexistent")).unwrap();
            let text = t.body_for(t.form(stream).body.as_deref().unwrap(), model).unwrap();
            serde_json::from_str(&text).unwrap()
        };
        let chat = body("openai-chat", "gpt-5-nano", true);
        assert_eq!((chat.get("max_tokens"), chat.get("temperature")), (None, None));
        assert_eq!(
            (chat["max_completion_tokens"].as_u64(), chat["reasoning_effort"].as_str()),
            (Some(256), Some("minimal"))
        );
        assert_eq!(chat["stream"], true, "the rest of the body stays");
        assert_eq!(chat["messages"][0]["content"], "{{CHALLENGE}}");
        assert_eq!(body("openai-chat", "GPT-5.1", false)["reasoning_effort"], "none");
        // Chat models of every gpt-5 version take no reasoning effort.
        for model in ["gpt-5-chat-latest", "gpt-5.1-chat-latest", "openai/gpt-5.2-chat-latest"] {
            let chat = body("openai-chat", model, false);
            assert_eq!(
                (chat.get("reasoning_effort"), chat["max_completion_tokens"].as_u64()),
                (None, Some(64)),
                "{model}"
            );
            assert_eq!(body("openai-responses", model, false).get("reasoning"), None, "{model}");
        }
        assert_eq!(body("openai-chat", "o3-mini", false)["reasoning_effort"], "low");
        assert_eq!(body("openai-chat", "o1-preview", false).get("reasoning_effort"), None);
        assert_eq!(body("openai-chat", "openrouter/openai/o4-mini", false)["reasoning_effort"], "low");
        assert_eq!(body("openai-chat", "gpt-4o-mini", false)["max_tokens"], 16, "no row: unchanged");
        assert_eq!(body("openai-responses", "gpt-5", true)["reasoning"]["effort"], "minimal");
        let thinking = body("anthropic-messages", "claude-sonnet-4-5-20250929-thinking", true);
        assert_eq!(
            (thinking["max_tokens"].as_u64(), thinking["thinking"]["budget_tokens"].as_u64()),
            (Some(2048), Some(1024))
        );
        let pro = body("gemini", "gemini-2.5-pro", true);
        assert_eq!(pro["generationConfig"]["thinkingConfig"]["thinkingBudget"], 128);
        assert_eq!(pro["generationConfig"]["temperature"], 0, "merged, not replaced");
        let three = body("gemini", "models/gemini-3-pro-preview", false);
        assert_eq!(three["generationConfig"].get("temperature"), None);
        assert_eq!(three["generationConfig"]["thinkingConfig"]["thinkingLevel"], "low");
        assert_eq!(
            body("gemini", "gemini-2.5-flash", false)["generationConfig"]["thinkingConfig"]["thinkingBudget"],
            0
        );
        // A body that is left as it is keeps its text (not re-serialised).
        let t = find("openai-chat", std::path::Path::new("/nonexistent")).unwrap();
        let raw = t.form(true).body.as_deref().unwrap();
        assert_eq!(t.body_for(raw, "gpt-4o").unwrap(), raw);
    }

    #[test]
    fn globs() {
        let rows = [
            ("gpt-5*", "gpt-5", true),
            ("gpt-5*", "gpt-5-mini-2025-08-07", true),
            ("gpt-5*", "gpt-4o", false),
            ("*-thinking", "claude-x-thinking", true),
            ("*-thinking", "claude-x-thinking-2", false),
            ("*thinking*", "gemini-2.0-flash-thinking-exp", true),
            ("o1*", "o1", true),
            ("o1", "o1-mini", false),
        ];
        for (pattern, model, matches) in rows {
            let rule = ModelRule { patterns: vec![pattern.to_string()], remove: vec![], set: Default::default() };
            assert_eq!(rule.matches(model), matches, "{pattern} {model}");
        }
    }

    /// A user template can extend a built-in: its rows first, the rest inherited.
    #[test]
    fn a_user_template_extends_a_built_in() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data/templates")).unwrap();
        std::fs::write(
            dir.path().join("data/templates/relay.yaml"),
            "extends: openai-chat\nmodels:\n  - match: [\"my-reasoner*\"]\n    remove: [temperature]\n    set: {max_tokens: 512}\n",
        )
        .unwrap();
        let t = find("relay", dir.path()).unwrap();
        assert_eq!(t.plain.path, "/v1/chat/completions");
        let own = t.body_for(t.plain.body.as_deref().unwrap(), "my-reasoner-7b").unwrap();
        assert!(own.contains("\"max_tokens\":512") && !own.contains("temperature"), "{own}");
        let inherited = t.body_for(t.plain.body.as_deref().unwrap(), "gpt-5").unwrap();
        assert!(inherited.contains("\"reasoning_effort\":\"minimal\""), "{inherited}");
        std::fs::write(dir.path().join("data/templates/bad.yaml"), "extends: nope\n").unwrap();
        assert!(find("bad", dir.path()).unwrap_err().contains("extends \"nope\", which is not a built-in"));
        std::fs::write(dir.path().join("data/templates/half.yaml"), "method: POST\n").unwrap();
        assert!(find("half", dir.path()).unwrap_err().contains("method, plain and stream are required"));
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
