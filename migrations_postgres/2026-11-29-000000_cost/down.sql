ALTER TABLE rollups DROP COLUMN cost_nanos;
ALTER TABLE probes DROP COLUMN cost_nanos;
