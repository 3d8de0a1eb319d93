//! Storage of signing keys and the refresh-token lookup that token revocation (RFC 7009)
//! needs. Private keys arrive here already encrypted; storage never sees them in clear.

use async_trait::async_trait;

use super::StorageResult;
use crate::domain::StoredKey;

/// Signing keys shared by every instance of a cluster.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Adds a key; [`super::StorageError::Conflict`] if its `kid` exists.
    async fn insert_signing_key(&self, key: &StoredKey) -> StorageResult<()>;
    /// Every stored key, in no particular order.
    async fn signing_keys(&self) -> StorageResult<Vec<StoredKey>>;
    /// Deletes keys by id (expired ones, during the sweep); returns rows removed.
    async fn delete_signing_keys(&self, kids: &[String]) -> StorageResult<u64>;
    /// The session (id, user id) that a live refresh token (by digest) belongs to.
    async fn session_of_refresh_token(&self, token_hash: &str, now: i64) -> StorageResult<Option<(String, String)>>;
}
