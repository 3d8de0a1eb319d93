//! Storage of signing keys (with their emergency revocation) and the refresh-token lookup
//! that token revocation (RFC 7009) needs. Private keys arrive here already encrypted;
//! storage never sees them in clear.

use async_trait::async_trait;

use super::StorageResult;
use crate::domain::StoredKey;

/// What a key revocation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRevocation {
    /// The key is now revoked (and the replacement, if any, stored with it).
    Revoked,
    /// It already was, since `at`; nothing changed.
    AlreadyRevoked {
        /// When it was revoked.
        at: i64,
    },
    /// No key has that id; nothing changed.
    Unknown,
}

/// Signing keys shared by every instance of a cluster.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Adds a key; [`super::StorageError::Conflict`] if its `kid` exists.
    async fn insert_signing_key(&self, key: &StoredKey) -> StorageResult<()>;
    /// Every stored key, in no particular order.
    async fn signing_keys(&self) -> StorageResult<Vec<StoredKey>>;
    /// Marks `kid` revoked at `now` and, in the same transaction, adds `replacement` (the
    /// key that signs from now on, when `kid` was the one signing), so that no reader ever
    /// sees the revocation without the replacement. The same transaction logs it for the
    /// revocation feed until `announce_until` (the last moment a token of the key could
    /// still verify), so a verifier following the feed learns of it exactly when it
    /// happens. Nothing changes unless `kid` exists and is not revoked yet.
    async fn revoke_signing_key(
        &self,
        kid: &str,
        now: i64,
        replacement: Option<&StoredKey>,
        announce_until: i64,
    ) -> StorageResult<KeyRevocation>;
    /// A number that changes whenever a key is added, revoked or deleted, by any process
    /// (kept by database triggers; one row to read).
    async fn signing_keys_version(&self) -> StorageResult<i64>;
    /// Deletes keys by id (expired ones, during the sweep); returns rows removed.
    async fn delete_signing_keys(&self, kids: &[String]) -> StorageResult<u64>;
    /// The session (id, user id) that a live refresh token (by digest) belongs to.
    async fn session_of_refresh_token(&self, token_hash: &str, now: i64) -> StorageResult<Option<(String, String)>>;
}
