-- The provider's keys rotate: several keys per algorithm, each signing from `activates_at`
-- (published before, so that clients caching the JWKS know it first) until the next key of
-- its algorithm activates, then published until every token it signed has expired. The
-- key each algorithm has now signs from its creation, as it always did.
CREATE TABLE oauth_keys_rotating (
    kid          TEXT PRIMARY KEY NOT NULL,
    alg          TEXT NOT NULL,
    public_jwk   TEXT NOT NULL,
    private_key  TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    activates_at INTEGER NOT NULL
);
INSERT INTO oauth_keys_rotating (kid, alg, public_jwk, private_key, created_at, activates_at)
    SELECT kid, alg, public_jwk, private_key, created_at, created_at FROM oauth_keys;
DROP TABLE oauth_keys;
ALTER TABLE oauth_keys_rotating RENAME TO oauth_keys;
CREATE INDEX oauth_keys_alg ON oauth_keys (alg, activates_at);
