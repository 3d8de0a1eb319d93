-- A counter bumped by every new or changed revocation, so that a server notices
-- revocations written by other processes (the CLI) with a one-row read each second instead
-- of scanning the whole table. Deleting rows (the sweep removes expired ones) makes no token
-- valid again, so it does not count.
CREATE TABLE revocations_version (
    id      INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO revocations_version (id, version) VALUES (1, 0);

CREATE TRIGGER revocations_version_on_insert AFTER INSERT ON revocations
BEGIN
    UPDATE revocations_version SET version = version + 1 WHERE id = 1;
END;

CREATE TRIGGER revocations_version_on_update AFTER UPDATE ON revocations
BEGIN
    UPDATE revocations_version SET version = version + 1 WHERE id = 1;
END;
