//! What came back from one probe, before any judgement.

use std::time::Duration;

use super::body::Body;
use super::sse::{self, Answer};

/// What came back from one probe, before any judgement. Its texts came from the upstream and
/// may echo a key: `Debug` shows only their sizes.
#[derive(Clone, PartialEq)]
pub enum Outcome {
    Response {
        http_code: u16,
        /// What was read of the body, and kept of it.
        body: Body,
        latency: Duration,
        /// Time to the response headers.
        ttfb: Duration,
        /// For a `text/event-stream` response: what the stream said, read as it arrived.
        stream: Option<Box<Answer>>,
    },
    /// Nothing complete within the monitor's timeout.
    Timeout { latency: Duration },
    /// DNS, connect, TLS, or a failure while reading.
    NetworkError { detail: String, latency: Duration },
    /// The monitor's proxy could not be reached, or refused the tunnel: the target was never
    /// asked. The detail is the proxy's answer (an HTTP status, a SOCKS stage and reply code).
    ProxyError { detail: String, latency: Duration },
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Response { http_code, body, latency, ttfb, stream } => f
                .debug_struct("Response")
                .field("http_code", http_code)
                .field("body", body)
                .field("latency", latency)
                .field("ttfb", ttfb)
                .field("stream", &stream.as_ref().map(|a| (a.text.len(), a.complete, a.recognised)))
                .finish(),
            Outcome::Timeout { latency } => f.debug_struct("Timeout").field("latency", latency).finish(),
            Outcome::NetworkError { detail, latency } => {
                f.debug_struct("NetworkError").field("detail_bytes", &detail.len()).field("latency", latency).finish()
            }
            Outcome::ProxyError { detail, latency } => {
                f.debug_struct("ProxyError").field("detail_bytes", &detail.len()).field("latency", latency).finish()
            }
        }
    }
}

impl Outcome {
    pub fn latency(&self) -> Duration {
        match self {
            Outcome::Response { latency, .. }
            | Outcome::Timeout { latency }
            | Outcome::NetworkError { latency, .. }
            | Outcome::ProxyError { latency, .. } => *latency,
        }
    }

    pub fn http_code(&self) -> u16 {
        match self {
            Outcome::Response { http_code, .. } => *http_code,
            _ => 0,
        }
    }

    /// The LLM answer in a 2xx response: the parsed stream, or a whole JSON reply of one of
    /// the known families.
    pub fn answer(&self) -> Option<Answer> {
        match self {
            Outcome::Response { http_code: 200..=299, stream: Some(answer), .. } => Some((**answer).clone()),
            Outcome::Response { http_code: 200..=299, body, stream: None, .. } if body.whole => {
                sse::parse_json(&body.kept)
            }
            _ => None,
        }
    }
}
