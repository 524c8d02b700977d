//! llm-monitor: probes LLM API endpoints on an interval, classifies each result
//! green / yellow / red, stores the history in SQLite and serves it over HTTP.

pub mod alert;
pub mod api;
pub mod app;
pub mod clock;
pub mod config;
pub mod domain;
pub mod healthcheck;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod probe;
pub mod proxy;
pub mod secret;
pub mod stats;
pub mod store;
pub mod supervisor;
pub mod systemd;
