-- Long-lived API keys (VSPC: "permanent until the identity is disabled or deleted"), stored as
-- SHA-256 hex like tokens, used as `Authorization: Bearer <key>`.
CREATE TABLE api_keys (
    hash        TEXT PRIMARY KEY,
    user_uid    TEXT NOT NULL REFERENCES users (uid),
    description TEXT NOT NULL,
    read_only   INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX api_keys_user ON api_keys (user_uid);
