//! A signing key as persisted: plain data shared by `auth::keys` (which generates and
//! opens keys) and storage (which keeps them), so that neither depends on the other.

/// A signing key as the storage backend keeps it: the private key only encrypted.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// Key id (`kid`).
    pub kid: String,
    /// JOSE algorithm name.
    pub alg: String,
    /// The public JWK (JSON text) as published.
    pub public_jwk: String,
    /// base64(nonce ‖ AES-256-GCM ciphertext ‖ tag) of the PKCS#8 private key.
    pub private_key: String,
    /// When it was generated.
    pub created_at: i64,
    /// From when it signs (before that it is only published).
    pub activates_at: i64,
    /// When it was revoked: from then on it neither signs nor verifies nor is published.
    pub revoked_at: Option<i64>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("created_at", &self.created_at)
            .field("activates_at", &self.activates_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}
