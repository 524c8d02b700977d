-- How long a probe spent opening its connection, when it had to open one (NULL otherwise).
ALTER TABLE probes ADD COLUMN connect_ms INTEGER;
