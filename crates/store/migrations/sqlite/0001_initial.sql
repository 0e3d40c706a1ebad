-- Standby's schema on SQLite. Conventions (shared with the PostgreSQL schema):
--   * UIDs are lower-case hyphenated TEXT; instants are INTEGER ticks (100 ns since the Unix epoch).
--   * Every free-text property the query language can filter is stored with its ignorecase key
--     (_ci) and its lexicographic key (_nat), computed by the application, so SQL compares them
--     byte-wise exactly as the in-memory reference evaluator does.

CREATE TABLE organizations (
    uid  TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('provider', 'company'))
);

CREATE TABLE tenants (
    uid              TEXT PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    organization_uid TEXT NOT NULL REFERENCES organizations (uid)
);
CREATE INDEX tenants_organization ON tenants (organization_uid);

CREATE TABLE backup_servers (
    uid              TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    organization_uid TEXT NOT NULL REFERENCES organizations (uid),
    connector        TEXT NOT NULL
);
CREATE INDEX backup_servers_organization ON backup_servers (organization_uid);

CREATE TABLE plans (
    uid                       TEXT PRIMARY KEY,
    original_uid              TEXT NOT NULL,
    backup_server_uid         TEXT NOT NULL REFERENCES backup_servers (uid),
    name                      TEXT NOT NULL,
    name_ci                   TEXT NOT NULL,
    name_nat                  TEXT NOT NULL,
    type                      TEXT NOT NULL,
    status                    TEXT NOT NULL,
    tenant_uid                TEXT REFERENCES tenants (uid),
    objects_count             INTEGER NOT NULL DEFAULT 0,
    pre_failover_command      TEXT NOT NULL,
    pre_failover_command_ci   TEXT NOT NULL,
    pre_failover_command_nat  TEXT NOT NULL,
    post_failover_command     TEXT NOT NULL,
    post_failover_command_ci  TEXT NOT NULL,
    post_failover_command_nat TEXT NOT NULL,
    last_session_uid          TEXT,
    updated_at                INTEGER NOT NULL
);
CREATE INDEX plans_name ON plans (name, uid);
CREATE INDEX plans_server ON plans (backup_server_uid, name, uid);
CREATE INDEX plans_tenant ON plans (tenant_uid);
CREATE INDEX plans_status ON plans (status, name, uid);

CREATE TABLE plan_objects (
    uid                 TEXT PRIMARY KEY,
    plan_uid            TEXT NOT NULL REFERENCES plans (uid),
    backup_server_uid   TEXT NOT NULL REFERENCES backup_servers (uid),
    name                TEXT NOT NULL,
    name_ci             TEXT NOT NULL,
    name_nat            TEXT NOT NULL,
    host_name           TEXT NOT NULL,
    host_name_ci        TEXT NOT NULL,
    host_name_nat       TEXT NOT NULL,
    folder_name         TEXT NOT NULL,
    folder_name_ci      TEXT NOT NULL,
    folder_name_nat     TEXT NOT NULL,
    path                TEXT NOT NULL,
    path_ci             TEXT NOT NULL,
    path_nat            TEXT NOT NULL,
    boot_order          INTEGER NOT NULL,
    boot_delay_seconds  INTEGER NOT NULL,
    restore_session_uid TEXT
);
CREATE INDEX plan_objects_plan ON plan_objects (plan_uid, boot_order);
CREATE INDEX plan_objects_name ON plan_objects (name, uid);
CREATE INDEX plan_objects_server ON plan_objects (backup_server_uid, name, uid);

CREATE TABLE restore_points (
    uid        TEXT PRIMARY KEY,
    object_uid TEXT NOT NULL REFERENCES plan_objects (uid),
    created_at INTEGER NOT NULL
);
CREATE INDEX restore_points_object ON restore_points (object_uid, created_at);

-- One run of a plan (failover, test or undo).
CREATE TABLE sessions (
    uid             TEXT PRIMARY KEY,
    plan_uid        TEXT NOT NULL REFERENCES plans (uid),
    kind            TEXT NOT NULL CHECK (kind IN ('failover', 'test', 'undo')),
    status          TEXT NOT NULL,
    message         TEXT,
    message_ci      TEXT,
    message_nat     TEXT,
    started_by      TEXT NOT NULL,
    requested_point INTEGER,
    start_time      INTEGER NOT NULL,
    end_time        INTEGER
);
CREATE INDEX sessions_plan ON sessions (plan_uid, start_time);

CREATE TABLE session_messages (
    session_uid TEXT NOT NULL REFERENCES sessions (uid),
    seq         INTEGER NOT NULL,
    title       TEXT NOT NULL,
    description TEXT NOT NULL,
    severity    TEXT NOT NULL,
    start_time  INTEGER,
    end_time    INTEGER,
    PRIMARY KEY (session_uid, seq)
);

-- One VM's part in a session: what VSPC shows as the object's restoreSession.
CREATE TABLE vm_sessions (
    uid                TEXT PRIMARY KEY,
    session_uid        TEXT NOT NULL REFERENCES sessions (uid),
    object_uid         TEXT NOT NULL REFERENCES plan_objects (uid),
    backup_status      TEXT NOT NULL,
    restore_point_uid  TEXT,
    restore_point_time INTEGER,
    start_time         INTEGER NOT NULL,
    end_time           INTEGER
);
CREATE INDEX vm_sessions_session ON vm_sessions (session_uid);

CREATE TABLE users (
    uid              TEXT PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    organization_uid TEXT NOT NULL REFERENCES organizations (uid),
    role             TEXT NOT NULL,
    password_hash    TEXT NOT NULL,
    disabled         INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL
);

-- Opaque bearer tokens, stored only as SHA-256 hex.
CREATE TABLE tokens (
    hash       TEXT PRIMARY KEY,
    user_uid   TEXT NOT NULL REFERENCES users (uid),
    kind       TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    read_only  INTEGER NOT NULL,
    family     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX tokens_user ON tokens (user_uid);
CREATE INDEX tokens_expiry ON tokens (expires_at);

-- X-Request-id records: the first response to a request, replayed for repeats in the window.
CREATE TABLE idempotency (
    request_id    TEXT PRIMARY KEY,
    principal_uid TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    status        INTEGER,
    headers       TEXT,
    body          BLOB,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
);
CREATE INDEX idempotency_expiry ON idempotency (expires_at);
