-- Asymmetric signing keys. The private key is AES-256-GCM ciphertext (base64) under a key
-- derived from GATEPASS_MASTER_KEY; the public JWK is what /.well-known/jwks.json serves.
-- Which key signs, and until when a key is published, follows from activates_at alone.
CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY NOT NULL,
    alg          TEXT NOT NULL,
    public_jwk   TEXT NOT NULL,
    private_key  TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    activates_at INTEGER NOT NULL
);
