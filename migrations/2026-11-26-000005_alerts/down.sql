DROP TABLE outbox;
DROP TABLE events;
DROP TABLE alert_state;
ALTER TABLE rollups DROP COLUMN maintenance;
ALTER TABLE probes DROP COLUMN maintenance;
