-- Second factors: TOTP (one per account), recovery codes, the challenges of the second
-- login step, and the authentication methods a session was started with.

-- The TOTP factor. The secret is sealed with the master key (AES-256-GCM, like private
-- signing keys). Pending until the owner proved it with a code; last_step is the highest
-- time step accepted, so a code is never accepted twice.
CREATE TABLE mfa_totp (
    user_id      TEXT PRIMARY KEY NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    secret       TEXT NOT NULL,
    active       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at   BIGINT NOT NULL,
    confirmed_at BIGINT,
    last_step    BIGINT
);

-- Single-use recovery codes, stored as SHA-256 digests of high-entropy codes.
CREATE TABLE mfa_recovery_codes (
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at    BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

-- Challenges handed out after a correct password, stored as SHA-256 digests; bound to
-- the account and to a digest of the first step's client.
CREATE TABLE mfa_challenges (
    challenge_hash TEXT PRIMARY KEY NOT NULL,
    user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_hash    TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT
);
CREATE INDEX mfa_challenges_expiry ON mfa_challenges(expires_at);

-- RFC 8176 methods the session was authenticated with (space-separated), so a refresh
-- keeps them; NULL for sessions from before second factors (read as "pwd").
ALTER TABLE sessions ADD COLUMN amr TEXT;
