-- Several probing nodes (issue 12). Every probe carries the node that made it; rollups and the
-- latest pointer are kept per monitor and node. The history already stored was made by this
-- database's one node: it becomes node 1, whose name the daemon sets at its next start.
CREATE TABLE nodes (
    id INTEGER PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE
);
INSERT INTO nodes (id, name) VALUES (1, '');

ALTER TABLE probes ADD COLUMN node_id INTEGER NOT NULL DEFAULT 1;

-- seq: the writing node's own counter, raised with every write of the row, so other nodes
-- read only what changed since they last looked.
CREATE TABLE rollups_new (
    monitor_id INTEGER NOT NULL,
    node_id INTEGER NOT NULL,
    hour INTEGER NOT NULL,
    green INTEGER NOT NULL,
    yellow INTEGER NOT NULL,
    red INTEGER NOT NULL,
    latency_sum INTEGER NOT NULL,
    latency_sketch BLOB NOT NULL,
    ttft_sketch BLOB NOT NULL,
    maintenance INTEGER NOT NULL DEFAULT 0,
    seq INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (monitor_id, node_id, hour)
) WITHOUT ROWID;
INSERT INTO rollups_new (monitor_id, node_id, hour, green, yellow, red, latency_sum, latency_sketch, ttft_sketch, maintenance)
SELECT monitor_id, 1, hour, green, yellow, red, latency_sum, latency_sketch, ttft_sketch, maintenance FROM rollups;
DROP TABLE rollups;
ALTER TABLE rollups_new RENAME TO rollups;

CREATE TABLE latest_new (
    monitor_id INTEGER NOT NULL,
    node_id INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    probe_id INTEGER NOT NULL,
    seq INTEGER NOT NULL DEFAULT 0,
    -- The monitor's interval on that node, seconds (3 of them without a probe: stale).
    interval_s INTEGER,
    PRIMARY KEY (monitor_id, node_id)
);
INSERT INTO latest_new (monitor_id, node_id, ts, probe_id) SELECT monitor_id, 1, ts, probe_id FROM latest;
DROP TABLE latest;
ALTER TABLE latest_new RENAME TO latest;

-- node_lost / node_back events name their node.
ALTER TABLE events ADD COLUMN node TEXT;
