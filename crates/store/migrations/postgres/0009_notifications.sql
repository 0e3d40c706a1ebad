-- Notifications (issue 19): webhooks and email channels, the outbox their events are written
-- to in the transaction of what happened, and each delivery with its attempts.

CREATE TABLE notification_channels (
    uid                    TEXT COLLATE "C" PRIMARY KEY,
    -- Whose events it gets: every plan's (the provider's channels) or one company's.
    owner_all              BOOLEAN NOT NULL,
    owner_organization_uid TEXT COLLATE "C" NOT NULL,
    kind                   TEXT COLLATE "C" NOT NULL CHECK (kind IN ('webhook', 'email')),
    -- The URL a webhook posts to, or the address an email goes to.
    target                 TEXT COLLATE "C" NOT NULL,
    -- A webhook's HMAC key (kept: every delivery is signed with it); empty for email.
    secret                 TEXT COLLATE "C" NOT NULL,
    -- A JSON array of event names; empty: every event.
    events                 TEXT COLLATE "C" NOT NULL,
    created_by             TEXT COLLATE "C" NOT NULL,
    created_at             BIGINT NOT NULL
);

-- The outbox: one row per thing that happened, written in its transaction; fanned out to the
-- channels that want it exactly once (dispatched flips in the transaction that writes the
-- deliveries).
CREATE TABLE notification_events (
    uid        TEXT COLLATE "C" PRIMARY KEY,
    name       TEXT COLLATE "C" NOT NULL,
    plan_uid   TEXT COLLATE "C",
    server_uid TEXT COLLATE "C",
    body       TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    dispatched BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX notification_events_pending ON notification_events (dispatched, created_at);

-- One event for one channel, delivered at least once: retried with backoff for up to 24 h.
CREATE TABLE notification_deliveries (
    uid             TEXT COLLATE "C" PRIMARY KEY,
    channel_uid     TEXT COLLATE "C" NOT NULL REFERENCES notification_channels (uid),
    event_uid       TEXT COLLATE "C" NOT NULL,
    event_name      TEXT COLLATE "C" NOT NULL,
    body            TEXT COLLATE "C" NOT NULL,
    state           TEXT COLLATE "C" NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_status     BIGINT,
    last_error      TEXT COLLATE "C" NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT,
    UNIQUE (channel_uid, event_uid, event_name)
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (state, next_attempt_at);
CREATE INDEX notification_deliveries_channel ON notification_deliveries (channel_uid, created_at);

-- When a server's going offline was last told, so that it is told once per outage.
ALTER TABLE agents ADD COLUMN offline_notified_at BIGINT;
