-- Standby's schema on PostgreSQL: the SQLite schema (migrations/sqlite, 0001 to 0004) in one
-- step, with PostgreSQL types. The conventions are the same: UIDs are lower-case hyphenated text,
-- instants BIGINT ticks. Every text column is COLLATE "C" so that comparisons and ORDER BY are
-- byte-wise, exactly as on SQLite (BINARY) and in the query language's reference evaluator.

CREATE TABLE organizations (
    uid  TEXT COLLATE "C" PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL UNIQUE,
    kind TEXT COLLATE "C" NOT NULL CHECK (kind IN ('provider', 'company'))
);

CREATE TABLE tenants (
    uid              TEXT COLLATE "C" PRIMARY KEY,
    name             TEXT COLLATE "C" NOT NULL UNIQUE,
    organization_uid TEXT COLLATE "C" NOT NULL REFERENCES organizations (uid)
);
CREATE INDEX tenants_organization ON tenants (organization_uid);

CREATE TABLE backup_servers (
    uid              TEXT COLLATE "C" PRIMARY KEY,
    name             TEXT COLLATE "C" NOT NULL,
    organization_uid TEXT COLLATE "C" NOT NULL REFERENCES organizations (uid),
    connector        TEXT COLLATE "C" NOT NULL
);
CREATE INDEX backup_servers_organization ON backup_servers (organization_uid);

CREATE TABLE plans (
    uid                       TEXT COLLATE "C" PRIMARY KEY,
    original_uid              TEXT COLLATE "C" NOT NULL,
    backup_server_uid         TEXT COLLATE "C" NOT NULL REFERENCES backup_servers (uid),
    name                      TEXT COLLATE "C" NOT NULL,
    name_ci                   TEXT COLLATE "C" NOT NULL,
    name_nat                  TEXT COLLATE "C" NOT NULL,
    type                      TEXT COLLATE "C" NOT NULL,
    status                    TEXT COLLATE "C" NOT NULL,
    tenant_uid                TEXT COLLATE "C" REFERENCES tenants (uid),
    objects_count             BIGINT NOT NULL DEFAULT 0,
    pre_failover_command      TEXT COLLATE "C" NOT NULL,
    pre_failover_command_ci   TEXT COLLATE "C" NOT NULL,
    pre_failover_command_nat  TEXT COLLATE "C" NOT NULL,
    post_failover_command     TEXT COLLATE "C" NOT NULL,
    post_failover_command_ci  TEXT COLLATE "C" NOT NULL,
    post_failover_command_nat TEXT COLLATE "C" NOT NULL,
    last_session_uid          TEXT COLLATE "C",
    updated_at                BIGINT NOT NULL
);
CREATE INDEX plans_name ON plans (name, uid);
CREATE INDEX plans_server ON plans (backup_server_uid, name, uid);
CREATE INDEX plans_tenant ON plans (tenant_uid);
CREATE INDEX plans_status ON plans (status, name, uid);

CREATE TABLE plan_objects (
    uid                 TEXT COLLATE "C" PRIMARY KEY,
    plan_uid            TEXT COLLATE "C" NOT NULL REFERENCES plans (uid),
    backup_server_uid   TEXT COLLATE "C" NOT NULL REFERENCES backup_servers (uid),
    name                TEXT COLLATE "C" NOT NULL,
    name_ci             TEXT COLLATE "C" NOT NULL,
    name_nat            TEXT COLLATE "C" NOT NULL,
    host_name           TEXT COLLATE "C" NOT NULL,
    host_name_ci        TEXT COLLATE "C" NOT NULL,
    host_name_nat       TEXT COLLATE "C" NOT NULL,
    folder_name         TEXT COLLATE "C" NOT NULL,
    folder_name_ci      TEXT COLLATE "C" NOT NULL,
    folder_name_nat     TEXT COLLATE "C" NOT NULL,
    path                TEXT COLLATE "C" NOT NULL,
    path_ci             TEXT COLLATE "C" NOT NULL,
    path_nat            TEXT COLLATE "C" NOT NULL,
    boot_order          BIGINT NOT NULL,
    boot_delay_seconds  BIGINT NOT NULL,
    restore_session_uid TEXT COLLATE "C"
);
CREATE INDEX plan_objects_plan ON plan_objects (plan_uid, boot_order);
CREATE INDEX plan_objects_name ON plan_objects (name, uid);
CREATE INDEX plan_objects_server ON plan_objects (backup_server_uid, name, uid);

CREATE TABLE restore_points (
    uid        TEXT COLLATE "C" PRIMARY KEY,
    object_uid TEXT COLLATE "C" NOT NULL REFERENCES plan_objects (uid),
    created_at BIGINT NOT NULL
);
CREATE INDEX restore_points_object ON restore_points (object_uid, created_at);

-- One run of a plan (failover, test or undo).
CREATE TABLE sessions (
    uid             TEXT COLLATE "C" PRIMARY KEY,
    plan_uid        TEXT COLLATE "C" NOT NULL REFERENCES plans (uid),
    kind            TEXT COLLATE "C" NOT NULL CHECK (kind IN ('failover', 'test', 'undo')),
    status          TEXT COLLATE "C" NOT NULL,
    message         TEXT COLLATE "C",
    message_ci      TEXT COLLATE "C",
    message_nat     TEXT COLLATE "C",
    started_by      TEXT COLLATE "C" NOT NULL,
    requested_point BIGINT,
    start_time      BIGINT NOT NULL,
    end_time        BIGINT
);
CREATE INDEX sessions_plan ON sessions (plan_uid, start_time);

CREATE TABLE session_messages (
    session_uid TEXT COLLATE "C" NOT NULL REFERENCES sessions (uid),
    seq         BIGINT NOT NULL,
    title       TEXT COLLATE "C" NOT NULL,
    description TEXT COLLATE "C" NOT NULL,
    severity    TEXT COLLATE "C" NOT NULL,
    start_time  BIGINT,
    end_time    BIGINT,
    PRIMARY KEY (session_uid, seq)
);

-- One VM's part in a session: what VSPC shows as the object's restoreSession.
CREATE TABLE vm_sessions (
    uid                TEXT COLLATE "C" PRIMARY KEY,
    session_uid        TEXT COLLATE "C" NOT NULL REFERENCES sessions (uid),
    object_uid         TEXT COLLATE "C" NOT NULL REFERENCES plan_objects (uid),
    backup_status      TEXT COLLATE "C" NOT NULL,
    restore_point_uid  TEXT COLLATE "C",
    restore_point_time BIGINT,
    start_time         BIGINT NOT NULL,
    end_time           BIGINT
);
CREATE INDEX vm_sessions_session ON vm_sessions (session_uid);

CREATE TABLE users (
    uid              TEXT COLLATE "C" PRIMARY KEY,
    name             TEXT COLLATE "C" NOT NULL UNIQUE,
    organization_uid TEXT COLLATE "C" NOT NULL REFERENCES organizations (uid),
    role             TEXT COLLATE "C" NOT NULL,
    password_hash    TEXT COLLATE "C" NOT NULL,
    disabled         BOOLEAN NOT NULL DEFAULT FALSE,
    created_at       BIGINT NOT NULL
);

-- Opaque bearer tokens, stored only as SHA-256 hex.
CREATE TABLE tokens (
    hash       TEXT COLLATE "C" PRIMARY KEY,
    user_uid   TEXT COLLATE "C" NOT NULL REFERENCES users (uid),
    kind       TEXT COLLATE "C" NOT NULL CHECK (kind IN ('access', 'refresh')),
    read_only  BOOLEAN NOT NULL,
    family     TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked    BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX tokens_user ON tokens (user_uid);
CREATE INDEX tokens_expiry ON tokens (expires_at);

-- X-Request-id records: the first response to a request, replayed for repeats in the window.
CREATE TABLE idempotency (
    request_id    TEXT COLLATE "C" PRIMARY KEY,
    principal_uid TEXT COLLATE "C" NOT NULL,
    fingerprint   TEXT COLLATE "C" NOT NULL,
    status        BIGINT,
    headers       TEXT COLLATE "C",
    body          BYTEA,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX idempotency_expiry ON idempotency (expires_at);

-- The orchestration engine: sessions that run, the durable job queue that runs them, VSPC async
-- actions that track them, and the simulated hypervisor's state (kept in the store so that every
-- node sees the same fleet and tests can count executions per operation).

-- queued: accepted, not yet claimed; running: a worker holds its job; finished: ended.
ALTER TABLE sessions ADD COLUMN phase TEXT COLLATE "C" NOT NULL DEFAULT 'finished';
ALTER TABLE sessions ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE sessions ADD COLUMN action_uid TEXT COLLATE "C";

CREATE TABLE jobs (
    uid         TEXT COLLATE "C" PRIMARY KEY,
    kind        TEXT COLLATE "C" NOT NULL,
    session_uid TEXT COLLATE "C" NOT NULL REFERENCES sessions (uid),
    state       TEXT COLLATE "C" NOT NULL CHECK (state IN ('ready', 'running', 'done')),
    attempts    BIGINT NOT NULL DEFAULT 0,
    run_at      BIGINT NOT NULL,
    locked_by   TEXT COLLATE "C",
    lease_until BIGINT,
    last_error  TEXT COLLATE "C",
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX jobs_claim ON jobs (state, run_at);
CREATE INDEX jobs_lease ON jobs (state, lease_until);

-- VSPC's AsyncActionInfo, plus the result a client reads from /asyncActions/{id}/result.
CREATE TABLE async_actions (
    uid              TEXT COLLATE "C" PRIMARY KEY,
    initiator_uid    TEXT COLLATE "C" NOT NULL,
    action_name      TEXT COLLATE "C" NOT NULL,
    status           TEXT COLLATE "C" NOT NULL CHECK (status IN ('running', 'succeed', 'canceled', 'failed')),
    request_body     TEXT COLLATE "C",
    query_parameters TEXT COLLATE "C",
    session_uid      TEXT COLLATE "C" REFERENCES sessions (uid),
    result           TEXT COLLATE "C",
    created_at       BIGINT NOT NULL,
    finished_at      BIGINT,
    expires_at       BIGINT
);
CREATE INDEX async_actions_initiator ON async_actions (initiator_uid, created_at);

-- Which replicas the simulated hypervisor has failed over (or booted for a test).
CREATE TABLE sim_replicas (
    object_uid        TEXT COLLATE "C" PRIMARY KEY REFERENCES plan_objects (uid),
    state             TEXT COLLATE "C" NOT NULL CHECK (state IN ('failover', 'test')),
    restore_point_uid TEXT COLLATE "C",
    updated_at        BIGINT NOT NULL
);

-- One row per connector operation id: proof that nothing ran twice.
CREATE TABLE sim_operations (
    operation_id TEXT COLLATE "C" PRIMARY KEY,
    object_uid   TEXT COLLATE "C",
    kind         TEXT COLLATE "C" NOT NULL,
    executions   BIGINT NOT NULL,
    outcome      TEXT COLLATE "C",
    message      TEXT COLLATE "C",
    started_at   BIGINT NOT NULL,
    finished_at  BIGINT
);

-- Faults to inject, by target (a VM's or a server's UID): boot-fails, slow, script-fails, offline.
CREATE TABLE sim_faults (
    target_uid TEXT COLLATE "C" NOT NULL,
    fault      TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (target_uid, fault)
);

-- Long-lived API keys (VSPC: "permanent until the identity is disabled or deleted"), stored as
-- SHA-256 hex like tokens, used as `Authorization: Bearer <key>`.
CREATE TABLE api_keys (
    hash        TEXT COLLATE "C" PRIMARY KEY,
    user_uid    TEXT COLLATE "C" NOT NULL REFERENCES users (uid),
    description TEXT COLLATE "C" NOT NULL,
    read_only   BOOLEAN NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked     BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX api_keys_user ON api_keys (user_uid);

-- Who did what, from where, when, and how it went: every write through the API, every login
-- (success and failure), and every user change made on the command line.
CREATE TABLE audit (
    uid        TEXT COLLATE "C" PRIMARY KEY,
    at         BIGINT NOT NULL,
    actor_uid  TEXT COLLATE "C",
    actor_name TEXT COLLATE "C" NOT NULL,
    address    TEXT COLLATE "C" NOT NULL,
    action     TEXT COLLATE "C" NOT NULL,
    target     TEXT COLLATE "C",
    outcome    TEXT COLLATE "C" NOT NULL CHECK (outcome IN ('success', 'refused', 'failed')),
    detail     TEXT COLLATE "C" NOT NULL
);
CREATE INDEX audit_at ON audit (at);
