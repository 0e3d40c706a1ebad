-- Notifications (issue 19): webhooks and email channels, the outbox their events are written
-- to in the transaction of what happened, and each delivery with its attempts.

CREATE TABLE notification_channels (
    uid                    TEXT PRIMARY KEY,
    -- Whose events it gets: every plan's (the provider's channels) or one company's.
    owner_all              INTEGER NOT NULL,
    owner_organization_uid TEXT NOT NULL,
    kind                   TEXT NOT NULL CHECK (kind IN ('webhook', 'email')),
    -- The URL a webhook posts to, or the address an email goes to.
    target                 TEXT NOT NULL,
    -- A webhook's HMAC key (kept: every delivery is signed with it); empty for email.
    secret                 TEXT NOT NULL,
    -- A JSON array of event names; empty: every event.
    events                 TEXT NOT NULL,
    created_by             TEXT NOT NULL,
    created_at             INTEGER NOT NULL
);

-- The outbox: one row per thing that happened, written in its transaction; fanned out to the
-- channels that want it exactly once (dispatched flips in the transaction that writes the
-- deliveries).
CREATE TABLE notification_events (
    uid        TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    plan_uid   TEXT,
    server_uid TEXT,
    body       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    dispatched INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX notification_events_pending ON notification_events (dispatched, created_at);

-- One event for one channel, delivered at least once: retried with backoff for up to 24 h.
CREATE TABLE notification_deliveries (
    uid             TEXT PRIMARY KEY,
    channel_uid     TEXT NOT NULL REFERENCES notification_channels (uid),
    event_uid       TEXT NOT NULL,
    event_name      TEXT NOT NULL,
    body            TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_status     INTEGER,
    last_error      TEXT NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    delivered_at    INTEGER,
    UNIQUE (channel_uid, event_uid, event_name)
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (state, next_attempt_at);
CREATE INDEX notification_deliveries_channel ON notification_deliveries (channel_uid, created_at);

-- When a server's going offline was last told, so that it is told once per outage.
ALTER TABLE agents ADD COLUMN offline_notified_at INTEGER;
