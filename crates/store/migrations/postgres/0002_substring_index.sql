-- Trigram indexes for `contains` under ignorecase on plan and VM names. pg_trgm ships with
-- PostgreSQL and is a trusted extension: the database's owner may create it. The indexes only
-- narrow (through LIKE); the exact strpos() test still runs on every row they return.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX plan_objects_name_trigram ON plan_objects USING gin (name_ci gin_trgm_ops);
CREATE INDEX plans_name_trigram ON plans USING gin (name_ci gin_trgm_ops);
