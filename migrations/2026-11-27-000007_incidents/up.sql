-- The status page's incidents and per-bucket reasons (issue 13).
-- Each hour's red and yellow probes by reason: "code:count,..." (codes of domain::Reason).
ALTER TABLE rollups ADD COLUMN reasons TEXT NOT NULL DEFAULT '';

-- Every run of consecutive red probes of a monitor on a node, outside maintenance: from its
-- first red probe (start_ts) to the first probe after it that is not red (end_ts, NULL while it
-- lasts). An incident is a run of at least failure_threshold red probes, chosen when read.
CREATE TABLE red_runs (
    monitor_id INTEGER NOT NULL,
    node_id INTEGER NOT NULL,
    start_ts INTEGER NOT NULL,
    end_ts INTEGER,
    last_ts INTEGER NOT NULL,
    reds INTEGER NOT NULL,
    reasons TEXT NOT NULL,
    -- The monitor's interval on that node when its last red probe was stored, seconds: a run
    -- still open after 3 of them without a probe ended at its last red probe.
    interval_s INTEGER,
    PRIMARY KEY (monitor_id, node_id, start_ts)
) WITHOUT ROWID;
CREATE INDEX red_runs_start ON red_runs (start_ts);
-- Runs that began before a period and ended inside or after it, or go on (NULL).
CREATE INDEX red_runs_end ON red_runs (end_ts);

-- Both are computed from the stored probes by the daemon (in Rust) when it next opens the file.
INSERT INTO meta (key, value) VALUES ('rebuild_rollups', '1') ON CONFLICT (key) DO NOTHING;
