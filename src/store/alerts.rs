//! The alert tables (`alert_state`, `events`, `outbox`) as the writer reads and writes them.
//! What the engine decides for a batch is written here in the batch's own transaction.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::SqliteConnection;

use super::db::StoreError;
use super::schema::{alert_state, events, meta, monitors, outbox};
use crate::alert::engine::{Decided, Event, Global, MonitorState};
use crate::alert::{EventKind, Message};
use crate::domain::MonitorKey;

const GLOBAL_KEY: &str = "alert_engine";

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

pub fn load(conn: &mut SqliteConnection, recent: i64) -> Result<AlertsLoaded, StoreError> {
    let rows: Vec<(String, String, String, String)> = alert_state::table
        .inner_join(monitors::table.on(monitors::id.eq(alert_state::monitor_id)))
        .select((monitors::provider, monitors::service, monitors::channel, alert_state::state))
        .load(conn)?;
    let states = rows
        .into_iter()
        .filter_map(|(p, s, c, json)| match serde_json::from_str::<MonitorState>(&json) {
            Ok(state) => Some((MonitorKey::new(&p, &s, &c), state)),
            Err(e) => {
                log::warn!("alerts: the stored state of {p}/{s}/{c} is unreadable ({e}); starting it afresh");
                None
            }
        })
        .collect();
    let global: Option<String> =
        meta::table.filter(meta::key.eq(GLOBAL_KEY)).select(meta::value).first(conn).optional()?;
    let global = global.and_then(|g| serde_json::from_str(&g).ok()).unwrap_or_default();
    let last_event: Option<i64> = events::table.select(diesel::dsl::max(events::id)).first(conn)?;
    let pending = outbox::table
        .filter(outbox::state.eq(PENDING))
        .order(outbox::id)
        .select((
            outbox::id,
            outbox::channel,
            outbox::message,
            outbox::created_at,
            outbox::not_before,
            outbox::attempts,
        ))
        .load::<(i64, String, String, i64, i64, i32)>(conn)?
        .into_iter()
        .filter_map(|(id, channel, message, created_at, not_before, attempts)| {
            let message = serde_json::from_str(&message).ok()?;
            Some(OutboxRow { id, channel, message, created_at, not_before, attempts })
        })
        .collect();
    let mut events = read_events_before(conn, i64::MAX, recent)?;
    events.reverse();
    let abandoned = diesel::sql_query(
        "SELECT o.channel AS channel, o.event_id AS event_id FROM outbox o JOIN events e ON e.id = o.event_id \
         WHERE o.state = 2 AND e.kind IN ('down', 'storm_down')",
    )
    .load::<Abandoned>(conn)?
    .into_iter()
    .map(|a| (a.channel, a.event_id))
    .collect();
    Ok(AlertsLoaded { states, global, last_event: last_event.unwrap_or(0), pending, events, abandoned })
}

#[derive(QueryableByName)]
struct Abandoned {
    #[diesel(sql_type = diesel::sql_types::Text)]
    channel: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    event_id: i64,
}

/// A row of `events`, as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = events)]
struct EventRow {
    id: i64,
    time: i64,
    kind: String,
    provider: Option<String>,
    service: Option<String>,
    channel: Option<String>,
    reason: Option<String>,
    detail: Option<String>,
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
        }
    }
}

/// Up to `limit` events after `since_id`, oldest first.
pub fn read_events(conn: &mut SqliteConnection, since_id: i64, limit: i64) -> Result<Vec<Event>, StoreError> {
    let rows: Vec<EventRow> = events::table
        .filter(events::id.gt(since_id))
        .order(events::id)
        .limit(limit)
        .select(EventRow::as_select())
        .load(conn)?;
    Ok(rows.into_iter().map(Event::from).collect())
}

/// Up to `limit` events before `before_id`, newest first.
fn read_events_before(conn: &mut SqliteConnection, before_id: i64, limit: i64) -> Result<Vec<Event>, StoreError> {
    let rows: Vec<EventRow> = events::table
        .filter(events::id.lt(before_id))
        .order(events::id.desc())
        .limit(limit)
        .select(EventRow::as_select())
        .load(conn)?;
    Ok(rows.into_iter().map(Event::from).collect())
}

/// Writes what the engine decided (inside the caller's transaction); gives the outbox rows it
/// added, with their ids.
pub fn write_decided(
    conn: &mut SqliteConnection,
    decided: &Decided,
    id_of: &dyn Fn(&MonitorKey) -> Option<i32>,
    now: i64,
) -> Result<Vec<OutboxRow>, StoreError> {
    for (key, state) in &decided.states {
        let Some(monitor_id) = id_of(key) else { continue };
        let json = serde_json::to_string(state).unwrap_or_default();
        diesel::replace_into(alert_state::table)
            .values((alert_state::monitor_id.eq(monitor_id), alert_state::state.eq(json)))
            .execute(conn)?;
    }
    for event in &decided.events {
        diesel::insert_into(events::table)
            .values((
                events::id.eq(event.id),
                events::time.eq(event.time),
                events::kind.eq(event.kind.as_str()),
                events::provider.eq(&event.provider),
                events::service.eq(&event.service),
                events::channel.eq(&event.channel),
                events::reason.eq(&event.reason),
                events::detail.eq(&event.detail),
            ))
            .execute(conn)?;
    }
    if !decided.suppress.is_empty() {
        diesel::update(
            outbox::table.filter(outbox::event_id.eq_any(&decided.suppress)).filter(outbox::state.eq(PENDING)),
        )
        .set((outbox::state.eq(SUPPRESSED), outbox::done_at.eq(now)))
        .execute(conn)?;
    }
    let mut added = Vec::with_capacity(decided.outbox.len());
    for outgoing in &decided.outbox {
        let json = serde_json::to_string(&outgoing.message).unwrap_or_default();
        let id: i64 = diesel::insert_into(outbox::table)
            .values((
                outbox::event_id.eq(outgoing.message.id),
                outbox::channel.eq(&outgoing.channel),
                outbox::message.eq(json),
                outbox::created_at.eq(now),
                outbox::not_before.eq(outgoing.not_before),
            ))
            .returning(outbox::id)
            .get_result(conn)?;
        added.push(OutboxRow {
            id,
            channel: outgoing.channel.clone(),
            message: outgoing.message.clone(),
            created_at: now,
            not_before: outgoing.not_before,
            attempts: 0,
        });
    }
    if let Some(global) = &decided.global {
        let json = serde_json::to_string(global).unwrap_or_default();
        diesel::replace_into(meta::table).values((meta::key.eq(GLOBAL_KEY), meta::value.eq(json))).execute(conn)?;
    }
    Ok(added)
}

pub fn record_deliveries(conn: &mut SqliteConnection, updates: &[DeliveryUpdate]) -> Result<(), StoreError> {
    for update in updates {
        let done_at = (update.state != PENDING).then_some(update.at);
        // Only a pending row moves: one withdrawn meanwhile (folded into a storm) stays so.
        diesel::update(outbox::table.find(update.id).filter(outbox::state.eq(PENDING)))
            .set((
                outbox::state.eq(update.state),
                outbox::attempts.eq(update.attempts),
                outbox::last_error.eq(&update.error),
                outbox::done_at.eq(done_at),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Forgets events, and finished outbox rows, older than `before`.
pub fn purge(conn: &mut SqliteConnection, before: i64) -> Result<(), StoreError> {
    diesel::delete(events::table.filter(events::time.lt(before))).execute(conn)?;
    diesel::delete(outbox::table.filter(outbox::state.ne(PENDING)).filter(outbox::created_at.lt(before)))
        .execute(conn)?;
    Ok(())
}

/// Event counts by kind (for tests and tools).
pub fn event_kinds(conn: &mut SqliteConnection) -> Result<HashMap<String, i64>, StoreError> {
    let rows: Vec<String> = events::table.select(events::kind).load(conn)?;
    let mut out = HashMap::new();
    for kind in rows {
        *out.entry(kind).or_default() += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::engine::{Decided, Engine, Observed};
    use crate::alert::{AlertConfig, MonitorAlerts};
    use crate::domain::{Reason, Status};
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
