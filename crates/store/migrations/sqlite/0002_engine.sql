-- The orchestration engine: sessions that run, the durable job queue that runs them, VSPC async
-- actions that track them, and the simulated hypervisor's state (kept in the store so that every
-- node sees the same fleet and tests can count executions per operation).

-- queued: accepted, not yet claimed; running: a worker holds its job; finished: ended.
ALTER TABLE sessions ADD COLUMN phase TEXT NOT NULL DEFAULT 'finished';
ALTER TABLE sessions ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN action_uid TEXT;

CREATE TABLE jobs (
    uid         TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    session_uid TEXT NOT NULL REFERENCES sessions (uid),
    state       TEXT NOT NULL CHECK (state IN ('ready', 'running', 'done')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    run_at      INTEGER NOT NULL,
    locked_by   TEXT,
    lease_until INTEGER,
    last_error  TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX jobs_claim ON jobs (state, run_at);
CREATE INDEX jobs_lease ON jobs (state, lease_until);

-- VSPC's AsyncActionInfo, plus the result a client reads from /asyncActions/{id}/result.
CREATE TABLE async_actions (
    uid              TEXT PRIMARY KEY,
    initiator_uid    TEXT NOT NULL,
    action_name      TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('running', 'succeed', 'canceled', 'failed')),
    request_body     TEXT,
    query_parameters TEXT,
    session_uid      TEXT REFERENCES sessions (uid),
    result           TEXT,
    created_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    expires_at       INTEGER
);
CREATE INDEX async_actions_initiator ON async_actions (initiator_uid, created_at);

-- Which replicas the simulated hypervisor has failed over (or booted for a test).
CREATE TABLE sim_replicas (
    object_uid        TEXT PRIMARY KEY REFERENCES plan_objects (uid),
    state             TEXT NOT NULL CHECK (state IN ('failover', 'test')),
    restore_point_uid TEXT,
    updated_at        INTEGER NOT NULL
);

-- One row per connector operation id: proof that nothing ran twice.
CREATE TABLE sim_operations (
    operation_id TEXT PRIMARY KEY,
    object_uid   TEXT,
    kind         TEXT NOT NULL,
    executions   INTEGER NOT NULL,
    outcome      TEXT,
    message      TEXT,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER
);

-- Faults to inject, by target (a VM's or a server's UID): boot-fails, slow, script-fails, offline.
CREATE TABLE sim_faults (
    target_uid TEXT NOT NULL,
    fault      TEXT NOT NULL,
    PRIMARY KEY (target_uid, fault)
);
