-- The status page's incidents and per-bucket reasons (issue 13); see the SQLite migration
-- 2026-11-27-000007_incidents for what each column holds.
ALTER TABLE rollups ADD COLUMN reasons TEXT NOT NULL DEFAULT '';

CREATE TABLE red_runs (
    monitor_id INTEGER NOT NULL,
    node_id INTEGER NOT NULL,
    start_ts BIGINT NOT NULL,
    end_ts BIGINT,
    last_ts BIGINT NOT NULL,
    reds BIGINT NOT NULL,
    reasons TEXT NOT NULL,
    -- The monitor's interval on that node when its last red probe was stored, seconds: a run
    -- still open after 3 of them without a probe ended at its last red probe.
    interval_s INTEGER,
    PRIMARY KEY (monitor_id, node_id, start_ts)
);
CREATE INDEX red_runs_start ON red_runs (start_ts);
-- Runs that began before a period and ended inside or after it, or go on (NULL).
CREATE INDEX red_runs_end ON red_runs (end_ts);

-- Computed from the stored probes by the daemon that migrates (under the migration lock).
INSERT INTO meta (key, value) VALUES ('rebuild_rollups', '1') ON CONFLICT (key) DO NOTHING;
