-- The revocation feed (`GET /api/revocations/stream`): every revocation gets a position
-- `seq` in one deployment-wide order, which is the event id subscribers resume from
-- (`Last-Event-ID`), on any instance.
--
-- `seq` must follow commit order: a subscriber that has seen `seq = n` must have been able
-- to see every revocation that will ever get a smaller number. A plain sequence default
-- would not do (a transaction that drew 5 may commit after one that drew 6). So `seq` is
-- assigned by a deferred constraint trigger, which runs at commit time, after all of the
-- transaction's other work, under a transaction-scoped advisory lock: revoking commits
-- take their numbers one at a time, in the order they commit. Taking the lock last means it
-- never waits on anything a lock holder could be waiting for (no deadlock). Revoking
-- commits are already serialised by `NOTIFY` (PostgreSQL orders notifying commits), so this
-- adds little.
--
-- `kind` tells session revocations (`session_id` is the session id) from signing-key
-- revocations (`session_id` is `key:` followed by the key id), which travel the same feed.
ALTER TABLE revocations ADD COLUMN seq BIGINT;
ALTER TABLE revocations ADD COLUMN kind TEXT NOT NULL DEFAULT 'session';

CREATE SEQUENCE revocation_seq;
UPDATE revocations SET seq = nextval('revocation_seq');
CREATE INDEX revocations_by_seq ON revocations(seq);

CREATE FUNCTION gatepass_revocation_seq() RETURNS trigger AS $$
BEGIN
    -- 0x67617465 is "gate": the one advisory lock gatepass takes.
    PERFORM pg_advisory_xact_lock(1734440037);
    UPDATE revocations SET seq = nextval('revocation_seq') WHERE session_id = NEW.session_id;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

-- `UPDATE OF until, reason`: the trigger's own `seq` update does not fire it again.
CREATE CONSTRAINT TRIGGER revocations_seq AFTER INSERT OR UPDATE OF until, reason ON revocations
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION gatepass_revocation_seq();
