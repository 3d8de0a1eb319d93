-- E-mail (PostgreSQL): verified addresses that are unique among accounts (case-insensitive), the
-- one-time tokens of the e-mail flows, and the durable outbox.

ALTER TABLE users ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT FALSE;
-- The address lower-cased, ASCII only (COLLATE "C", as SQLite does), for uniqueness
-- and sign-in by address.
ALTER TABLE users ADD COLUMN email_canonical TEXT;

-- Until now an address could be on several accounts. The account that has had it longest
-- keeps it; the address is removed from the others (an administrator sets a new one).
-- docs/email.md says so.
UPDATE users SET email = NULL
 WHERE email IS NOT NULL AND EXISTS (
   SELECT 1 FROM users o
    WHERE o.email IS NOT NULL AND lower(o.email COLLATE "C") = lower(users.email COLLATE "C")
      AND (o.created_at < users.created_at OR (o.created_at = users.created_at AND o.id < users.id)));
UPDATE users SET email_canonical = lower(email COLLATE "C") WHERE email IS NOT NULL;
CREATE UNIQUE INDEX users_email_canonical ON users(email_canonical);

-- Single-use tokens mailed as links; stored as SHA-256 digests only.
CREATE TABLE one_time_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    purpose    TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- The address a verification or address-change token confirms.
    email      TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX one_time_tokens_by_user ON one_time_tokens(user_id, purpose);

-- Mails waiting to be delivered, written in the transaction of the action that causes
-- them. A row is deleted once the SMTP server accepted the mail; a mail that failed for
-- good keeps its row (bodies cleared) for the operator.
CREATE TABLE outbox (
    id              TEXT PRIMARY KEY NOT NULL,
    kind            TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    text_body       TEXT NOT NULL,
    html_body       TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    -- Which sender holds the mail, and until when (another instance takes it over after).
    lease_id        TEXT,
    lease_until     BIGINT,
    failed_at       BIGINT,
    last_error      TEXT
);
CREATE INDEX outbox_due ON outbox(next_attempt_at);
