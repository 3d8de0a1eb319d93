-- Accounts, sessions, refresh tokens and the revocation denylist.
-- Times are seconds since the Unix epoch.

CREATE TABLE users (
    id                 TEXT PRIMARY KEY NOT NULL,
    username           TEXT NOT NULL,
    username_canonical TEXT NOT NULL UNIQUE,
    email              TEXT,
    password_hash      TEXT NOT NULL,
    roles              TEXT NOT NULL DEFAULT 'user',
    disabled           INTEGER NOT NULL DEFAULT 0,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);

CREATE TABLE sessions (
    id                TEXT PRIMARY KEY NOT NULL,
    user_id           TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at        INTEGER NOT NULL,
    last_used_at      INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL,
    auth_time         INTEGER NOT NULL,
    access_expires_at INTEGER NOT NULL,
    user_agent        TEXT,
    ip                TEXT,
    revoked_at        INTEGER
);
CREATE INDEX sessions_by_user ON sessions(user_id);

CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY NOT NULL,
    session_id  TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    rotated_at  INTEGER
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens(session_id);

-- Sessions whose access tokens must be refused until `until`; outlives the session row
-- (a deleted user's sessions are gone, their tokens must still fail).
CREATE TABLE revocations (
    session_id TEXT PRIMARY KEY NOT NULL,
    until      INTEGER NOT NULL,
    reason     TEXT NOT NULL
);

-- Runtime settings changed through the API (key → JSON value).
CREATE TABLE settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
