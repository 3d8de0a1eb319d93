-- Failed-login records of the back-off (docs/abuse.md), shared by every instance on this
-- database and kept across restarts. `record` is opaque here (the policy encodes it); it
-- is only ever replaced by a compare-and-swap on its previous value. Rows are dropped by
-- the sweep once `expires_at` (epoch seconds) has passed; until then an old row reads as
-- empty anyway.
CREATE TABLE login_failures (
    key        TEXT PRIMARY KEY NOT NULL,
    record     TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX login_failures_expires_at ON login_failures (expires_at);
