-- Emergency revocation of signing keys, and the keyed (HMAC) audit chain.

-- A revoked key is neither published nor trusted nor used to sign, whatever its dates say.
ALTER TABLE signing_keys ADD COLUMN revoked_at INTEGER;

-- A counter bumped by every change to signing_keys, so that a server notices a revocation
-- or rotation made by another process (the CLI, another instance) with a one-row read each
-- second.
CREATE TABLE signing_keys_version (
    id      INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO signing_keys_version (id, version) VALUES (1, 0);

CREATE TRIGGER signing_keys_version_on_insert AFTER INSERT ON signing_keys
BEGIN
    UPDATE signing_keys_version SET version = version + 1 WHERE id = 1;
END;
CREATE TRIGGER signing_keys_version_on_update AFTER UPDATE ON signing_keys
BEGIN
    UPDATE signing_keys_version SET version = version + 1 WHERE id = 1;
END;
CREATE TRIGGER signing_keys_version_on_delete AFTER DELETE ON signing_keys
BEGIN
    UPDATE signing_keys_version SET version = version + 1 WHERE id = 1;
END;

-- Where the keyed audit chain begins. Entries from then on are linked with an HMAC under a
-- key derived from GATEPASS_MASTER_KEY; earlier ones keep their plain SHA-256 links. The
-- row is created unsealed because the seal needs that key, which is never in the database:
-- the first gatepass process that opens the database seals it at the entry after the last
-- one present, covering that entry's link, so neither the start nor anything before it can
-- be changed afterwards without the key.
CREATE TABLE audit_chain (
    id         INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    keyed_from INTEGER,
    prev_hash  TEXT,
    sealed_at  INTEGER,
    seal       TEXT
);
INSERT INTO audit_chain (id) VALUES (1);

CREATE TRIGGER audit_chain_sealed BEFORE UPDATE ON audit_chain WHEN OLD.seal IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'audit_chain is sealed');
END;
CREATE TRIGGER audit_chain_no_delete BEFORE DELETE ON audit_chain
BEGIN
    SELECT RAISE(ABORT, 'audit_chain is sealed');
END;
