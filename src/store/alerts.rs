//! The alert tables (`alert_state`, `events`, `outbox`) as the writer reads and writes them.
//! What the engine decides for a batch is written here in the batch's own transaction.

use diesel::prelude::*;

use super::schema::events;
use crate::alert::engine::{Event, Global, MonitorState};
use crate::alert::{EventKind, Message};
use crate::domain::MonitorKey;

pub(crate) const GLOBAL_KEY: &str = "alert_engine";

/// Outbox states.
pub const PENDING: i16 = 0;
pub const SENT: i16 = 1;
pub const GIVEN_UP: i16 = 2;
pub const SUPPRESSED: i16 = 3;

/// A message waiting in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    pub channel: String,
    pub message: Message,
    pub created_at: i64,
    pub not_before: i64,
    pub attempts: i32,
}

/// What delivery did with an outbox row, recorded with the next batch.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryUpdate {
    pub id: i64,
    /// [`SENT`], [`GIVEN_UP`], or [`PENDING`] (an attempt failed; more will come).
    pub state: i16,
    pub attempts: i32,
    /// Already redacted.
    pub error: Option<String>,
    pub at: i64,
}

/// What the engine starts from, and what delivery resumes.
#[derive(Debug, Default)]
pub struct AlertsLoaded {
    pub states: Vec<(MonitorKey, MonitorState)>,
    pub global: Global,
    pub last_event: i64,
    pub pending: Vec<OutboxRow>,
    /// The newest events, oldest first (at most `recent`).
    pub events: Vec<Event>,
    /// (channel, event id) of downs given up: what follows them is not sent there.
    pub abandoned: Vec<(String, i64)>,
}

#[derive(QueryableByName)]
pub(crate) struct Abandoned {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub(crate) channel: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub(crate) event_id: i64,
}

/// A row of `events`, as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = events)]
pub(crate) struct EventRow {
    pub(crate) id: i64,
    pub(crate) time: i64,
    pub(crate) kind: String,
    pub(crate) provider: Option<String>,
    pub(crate) service: Option<String>,
    pub(crate) channel: Option<String>,
    pub(crate) reason: Option<String>,
    pub(crate) detail: Option<String>,
    pub(crate) node: Option<String>,
}

impl From<EventRow> for Event {
    fn from(row: EventRow) -> Event {
        Event {
            id: row.id,
            kind: EventKind::parse(&row.kind).unwrap_or(EventKind::Down),
            provider: row.provider,
            service: row.service,
            channel: row.channel,
            reason: row.reason,
            detail: row.detail,
            time: row.time,
            node: row.node,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::engine::{Decided, Engine, Observed};
    use crate::alert::{AlertConfig, MonitorAlerts};
    use crate::domain::{Reason, Status};
    use crate::store::sql::sqlite::{load, purge_alerts as purge, read_events, record_deliveries, write_decided};
    use std::sync::Arc;

    /// Events page by id from the database; the retention purge removes old events and finished
    /// messages, never a message still waiting.
    #[test]
    fn events_page_by_id_and_the_purge_keeps_what_waits() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = super::super::db::open(&dir.path().join("t.db")).unwrap();
        let key = MonitorKey::new("p", "s", "");
        let mut config = AlertConfig::default();
        config.monitors.insert(
            key.clone(),
            MonitorAlerts { channels: vec!["ops".into()], failure_threshold: 1, success_threshold: 1 },
        );
        config.storm.min_monitors = 0;
        let mut engine = Engine::new(Arc::new(config));
        let ids = super::super::db::monitor_ids(&mut conn, std::slice::from_ref(&key)).unwrap();
        let id_of = |k: &MonitorKey| (k == &key).then_some(ids[0]);
        let mut written: Vec<OutboxRow> = Vec::new();
        // down, up, down, up, down: five events, five messages.
        for (i, status) in [Status::Red, Status::Green, Status::Red, Status::Green, Status::Red].into_iter().enumerate()
        {
            let t = 1_000 + i as i64 * 100;
            let decided: Decided = engine.decide(
                &[Observed {
                    key: &key,
                    ts: t,
                    status,
                    reason: Reason::ServerError,
                    detail: None,
                    in_maintenance: false,
                }],
                t,
            );
            written.extend(write_decided(&mut conn, &decided, &id_of, t).unwrap());
            engine.apply(&decided);
        }
        let all = read_events(&mut conn, 0, 100).unwrap();
        assert_eq!(all.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), ["down", "up", "down", "up", "down"]);
        let page = read_events(&mut conn, all[1].id, 2).unwrap();
        assert_eq!(page.iter().map(|e| e.id).collect::<Vec<_>>(), [all[2].id, all[3].id]);
        // The first four messages were sent; the last still waits.
        let sent: Vec<DeliveryUpdate> = written[..4]
            .iter()
            .map(|row| DeliveryUpdate { id: row.id, state: SENT, attempts: 1, error: None, at: 1_500 })
            .collect();
        record_deliveries(&mut conn, &sent).unwrap();
        purge(&mut conn, 10_000).unwrap();
        assert!(read_events(&mut conn, 0, 100).unwrap().is_empty());
        let loaded = load(&mut conn, 100).unwrap();
        assert_eq!(loaded.pending.iter().map(|r| r.id).collect::<Vec<_>>(), [written[4].id]);
        assert_eq!(loaded.states.len(), 1);
        assert!(loaded.states[0].1.firing);
    }
}
