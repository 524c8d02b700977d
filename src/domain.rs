//! The daemon's shared vocabulary: a monitor's identity, a probe's status and its reason. Every
//! part (config, probes, store, API, metrics) speaks of monitors and results in these types.

use std::fmt;
use std::hash::{Hash, Hasher};

use serde::Serialize;

/// Identity of a monitor everywhere (actors, store rows, API filters, env names):
/// provider/service/channel, compared case-insensitively, displayed as written. A monitor of
/// several models (`models:`) has one series per model: its keys carry the model too (empty
/// for every other monitor).
#[derive(Clone)]
pub struct MonitorKey {
    pub provider: String,
    pub service: String,
    pub channel: String,
    /// The model of one series of a multi-model monitor; empty otherwise.
    pub model: String,
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
            model: String::new(),
            normalized,
        }
    }

    /// The series of `model` of this monitor (an empty model: the monitor itself). The
    /// normalized form of a key without a model is unchanged, so its phase and stored rows are.
    pub fn with_model(&self, model: &str) -> Self {
        let mut key = MonitorKey::new(&self.provider, &self.service, &self.channel);
        if !model.is_empty() {
            key.normalized = format!("{}\u{1f}{}", key.normalized, model.to_ascii_lowercase());
            key.model = model.to_string();
        }
        key
    }

    /// The monitor this series belongs to (itself, when it has no model).
    pub fn monitor(&self) -> Self {
        MonitorKey::new(&self.provider, &self.service, &self.channel)
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
            write!(f, "{}/{}", self.provider, self.service)?;
        } else {
            write!(f, "{}/{}/{}", self.provider, self.service, self.channel)?;
        }
        if !self.model.is_empty() {
            write!(f, " [{}]", self.model)?;
        }
        Ok(())
    }
}

impl fmt::Debug for MonitorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MonitorKey({self})")
    }
}

/// A probe's colour. The numbers are the API's and the database's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "i16")]
pub enum Status {
    Red = 0,
    Green = 1,
    Yellow = 2,
}

impl Status {
    pub fn from_i16(value: i16) -> Option<Status> {
        match value {
            0 => Some(Status::Red),
            1 => Some(Status::Green),
            2 => Some(Status::Yellow),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Status::Red => "red",
            Status::Green => "green",
            Status::Yellow => "yellow",
        }
    }
}

impl From<Status> for i16 {
    fn from(s: Status) -> i16 {
        s as i16
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Ok,
    Slow,
    RateLimited,
    ContentMismatch,
    AuthError,
    ClientError,
    ServerError,
    Timeout,
    NetworkError,
    WrongAnswer,
    ModelMismatch,
    StreamIncomplete,
    UpstreamError,
    PromptInflated,
    UsageInflated,
    BufferedStream,
    ProxyError,
}

impl Reason {
    /// In the order of their stored codes (`Reason::ALL[code]`); never reorder, only append.
    pub const ALL: [Reason; 17] = [
        Reason::Ok,
        Reason::Slow,
        Reason::RateLimited,
        Reason::ContentMismatch,
        Reason::AuthError,
        Reason::ClientError,
        Reason::ServerError,
        Reason::Timeout,
        Reason::NetworkError,
        Reason::WrongAnswer,
        Reason::ModelMismatch,
        Reason::StreamIncomplete,
        Reason::UpstreamError,
        Reason::PromptInflated,
        Reason::UsageInflated,
        Reason::BufferedStream,
        Reason::ProxyError,
    ];

    pub fn code(self) -> i16 {
        Reason::ALL.iter().position(|r| *r == self).unwrap_or(0) as i16
    }

    pub fn from_code(code: i16) -> Option<Reason> {
        usize::try_from(code).ok().and_then(|i| Reason::ALL.get(i).copied())
    }

    pub fn parse(name: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ok => "ok",
            Reason::Slow => "slow",
            Reason::RateLimited => "rate_limited",
            Reason::ContentMismatch => "content_mismatch",
            Reason::AuthError => "auth_error",
            Reason::ClientError => "client_error",
            Reason::ServerError => "server_error",
            Reason::Timeout => "timeout",
            Reason::NetworkError => "network_error",
            Reason::WrongAnswer => "wrong_answer",
            Reason::ModelMismatch => "model_mismatch",
            Reason::StreamIncomplete => "stream_incomplete",
            Reason::UpstreamError => "upstream_error",
            Reason::PromptInflated => "prompt_inflated",
            Reason::UsageInflated => "usage_inflated",
            Reason::BufferedStream => "buffered_stream",
            Reason::ProxyError => "proxy_error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_match_the_migration() {
        // migrations/2026-11-26-000002_compact_history maps names to these codes.
        let names = [
            "ok",
            "slow",
            "rate_limited",
            "content_mismatch",
            "auth_error",
            "client_error",
            "server_error",
            "timeout",
            "network_error",
            "wrong_answer",
            "model_mismatch",
            "stream_incomplete",
            "upstream_error",
            "prompt_inflated",
            "usage_inflated",
            "buffered_stream",
            "proxy_error",
        ];
        for (code, name) in names.iter().enumerate() {
            let reason = Reason::parse(name).unwrap();
            assert_eq!((reason.code(), Reason::from_code(code as i16)), (code as i16, Some(reason)));
        }
        assert_eq!(Reason::from_code(17), None);
    }
}
