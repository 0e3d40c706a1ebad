-- Scheduled drills (issue 19): test failovers of a set of plans on a cron schedule, each undone
-- after a time to live, under a budget of VMs running at once.

CREATE TABLE drills (
    uid                    TEXT COLLATE "C" PRIMARY KEY,
    name                   TEXT COLLATE "C" NOT NULL,
    -- Whose plans it may run: every plan (the provider's drills) or one company's.
    owner_all              BOOLEAN NOT NULL,
    owner_organization_uid TEXT COLLATE "C" NOT NULL,
    created_by_uid         TEXT COLLATE "C" NOT NULL,
    created_by             TEXT COLLATE "C" NOT NULL,
    -- Exactly one of the two: a JSON array of plan UIDs, or a VSPC filter over plans (JSON).
    plan_uids              TEXT COLLATE "C",
    plan_filter            TEXT COLLATE "C",
    schedule               TEXT COLLATE "C" NOT NULL,
    time_zone              TEXT COLLATE "C" NOT NULL,
    ttl_seconds            BIGINT NOT NULL,
    max_parallel_vms       BIGINT NOT NULL,
    -- 0: never stop early.
    stop_after_failures    BIGINT NOT NULL,
    paused                 BOOLEAN NOT NULL DEFAULT FALSE,
    -- Deleted drills stay until their last run has undone every test (then they are gone from
    -- every list; their runs stay for the reports).
    deleted                BOOLEAN NOT NULL DEFAULT FALSE,
    -- The next occurrence not yet claimed; NULL while paused.
    next_run_at            BIGINT,
    created_at             BIGINT NOT NULL
);
CREATE INDEX drills_due ON drills (next_run_at);

-- One occurrence of a drill. (drill_uid, due_at) is unique: of several nodes that see an
-- occurrence due, one opens its run.
CREATE TABLE drill_runs (
    uid        TEXT COLLATE "C" PRIMARY KEY,
    drill_uid  TEXT COLLATE "C" NOT NULL REFERENCES drills (uid),
    due_at     BIGINT NOT NULL,
    state      TEXT COLLATE "C" NOT NULL CHECK (state IN ('running', 'finished')),
    started_at BIGINT NOT NULL,
    ended_at   BIGINT,
    UNIQUE (drill_uid, due_at)
);
CREATE INDEX drill_runs_state ON drill_runs (state);

-- Each plan of a run and where it is: pending, skipped (with the reason), testing, undo_due
-- (its test ended; undone at undo_at), undoing, undone, undo_failed (retries used up).
CREATE TABLE drill_run_plans (
    run_uid          TEXT COLLATE "C" NOT NULL REFERENCES drill_runs (uid),
    plan_uid         TEXT COLLATE "C" NOT NULL REFERENCES plans (uid),
    position         BIGINT NOT NULL,
    vms              BIGINT NOT NULL,
    state            TEXT COLLATE "C" NOT NULL,
    reason           TEXT COLLATE "C" NOT NULL DEFAULT '',
    test_session_uid TEXT COLLATE "C",
    undo_session_uid TEXT COLLATE "C",
    undo_at          BIGINT,
    undo_attempts    BIGINT NOT NULL DEFAULT 0,
    -- The test's verdict once it ended (Passed, TargetMissed, Failed...).
    test_verdict     TEXT COLLATE "C",
    updated_at       BIGINT NOT NULL,
    PRIMARY KEY (run_uid, plan_uid)
);
CREATE INDEX drill_run_plans_test ON drill_run_plans (test_session_uid);
CREATE INDEX drill_run_plans_undo ON drill_run_plans (undo_session_uid);
