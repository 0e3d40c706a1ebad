-- Lists sort ascending with NULLs first (VSPC's order, and SQLite's own), but PostgreSQL's
-- default index order puts NULLs last, so these indexes could not serve `ORDER BY name ASC NULLS
-- FIRST, uid ASC NULLS FIRST` and every page sorted the whole table (EXPLAIN on the medium fleet:
-- a sequential scan and a top-N sort of 10,000 plans, 40 ms; with these, an index scan of 100
-- rows, 0.5 ms). Descending sorts (NULLs last) read the same indexes backwards.
DROP INDEX plans_name;
CREATE INDEX plans_name ON plans (name NULLS FIRST, uid NULLS FIRST);
DROP INDEX plans_server;
CREATE INDEX plans_server ON plans (backup_server_uid, name NULLS FIRST, uid NULLS FIRST);
DROP INDEX plans_status;
CREATE INDEX plans_status ON plans (status, name NULLS FIRST, uid NULLS FIRST);
DROP INDEX plan_objects_name;
CREATE INDEX plan_objects_name ON plan_objects (name NULLS FIRST, uid NULLS FIRST);
DROP INDEX plan_objects_server;
CREATE INDEX plan_objects_server ON plan_objects (backup_server_uid, name NULLS FIRST, uid NULLS FIRST);
