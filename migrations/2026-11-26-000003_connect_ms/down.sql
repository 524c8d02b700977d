ALTER TABLE probes DROP COLUMN connect_ms;
