-- Accounts, sessions, refresh tokens and the revocation denylist (PostgreSQL).
-- Mirrors migrations/sqlite/0001_initial.sql; times are seconds since the Unix epoch.

CREATE TABLE users (
    id                 TEXT PRIMARY KEY NOT NULL,
    username           TEXT NOT NULL,
    username_canonical TEXT NOT NULL,
    email              TEXT,
    password_hash      TEXT NOT NULL,
    roles              TEXT NOT NULL DEFAULT 'user',
    disabled           BOOLEAN NOT NULL DEFAULT FALSE,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
-- Case-insensitive uniqueness is enforced here, so concurrent registrations of one name
-- through different instances cannot both succeed.
CREATE UNIQUE INDEX users_username_canonical ON users(username_canonical);

CREATE TABLE sessions (
    id                TEXT PRIMARY KEY NOT NULL,
    user_id           TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at        BIGINT NOT NULL,
    last_used_at      BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    auth_time         BIGINT NOT NULL,
    access_expires_at BIGINT NOT NULL,
    user_agent        TEXT,
    ip                TEXT,
    revoked_at        BIGINT
);
CREATE INDEX sessions_by_user ON sessions(user_id);

CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY NOT NULL,
    session_id  TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    rotated_at  BIGINT
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens(session_id);

-- Sessions whose access tokens must be refused until `until`; outlives the session row
-- (a deleted user's sessions are gone, their tokens must still fail).
CREATE TABLE revocations (
    session_id TEXT PRIMARY KEY NOT NULL,
    until      BIGINT NOT NULL,
    reason     TEXT NOT NULL
);
CREATE INDEX revocations_by_until ON revocations(until);

-- Runtime settings changed through the API (key → JSON value).
CREATE TABLE settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

-- Change feed for running instances. Every write to `revocations` or `settings`, by any
-- writer (any instance, the CLI, manual SQL), is announced on channel `gatepass_events`
-- when its transaction commits; instances apply it to their in-memory state.
CREATE FUNCTION gatepass_notify_revocation() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('gatepass_events', json_build_object(
        'kind', 'revocation', 'sid', NEW.session_id, 'until', NEW.until, 'reason', NEW.reason)::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER revocations_notify AFTER INSERT OR UPDATE ON revocations
    FOR EACH ROW EXECUTE FUNCTION gatepass_notify_revocation();

CREATE FUNCTION gatepass_notify_settings() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('gatepass_events', json_build_object('kind', 'settings')::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER settings_notify AFTER INSERT OR UPDATE OR DELETE ON settings
    FOR EACH STATEMENT EXECUTE FUNCTION gatepass_notify_settings();
