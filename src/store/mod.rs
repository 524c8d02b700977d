//! Storage: the StoreActor (single writer, batching, purge, queries) over SQLite.

pub mod actor;
pub mod db;
pub mod rollup;
pub mod schema;
pub mod sketch;
pub mod timeline;

use serde::Serialize;

pub use actor::{
    Close, FindMonitor, Flush, GetStoreHealth, ProbeResult, QueryStatus, RegisterMonitors, StoreActor, StoreHealth,
};

/// The latest probe of a monitor, as `/api/status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CurrentStatus {
    pub status: i16,
    pub latency: i64,
    pub timestamp: i64,
    pub reason: String,
    pub http_code: i32,
    /// Why a red probe failed; redacted before it was stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Opening the connection (DNS, TCP, TLS), ms, when the probe had to open one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect: Option<i64>,
    /// Time to the response headers, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttfb: Option<i64>,
    /// Time to the first token of a streamed answer, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_per_s: Option<f64>,
    /// The model the response said served it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<i64>,
}

impl From<db::Row> for CurrentStatus {
    fn from(row: db::Row) -> Self {
        CurrentStatus {
            status: row.status,
            latency: i64::from(row.latency_ms),
            timestamp: row.ts,
            reason: row.reason,
            http_code: row.http_code,
            detail: row.detail,
            connect: row.connect_ms.map(i64::from),
            ttfb: row.ttfb_ms.map(i64::from),
            ttft: row.ttft_ms.map(i64::from),
            tokens_per_s: row.tokens_per_s,
            model: row.model,
            prompt_tokens: row.prompt_tokens,
            completion_tokens: row.completion_tokens,
        }
    }
}

/// `/api/status`'s `meta`.
#[derive(Debug, Clone, Serialize)]
pub struct Meta {
    pub period: &'static str,
    pub count: usize,
    pub generated_at: i64,
}

/// The whole `/api/status` document.
#[derive(Debug, Serialize)]
pub struct StatusBody<'a> {
    pub meta: Meta,
    pub data: &'a [MonitorStatus],
}

/// A serialized `/api/status` answer, and its gzip form when the client takes it.
#[derive(Debug, Clone)]
pub struct StatusAnswer {
    pub json: bytes::Bytes,
    pub gzip: Option<bytes::Bytes>,
}

/// One monitor's entry in `/api/status`.
#[derive(Debug, Clone, Serialize)]
pub struct MonitorStatus {
    pub provider: String,
    pub service: String,
    pub channel: String,
    pub current_status: Option<CurrentStatus>,
    pub uptime: f64,
    pub timeline: Vec<timeline::Bucket>,
}
