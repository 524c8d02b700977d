//! Secrets and redaction. A [`Secret`] never prints itself; a [`Redactor`] removes a monitor's
//! secrets (and anything shaped like a bearer or API token) from every text that came from an
//! upstream or a config file before it is stored, logged or served: redact first, then cut.

use std::fmt;
use std::sync::OnceLock;

use base64::Engine;
use regex::Regex;

pub const REDACTED: &str = "[REDACTED]";

/// Secrets at least this long are removed wherever they appear; shorter ones only where they
/// stand as a word of their own (a two-letter key must not turn "based" into "ba[REDACTED]").
const SUBSTRING_MIN: usize = 8;
/// Parts of a header value (cookie values, a token after its scheme) shorter than this are not
/// treated as credentials: `lang=en` is not a secret.
const PART_MIN: usize = 6;

/// A string that must never reach a log, an answer or the database. `Debug` and `Display`
/// print `[REDACTED]`; [`Secret::expose`] is the one way to read it.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_string())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Header names whose values are protocol settings, not credentials.
const PLAIN_HEADERS: &[&str] = &[
    "accept",
    "accept-encoding",
    "accept-language",
    "anthropic-beta",
    "anthropic-version",
    "content-type",
    "openai-beta",
    "user-agent",
];

/// Whether a header's value may be a credential.
pub fn is_secret_header(name: &str) -> bool {
    !PLAIN_HEADERS.iter().any(|plain| plain.eq_ignore_ascii_case(name))
}

/// The credential pieces inside a header value: the whole value, and each token an upstream
/// might echo alone: the token after `Bearer`/`Basic`/`Token`, cookie and parameter values, and
/// for `Basic` the decoded `user:password` and the password.
pub fn credential_parts(value: &str) -> Vec<String> {
    let mut parts = vec![value.trim().to_string()];
    let mut after_basic = false;
    for token in value.split(|c: char| c.is_whitespace() || c == ',' || c == ';').filter(|t| !t.is_empty()) {
        let lower = token.to_ascii_lowercase();
        if matches!(lower.as_str(), "bearer" | "basic" | "token" | "digest" | "apikey" | "key") {
            after_basic = lower == "basic";
            continue;
        }
        // `name=value` (cookies, parameters), but not a base64 token's `==` padding.
        let piece = match token.split_once('=') {
            Some((_, value)) if !value.trim_matches('=').is_empty() => value,
            _ => token,
        }
        .trim_matches('"');
        parts.push(piece.to_string());
        if after_basic {
            if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(piece) {
                if let Ok(text) = String::from_utf8(decoded) {
                    if let Some((_, password)) = text.split_once(':') {
                        parts.push(password.to_string());
                    }
                    parts.push(text);
                }
            }
        }
        after_basic = false;
    }
    parts.retain(|p| p.len() >= PART_MIN);
    parts.sort();
    parts.dedup();
    parts
}

fn token_patterns() -> &'static [(Regex, &'static str)] {
    static PATTERNS: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        let compile = |pattern: &str| Regex::new(pattern).expect("static regex");
        vec![
            (compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=\-]+"), "Bearer [REDACTED]"),
            (compile(r"(?i)\bbasic\s+[A-Za-z0-9+/=]{6,}"), "Basic [REDACTED]"),
            (compile(r"\bsk-[A-Za-z0-9_\-]{3,}"), "sk-[REDACTED]"),
            // Google API keys.
            (compile(r"\bAIza[0-9A-Za-z_\-]{20,}"), "[REDACTED]"),
        ]
    })
}

/// Removes known secrets and token-shaped strings from text. Built once per config load from
/// everything that may be secret in it (every monitor's: a relay or cache shared by several
/// monitors may echo one monitor's key in another's reply).
#[derive(Clone, Default)]
pub struct Redactor {
    /// Removed wherever they appear (the longest at a place first).
    substrings: Vec<String>,
    finder: Option<aho_corasick::AhoCorasick>,
    /// Removed where they stand as a word of their own.
    words: Vec<String>,
    longest: usize,
}

impl PartialEq for Redactor {
    fn eq(&self, other: &Self) -> bool {
        self.substrings == other.substrings && self.words == other.words
    }
}

impl Eq for Redactor {}

/// The config-wide [`Redactor`], shared by every monitor. It is derived from all monitors'
/// settings, so it never makes two monitors differ (a reload that changes it hands the new one
/// to every probe).
#[derive(Clone, Default, Debug)]
pub struct SharedRedactor(pub std::sync::Arc<Redactor>);

impl PartialEq for SharedRedactor {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::ops::Deref for SharedRedactor {
    type Target = Redactor;

    fn deref(&self) -> &Redactor {
        &self.0
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} secrets)", self.substrings.len() + self.words.len())
    }
}

impl Redactor {
    pub fn new<S: AsRef<str>>(secrets: impl IntoIterator<Item = S>) -> Self {
        let mut substrings = Vec::new();
        let mut words = Vec::new();
        for secret in secrets {
            let secret = secret.as_ref();
            if secret.is_empty() {
                continue;
            }
            if secret.len() >= SUBSTRING_MIN {
                substrings.push(secret.to_string());
            } else {
                words.push(secret.to_string());
            }
        }
        // Longer first, so a secret containing another is removed whole.
        for list in [&mut substrings, &mut words] {
            list.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
            list.dedup();
        }
        let longest = substrings.iter().chain(&words).map(String::len).max().unwrap_or(0);
        // One pass over a text for all of them, however many monitors there are.
        let finder = (!substrings.is_empty())
            .then(|| {
                aho_corasick::AhoCorasick::builder()
                    .match_kind(aho_corasick::MatchKind::LeftmostLongest)
                    .build(&substrings)
                    .ok()
            })
            .flatten();
        Redactor { substrings, finder, words, longest }
    }

    pub fn is_empty(&self) -> bool {
        self.substrings.is_empty() && self.words.is_empty()
    }

    /// `text` without any secret or token-shaped string in it.
    pub fn redact(&self, text: &str) -> String {
        let mut out = match &self.finder {
            Some(finder) if finder.is_match(text) => finder.replace_all(text, &vec![REDACTED; self.substrings.len()]),
            _ => text.to_string(),
        };
        for word in &self.words {
            out = replace_word(&out, word);
        }
        for (pattern, replacement) in token_patterns() {
            if pattern.is_match(&out) {
                out = pattern.replace_all(&out, *replacement).into_owned();
            }
        }
        out
    }

    /// At most `max_bytes` of `text` as one line: control characters (newlines that could
    /// forge a log line) become spaces, runs of whitespace one space, secrets are removed, and
    /// only then is it cut, so no prefix of a secret survives. Only a window of the input is
    /// looked at (long enough that a secret starting inside the kept part is seen whole).
    pub fn excerpt(&self, text: &str, max_bytes: usize) -> String {
        // In this order: collapsing whitespace first would pull text from past the window
        // into the kept part, with a secret the window cut in two (and so not redacted).
        let window = max_bytes.saturating_add(self.longest).saturating_add(1024);
        let mut out = self.redact(prefix(text, window));
        truncate(&mut out, max_bytes);
        one_line(&out)
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
pub fn prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    &text[..cut]
}

/// Cuts `text` to at most `max` bytes, on a character boundary.
pub fn truncate(text: &mut String, max: usize) {
    let keep = prefix(text, max).len();
    text.truncate(keep);
}

/// Control characters become spaces and whitespace runs collapse: one line, safe to log.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        if c.is_whitespace() || c.is_control() {
            space = !out.is_empty();
        } else {
            if space {
                out.push(' ');
                space = false;
            }
            out.push(c);
        }
    }
    out
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

/// Replaces `word` where neither neighbour is a word character.
fn replace_word(text: &str, word: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut before: Option<char> = None;
    while let Some(at) = rest.find(word) {
        let head = &rest[..at];
        let prev = head.chars().next_back().or(before);
        let next = rest[at + word.len()..].chars().next();
        out.push_str(head);
        if prev.is_none_or(|c| !is_word_char(c)) && next.is_none_or(|c| !is_word_char(c)) {
            out.push_str(REDACTED);
        } else {
            out.push_str(word);
        }
        before = word.chars().next_back();
        rest = &rest[at + word.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints_itself() {
        let secret = Secret::new("sk-live-123456");
        assert_eq!(format!("{secret:?} {secret}"), "[REDACTED] [REDACTED]");
        assert_eq!(secret.expose(), "sk-live-123456");
        let nested = Some(vec![("Authorization".to_string(), Secret::new("Bearer abc123456"))]);
        assert!(!format!("{nested:?}").contains("abc123456"));
    }

    #[test]
    fn redaction_table() {
        let cases: &[(&str, &[&str], &str)] = &[
            ("key sk-live-123456 bad", &[], "key sk-[REDACTED] bad"),
            ("Authorization: Bearer abc.def-ghi", &[], "Authorization: Bearer [REDACTED]"),
            ("bearer   xyz", &[], "Bearer [REDACTED]"),
            ("auth Basic dXNlcjpwYXNzd29yZA==", &[], "auth Basic [REDACTED]"),
            ("key=AIzaSyA1234567890abcdefghijklmnop_-x", &[], "key=[REDACTED]"),
            ("invalid key my-secret-key!", &["my-secret-key"], "invalid key [REDACTED]!"),
            ("nothing here", &["zzzzzzzzz"], "nothing here"),
            // Short secrets only as words of their own.
            ("based on as", &["as"], "based on [REDACTED]"),
            ("ab abc", &["ab", "abc"], "[REDACTED] [REDACTED]"),
            ("x-ab-y ab.", &["ab"], "x-ab-y [REDACTED]."),
            // A longer secret holding a shorter one goes whole.
            ("token abcdefgh12345678", &["abcdefgh", "abcdefgh12345678"], "token [REDACTED]"),
        ];
        for (input, secrets, expected) in cases {
            assert_eq!(Redactor::new(secrets.iter()).redact(input), *expected, "{input}");
        }
    }

    #[test]
    fn excerpts_redact_before_they_cut_and_stay_on_one_line() {
        let secret = "S".repeat(40);
        let redactor = Redactor::new([secret.as_str()]);
        let text = format!("{}{}", "x".repeat(240), secret);
        let out = redactor.excerpt(&text, 256);
        assert!(!out.contains('S'), "{out}");
        assert!(out.len() <= 256);
        // A key that is not token-shaped, cut at 20 bytes, must not leave its first 13 behind.
        let gemini = "AQ.Ab8RN6Lx9_not_shaped_like_a_token";
        let out = Redactor::new([gemini]).excerpt(&format!("bad key: {gemini}"), 20);
        assert!(!out.contains("AQ.Ab8"), "{out}");
        // Whitespace padding cannot pull a cut-off secret into the kept part.
        let padded = format!("<html>{}{gemini} more", " ".repeat(1_300));
        let out = Redactor::new([gemini]).excerpt(&padded, 256);
        assert!(!out.contains("AQ.Ab8"), "{out}");
        let forged = Redactor::default().excerpt("ok\nINFO forged line\r\n\u{1b}[31m", 256);
        assert_eq!(forged, "ok INFO forged line [31m");
        let multibyte = "é".repeat(300);
        let out = Redactor::default().excerpt(&multibyte, 256);
        assert!(out.len() <= 256 && out.chars().all(|c| c == 'é'));
    }

    #[test]
    fn credential_parts_of_header_values() {
        let rows: &[(&str, &[&str])] = &[
            ("Bearer abc123def456", &["Bearer abc123def456", "abc123def456"]),
            ("session=s3cr3tvalue; lang=en", &["s3cr3tvalue", "session=s3cr3tvalue; lang=en"]),
            (
                "Basic dXNlcjpwYXNzd29yZA==",
                &["Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA==", "password", "user:password"],
            ),
            ("short", &[]),
        ];
        for (value, expected) in rows {
            let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
            expected.sort();
            assert_eq!(credential_parts(value), expected, "{value}");
        }
        assert!(is_secret_header("Authorization") && is_secret_header("Cookie") && is_secret_header("X-Relay-Token"));
        assert!(!is_secret_header("content-type") && !is_secret_header("anthropic-version"));
    }
}
