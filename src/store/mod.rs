//! Storage: the StoreActor (single writer, batching, purge, queries) over SQLite.

pub mod actor;
pub mod db;
pub mod schema;
pub mod timeline;

use serde::Serialize;

pub use actor::{Close, GetStoreHealth, ProbeResult, QueryStatus, RegisterMonitors, StoreActor, StoreHealth};

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
