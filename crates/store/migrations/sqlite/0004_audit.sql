-- Who did what, from where, when, and how it went: every write through the API, every login
-- (success and failure), and every user change made on the command line.
CREATE TABLE audit (
    uid        TEXT PRIMARY KEY,
    at         INTEGER NOT NULL,
    actor_uid  TEXT,
    actor_name TEXT NOT NULL,
    address    TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT,
    outcome    TEXT NOT NULL CHECK (outcome IN ('success', 'refused', 'failed')),
    detail     TEXT NOT NULL
);
CREATE INDEX audit_at ON audit (at);
