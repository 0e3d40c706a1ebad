-- Login attempts per user name and per client address in the current window, counted in the
-- database before a password is checked, so the limit holds across concurrent requests and
-- across every node. `key` is `user:` or `address:` and a SHA-256 of the name or address.
CREATE TABLE login_attempts (
    key        TEXT PRIMARY KEY,
    attempts   INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
