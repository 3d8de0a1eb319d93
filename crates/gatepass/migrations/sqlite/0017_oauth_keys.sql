-- The provider signs with one key per algorithm: RS256 for ID tokens (OpenID Connect's
-- default, which every client library verifies) and ES256 for client access tokens (about
-- forty times cheaper to sign than RSA-3072). The RS256 key of oauth_id_key moves here
-- unchanged, so ID tokens already issued keep verifying.
CREATE TABLE oauth_keys (
    alg         TEXT PRIMARY KEY NOT NULL,
    kid         TEXT NOT NULL UNIQUE,
    public_jwk  TEXT NOT NULL,
    private_key TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
INSERT INTO oauth_keys (alg, kid, public_jwk, private_key, created_at)
    SELECT alg, kid, public_jwk, private_key, created_at FROM oauth_id_key;
DROP TABLE oauth_id_key;
