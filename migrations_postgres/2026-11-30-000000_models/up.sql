-- A monitor of several models stores one series per model: the model is part of a series' key
-- ('' for every monitor of one series, so existing rows keep their ids and meaning).
ALTER TABLE monitors ADD COLUMN model TEXT NOT NULL DEFAULT '';
DROP INDEX monitors_key;
CREATE UNIQUE INDEX monitors_key ON monitors (lower(provider), lower(service), lower(channel), lower(model));
