-- The provider's keys rotate: several keys per algorithm, each signing from `activates_at`
-- (published before, so that clients caching the JWKS know it first) until the next key of
-- its algorithm activates, then published until every token it signed has expired. The
-- key each algorithm has now signs from its creation, as it always did.
ALTER TABLE oauth_keys DROP CONSTRAINT oauth_keys_pkey;
ALTER TABLE oauth_keys DROP CONSTRAINT oauth_keys_kid_key;
ALTER TABLE oauth_keys ADD PRIMARY KEY (kid);
ALTER TABLE oauth_keys ADD COLUMN activates_at BIGINT;
UPDATE oauth_keys SET activates_at = created_at;
ALTER TABLE oauth_keys ALTER COLUMN activates_at SET NOT NULL;
CREATE INDEX oauth_keys_alg ON oauth_keys (alg, activates_at);
