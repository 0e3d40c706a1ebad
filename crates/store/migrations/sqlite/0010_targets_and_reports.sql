-- Recovery targets and run reports (issue 19).

-- A plan's RTO and RPO targets in seconds; a missing row or a NULL: no target.
CREATE TABLE plan_targets (
    plan_uid    TEXT PRIMARY KEY REFERENCES plans (uid),
    rto_seconds INTEGER,
    rpo_seconds INTEGER,
    updated_at  INTEGER NOT NULL
);

-- The targets in force when a run started: its report judges it against these, not against
-- targets changed afterwards.
ALTER TABLE sessions ADD COLUMN rto_target_seconds INTEGER;
ALTER TABLE sessions ADD COLUMN rpo_target_seconds INTEGER;

-- Operator notes on a run, added afterwards and shown on its report; never edited.
CREATE TABLE session_notes (
    session_uid TEXT NOT NULL REFERENCES sessions (uid),
    seq         INTEGER NOT NULL,
    author      TEXT NOT NULL,
    written_at  INTEGER NOT NULL,
    text        TEXT NOT NULL,
    PRIMARY KEY (session_uid, seq)
);
