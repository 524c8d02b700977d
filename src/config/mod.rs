//! The configuration as the rest of the daemon sees it: fully resolved (durations parsed,
//! includes read, env overrides and placeholders applied) and validated once, at the edge.

mod diff;
pub mod duration;
mod load;
pub mod template;
pub mod watch;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::domain::MonitorKey;
pub use crate::secret::{Redactor, Secret, SharedRedactor};
pub use diff::{diff, MonitorDiff};
pub use load::{alert_env_name, env_var_names, load, load_with_env, parse_str, ConfigErrors, CHALLENGE_PLACEHOLDER};

/// Whether `name` looks like a model name: 1-128 letters, digits and `._:/@+-`. Anything else a
/// reply calls its model is refused rather than stored or served.
pub fn is_model_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 128 && name.chars().all(|c| c.is_ascii_alphanumeric() || "._:/@+-".contains(c))
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

/// One enabled monitor, ready to probe. Its url, header values, body and key may hold secrets:
/// they are [`Secret`]s, and its `Debug` prints none of them.
#[derive(Clone, PartialEq)]
pub struct Monitor {
    pub key: MonitorKey,
    pub method: Method,
    /// With `{{API_KEY}}` substituted.
    pub url: Secret,
    /// With `{{API_KEY}}` substituted.
    pub headers: Vec<(String, Secret)>,
    pub body: Option<Secret>,
    pub interval: Duration,
    pub timeout: Duration,
    pub slow_latency: Duration,
    /// A stream whose first token comes later than this is yellow `slow`.
    pub slow_ttft: Option<Duration>,
    pub success_contains: Option<String>,
    pub api_key: Option<Secret>,
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
    /// Every probe opens a connection of its own (and measures it) instead of reusing one.
    pub fresh_connection: bool,
    /// Removes secrets from everything an upstream sends back: the config-wide redactor (every
    /// monitor's secrets), shared by all monitors.
    pub redactor: SharedRedactor,
}

impl Monitor {
    /// Strings that must never appear in a log line, an error detail or an API answer: the
    /// key, the credential parts of header values, and URL query values.
    pub fn secrets(&self) -> Vec<String> {
        secrets_of(self.api_key.as_ref(), &self.headers, &self.url)
    }
}

/// The secrets of a monitor's resolved key, headers and url (see [`Monitor::secrets`]).
pub fn secrets_of(api_key: Option<&Secret>, headers: &[(String, Secret)], url: &Secret) -> Vec<String> {
    let mut secrets: Vec<String> = Vec::new();
    if let Some(key) = api_key.filter(|k| !k.is_empty()) {
        secrets.push(key.expose().to_string());
    }
    // Header values often are credentials of their own (a cookie, a second token), and an
    // upstream may echo just the token of `Bearer <token>`.
    for (name, value) in headers {
        if crate::secret::is_secret_header(name) {
            secrets.extend(crate::secret::credential_parts(value.expose()));
        }
    }
    // A key written straight into the URL (`?key=AIza...`) is as secret as one in a header.
    if let Some((_, query)) = url.expose().split_once('?') {
        for pair in query.split('&') {
            let value = pair.split_once('=').map_or("", |(_, v)| v);
            if value.len() >= 6 {
                secrets.push(value.to_string());
            }
        }
    }
    secrets
}

impl fmt::Debug for Monitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Monitor")
            .field("key", &self.key)
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &self.headers)
            .field("body", &self.body)
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .field("slow_latency", &self.slow_latency)
            .field("slow_ttft", &self.slow_ttft)
            .field("model", &self.model)
            .field("expect_model", &self.expect_model)
            .field("challenge", &self.challenge)
            .field("api_key", &self.api_key)
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
    /// `public_url`, `alerts:` and `maintenance:`, and each monitor's alert settings.
    pub alerts: crate::alert::AlertConfig,
    /// Things that load but are probably not what the operator meant.
    pub warnings: Vec<String>,
}
