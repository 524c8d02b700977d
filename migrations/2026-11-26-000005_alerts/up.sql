-- Alerting (issue 11). Probes made inside a maintenance window are marked, and the rollups
-- count them apart (they are in no colour, so uptime leaves them out).
ALTER TABLE probes ADD COLUMN maintenance INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollups ADD COLUMN maintenance INTEGER NOT NULL DEFAULT 0;

-- Each monitor's alert state (its streaks, whether it fires, when it was last messaged), as
-- JSON; written in the transaction of the results that changed it.
CREATE TABLE alert_state (
    monitor_id INTEGER PRIMARY KEY NOT NULL,
    state TEXT NOT NULL
);

-- State changes, oldest first: what /api/events serves. Ids are given by the writer, in order.
CREATE TABLE events (
    id INTEGER PRIMARY KEY NOT NULL,
    time INTEGER NOT NULL,
    kind TEXT NOT NULL,
    provider TEXT,
    service TEXT,
    channel TEXT,
    reason TEXT,
    detail TEXT
);

-- Messages to send, one per event and channel, written with the event; delivery records each
-- attempt here. state: 0 pending, 1 sent, 2 given up, 3 suppressed (folded into a storm).
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id INTEGER NOT NULL,
    channel TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    not_before INTEGER NOT NULL,
    state INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    done_at INTEGER
);
CREATE INDEX outbox_pending ON outbox (id) WHERE state = 0;
CREATE INDEX outbox_event ON outbox (event_id);
