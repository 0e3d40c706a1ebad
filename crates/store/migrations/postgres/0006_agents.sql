-- The Standby agent: a backup server whose host runs `standby agent` and connects out to us.
-- Only hashes of the enrollment token and of the agent's credential are kept (SHA-256 hex).
CREATE TABLE agents (
    server_uid            TEXT COLLATE "C" PRIMARY KEY REFERENCES backup_servers (uid),
    -- Set while an enrollment token is outstanding; cleared when it is used.
    enrollment_hash       TEXT COLLATE "C" UNIQUE,
    enrollment_expires_at BIGINT,
    credential_hash       TEXT COLLATE "C" UNIQUE,
    enrolled_at           BIGINT,
    host_name             TEXT COLLATE "C" NOT NULL DEFAULT '',
    agent_version         TEXT COLLATE "C" NOT NULL DEFAULT '',
    last_seen             BIGINT,
    created_at            BIGINT NOT NULL
);

-- The agent connector's durable commands: one row per operation id and server, queued by the
-- engine, delivered to the agent (at least once), finished by the agent's report.
CREATE TABLE agent_commands (
    server_uid   TEXT COLLATE "C" NOT NULL REFERENCES backup_servers (uid),
    operation_id TEXT COLLATE "C" NOT NULL,
    body         TEXT COLLATE "C" NOT NULL,
    queued_at    BIGINT NOT NULL,
    delivered_at BIGINT,
    deliveries   BIGINT NOT NULL DEFAULT 0,
    outcome      TEXT COLLATE "C" CHECK (outcome IN ('running', 'succeeded', 'failed', 'cancelled')),
    detail       TEXT COLLATE "C" NOT NULL DEFAULT '',
    reported_at  BIGINT,
    PRIMARY KEY (server_uid, operation_id)
);
CREATE INDEX agent_commands_queue ON agent_commands (server_uid, queued_at);

-- Each VM replica's state as its agent last reported it; `version` is the agent's own counter,
-- so a late report never overwrites a newer one.
CREATE TABLE agent_replicas (
    server_uid TEXT COLLATE "C" NOT NULL REFERENCES backup_servers (uid),
    vm_uid     TEXT COLLATE "C" NOT NULL,
    state      TEXT COLLATE "C" NOT NULL CHECK (state IN ('off', 'failover', 'test')),
    version    BIGINT NOT NULL,
    PRIMARY KEY (server_uid, vm_uid)
);
