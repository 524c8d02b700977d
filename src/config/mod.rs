//! The configuration as the rest of the daemon sees it: fully resolved (durations parsed,
//! includes read, env overrides and placeholders applied) and validated once, at the edge.

mod diff;
pub mod duration;
mod load;
pub mod template;

use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::time::Duration;

pub use diff::{diff, MonitorDiff};
pub use load::{env_var_names, load, load_with_env, ConfigErrors, CHALLENGE_PLACEHOLDER};

/// Identity of a monitor everywhere (actors, store rows, API filters, env names):
/// provider/service/channel, compared case-insensitively, displayed as written.
#[derive(Clone)]
pub struct MonitorKey {
    pub provider: String,
    pub service: String,
    pub channel: String,
    normalized: String,
}

impl MonitorKey {
    pub fn new(provider: &str, service: &str, channel: &str) -> Self {
        // '\u{1f}' (unit separator) cannot be typed into a YAML key by accident, so no two
        // distinct keys normalise to the same string.
        // ASCII-only folding, as SQLite's NOCASE and the API filters compare.
        let normalized = format!("{}\u{1f}{}\u{1f}{}", provider, service, channel).to_ascii_lowercase();
        MonitorKey {
            provider: provider.to_string(),
            service: service.to_string(),
            channel: channel.to_string(),
            normalized,
        }
    }

    /// Lower-cased, separator-joined form: stable across restarts, used for hashing and jitter.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }
}

impl PartialEq for MonitorKey {
    fn eq(&self, other: &Self) -> bool {
        self.normalized == other.normalized
    }
}
impl Eq for MonitorKey {}
impl Hash for MonitorKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.normalized.hash(state)
    }
}

impl fmt::Display for MonitorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.channel.is_empty() {
            write!(f, "{}/{}", self.provider, self.service)
        } else {
            write!(f, "{}/{}/{}", self.provider, self.service, self.channel)
        }
    }
}

impl fmt::Debug for MonitorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MonitorKey({self})")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
    Patch,
}

impl Method {
    pub const ALL: [Method; 5] = [Method::Get, Method::Post, Method::Put, Method::Delete, Method::Patch];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
        }
    }

    pub fn parse(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str().eq_ignore_ascii_case(s))
    }
}

/// One enabled monitor, ready to probe. Holds secrets (the API key, header values), so its
/// `Debug` prints neither.
#[derive(Clone, PartialEq)]
pub struct Monitor {
    pub key: MonitorKey,
    pub method: Method,
    /// With `{{API_KEY}}` substituted: never log or return it.
    pub url: String,
    /// With `{{API_KEY}}` substituted: never log or return the values.
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub slow_latency: Duration,
    /// A stream whose first token comes later than this is yellow `slow`.
    pub slow_ttft: Option<Duration>,
    pub success_contains: Option<String>,
    pub api_key: Option<String>,
    /// The model asked for (`{{MODEL}}`).
    pub model: Option<String>,
    /// The model the response must report (`expect_model`, else `model`).
    pub expect_model: Option<String>,
    /// `expect_model` was given explicitly: a reply must name its model.
    pub require_model: bool,
    /// The request holds `{{CHALLENGE}}`: each probe asks a fresh question and checks the answer.
    pub challenge: bool,
    /// The reply must be a recognisable LLM answer (template, model or challenge in use).
    pub llm: bool,
}

impl Monitor {
    /// Strings that must never appear in a log line, an error detail or an API answer.
    pub fn secrets(&self) -> Vec<&str> {
        let mut secrets: Vec<&str> = Vec::new();
        if let Some(key) = self.api_key.as_deref().filter(|k| !k.is_empty()) {
            secrets.push(key);
        }
        // Header values often are credentials of their own (a cookie, a second token); short
        // ones ("application/json" aside) are too common to be worth hiding.
        for (_, value) in &self.headers {
            if value.len() >= 8 && !value.starts_with("application/") {
                secrets.push(value);
            }
        }
        // A key written straight into the URL (`?key=AIza...`) is as secret as one in a header.
        if let Some((_, query)) = self.url.split_once('?') {
            for pair in query.split('&') {
                let value = pair.split_once('=').map_or("", |(_, v)| v);
                if value.len() >= 8 {
                    secrets.push(value);
                }
            }
        }
        secrets
    }
}

impl fmt::Debug for Monitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Monitor")
            .field("key", &self.key)
            .field("method", &self.method)
            .field("headers", &self.headers.iter().map(|(name, _)| name).collect::<Vec<_>>())
            .field("has_body", &self.body.is_some())
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .field("slow_latency", &self.slow_latency)
            .field("slow_ttft", &self.slow_ttft)
            .field("model", &self.model)
            .field("expect_model", &self.expect_model)
            .field("challenge", &self.challenge)
            .field("has_api_key", &self.api_key.is_some())
            .finish_non_exhaustive()
    }
}

/// Which origins may read the API from a browser. `["*"]` (the default) allows any.
#[derive(Debug, Clone, PartialEq)]
pub struct Cors {
    pub allowed_origins: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file this was loaded from.
    pub path: PathBuf,
    pub listen: String,
    pub database: PathBuf,
    pub retention: Duration,
    pub degraded_weight: f64,
    pub cors: Cors,
    /// Enabled monitors, in config order.
    pub monitors: Vec<Monitor>,
    pub disabled: usize,
    /// Things that load but are probably not what the operator meant.
    pub warnings: Vec<String>,
}
