//! Failed-login records of the back-off, shared by every instance on the database and kept
//! across restarts (used when no Redis is configured, or while it is unreachable).
//!
//! A record is opaque text here: the policy that encodes and judges it lives in
//! `auth::ratelimit`, and the service moves it between the two. Backends replace a record
//! only by compare-and-swap on its previous text, one statement each, so that instances
//! racing on wrong passwords for one account serialize: of two writers that read the same
//! record, one swaps and the other reads again.

use async_trait::async_trait;

use super::StorageResult;

/// Failed-login records by key.
#[async_trait]
pub trait FailureStore: Send + Sync {
    /// The record stored under `key`, if any (possibly past `expires_at`: the policy reads
    /// an old record as empty).
    async fn failure_record(&self, key: &str) -> StorageResult<Option<String>>;
    /// Stores `new` under `key`, to be dropped after `expires_at` (epoch seconds), if the
    /// stored record is still `expected` (`None`: there is none); false, and nothing
    /// changed, when another writer came first.
    async fn swap_failure_record(
        &self,
        key: &str,
        expected: Option<&str>,
        new: &str,
        expires_at: i64,
    ) -> StorageResult<bool>;
}
