-- A sequence advanced by every new or changed revocation, so that a server notices
-- revocations written by other processes with a one-row read each second instead of
-- scanning the whole table. A sequence rather than a counter row: concurrent revoking
-- transactions never wait on each other for it (a rolled-back one only causes a harmless
-- extra reload). Deleting expired rows makes no token valid again, so it does not count.
CREATE SEQUENCE revocations_version;

CREATE FUNCTION gatepass_revocations_version_bump() RETURNS trigger AS $$
BEGIN
    PERFORM nextval('revocations_version');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER revocations_version_bump AFTER INSERT OR UPDATE ON revocations
    FOR EACH ROW EXECUTE FUNCTION gatepass_revocations_version_bump();
