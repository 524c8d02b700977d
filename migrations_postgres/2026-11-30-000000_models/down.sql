DELETE FROM monitors WHERE model <> '';
DROP INDEX monitors_key;
CREATE UNIQUE INDEX monitors_key ON monitors (lower(provider), lower(service), lower(channel));
ALTER TABLE monitors DROP COLUMN model;
