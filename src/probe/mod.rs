//! Probing: build and send the request, classify what came back, on a fixed schedule.

pub mod actor;
pub mod body;
pub mod challenge;
pub mod classify;
pub mod connect;
pub mod cost;
pub mod detail;
pub mod integrity;
pub mod measure;
pub mod model;
pub mod outcome;
pub mod request;
pub mod schedule;
pub mod sse;

pub use crate::domain::{Reason, Status};
pub use actor::{Drain, ProbeActor, Retire, UpdateMonitor, UpdateRedactor};
