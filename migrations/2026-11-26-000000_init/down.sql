DROP TABLE results;
DROP TABLE monitors;
