-- Append-only, hash-chained audit trail of security events (see the SQLite migration of
-- the same number). Ids are assigned by the application, contiguously from 1.

CREATE TABLE audit_log (
    id         BIGINT PRIMARY KEY NOT NULL,
    at         BIGINT NOT NULL,
    event      TEXT NOT NULL,
    actor      TEXT,
    subject    TEXT,
    ip         TEXT,
    user_agent TEXT,
    outcome    TEXT NOT NULL,
    detail     TEXT,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE INDEX audit_log_by_at ON audit_log(at);
CREATE INDEX audit_log_by_actor ON audit_log(actor);
CREATE INDEX audit_log_by_subject ON audit_log(subject);
CREATE INDEX audit_log_by_event ON audit_log(event);

-- The application never changes or removes entries; refuse it at the database too.
CREATE FUNCTION gatepass_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION gatepass_audit_append_only();
