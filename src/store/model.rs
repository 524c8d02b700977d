//! The read model: what queries read, kept by the StoreActor and moved forward with every
//! committed batch. Each monitor's part is shared copy-on-write, so a query takes a snapshot of
//! every monitor at once (a clone of pointers) and works on it on its own thread while the
//! store goes on.

use std::sync::Arc;

use super::db::Row;
use super::rollup::History;
use crate::domain::MonitorKey;

/// One monitor's recent aggregates (hours of the last two days, days of the last 31) and its
/// latest probe.
#[derive(Debug, Clone, Default)]
pub struct MonitorModel {
    pub history: History,
    pub latest: Option<Row>,
}

/// The listed monitors, in config order, each with its model (`None` before its first stored
/// result), and how to weigh them. `version` changes whenever any of it does.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub version: u64,
    pub degraded_weight: f64,
    pub monitors: Vec<(MonitorKey, Option<Arc<MonitorModel>>)>,
    /// The configured maintenance windows (for each monitor's `maintenance` in the API).
    pub maintenance: Arc<[crate::alert::Maintenance]>,
}
