//! The read model: what queries read, kept by the StoreActor and moved forward with every
//! committed batch. Each monitor's part is shared copy-on-write, so a query takes a snapshot of
//! every monitor at once (a clone of pointers) and works on it on its own thread while the
//! store goes on.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::db::Row;
use super::rollup::History;
use crate::domain::MonitorKey;

/// One monitor's recent aggregates (hours of the last two days, days of the last 31) and its
/// latest probe, as this node made them; and the same of every other node that probes it
/// (read from a shared PostgreSQL database).
#[derive(Debug, Clone, Default)]
pub struct MonitorModel {
    pub history: History,
    pub latest: Option<Row>,
    /// Other nodes' parts, by node id.
    pub others: BTreeMap<i32, NodePart>,
}

/// What one other node stored of a monitor.
#[derive(Debug, Clone, Default)]
pub struct NodePart {
    pub history: History,
    pub latest: Option<Row>,
}

/// The nodes of the database: this one's id and every node's name.
#[derive(Debug, Clone, Default)]
pub struct Nodes {
    pub me: i32,
    pub names: HashMap<i32, String>,
    pub quorum: crate::config::Quorum,
}

impl Nodes {
    pub fn name(&self, id: i32) -> String {
        self.names.get(&id).cloned().unwrap_or_else(|| format!("node-{id}"))
    }
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
    /// The nodes, and the quorum rule that combines them.
    pub nodes: Arc<Nodes>,
    /// Each listed monitor's interval here (what makes this node's part stale), by key.
    pub intervals: Arc<HashMap<MonitorKey, i64>>,
    /// Each monitor of several models (by its key without a model): its `model_rule`.
    pub model_rules: Arc<HashMap<MonitorKey, crate::config::Quorum>>,
}
