-- Emergency revocation of signing keys, and the keyed (HMAC) audit chain (see the SQLite
-- migration of the same number).

ALTER TABLE signing_keys ADD COLUMN revoked_at BIGINT;

-- Advanced by every change to signing_keys (a sequence, like revocations_version, so that
-- concurrent writers never wait on it), and announced on the change feed so that every
-- instance reloads its keys at once.
CREATE SEQUENCE signing_keys_version;

CREATE FUNCTION gatepass_signing_keys_changed() RETURNS trigger AS $$
BEGIN
    PERFORM nextval('signing_keys_version');
    PERFORM pg_notify('gatepass_events', json_build_object('kind', 'keys')::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER signing_keys_changed AFTER INSERT OR UPDATE OR DELETE ON signing_keys
    FOR EACH STATEMENT EXECUTE FUNCTION gatepass_signing_keys_changed();

CREATE TABLE audit_chain (
    id         INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    keyed_from BIGINT,
    prev_hash  TEXT,
    sealed_at  BIGINT,
    seal       TEXT
);
INSERT INTO audit_chain (id) VALUES (1);

CREATE FUNCTION gatepass_audit_chain_sealed() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' OR OLD.seal IS NOT NULL THEN
        RAISE EXCEPTION 'audit_chain is sealed';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_chain_sealed BEFORE UPDATE OR DELETE ON audit_chain
    FOR EACH ROW EXECUTE FUNCTION gatepass_audit_chain_sealed();
