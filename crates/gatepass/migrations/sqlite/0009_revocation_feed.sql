-- The revocation feed (`GET /api/revocations/stream`): every revocation gets a position
-- `seq` in one deployment-wide order, which is the event id subscribers resume from
-- (`Last-Event-ID`). A new or changed revocation takes the next value of a counter; SQLite
-- commits one writer at a time, so `seq` order is commit order and a subscriber that has
-- seen `seq = n` has seen every revocation committed before it.
--
-- `kind` tells session revocations (`session_id` is the session id) from signing-key
-- revocations (`session_id` is `key:` followed by the key id), which travel the same feed.
ALTER TABLE revocations ADD COLUMN seq INTEGER;
ALTER TABLE revocations ADD COLUMN kind TEXT NOT NULL DEFAULT 'session';

CREATE TABLE revocation_seq (
    id  INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    seq INTEGER NOT NULL
);
UPDATE revocations SET seq = rowid;
INSERT INTO revocation_seq (id, seq) VALUES (1, COALESCE((SELECT MAX(seq) FROM revocations), 0));
CREATE INDEX revocations_by_seq ON revocations(seq);

CREATE TRIGGER revocations_seq_on_insert AFTER INSERT ON revocations
BEGIN
    UPDATE revocation_seq SET seq = seq + 1 WHERE id = 1;
    UPDATE revocations SET seq = (SELECT seq FROM revocation_seq WHERE id = 1)
        WHERE session_id = NEW.session_id;
END;

-- Only changes of what a revocation says move it; the trigger's own `seq` update does not.
CREATE TRIGGER revocations_seq_on_update AFTER UPDATE OF until, reason ON revocations
BEGIN
    UPDATE revocation_seq SET seq = seq + 1 WHERE id = 1;
    UPDATE revocations SET seq = (SELECT seq FROM revocation_seq WHERE id = 1)
        WHERE session_id = NEW.session_id;
END;
