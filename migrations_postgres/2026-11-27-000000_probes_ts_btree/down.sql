DROP INDEX probes_ts;
CREATE INDEX probes_ts ON probes USING brin (ts);
