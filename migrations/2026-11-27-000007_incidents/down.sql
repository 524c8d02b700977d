DROP TABLE red_runs;
ALTER TABLE rollups DROP COLUMN reasons;
