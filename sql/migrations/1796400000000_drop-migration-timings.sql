-- Up Migration
--
-- activity.pgmigrations_timing was created outside any migration by the migrate
-- command and fed by parsing node-pg-migrate's log text; `db status` no longer
-- reports durations, so the table goes. IF EXISTS: databases migrated only by
-- other means (the test template, an operator's runner) never had it.

DROP TABLE IF EXISTS activity.pgmigrations_timing;

-- Down Migration
--
-- Not restored: nothing reads or writes the table any more, and its rows were
-- measurements, not data.
