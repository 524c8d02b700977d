//! Storage: the StoreActor (never blocked: the read model, the queue, the purge schedule) and
//! the Writer behind it (the one thread that runs diesel), over SQLite or PostgreSQL.

pub mod actor;
pub mod alerts;
pub mod combine;
pub mod db;
pub mod inbox;
pub mod incidents;
pub mod leader;
pub mod migrate;
pub mod model;
pub mod reader;
pub mod rollup;
pub mod schema;
pub mod sketch;
pub mod sql;
pub mod timeline;
pub mod writer;

pub use actor::{
    Close, ConfigureAlertsFor, Delivered, Flush, GetSnapshot, GetStoreHealth, LoadHistory, OutboxChanged, ProbeResult,
    QueryEvents, RegisterMonitors, StoreActor, StoreHealth, MAX_PENDING,
};
pub use inbox::Inbox;
pub use model::{MonitorModel, NodePart, Nodes, Snapshot};
pub use writer::Writer;

/// Where the store keeps history: the configured database (to connect again after PostgreSQL
/// dropped the connection), and the node this daemon writes as.
pub struct Place {
    pub database: crate::config::Database,
    pub node: String,
}

/// Starts the store on `conn`: its Writer on a thread of its own, the StoreActor on this one;
/// gives its address and the inbox probes leave their results in.
pub fn start(
    conn: sql::Db,
    place: Place,
    clock: crate::clock::SharedClock,
    retention: std::time::Duration,
    degraded_weight: f64,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    alerts: std::sync::Arc<crate::alert::AlertConfig>,
) -> (actix::Addr<StoreActor>, Inbox) {
    use actix::Actor;
    let conn = std::sync::Mutex::new(Some(conn));
    let thread = || std::thread::Builder::new().name("store-writer".into());
    let writer = actix::SyncArbiter::start_with_thread_builder(1, thread, move || {
        let conn = conn.lock().unwrap_or_else(|e| e.into_inner()).take().expect("one writer thread");
        Writer::new(conn, place.database.clone(), place.node.clone(), alerts.clone())
    });
    let actor = StoreActor::new(writer, clock, retention, degraded_weight, metrics);
    let queue = actor.queue();
    let addr = actor.start();
    (addr.clone(), Inbox::new(queue, addr))
}
