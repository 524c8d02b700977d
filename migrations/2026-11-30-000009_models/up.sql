-- A monitor of several models stores one series per model: the model is part of a series' key
-- ('' for every monitor of one series, so existing rows keep their ids and meaning).
CREATE TABLE monitors_new (
    id INTEGER PRIMARY KEY NOT NULL,
    provider TEXT NOT NULL COLLATE NOCASE,
    service TEXT NOT NULL COLLATE NOCASE,
    channel TEXT NOT NULL COLLATE NOCASE,
    model TEXT NOT NULL DEFAULT '' COLLATE NOCASE,
    UNIQUE (provider, service, channel, model)
);
INSERT INTO monitors_new (id, provider, service, channel) SELECT id, provider, service, channel FROM monitors;
DROP TABLE monitors;
ALTER TABLE monitors_new RENAME TO monitors;
