ALTER TABLE events DROP COLUMN node;
CREATE TABLE latest_old (monitor_id INTEGER PRIMARY KEY NOT NULL, ts INTEGER NOT NULL, probe_id INTEGER NOT NULL);
INSERT INTO latest_old SELECT monitor_id, max(ts), max(probe_id) FROM latest GROUP BY monitor_id;
DROP TABLE latest;
ALTER TABLE latest_old RENAME TO latest;
DROP TABLE rollups;
CREATE TABLE rollups (
    monitor_id INTEGER NOT NULL, hour INTEGER NOT NULL, green INTEGER NOT NULL, yellow INTEGER NOT NULL,
    red INTEGER NOT NULL, latency_sum INTEGER NOT NULL, latency_sketch BLOB NOT NULL, ttft_sketch BLOB NOT NULL,
    maintenance INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (monitor_id, hour)
) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES ('rebuild_rollups', '1') ON CONFLICT DO NOTHING;
ALTER TABLE probes DROP COLUMN node_id;
DROP TABLE nodes;
