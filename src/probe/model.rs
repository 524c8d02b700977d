//! Model identity: whether the model a reply names is the one expected. Vendors pin snapshots
//! of a model with a suffix (`claude-3-opus-20240229`, `gpt-4o-mini-2024-07-18`, `gpt-4-0613`,
//! `gemini-1.5-flash-002`) and offer moving aliases (`claude-3-5-sonnet-latest`); a name and its
//! snapshots are one model. The suffixes are a table, one row per vendor pattern, so a new one
//! is a row (and a test), not new code.

use std::sync::OnceLock;

use regex::Regex;

/// One way vendors name a snapshot (or an alias) of a model: a suffix after `-` or `@`.
pub struct SnapshotRule {
    pub vendor: &'static str,
    /// Matches a whole (lower-case) name; `base` is the model, `snapshot` the pinned part.
    pub pattern: &'static str,
    /// A name and one of its snapshots, for the documentation and the tests.
    pub example: (&'static str, &'static str),
}

/// Tried in order; the first that matches splits the name. The separator may be `-` or `@`
/// (Vertex AI writes `claude-3-opus@20240229`).
pub const SNAPSHOT_RULES: &[SnapshotRule] = &[
    SnapshotRule {
        vendor: "Anthropic, Vertex AI: YYYYMMDD",
        pattern: r"^(?P<base>.+?)[-@](?P<snapshot>\d{8})$",
        example: ("claude-3-opus", "claude-3-opus-20240229"),
    },
    SnapshotRule {
        vendor: "OpenAI, Qwen, DeepSeek: YYYY-MM-DD",
        pattern: r"^(?P<base>.+?)[-@](?P<snapshot>\d{4}-\d{2}-\d{2})$",
        example: ("gpt-4o-mini", "gpt-4o-mini-2024-07-18"),
    },
    SnapshotRule {
        vendor: "Cohere: MM-YYYY",
        pattern: r"^(?P<base>.+?)[-@](?P<snapshot>\d{2}-\d{4})$",
        example: ("command-r", "command-r-08-2024"),
    },
    SnapshotRule {
        vendor: "Google previews and experiments: -preview-MM-DD, -exp-MM-DD",
        pattern: r"^(?P<base>.+-(?:preview|exp))-(?P<snapshot>\d{2}-\d{2})$",
        example: ("gemini-2.5-flash-preview", "gemini-2.5-flash-preview-05-20"),
    },
    SnapshotRule {
        vendor: "OpenAI 2023 (MMDD), Mistral (YYMM), DeepSeek, xAI: four digits",
        pattern: r"^(?P<base>.+?)[-@](?P<snapshot>\d{4})$",
        example: ("gpt-3.5-turbo", "gpt-3.5-turbo-0125"),
    },
    SnapshotRule {
        vendor: "Google Gemini: a three-digit revision",
        pattern: r"^(?P<base>.+?)[-@](?P<snapshot>\d{3})$",
        example: ("gemini-1.5-flash", "gemini-1.5-flash-002"),
    },
    SnapshotRule {
        vendor: "relays: the thinking mode of a model (-thinking)",
        pattern: r"^(?P<base>.+?)-(?P<snapshot>thinking)$",
        example: ("claude-sonnet-4-5-20250929-thinking", "claude-sonnet-4-5-20250929"),
    },
    SnapshotRule {
        vendor: "every vendor's moving alias: latest",
        pattern: r"^(?P<base>.+?)[-@](?P<snapshot>latest)$",
        example: ("claude-3-5-sonnet-latest", "claude-3-5-sonnet-20241022"),
    },
];

fn rules() -> &'static [Regex] {
    static RULES: OnceLock<Vec<Regex>> = OnceLock::new();
    RULES.get_or_init(|| SNAPSHOT_RULES.iter().map(|r| Regex::new(r.pattern).expect("static regex")).collect())
}

/// A model name split into the model and its pinned snapshot, if it names one.
#[derive(Debug, PartialEq, Eq)]
struct Split {
    base: String,
    /// The snapshot's digits (`20240718` for both `2024-07-18` and `20240718`); `None` for no
    /// snapshot or a moving alias such as `latest`.
    pinned: Option<String>,
}

/// Suffixes come off one after another (`...-20250929-thinking` is a mode of a snapshot);
/// the outermost dated one is the snapshot.
fn split(name: &str) -> Split {
    let name = name.trim().to_ascii_lowercase();
    let mut base = name.strip_prefix("models/").unwrap_or(&name).to_string();
    let mut pinned = None;
    'strip: loop {
        for rule in rules() {
            if let Some(captures) = rule.captures(&base) {
                let snapshot = &captures["snapshot"];
                if pinned.is_none() && snapshot.chars().any(|c| c.is_ascii_digit()) {
                    pinned = Some(snapshot.replace('-', ""));
                }
                base = captures["base"].to_string();
                continue 'strip;
            }
        }
        return Split { base, pinned };
    }
}

/// The name pins a snapshot (`gpt-4o-2024-05-13`), not only a model (`gpt-4o`).
pub fn is_pinned(name: &str) -> bool {
    split(name).pinned.is_some()
}

/// Whether the reported model is the expected one: the same model (ignoring case, a `models/`
/// prefix and a snapshot suffix from [`SNAPSHOT_RULES`] on either side), and the same snapshot
/// when both pin one. `gpt-4o` is not `gpt-4o-mini`; `claude-sonnet-4` is not
/// `claude-sonnet-4-5-20250929`; `gpt-4-0613` is not `gpt-4-0314`.
pub fn same_model(expected: &str, reported: &str) -> bool {
    let (expected, reported) = (split(expected), split(reported));
    if expected.base != reported.base {
        return false;
    }
    match (expected.pinned, reported.pinned) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row's example: the name and its snapshot are one model, either way round, and
    /// the snapshot alone is another model's name only when the bases differ.
    #[test]
    fn every_rule_matches_its_example() {
        for (rule, regex) in SNAPSHOT_RULES.iter().zip(rules()) {
            let (name, snapshot) = rule.example;
            assert!(same_model(name, snapshot), "{}: {name} vs {snapshot}", rule.vendor);
            assert!(same_model(snapshot, name), "{}: {snapshot} vs {name}", rule.vendor);
            assert!(
                regex.is_match(snapshot) || regex.is_match(name),
                "{}: its own example does not use it",
                rule.vendor
            );
            assert!(!same_model(&format!("{name}-mini"), snapshot), "{}: -mini is another model", rule.vendor);
        }
    }

    #[test]
    fn model_identity_table() {
        let rows = [
            ("claude-3-opus", "claude-3-opus-20240229", true),
            ("claude-3-opus-20240229", "claude-3-opus", true),
            ("claude-3-opus", "claude-3-opus@20240229", true),
            ("claude-3-opus@20240229", "claude-3-opus-20240229", true),
            ("claude-3-5-sonnet-latest", "claude-3-5-sonnet-20241022", true),
            ("claude-3-5-sonnet", "claude-3-5-sonnet-latest", true),
            ("claude-3-5-sonnet-20240620", "claude-3-5-sonnet-20241022", false),
            ("gpt-4o-mini", "gpt-4o-mini-2024-07-18", true),
            ("gpt-4o-mini-2024-07-18", "gpt-4o-mini-20240718", true),
            ("gpt-4", "gpt-4-0613", true),
            ("gpt-3.5-turbo", "gpt-3.5-turbo-0125", true),
            ("gpt-4-0613", "gpt-4-0314", false),
            ("gpt-4", "gpt-4-32k-0613", false),
            ("mistral-large-latest", "mistral-large-2411", true),
            ("gemini-1.5-flash", "models/gemini-1.5-flash-002", true),
            ("gemini-2.5-flash-preview", "gemini-2.5-flash-preview-05-20", true),
            ("gemini-2.5-flash", "gemini-2.5-flash-preview-05-20", false),
            ("command-r", "command-r-08-2024", true),
            ("GPT-4o", "gpt-4o", true),
            ("gpt-4o", "gpt-4o-mini", false),
            ("gpt-4o", "gpt-4o-mini-2024-07-18", false),
            ("claude-3-opus", "claude-3-haiku-20240307", false),
            ("gpt-4", "gpt-4o", false),
            ("claude-3-opus", "claude-3-opus-fast", false),
            ("o1", "o1-mini", false),
            ("o1", "o1-2024-12-17", true),
            ("claude-sonnet-4", "claude-sonnet-4-5-20250929", false),
            ("claude-opus-4", "claude-opus-4-1-20250805", false),
            ("claude-sonnet-4-5", "claude-sonnet-4", false),
            ("claude-sonnet-4-5", "claude-sonnet-4-5-20250929", true),
            ("gpt-4.1", "gpt-4.1-2025-04-14", true),
            ("gemini-1.5-flash", "gemini-1.5-flash-8b", false),
            ("claude-sonnet-4-5-20250929-thinking", "claude-sonnet-4-5-20250929", true),
            ("claude-opus-4-1-thinking", "claude-opus-4-1-20250805", true),
            ("claude-opus-4-1-thinking", "claude-opus-4-20250514", false),
            ("gpt-5-chat-latest", "gpt-5-chat-2025-08-07", true),
        ];
        for (expected, reported, same) in rows {
            assert_eq!(same_model(expected, reported), same, "{expected} vs {reported}");
        }
    }
}
