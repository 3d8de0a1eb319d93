-- Passkeys (WebAuthn credentials) and the state of WebAuthn ceremonies between their start
-- and their finish.

-- A passkey of an account. credential is webauthn-rs's serialised Passkey (public key,
-- algorithm, flags); credential_id (base64url) is unique across all accounts, since an
-- authenticator names its credential and a sign-in without a username looks it up by that
-- name. sign_count is the authenticator's signature counter as last accepted: a counter
-- that goes back while non-zero means a cloned authenticator.
CREATE TABLE passkeys (
    id              TEXT PRIMARY KEY NOT NULL,
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    credential_id   TEXT NOT NULL UNIQUE,
    credential      TEXT NOT NULL,
    sign_count      BIGINT NOT NULL DEFAULT 0,
    backup_eligible BOOLEAN NOT NULL DEFAULT FALSE,
    backup_state    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      BIGINT NOT NULL,
    last_used_at    BIGINT,
    UNIQUE (user_id, name)
);
CREATE INDEX passkeys_user ON passkeys(user_id);

-- A ceremony between its start and its finish, so that any instance can finish it. The
-- id is the SHA-256 digest of the handle given to the client; taking the row (DELETE …
-- RETURNING) is what makes it single-use. A registration is bound to its account, a
-- sign-in to the digest of its client (address and user agent).
CREATE TABLE passkey_ceremonies (
    id          TEXT PRIMARY KEY NOT NULL,
    kind        TEXT NOT NULL,
    user_id     TEXT REFERENCES users(id) ON DELETE CASCADE,
    client_hash TEXT NOT NULL,
    state       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX passkey_ceremonies_expiry ON passkey_ceremonies(expires_at);
