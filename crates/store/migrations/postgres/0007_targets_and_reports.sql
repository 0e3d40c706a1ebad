-- Recovery targets and run reports (issue 19).

-- A plan's RTO and RPO targets in seconds; a missing row or a NULL: no target.
CREATE TABLE plan_targets (
    plan_uid    TEXT COLLATE "C" PRIMARY KEY REFERENCES plans (uid),
    rto_seconds BIGINT,
    rpo_seconds BIGINT,
    updated_at  BIGINT NOT NULL
);

-- The targets in force when a run started: its report judges it against these, not against
-- targets changed afterwards.
ALTER TABLE sessions ADD COLUMN rto_target_seconds BIGINT;
ALTER TABLE sessions ADD COLUMN rpo_target_seconds BIGINT;

-- Operator notes on a run, added afterwards and shown on its report; never edited.
CREATE TABLE session_notes (
    session_uid TEXT COLLATE "C" NOT NULL REFERENCES sessions (uid),
    seq         BIGINT NOT NULL,
    author      TEXT COLLATE "C" NOT NULL,
    written_at  BIGINT NOT NULL,
    text        TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (session_uid, seq)
);
