-- The instances serving this database, as their heartbeats say: the admin console's
-- overview shows which are up when several share a database. A row not refreshed for a
-- day is forgotten.
CREATE TABLE instances (
    id TEXT PRIMARY KEY,
    listen TEXT NOT NULL,
    version TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL
);
