-- OAuth 2.0 Device Authorization Grant (RFC 8628): a device asks for a code pair, the user
-- approves or denies it on /oauth/device, the device polls the token endpoint.
--
-- Both codes are stored as SHA-256 digests only (the user code normalised: upper case,
-- without the dash). status moves once from 'pending' to 'approved' or 'denied' (one
-- compare-and-swap), and once from 'approved' to 'used' when the token endpoint issues the
-- grant (issued_sid). user_id, browser_sid, auth_time and amr describe the approving
-- sign-in. interval_secs grows when the device polls too fast (slow_down).
CREATE TABLE oauth_device_codes (
    device_hash    TEXT PRIMARY KEY NOT NULL,
    user_code_hash TEXT NOT NULL UNIQUE,
    client_id      TEXT NOT NULL REFERENCES oauth_clients(client_id) ON DELETE CASCADE,
    scope          TEXT NOT NULL,
    resource       TEXT,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    interval_secs  INTEGER NOT NULL,
    last_poll_at   INTEGER,
    status         TEXT NOT NULL DEFAULT 'pending',
    user_id        TEXT REFERENCES users(id) ON DELETE CASCADE,
    browser_sid    TEXT,
    auth_time      INTEGER,
    amr            TEXT,
    decided_at     INTEGER,
    used_at        INTEGER,
    issued_sid     TEXT
);
CREATE INDEX oauth_device_codes_by_expiry ON oauth_device_codes(expires_at);
