-- Monitors get a small integer id so the results table does not repeat their names.
CREATE TABLE monitors (
    id INTEGER PRIMARY KEY NOT NULL,
    provider TEXT NOT NULL COLLATE NOCASE,
    service TEXT NOT NULL COLLATE NOCASE,
    channel TEXT NOT NULL COLLATE NOCASE,
    UNIQUE (provider, service, channel)
);

CREATE TABLE results (
    id INTEGER PRIMARY KEY NOT NULL,
    monitor_id INTEGER NOT NULL REFERENCES monitors (id),
    ts BIGINT NOT NULL,
    status SMALLINT NOT NULL,
    latency_ms INTEGER NOT NULL,
    reason TEXT NOT NULL,
    http_code INTEGER NOT NULL,
    detail TEXT
);

CREATE INDEX results_monitor_ts ON results (monitor_id, ts);
CREATE INDEX results_ts ON results (ts);
