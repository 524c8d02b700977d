-- Probes get an explicit, never reused id (issue 10): `latest` pointed at implicit rowids, which
-- VACUUM or a dump and restore renumber, so a stale pointer could show another monitor's probe.
-- INTEGER PRIMARY KEY is the rowid itself (no extra bytes), kept by VACUUM; AUTOINCREMENT never
-- hands out an id again, even after the newest rows are gone.
CREATE TABLE probes_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
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
INSERT INTO probes_new (id, monitor_id, ts, status, latency_ms, reason, http_code, ttfb_ms, ttft_ms, tps_x10,
                        model_id, prompt_tokens, completion_tokens, detail, connect_ms)
SELECT rowid, monitor_id, ts, status, latency_ms, reason, http_code, ttfb_ms, ttft_ms, tps_x10,
       model_id, prompt_tokens, completion_tokens, detail, connect_ms
FROM probes ORDER BY rowid;
DROP TABLE probes;
ALTER TABLE probes_new RENAME TO probes;
ALTER TABLE latest RENAME COLUMN probe_rowid TO probe_id;
