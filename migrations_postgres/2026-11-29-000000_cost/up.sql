-- Issue 14: what each probe cost, in nano-USD (1e-9 USD); NULL when its model has no price or
-- the reply reported no usage. An hour's rollup keeps the sum of its probes' costs (NULL when none
-- had one). Probes stored before this have none: nothing to rebuild.
ALTER TABLE probes ADD COLUMN cost_nanos BIGINT;
ALTER TABLE rollups ADD COLUMN cost_nanos BIGINT;
