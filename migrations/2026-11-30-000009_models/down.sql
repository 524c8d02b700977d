-- The models' own series lose their names (their probes stay, under ids no monitor names).
CREATE TABLE monitors_old (
    id INTEGER PRIMARY KEY NOT NULL,
    provider TEXT NOT NULL COLLATE NOCASE,
    service TEXT NOT NULL COLLATE NOCASE,
    channel TEXT NOT NULL COLLATE NOCASE,
    UNIQUE (provider, service, channel)
);
INSERT INTO monitors_old (id, provider, service, channel)
    SELECT id, provider, service, channel FROM monitors WHERE model = '';
DROP TABLE monitors;
ALTER TABLE monitors_old RENAME TO monitors;
