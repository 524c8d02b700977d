ALTER TABLE latest RENAME COLUMN probe_id TO probe_rowid;
CREATE TABLE probes_old (
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
    detail TEXT,
    connect_ms INTEGER
);
INSERT INTO probes_old (rowid, monitor_id, ts, status, latency_ms, reason, http_code, ttfb_ms, ttft_ms, tps_x10,
                        model_id, prompt_tokens, completion_tokens, detail, connect_ms)
SELECT id, monitor_id, ts, status, latency_ms, reason, http_code, ttfb_ms, ttft_ms, tps_x10,
       model_id, prompt_tokens, completion_tokens, detail, connect_ms
FROM probes ORDER BY id;
DROP TABLE probes;
ALTER TABLE probes_old RENAME TO probes;
