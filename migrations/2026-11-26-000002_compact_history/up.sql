-- Compact history (issue 5): raw probes go to an append-only table without indexes (reason as
-- a code, model as an id), queries read hourly rollups, and `latest` points at each monitor's
-- newest probe. The rollups of migrated rows are computed by the daemon at the next start
-- (flag in `meta`), because their percentile sketches are built in Rust.
CREATE TABLE models (
    id INTEGER PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE
);
INSERT INTO models (name) SELECT DISTINCT model FROM results WHERE model IS NOT NULL;

CREATE TABLE probes (
    monitor_id INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    status INTEGER NOT NULL,
    latency_ms INTEGER NOT NULL,
    reason INTEGER NOT NULL,
    http_code INTEGER NOT NULL,
    ttfb_ms INTEGER,
    ttft_ms INTEGER,
    tps_x10 INTEGER,
    model_id INTEGER,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    detail TEXT
);

INSERT INTO probes (monitor_id, ts, status, latency_ms, reason, http_code, ttfb_ms, ttft_ms, tps_x10,
                    model_id, prompt_tokens, completion_tokens, detail)
SELECT monitor_id, ts, status, latency_ms,
       CASE reason
           WHEN 'ok' THEN 0 WHEN 'slow' THEN 1 WHEN 'rate_limited' THEN 2 WHEN 'content_mismatch' THEN 3
           WHEN 'auth_error' THEN 4 WHEN 'client_error' THEN 5 WHEN 'server_error' THEN 6
           WHEN 'timeout' THEN 7 WHEN 'network_error' THEN 8 WHEN 'wrong_answer' THEN 9
           WHEN 'model_mismatch' THEN 10 WHEN 'stream_incomplete' THEN 11 WHEN 'upstream_error' THEN 12
           ELSE 6 END,
       http_code, ttfb_ms, ttft_ms, CAST(round(tokens_per_s * 10) AS INTEGER),
       (SELECT id FROM models WHERE models.name = results.model), prompt_tokens, completion_tokens, detail
FROM results ORDER BY ts, id;

DROP TABLE results;

CREATE TABLE rollups (
    monitor_id INTEGER NOT NULL,
    hour INTEGER NOT NULL,
    green INTEGER NOT NULL,
    yellow INTEGER NOT NULL,
    red INTEGER NOT NULL,
    latency_sum INTEGER NOT NULL,
    latency_sketch BLOB NOT NULL,
    ttft_sketch BLOB NOT NULL,
    PRIMARY KEY (monitor_id, hour)
) WITHOUT ROWID;

CREATE TABLE latest (
    monitor_id INTEGER PRIMARY KEY NOT NULL,
    ts INTEGER NOT NULL,
    probe_rowid INTEGER NOT NULL
);

CREATE TABLE meta (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES ('rebuild_rollups', '1');
