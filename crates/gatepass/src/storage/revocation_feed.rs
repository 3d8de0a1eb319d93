//! Noticing revocations written by other processes (the CLI, other instances) cheaply.
//!
//! A server polls [`RevocationFeed::revocations_version`] every second and reloads the
//! full revocation list only when the version changed.

use async_trait::async_trait;

use super::StorageResult;

/// A cheap change detector for the persisted revocations.
#[async_trait]
pub trait RevocationFeed: Send + Sync {
    /// A number that changes whenever a revocation is added or changed, by any process.
    /// Kept by database triggers, so reading it is one row whatever the number of
    /// revocations (deleting expired rows does not change it: that makes no token valid).
    async fn revocations_version(&self) -> StorageResult<i64>;
}
