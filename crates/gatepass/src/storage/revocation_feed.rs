//! Noticing revocations written by other processes (the CLI, other instances) cheaply.
//!
//! A server polls [`RevocationFeed::revocations_fingerprint`] every second and reloads the
//! full revocation list only when the fingerprint changed.

use async_trait::async_trait;

use super::StorageResult;

/// A cheap change detector for the persisted revocations.
#[async_trait]
pub trait RevocationFeed: Send + Sync {
    /// `(count, sum of until)` over all revocation rows. Adding a revocation (whose
    /// `until` lies in the future) always changes it, even when expired rows were purged
    /// in the meantime, because purged rows have `until` in the past.
    async fn revocations_fingerprint(&self) -> StorageResult<(i64, i64)>;
}
