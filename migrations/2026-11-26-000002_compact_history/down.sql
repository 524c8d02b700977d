CREATE TABLE results (
    id INTEGER PRIMARY KEY NOT NULL,
    monitor_id INTEGER NOT NULL REFERENCES monitors (id),
    ts BIGINT NOT NULL,
    status SMALLINT NOT NULL,
    latency_ms INTEGER NOT NULL,
    reason TEXT NOT NULL,
    http_code INTEGER NOT NULL,
    detail TEXT,
    ttfb_ms INTEGER,
    ttft_ms INTEGER,
    tokens_per_s REAL,
    model TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER
);
INSERT INTO results (monitor_id, ts, status, latency_ms, reason, http_code, detail, ttfb_ms, ttft_ms,
                     tokens_per_s, model, prompt_tokens, completion_tokens)
SELECT monitor_id, ts, status, latency_ms,
       CASE reason
           WHEN 0 THEN 'ok' WHEN 1 THEN 'slow' WHEN 2 THEN 'rate_limited' WHEN 3 THEN 'content_mismatch'
           WHEN 4 THEN 'auth_error' WHEN 5 THEN 'client_error' WHEN 6 THEN 'server_error'
           WHEN 7 THEN 'timeout' WHEN 8 THEN 'network_error' WHEN 9 THEN 'wrong_answer'
           WHEN 10 THEN 'model_mismatch' WHEN 11 THEN 'stream_incomplete' ELSE 'upstream_error' END,
       http_code, detail, ttfb_ms, ttft_ms, tps_x10 / 10.0,
       (SELECT name FROM models WHERE models.id = probes.model_id), prompt_tokens, completion_tokens
FROM probes ORDER BY rowid;
CREATE INDEX results_monitor_ts ON results (monitor_id, ts);
CREATE INDEX results_ts ON results (ts);
DROP TABLE probes;
DROP TABLE rollups;
DROP TABLE latest;
DROP TABLE models;
DROP TABLE meta;
