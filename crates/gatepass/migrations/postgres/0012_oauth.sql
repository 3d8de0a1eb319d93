-- gatepass as an OAuth 2.1 / OpenID Connect provider: registered clients, authorization
-- codes, remembered consent, the key that signs ID tokens, and the client a session
-- (an OAuth grant) belongs to.

-- Registered clients. The secret is stored as a SHA-256 digest of a 256-bit random value
-- (NULL for public clients). Lists are space-separated; redirect_uris is a JSON array.
-- version increases with every change, so that concurrent updates cannot lose one.
CREATE TABLE oauth_clients (
    client_id     TEXT PRIMARY KEY NOT NULL,
    secret_hash   TEXT,
    name          TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    grant_types   TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    first_party   BOOLEAN NOT NULL DEFAULT FALSE,
    resource      TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    version       BIGINT NOT NULL DEFAULT 1
);

-- Authorization codes, stored as SHA-256 digests; single use (used_at is set by one
-- compare-and-swap), bound to the client, the redirect URI, the PKCE challenge, the
-- nonce and the browser session that approved them. issued_sid is the grant the code was
-- exchanged for: replaying the code revokes it.
CREATE TABLE oauth_codes (
    code_hash      TEXT PRIMARY KEY NOT NULL,
    client_id      TEXT NOT NULL REFERENCES oauth_clients(client_id) ON DELETE CASCADE,
    user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    browser_sid    TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    scope          TEXT NOT NULL,
    nonce          TEXT,
    auth_time      BIGINT NOT NULL,
    amr            TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT,
    issued_sid     TEXT
);
CREATE INDEX oauth_codes_by_expiry ON oauth_codes(expires_at);

-- Consent a user gave a client for a set of scopes (sorted, space-separated).
CREATE TABLE oauth_consents (
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES oauth_clients(client_id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id, scope)
);

-- The RS256 key that signs ID tokens and client access tokens, sealed with the master key
-- like signing_keys. One row: every instance signs with the same key.
CREATE TABLE oauth_id_key (
    id          BIGINT PRIMARY KEY NOT NULL CHECK (id = 1),
    kid         TEXT NOT NULL,
    alg         TEXT NOT NULL,
    public_jwk  TEXT NOT NULL,
    private_key TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- A session started by a client's code exchange is an OAuth grant: the client and the
-- scopes it was granted. NULL for gatepass's own sign-ins.
ALTER TABLE sessions ADD COLUMN client_id TEXT;
ALTER TABLE sessions ADD COLUMN scope TEXT;
CREATE INDEX sessions_by_client ON sessions(client_id);
