//! The alert state machine, pure: results and ticks in, state changes, events and outbox
//! messages out. The store's writer runs it inside the transaction that stores the results, and
//! keeps what it decided only once that transaction commits ([`Engine::apply`]), so the state,
//! the events and the messages are never out of step with the stored history.
//!
//! Per monitor: `ok` -> `firing` after `failure_threshold` consecutive failing probes (a
//! monitor red from its first probe fires too), `firing` -> `ok` after `success_threshold`
//! consecutive non-failing ones. Inside a maintenance window nothing fires, resolves or
//! reminds; at its end the counters decide, so only a real change is reported.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::maintenance;
use super::{AlertConfig, EventKind, Message, MonitorAlerts, MonitorName};
use crate::domain::{MonitorKey, Reason, Status};

/// A monitor's alert state, as stored (JSON in `alert_state`; fields added later read as
/// their defaults).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MonitorState {
    pub firing: bool,
    pub fail_streak: u32,
    pub ok_streak: u32,
    /// The first failing probe of the current failing streak.
    pub streak_started_at: Option<i64>,
    /// While firing: when the outage began (its streak's first failing probe).
    pub started_at: Option<i64>,
    /// The event id of the down that opened this outage.
    pub down_event: Option<i64>,
    /// The channels the down went (or goes) to: the resolved and reminders follow it there.
    pub down_channels: Vec<String>,
    /// When the last message about this outage was decided (the down or a reminder).
    pub last_message_at: Option<i64>,
    /// Reminders count from here when later than the last message (the end of a maintenance
    /// window: what was already down is not re-announced as it ends).
    pub remind_from: Option<i64>,
    /// The storm it was folded into (that storm's event id): its own down was not sent, so
    /// neither is its resolved.
    pub storm: Option<i64>,
    /// Its down is held until then (storms on: a storm may still fold it in); no reminder
    /// before.
    pub held_until: Option<i64>,
    /// The last failing probe: what reminders say.
    pub last_status: Option<i16>,
    pub last_reason: Option<String>,
    pub last_detail: Option<String>,
}

impl MonitorState {
    fn is_active(&self) -> bool {
        self.firing || self.fail_streak > 0
    }
}

/// A storm in progress (stored as part of [`Global`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StormState {
    pub event: i64,
    pub started_at: i64,
    /// Members folded in and not yet recovered.
    pub members: Vec<MonitorName>,
    /// Every monitor it counted.
    pub all: Vec<MonitorName>,
    pub channels: Vec<String>,
}

/// What the engine keeps besides per-monitor state (stored as JSON in `meta`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Global {
    /// Storms in progress, oldest first.
    pub storms: Vec<StormState>,
    /// The last event id given out: ids are never reused, even after the retention purge has
    /// removed every event.
    pub last_event: i64,
    /// Maintenance occurrences open at the last look: (window name, start).
    pub open_windows: BTreeSet<(String, i64)>,
    /// Probing nodes silent at the last look (several nodes on one database).
    pub lost_nodes: BTreeSet<String>,
}

/// What the leader sees of another probing node: whether every monitor it probes is stale,
/// and since when (its newest probe's time plus 3 of its intervals), or when it came back.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSeen {
    pub name: String,
    pub silent: bool,
    /// When it went silent, or when its first probe after that was made (unix seconds).
    pub at: i64,
}

/// One state change, as `/api/events` serves it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub id: i64,
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub provider: Option<String>,
    pub service: Option<String>,
    pub channel: Option<String>,
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub time: i64,
    /// The probing node, for node_lost and node_back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// A message for the outbox: one channel, not before `not_before`.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub channel: String,
    pub message: Message,
    pub not_before: i64,
}

/// A probe result as the engine needs it.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    pub key: &'a MonitorKey,
    pub ts: i64,
    pub status: Status,
    pub reason: Reason,
    pub detail: Option<&'a str>,
    /// Made inside a maintenance window covering its monitor (the writer marks the row so).
    pub in_maintenance: bool,
}

/// What one batch (or tick) decided, to write in its transaction and [`Engine::apply`] after.
#[derive(Debug, Default)]
pub struct Decided {
    pub events: Vec<Event>,
    pub outbox: Vec<Outgoing>,
    /// Events whose pending messages are withdrawn (downs folded into a storm).
    pub suppress: Vec<i64>,
    /// Monitors whose state changed, with the new state.
    pub states: HashMap<MonitorKey, MonitorState>,
    /// The new global state, if it changed.
    pub global: Option<Global>,
    next_event: i64,
}

impl Decided {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.states.is_empty() && self.global.is_none() && self.suppress.is_empty()
    }
}

pub struct Engine {
    config: Arc<AlertConfig>,
    states: HashMap<MonitorKey, MonitorState>,
    /// Monitors firing or failing (a subset of `states`' keys): what reminders and storms
    /// look through.
    active: HashSet<MonitorKey>,
    global: Global,
    next_event: i64,
}

impl Engine {
    pub fn new(config: Arc<AlertConfig>) -> Self {
        Engine { config, states: HashMap::new(), active: HashSet::new(), global: Global::default(), next_event: 1 }
    }

    /// What the database holds, at start-up.
    pub fn load(&mut self, states: Vec<(MonitorKey, MonitorState)>, global: Global, last_event: i64) {
        self.active = states.iter().filter(|(_, s)| s.is_active()).map(|(k, _)| k.clone()).collect();
        self.states = states.into_iter().collect();
        self.next_event = last_event.max(global.last_event) + 1;
        self.global = global;
    }

    /// A new configuration: thresholds and channels apply from the next probe on; nothing
    /// firing is dropped or sent again.
    pub fn configure(&mut self, config: Arc<AlertConfig>) {
        self.config = config;
    }

    pub fn config(&self) -> &AlertConfig {
        &self.config
    }

    pub fn state(&self, key: &MonitorKey) -> Option<&MonitorState> {
        self.states.get(key)
    }

    /// Whether `key` is inside a maintenance window at `t`.
    pub fn in_maintenance(&self, key: &MonitorKey, t: i64) -> bool {
        maintenance::current(&self.config.maintenance, key, t).is_some()
    }

    /// Runs `results` (in the order their probes ended) and then the clock up to `now`.
    pub fn decide(&self, results: &[Observed<'_>], now: i64) -> Decided {
        self.decide_with_nodes(results, &[], now)
    }

    /// [`Engine::decide`], and the probing nodes lost or back since the last look.
    pub fn decide_with_nodes(&self, results: &[Observed<'_>], nodes: &[NodeSeen], now: i64) -> Decided {
        let mut run =
            Run { engine: self, decided: Decided { next_event: self.next_event, ..Decided::default() }, global: None };
        run.nodes(nodes);
        // Windows first: what a window's end reports comes before what later probes change.
        run.windows(now);
        for result in results {
            run.observe(result, now);
        }
        run.tick(now);
        let mut decided = run.decided;
        decided.global = run.global;
        decided
    }

    /// What a committed [`Decided`] changed.
    pub fn apply(&mut self, decided: &Decided) {
        for (key, state) in &decided.states {
            if state.is_active() {
                self.active.insert(key.clone());
            } else {
                self.active.remove(key);
            }
            self.states.insert(key.clone(), state.clone());
        }
        if let Some(global) = &decided.global {
            self.global = global.clone();
        }
        self.next_event = decided.next_event;
    }

    /// When the engine next has something to do without a probe (a reminder, a maintenance
    /// window opening or closing, a storm to close), if ever.
    pub fn next_due(&self, now: i64) -> Option<i64> {
        let mut due: Option<i64> = None;
        let mut consider = |t: i64| due = Some(due.map_or(t, |d| d.min(t)));
        if let Some(every) = self.config.remind_every {
            for key in &self.active {
                let Some(state) = self.states.get(key) else { continue };
                if self.in_maintenance(key, now) {
                    // The window's end is considered below; nothing reminds inside it.
                    continue;
                }
                if let Some(t) = remind_due(state, every.as_secs() as i64) {
                    consider(t.max(now + 1));
                }
            }
        }
        for window in &self.config.maintenance {
            if let Some((_, end)) = window.open_at(now) {
                consider(end);
            }
            if let Some((start, _)) = window.next_after(now) {
                consider(start);
            }
        }
        for (name, start) in &self.global.open_windows {
            let still = self.config.maintenance.iter().any(|w| &w.name == name && w.open_at(now) == w.open_at(*start));
            if !still {
                consider(now);
            }
        }
        if self.global.storms.iter().any(|s| s.members.is_empty()) {
            consider(now);
        }
        // A storm is decided just before the first held down would go.
        for key in &self.active {
            if let Some(held) = self.states.get(key).and_then(|s| s.held_until).filter(|h| *h > now) {
                consider((held - DECIDE_BEFORE).max(now + 1));
            }
        }
        if self.active.iter().any(|k| !self.config.monitors.contains_key(k)) {
            consider(now);
        }
        due
    }
}

fn remind_due(state: &MonitorState, every: i64) -> Option<i64> {
    if !state.firing || state.down_channels.is_empty() || state.storm.is_some() {
        return None;
    }
    let from = state.last_message_at?.max(state.remind_from.unwrap_or(i64::MIN));
    // Never before its down has gone.
    Some((from + every).max(state.held_until.unwrap_or(i64::MIN)))
}

/// A held down is folded into a storm only while it is held by more than this: one about to go
/// out (its batch committing, its send starting) is not called back.
const HOLD_MARGIN: i64 = 1;
/// Storms are decided this long before the first held down would go.
const DECIDE_BEFORE: i64 = 2;

/// One batch's decisions in progress: reads through to the engine, writes to `decided`.
struct Run<'a> {
    engine: &'a Engine,
    decided: Decided,
    global: Option<Global>,
}

impl Run<'_> {
    fn config(&self) -> &AlertConfig {
        &self.engine.config
    }

    fn state(&self, key: &MonitorKey) -> MonitorState {
        self.decided.states.get(key).or_else(|| self.engine.states.get(key)).cloned().unwrap_or_default()
    }

    fn global(&mut self) -> &mut Global {
        self.global.get_or_insert_with(|| self.engine.global.clone())
    }

    fn global_ref(&self) -> &Global {
        self.global.as_ref().unwrap_or(&self.engine.global)
    }

    fn settings(&self, key: &MonitorKey) -> Cow<'_, MonitorAlerts> {
        let config = self.config();
        match config.monitors.get(key) {
            Some(settings) => Cow::Borrowed(settings),
            // A monitor no longer configured (a late result): counted, never messaged.
            None => Cow::Owned(MonitorAlerts {
                channels: Vec::new(),
                failure_threshold: config.failure_threshold,
                success_threshold: config.success_threshold,
            }),
        }
    }

    fn event(
        &mut self,
        kind: EventKind,
        key: Option<&MonitorKey>,
        reason: Option<String>,
        detail: Option<String>,
        time: i64,
    ) -> i64 {
        let id = self.decided.next_event;
        self.decided.next_event += 1;
        self.global().last_event = id;
        self.decided.events.push(Event {
            id,
            kind,
            provider: key.map(|k| k.provider.clone()),
            service: key.map(|k| k.service.clone()),
            channel: key.map(|k| k.channel.clone()),
            reason,
            detail,
            time,
            node: None,
        });
        id
    }

    /// A node lost or back: an event (empty provider, service and channel; its `node`), and a
    /// message to the default channels.
    fn node_event(&mut self, kind: EventKind, node: &NodeSeen) {
        let id = self.decided.next_event;
        self.decided.next_event += 1;
        self.global().last_event = id;
        let detail = match kind {
            EventKind::NodeLost => format!("node {} stored no probe for 3 of its intervals", node.name),
            _ => format!("node {} stores probes again", node.name),
        };
        self.decided.events.push(Event {
            id,
            kind,
            provider: Some(String::new()),
            service: Some(String::new()),
            channel: Some(String::new()),
            reason: None,
            detail: Some(detail.clone()),
            time: node.at,
            node: Some(node.name.clone()),
        });
        let message = Message {
            id,
            event: kind,
            monitor: None,
            monitors: Vec::new(),
            status: None,
            reason: None,
            detail: Some(detail),
            started_at: None,
            resolved_at: None,
            time: node.at,
            down_id: None,
            node: Some(node.name.clone()),
        };
        let channels = self.config().default_channels.clone();
        self.send(&channels, &message, node.at);
    }

    /// Nodes gone silent or back since the last look: one event each way.
    fn nodes(&mut self, nodes: &[NodeSeen]) {
        for node in nodes {
            let lost = self.global_ref().lost_nodes.contains(&node.name);
            if node.silent && !lost {
                self.node_event(EventKind::NodeLost, node);
                self.global().lost_nodes.insert(node.name.clone());
            } else if !node.silent && lost {
                self.node_event(EventKind::NodeBack, node);
                self.global().lost_nodes.remove(&node.name);
            }
        }
    }

    fn send(&mut self, channels: &[String], message: &Message, not_before: i64) {
        for channel in channels {
            self.decided.outbox.push(Outgoing { channel: channel.clone(), message: message.clone(), not_before });
        }
    }

    fn observe(&mut self, result: &Observed<'_>, now: i64) {
        let failing = result.status == Status::Red || (self.config().on_yellow && result.status == Status::Yellow);
        let before = self.state(result.key);
        let mut state = before.clone();
        let (fail_cap, ok_cap) = {
            let settings = self.settings(result.key);
            (settings.failure_threshold.max(1), settings.success_threshold.max(1))
        };
        if failing {
            // Counted only as far as they matter, so a steady monitor's state stays the same
            // (and is not written again with every probe).
            state.fail_streak = state.fail_streak.saturating_add(1).min(fail_cap);
            state.ok_streak = 0;
            if state.fail_streak == 1 {
                state.streak_started_at = Some(result.ts);
            }
            state.last_status = Some(result.status.into());
            state.last_reason = Some(result.reason.as_str().to_string());
            state.last_detail = result.detail.map(str::to_string);
        } else {
            state.ok_streak = state.ok_streak.saturating_add(1).min(ok_cap);
            state.fail_streak = 0;
            state.streak_started_at = None;
        }
        if !result.in_maintenance {
            self.evaluate(result.key, &mut state, result.ts, now);
        }
        if state != before {
            self.decided.states.insert(result.key.clone(), state);
        }
    }

    /// Fires or resolves `key` if its counters say so.
    fn evaluate(&mut self, key: &MonitorKey, state: &mut MonitorState, ts: i64, now: i64) {
        let (fires, resolves) = {
            let settings = self.settings(key);
            (
                !state.firing && state.fail_streak >= settings.failure_threshold,
                state.firing && state.ok_streak >= settings.success_threshold,
            )
        };
        if fires {
            let settings = self.settings(key).into_owned();
            self.fire(key, state, &settings, ts, now);
        } else if resolves {
            self.resolve(key, state, ts);
        }
    }

    fn fire(&mut self, key: &MonitorKey, state: &mut MonitorState, settings: &MonitorAlerts, ts: i64, now: i64) {
        let started_at = state.streak_started_at.unwrap_or(ts);
        state.firing = true;
        state.started_at = Some(started_at);
        state.last_message_at = Some(now);
        state.remind_from = None;
        state.storm = None;
        state.held_until = None;
        let id = self.event(EventKind::Down, Some(key), state.last_reason.clone(), state.last_detail.clone(), ts);
        state.down_event = Some(id);
        state.down_channels = settings.channels.clone();
        let message = Message {
            id,
            event: EventKind::Down,
            monitor: Some(MonitorName::from(key)),
            monitors: Vec::new(),
            status: state.last_status.and_then(Status::from_i16).map(|s| s.name().to_string()),
            reason: state.last_reason.clone(),
            detail: state.last_detail.clone(),
            started_at: Some(started_at),
            resolved_at: None,
            time: ts,
            down_id: None,
            node: None,
        };
        let storm = self.config().storm.clone();
        let storms_on = storm.min_monitors > 0 && self.config().monitors.len() >= storm.min_monitors as usize;
        if !storms_on {
            self.send(&settings.channels, &message, now);
            return;
        }
        let window = storm.window.as_secs() as i64;
        // A storm formed within the window takes in a monitor that fires now (if the storm's
        // summary went to every channel of its own): one more of the same outage.
        let young = self
            .global_ref()
            .storms
            .iter()
            .position(|s| s.started_at + window >= now && settings.channels.iter().all(|c| s.channels.contains(c)));
        if let Some(index) = young {
            let storm_state = &mut self.global().storms[index];
            storm_state.members.push(MonitorName::from(key));
            storm_state.all.push(MonitorName::from(key));
            state.storm = Some(storm_state.event);
            state.down_channels.clear();
            return;
        }
        // Held for the window: a storm may yet fold it in.
        state.held_until = Some(now + window);
        self.send(&settings.channels, &message, now + window);
    }

    /// Storm detection, once the first held down is about to go: the monitors that fired
    /// within the window (their downs still held, by more than [`HOLD_MARGIN`]: one about to go
    /// out is not called back), in no storm yet, are counted; enough of them make a storm, and
    /// one summary goes instead of their downs.
    fn detect_storm(&mut self, now: i64) {
        let storm = self.config().storm.clone();
        if storm.min_monitors == 0 || self.config().monitors.len() < storm.min_monitors as usize {
            return;
        }
        let mut keys: Vec<MonitorKey> = self
            .engine
            .active
            .iter()
            .chain(self.decided.states.keys())
            .cloned()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        keys.sort_by_key(|k| k.to_string());
        let mut candidates: Vec<(MonitorKey, MonitorState)> = Vec::new();
        let mut first_due = i64::MAX;
        for key in keys {
            let s = self.state(&key);
            if let Some(held) = s.held_until.filter(|h| s.firing && s.storm.is_none() && *h > now + HOLD_MARGIN) {
                first_due = first_due.min(held);
                candidates.push((key, s));
            }
        }
        let total = self.config().monitors.len().max(1);
        if first_due - DECIDE_BEFORE > now
            || candidates.len() < storm.min_monitors as usize
            || (candidates.len() as f64) < storm.min_fraction * total as f64
        {
            return;
        }
        let ts = now;
        let members: Vec<MonitorName> = candidates.iter().map(|(k, _)| MonitorName::from(k)).collect();
        let names: Vec<String> = members.iter().map(display).collect();
        let detail = format!("{} monitors down: {}", members.len(), names.join(", "));
        let storm_id =
            self.event(EventKind::StormDown, None, None, Some(crate::secret::prefix(&detail, 1_000).to_string()), ts);
        let mut channels: Vec<String> = Vec::new();
        let mut first_started = ts;
        for (member, mut s) in candidates {
            for channel in &self.settings(&member).channels {
                if !channels.contains(channel) {
                    channels.push(channel.clone());
                }
            }
            if let Some(event) = s.down_event {
                // Decided in this batch (not written yet) or earlier (pending in the outbox).
                self.decided.outbox.retain(|o| o.message.id != event);
                self.decided.suppress.push(event);
            }
            first_started = first_started.min(s.started_at.unwrap_or(ts));
            s.storm = Some(storm_id);
            s.held_until = None;
            s.down_channels.clear();
            self.decided.states.insert(member, s);
        }
        let message = Message {
            id: storm_id,
            event: EventKind::StormDown,
            monitor: None,
            monitors: members.clone(),
            status: Some("red".to_string()),
            reason: None,
            detail: None,
            started_at: Some(first_started),
            resolved_at: None,
            time: ts,
            down_id: None,
            node: None,
        };
        self.send(&channels, &message, now);
        self.global().storms.push(StormState {
            event: storm_id,
            started_at: now,
            members: members.clone(),
            all: members,
            channels,
        });
    }

    fn resolve(&mut self, key: &MonitorKey, state: &mut MonitorState, ts: i64) {
        let started_at = state.started_at;
        let id = self.event(EventKind::Up, Some(key), Some(Reason::Ok.as_str().to_string()), None, ts);
        match state.storm {
            Some(storm) => self.leave_storm(storm, key),
            None if self.config().send_resolved => {
                let message = Message {
                    id,
                    event: EventKind::Up,
                    monitor: Some(MonitorName::from(key)),
                    monitors: Vec::new(),
                    status: Some(Status::Green.name().to_string()),
                    reason: Some(Reason::Ok.as_str().to_string()),
                    detail: None,
                    started_at,
                    resolved_at: Some(ts),
                    time: ts,
                    down_id: state.down_event,
                    node: None,
                };
                let channels = std::mem::take(&mut state.down_channels);
                // Not before its down (still held, maybe): a channel's messages keep their order.
                self.send(&channels, &message, state.held_until.unwrap_or(ts));
            }
            None => {}
        }
        *state = MonitorState { ok_streak: state.ok_streak, ..MonitorState::default() };
    }

    fn leave_storm(&mut self, storm: i64, key: &MonitorKey) {
        let name = MonitorName::from(key);
        if let Some(storm) = self.global().storms.iter_mut().find(|s| s.event == storm) {
            storm.members.retain(|m| !same(m, &name));
        }
    }

    /// Time-driven work at `now`: outages of monitors no longer configured closed, reminders,
    /// storms whose monitors have all recovered.
    fn tick(&mut self, now: i64) {
        let mut keys: Vec<MonitorKey> = self.engine.active.iter().cloned().collect();
        keys.extend(self.decided.states.keys().cloned());
        keys.sort_by(|a, b| a.normalized().cmp(b.normalized()));
        keys.dedup();
        for key in &keys {
            if self.engine.config.monitors.contains_key(key) {
                continue;
            }
            // Removed or disabled: no probe will ever resolve it, so nothing more is said of it.
            let state = self.state(key);
            if state.is_active() {
                if state.firing {
                    log::info!("alerts: {key} is no longer configured; its alert is closed without a resolved");
                }
                if let Some(storm) = state.storm {
                    self.leave_storm(storm, key);
                }
                self.decided.states.insert(key.clone(), MonitorState::default());
            }
        }
        self.detect_storm(now);
        if let Some(every) = self.config().remind_every {
            let every = every.as_secs() as i64;
            for key in keys {
                let mut state = self.state(&key);
                let Some(due) = remind_due(&state, every) else { continue };
                if due > now || self.engine.in_maintenance(&key, now) {
                    continue;
                }
                let id = self.event(
                    EventKind::Reminder,
                    Some(&key),
                    state.last_reason.clone(),
                    state.last_detail.clone(),
                    now,
                );
                let message = Message {
                    id,
                    event: EventKind::Reminder,
                    monitor: Some(MonitorName::from(&key)),
                    monitors: Vec::new(),
                    status: state.last_status.and_then(Status::from_i16).map(|s| s.name().to_string()),
                    reason: state.last_reason.clone(),
                    detail: state.last_detail.clone(),
                    started_at: state.started_at,
                    resolved_at: None,
                    time: now,
                    down_id: state.down_event,
                    node: None,
                };
                let channels = state.down_channels.clone();
                self.send(&channels, &message, now);
                state.last_message_at = Some(now);
                self.decided.states.insert(key, state);
            }
        }
        self.end_storms(now);
    }

    fn end_storms(&mut self, now: i64) {
        let over: Vec<StormState> = {
            let global_storms = &self.global_ref().storms;
            if !global_storms.iter().any(|s| s.members.is_empty()) {
                return;
            }
            global_storms.iter().filter(|s| s.members.is_empty()).cloned().collect()
        };
        self.global().storms.retain(|s| !s.members.is_empty());
        for storm in over {
            let detail = format!("{} monitors recovered", storm.all.len());
            let id = self.event(EventKind::StormUp, None, None, Some(detail), now);
            if self.config().send_resolved {
                let message = Message {
                    id,
                    event: EventKind::StormUp,
                    monitor: None,
                    monitors: storm.all.clone(),
                    status: Some("green".to_string()),
                    reason: None,
                    detail: None,
                    started_at: Some(storm.started_at),
                    resolved_at: Some(now),
                    time: now,
                    down_id: Some(storm.event),
                    node: None,
                };
                self.send(&storm.channels, &message, now);
            }
        }
    }

    /// Maintenance windows opening and closing at `now`: each start and end is an event; at an
    /// end every monitor it covered is judged again by its counters.
    fn windows(&mut self, now: i64) {
        let config = self.engine.config.clone();
        let mut open_now: BTreeSet<(String, i64)> = BTreeSet::new();
        for window in &config.maintenance {
            if let Some((start, _)) = window.open_at(now) {
                open_now.insert((window.name.clone(), start));
            }
        }
        let before = self.global_ref().open_windows.clone();
        if before == open_now {
            return;
        }
        for (name, start) in open_now.difference(&before) {
            let detail = config.maintenance.iter().find(|w| &w.name == name).map(describe_window);
            self.event(EventKind::MaintenanceStart, None, Some(name.clone()), detail, *start);
        }
        let ended: Vec<(String, i64)> = before.difference(&open_now).cloned().collect();
        for (name, start) in &ended {
            let window = config.maintenance.iter().find(|w| &w.name == name);
            let end = window.and_then(|w| w.open_at(*start).map(|(_, e)| e)).filter(|e| *e <= now).unwrap_or(now);
            self.event(EventKind::MaintenanceEnd, None, Some(name.clone()), window.map(describe_window), end);
            // Every monitor it covered (that no other window still covers) is judged now.
            let mut keys: Vec<MonitorKey> = config.monitors.keys().cloned().collect();
            keys.sort_by(|a, b| a.normalized().cmp(b.normalized()));
            for key in keys {
                if window.is_some_and(|w| !w.covers(&key)) || self.engine.in_maintenance(&key, now) {
                    continue;
                }
                let mut state = self.state(&key);
                let was_firing = state.firing;
                self.evaluate(&key, &mut state, now, now);
                if was_firing && state.firing {
                    // Down before and still down: nothing new, and no reminder for the window.
                    state.remind_from = Some(now);
                }
                if state != self.state(&key) {
                    self.decided.states.insert(key, state);
                }
            }
        }
        self.global().open_windows = open_now;
    }
}

fn describe_window(window: &maintenance::Maintenance) -> String {
    window.name.clone()
}

fn same(a: &MonitorName, b: &MonitorName) -> bool {
    a.provider.eq_ignore_ascii_case(&b.provider)
        && a.service.eq_ignore_ascii_case(&b.service)
        && a.channel.eq_ignore_ascii_case(&b.channel)
}

fn display(name: &MonitorName) -> String {
    MonitorKey::new(&name.provider, &name.service, &name.channel).to_string()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::alert::maintenance::{Maintenance, Pattern, Recurrence};
    use crate::alert::Storm;

    const T0: i64 = 1_800_000_000;

    fn key(i: usize) -> MonitorKey {
        MonitorKey::new("p", &format!("s{i}"), "")
    }

    fn config(monitors: usize, channels: &[&str], tweak: impl FnOnce(&mut AlertConfig)) -> Arc<AlertConfig> {
        let mut config = AlertConfig { storm: Storm { min_monitors: 0, ..Storm::default() }, ..AlertConfig::default() };
        for i in 0..monitors {
            config.monitors.insert(
                key(i),
                MonitorAlerts {
                    channels: channels.iter().map(|c| c.to_string()).collect(),
                    failure_threshold: 2,
                    success_threshold: 2,
                },
            );
        }
        tweak(&mut config);
        Arc::new(config)
    }

    /// Feeds results through an engine, committing each step, and keeps what was decided.
    struct Harness {
        engine: Engine,
        events: Vec<Event>,
        outbox: Vec<Outgoing>,
        suppressed: Vec<i64>,
    }

    impl Harness {
        fn new(config: Arc<AlertConfig>) -> Self {
            Harness { engine: Engine::new(config), events: Vec::new(), outbox: Vec::new(), suppressed: Vec::new() }
        }

        fn step(&mut self, results: &[(usize, Status)], ts: i64) {
            let keys: Vec<MonitorKey> = results.iter().map(|(i, _)| key(*i)).collect();
            let observed: Vec<Observed<'_>> = results
                .iter()
                .zip(&keys)
                .map(|((_, status), key)| Observed {
                    key,
                    ts,
                    status: *status,
                    reason: if *status == Status::Red { Reason::ServerError } else { Reason::Ok },
                    detail: (*status == Status::Red).then_some("HTTP 500"),
                    in_maintenance: self.engine.in_maintenance(key, ts),
                })
                .collect();
            let decided = self.engine.decide(&observed, ts);
            self.engine.apply(&decided);
            self.events.extend(decided.events.iter().cloned());
            self.suppressed.extend(decided.suppress.iter().copied());
            self.outbox.retain(|o| !decided.suppress.contains(&o.message.id));
            self.outbox.extend(decided.outbox.iter().cloned());
        }

        /// What the daemon's timer does: a look at every time the engine asks for, up to `t`.
        fn catch_up(&mut self, t: i64, from: i64) {
            let mut now = from;
            while let Some(due) = self.engine.next_due(now).filter(|d| *d < t) {
                self.step(&[], due);
                now = due;
            }
        }

        fn kinds(&self) -> Vec<&'static str> {
            self.events.iter().map(|e| e.kind.as_str()).collect()
        }

        fn sent(&self) -> Vec<(&'static str, String)> {
            self.outbox.iter().map(|o| (o.message.event.as_str(), o.channel.clone())).collect()
        }

        /// A restart: a new engine with what the database would hold.
        fn restart(&mut self) {
            let states: Vec<(MonitorKey, MonitorState)> = self
                .engine
                .states
                .iter()
                .map(|(k, s)| (k.clone(), serde_json::from_str(&serde_json::to_string(s).unwrap()).unwrap()))
                .collect();
            let global = serde_json::from_str(&serde_json::to_string(&self.engine.global).unwrap()).unwrap();
            let last = self.engine.next_event - 1;
            let mut engine = Engine::new(self.engine.config.clone());
            engine.load(states, global, last);
            self.engine = engine;
        }
    }

    use Status::{Green, Red, Yellow};

    #[test]
    fn flapping_below_the_threshold_sends_nothing() {
        let mut h = Harness::new(config(1, &["ops"], |_| {}));
        for (i, status) in [Red, Green, Red, Green, Red, Yellow, Red, Green].into_iter().enumerate() {
            h.step(&[(0, status)], T0 + i as i64 * 60);
        }
        assert!(h.events.is_empty() && h.outbox.is_empty(), "{:?}", h.events);
        // The state of a steady green monitor is not rewritten with every probe.
        h.step(&[(0, Green)], T0 + 540);
        let decided = h.engine.decide(
            &[Observed {
                key: &key(0),
                ts: T0 + 600,
                status: Green,
                reason: Reason::Ok,
                detail: None,
                in_maintenance: false,
            }],
            T0 + 600,
        );
        assert!(decided.states.is_empty());
    }

    #[test]
    fn red_from_the_first_probe_fires_and_resolves_once() {
        let mut h = Harness::new(config(1, &["ops", "tg"], |_| {}));
        h.step(&[(0, Red)], T0);
        assert!(h.events.is_empty());
        h.step(&[(0, Red)], T0 + 60);
        assert_eq!(h.kinds(), ["down"]);
        assert_eq!(h.sent(), [("down", "ops".to_string()), ("down", "tg".to_string())]);
        let down = &h.outbox[0].message;
        assert_eq!(
            (down.started_at, down.reason.as_deref(), down.detail.as_deref()),
            (Some(T0), Some("server_error"), Some("HTTP 500"))
        );
        h.step(&[(0, Red)], T0 + 120);
        h.step(&[(0, Green)], T0 + 180);
        assert_eq!(h.kinds(), ["down"]);
        h.step(&[(0, Green)], T0 + 240);
        assert_eq!(h.kinds(), ["down", "up"]);
        let up = &h.outbox[2].message;
        assert_eq!(
            (up.event, up.started_at, up.resolved_at, up.duration_s()),
            (EventKind::Up, Some(T0), Some(T0 + 240), Some(240))
        );
        assert_eq!(h.outbox.len(), 4);
        // Thresholds of 1: the very first red probe fires.
        let mut h =
            Harness::new(config(1, &["ops"], |c| c.monitors.values_mut().for_each(|m| m.failure_threshold = 1)));
        h.step(&[(0, Red)], T0);
        assert_eq!(h.kinds(), ["down"]);
    }

    #[test]
    fn yellow_counts_only_with_on_red_yellow() {
        let mut h = Harness::new(config(1, &["ops"], |_| {}));
        h.step(&[(0, Yellow)], T0);
        h.step(&[(0, Yellow)], T0 + 60);
        assert!(h.events.is_empty());
        let mut h = Harness::new(config(1, &["ops"], |c| c.on_yellow = true));
        h.step(&[(0, Yellow)], T0);
        h.step(&[(0, Yellow)], T0 + 60);
        assert_eq!(h.kinds(), ["down"]);
    }

    #[test]
    fn restarts_while_firing_send_nothing_new_and_then_one_resolved() {
        let mut h = Harness::new(config(1, &["ops"], |c| c.remind_every = Some(Duration::from_secs(3_600))));
        h.step(&[(0, Red)], T0);
        h.step(&[(0, Red)], T0 + 60);
        h.restart();
        h.step(&[(0, Red)], T0 + 120);
        h.restart();
        h.step(&[(0, Red)], T0 + 180);
        assert_eq!(h.kinds(), ["down"]);
        // The reminder is due an hour after the down, not an hour after the restart, nor at it.
        assert_eq!(h.engine.next_due(T0 + 180), Some(T0 + 60 + 3_600));
        h.step(&[], T0 + 60 + 3_599);
        assert_eq!(h.kinds(), ["down"]);
        h.step(&[], T0 + 60 + 3_600);
        assert_eq!(h.kinds(), ["down", "reminder"]);
        h.restart();
        h.step(&[], T0 + 60 + 3_700);
        assert_eq!(h.kinds(), ["down", "reminder"]);
        h.step(&[(0, Green)], T0 + 3_800);
        h.step(&[(0, Green)], T0 + 3_860);
        assert_eq!(h.kinds(), ["down", "reminder", "up"]);
        assert_eq!(h.sent().iter().filter(|(k, _)| *k == "up").count(), 1);
    }

    #[test]
    fn a_silenced_monitor_records_events_but_sends_nothing() {
        let mut h = Harness::new(config(1, &[], |c| c.remind_every = Some(Duration::from_secs(60))));
        h.step(&[(0, Red)], T0);
        h.step(&[(0, Red)], T0 + 10);
        h.step(&[], T0 + 1_000);
        h.step(&[(0, Green)], T0 + 1_010);
        h.step(&[(0, Green)], T0 + 1_020);
        assert_eq!(h.kinds(), ["down", "up"]);
        assert!(h.outbox.is_empty());
    }

    #[test]
    fn a_resolved_goes_where_the_down_went_even_after_a_config_change() {
        let mut h = Harness::new(config(1, &["ops"], |_| {}));
        h.step(&[(0, Red)], T0);
        h.step(&[(0, Red)], T0 + 60);
        h.engine.configure(config(1, &["tg"], |c| c.monitors.values_mut().for_each(|m| m.success_threshold = 3)));
        h.step(&[(0, Green)], T0 + 120);
        h.step(&[(0, Green)], T0 + 180);
        assert_eq!(h.kinds(), ["down"], "the new success threshold applies");
        h.step(&[(0, Green)], T0 + 240);
        assert_eq!(h.sent(), [("down", "ops".to_string()), ("up", "ops".to_string())]);
    }

    #[test]
    fn many_monitors_failing_together_give_one_storm_summary() {
        let storm = Storm { min_monitors: 5, min_fraction: 0.5, window: Duration::from_secs(60) };
        let mut h = Harness::new(config(25, &["ops"], |c| c.storm = storm));
        let all_red: Vec<(usize, Status)> = (0..25).map(|i| (i, Red)).collect();
        let all_green: Vec<(usize, Status)> = (0..25).map(|i| (i, Green)).collect();
        h.step(&all_red, T0);
        // Spread over a few seconds, as their schedules are.
        for i in 0..25 {
            h.step(&[(i, Red)], T0 + 1 + i as i64 / 5);
        }
        // Just before the first held down would go, the storm is decided.
        assert_eq!(h.engine.next_due(T0 + 6), Some(T0 + 1 + 60 - DECIDE_BEFORE));
        h.step(&[], T0 + 59);
        assert_eq!(h.kinds().iter().filter(|k| **k == "down").count(), 25, "each state change is an event");
        assert_eq!(h.kinds().iter().filter(|k| **k == "storm_down").count(), 1);
        assert_eq!(h.sent(), [("storm_down", "ops".to_string())], "the held downs were withdrawn");
        assert_eq!(h.outbox[0].message.monitors.len(), 25);
        h.step(&all_green, T0 + 120);
        h.step(&all_green, T0 + 180);
        assert_eq!(h.kinds().iter().filter(|k| **k == "up").count(), 25);
        assert_eq!(h.sent(), [("storm_down", "ops".to_string()), ("storm_up", "ops".to_string())]);
    }

    #[test]
    fn a_storm_sends_no_reminders_and_a_member_whose_down_went_out_resolves_on_its_own() {
        let storm = Storm { min_monitors: 5, min_fraction: 0.2, window: Duration::from_secs(60) };
        let mut h = Harness::new(config(25, &["ops"], |c| {
            c.storm = storm;
            c.remind_every = Some(Duration::from_secs(30));
        }));
        // Monitor 0 fails alone: its down is held for the window, then goes (a delivery would
        // send it once its not_before passes; here it is simply in the outbox, not withdrawn).
        h.step(&[(0, Red)], T0);
        h.step(&[(0, Red)], T0 + 10);
        // 70 s later, five others fail together: a storm; monitor 0's streak began too long ago.
        let five: Vec<(usize, Status)> = (1..=5).map(|i| (i, Red)).collect();
        h.step(&five, T0 + 80);
        h.step(&five, T0 + 90);
        h.step(&[], T0 + 148);
        let sent: Vec<&str> = h.outbox.iter().map(|o| o.message.event.as_str()).collect();
        assert_eq!(sent, ["down", "reminder", "storm_down", "reminder"], "{:?}", h.kinds());
        assert_eq!(h.outbox[2].message.monitors.len(), 5);
        // Long after: reminders for monitor 0 only, none for the storm's members.
        h.step(&[], T0 + 200);
        assert!(h.outbox[3..].iter().all(|o| o.message.monitor.as_ref().is_some_and(|m| m.service == "s0")));
        // Monitor 0 recovers: its own resolved; the storm ends only when its members have.
        h.step(&[(0, Green)], T0 + 210);
        h.step(&[(0, Green)], T0 + 220);
        assert_eq!(h.outbox.last().map(|o| o.message.event), Some(EventKind::Up));
        let five_green: Vec<(usize, Status)> = (1..=5).map(|i| (i, Green)).collect();
        h.step(&five_green, T0 + 230);
        h.step(&five_green, T0 + 240);
        assert_eq!(h.outbox.last().map(|o| o.message.event), Some(EventKind::StormUp));
        assert_eq!(h.outbox.iter().filter(|o| o.message.event == EventKind::Up).count(), 1);
    }

    #[test]
    fn a_single_failure_among_many_is_held_for_the_window_then_sent() {
        let storm = Storm { min_monitors: 5, min_fraction: 0.5, window: Duration::from_secs(60) };
        let mut h = Harness::new(config(25, &["ops"], |c| c.storm = storm));
        h.step(&[(3, Red)], T0);
        h.step(&[(3, Red)], T0 + 10);
        assert_eq!(h.sent(), [("down", "ops".to_string())]);
        assert_eq!(h.outbox[0].not_before, T0 + 10 + 60);
        // Below min_monitors (or storms off): sent at once.
        let mut h = Harness::new(config(3, &["ops"], |c| c.storm = Storm { min_monitors: 5, ..Storm::default() }));
        h.step(&[(0, Red)], T0);
        h.step(&[(0, Red)], T0 + 10);
        assert_eq!(h.outbox[0].not_before, T0 + 10);
    }

    fn all(range: std::ops::Range<usize>, status: Status) -> Vec<(usize, Status)> {
        range.map(|i| (i, status)).collect()
    }

    #[test]
    fn a_storm_forms_with_a_threshold_of_three_at_a_one_minute_interval() {
        let storm = Storm { min_monitors: 5, min_fraction: 0.5, window: Duration::from_secs(60) };
        let mut h = Harness::new(config(25, &["ops"], |c| {
            c.storm = storm;
            c.monitors.values_mut().for_each(|m| m.failure_threshold = 3);
        }));
        // Each monitor probes at its own phase (2 s apart) once a minute; all fail from T0 on.
        let mut last = T0;
        for round in 0..4 {
            for i in 0..25 {
                let t = T0 + round * 60 + i as i64 * 2;
                h.catch_up(t, last);
                h.step(&[(i, Red)], t);
                last = t;
            }
        }
        assert_eq!(h.kinds().iter().filter(|k| **k == "storm_down").count(), 1, "{:?}", h.kinds());
        assert_eq!(h.sent(), [("storm_down", "ops".to_string())]);
        assert_eq!(h.outbox[0].message.monitors.len(), 25);
    }

    #[test]
    fn a_blip_on_many_monitors_does_not_hide_one_that_is_really_down() {
        let storm = Storm { min_monitors: 5, min_fraction: 0.2, window: Duration::from_secs(60) };
        let mut h = Harness::new(config(25, &["ops"], |c| {
            c.storm = storm;
            c.remind_every = Some(Duration::from_secs(600));
        }));
        h.step(&all(0..10, Red), T0);
        h.step(&[(0, Red)], T0 + 60);
        h.step(&all(1..10, Green), T0 + 60);
        for t in [T0 + 120, T0 + 180, T0 + 900] {
            h.step(&[(0, Red)], t);
        }
        assert_eq!(h.sent(), [("down", "ops".to_string()), ("reminder", "ops".to_string())]);
        assert!(!h.kinds().contains(&"storm_down"));
    }

    #[test]
    fn a_second_outage_later_is_a_storm_of_its_own_while_the_first_lingers() {
        let storm = Storm { min_monitors: 5, min_fraction: 0.2, window: Duration::from_secs(60) };
        let mut h = Harness::new(config(25, &["ops"], |c| c.storm = storm));
        h.step(&all(0..5, Red), T0);
        h.step(&all(0..5, Red), T0 + 10);
        h.step(&[], T0 + 68);
        // Four recover; monitor 0 stays down.
        h.step(&all(1..5, Green), T0 + 100);
        h.step(&all(1..5, Green), T0 + 110);
        let day = T0 + 86_400;
        h.step(&all(10..16, Red), day);
        h.step(&all(10..16, Red), day + 10);
        h.step(&[], day + 68);
        let storms: Vec<&Outgoing> = h.outbox.iter().filter(|o| o.message.event == EventKind::StormDown).collect();
        assert_eq!(storms.len(), 2, "{:?}", h.sent());
        assert_eq!(storms[1].message.monitors.len(), 6);
        assert!(!h.sent().iter().any(|(e, _)| *e == "down"), "{:?}", h.sent());
    }

    #[test]
    fn a_monitor_removed_while_firing_is_closed_and_reminds_no_more() {
        let mut h = Harness::new(config(2, &["ops"], |c| c.remind_every = Some(Duration::from_secs(60))));
        h.step(&[(0, Red)], T0);
        h.step(&[(0, Red)], T0 + 10);
        h.engine.configure(config(2, &["ops"], |c| {
            c.remind_every = Some(Duration::from_secs(60));
            c.monitors.remove(&key(0));
        }));
        h.step(&[], T0 + 20);
        h.step(&[], T0 + 1_000);
        assert_eq!(h.sent(), [("down", "ops".to_string())]);
        assert_eq!(h.engine.next_due(T0 + 1_000), None);
        assert!(h.engine.state(&key(0)).is_some_and(|s| !s.firing));
    }

    #[test]
    fn event_ids_are_never_reused_even_when_the_purge_removed_every_event() {
        let mut h = Harness::new(config(1, &["ops"], |_| {}));
        h.step(&[(0, Red)], T0);
        h.step(&[(0, Red)], T0 + 10);
        h.step(&[(0, Green)], T0 + 20);
        h.step(&[(0, Green)], T0 + 30);
        let last = h.events.last().unwrap().id;
        // The database has no event left (all purged): the stored high-water mark still counts.
        let states: Vec<(MonitorKey, MonitorState)> =
            h.engine.states.iter().map(|(k, s)| (k.clone(), s.clone())).collect();
        let global = h.engine.global.clone();
        let mut engine = Engine::new(h.engine.config.clone());
        engine.load(states, global, 0);
        h.engine = engine;
        h.step(&[(0, Red)], T0 + 40);
        h.step(&[(0, Red)], T0 + 50);
        assert_eq!(h.events.last().unwrap().id, last + 1);
    }

    fn window(start: i64, end: i64) -> Maintenance {
        Maintenance {
            name: "upgrade".into(),
            monitors: vec![Pattern::parse("p/*").unwrap()],
            schedule: Recurrence::Once { start, end },
        }
    }

    #[test]
    fn maintenance_suppresses_and_then_reports_only_real_changes() {
        let (start, end) = (T0 + 1_000, T0 + 2_000);
        let cfg = config(3, &["ops"], |c| {
            c.maintenance = vec![window(start, end)];
            c.remind_every = Some(Duration::from_secs(300));
        });
        let mut h = Harness::new(cfg);
        // 0: down before, still down after. 1: down before, recovers during. 2: fails during.
        h.step(&[(0, Red), (1, Red), (2, Green)], T0);
        h.step(&[(0, Red), (1, Red), (2, Green)], T0 + 10);
        assert_eq!(h.kinds(), ["down", "down"]);
        h.step(&[(0, Red), (1, Green), (2, Red)], start + 10);
        h.step(&[(0, Red), (1, Green), (2, Red)], start + 20);
        h.step(&[], start + 600);
        assert_eq!(h.kinds(), ["down", "down", "maintenance_start"], "nothing fires, resolves or reminds inside");
        h.step(&[], end + 1);
        assert_eq!(h.kinds(), ["down", "down", "maintenance_start", "maintenance_end", "up", "down"]);
        let ends: Vec<(&str, Option<&str>)> =
            h.events[4..].iter().map(|e| (e.kind.as_str(), e.service.as_deref())).collect();
        assert_eq!(ends, [("up", Some("s1")), ("down", Some("s2"))]);
        // Monitor 0 was down before and after: no reminder at the end, the next one a full
        // period later.
        h.step(&[], end + 299);
        assert_eq!(h.kinds().iter().filter(|k| **k == "reminder").count(), 0);
        h.step(&[], end + 1 + 300);
        assert_eq!(h.kinds().iter().filter(|k| **k == "reminder").count(), 2, "{:?}", h.kinds());
        // The window's start and end, once each, even across a restart.
        h.restart();
        h.step(&[], end + 1_000);
        assert_eq!(h.kinds().iter().filter(|k| k.starts_with("maintenance")).count(), 2);
    }
}
