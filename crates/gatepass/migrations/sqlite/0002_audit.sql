-- Append-only, hash-chained audit trail of security events.
-- Each row stores the SHA-256 of the previous row's canonical form (`prev_hash`) and of
-- its own fields (`hash`); ids are assigned contiguously from 1 so that a removed row
-- breaks the chain. Times are seconds since the Unix epoch.

CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY NOT NULL,
    at         INTEGER NOT NULL,
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
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
