//! Noticing revocations written by other processes (the CLI, other instances) cheaply, and
//! reading them in feed order for the revocation feed (`GET /api/revocations/stream`).
//!
//! A server polls [`RevocationFeed::revocations_version`] every second and reloads the
//! full revocation list only when the version changed. Every revocation also has a
//! position `seq` in one deployment-wide order that follows commit order (migration 0009
//! explains how each backend guarantees that), so "everything after `seq = n`" is exactly
//! what a subscriber that has seen `n` is missing, whichever instance it asks.

use async_trait::async_trait;

use super::{RevokedSession, StorageResult};

/// One entry of the revocation log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntry {
    /// Position in the deployment-wide order (the feed's event id).
    pub seq: i64,
    /// What was revoked.
    pub item: FeedItem,
}

/// What a log entry revokes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedItem {
    /// A session: its tokens are refused until `until`.
    Session(RevokedSession),
    /// A signing key: tokens naming `kid` are refused (until `until`, when every token it
    /// signed has expired).
    Key {
        /// The key id.
        kid: String,
        /// No token signed by the key outlives this time.
        until: i64,
    },
}

/// A cheap change detector for the persisted revocations, and the revocation log in order.
#[async_trait]
pub trait RevocationFeed: Send + Sync {
    /// A number that changes whenever a revocation is added or changed, by any process.
    /// Kept by database triggers, so reading it is one row whatever the number of
    /// revocations (deleting expired rows does not change it: that makes no token valid).
    async fn revocations_version(&self) -> StorageResult<i64>;

    /// Up to `limit` revocations (sessions and keys) with `seq > after` whose tokens may
    /// still be unexpired at `now`, in `seq` order.
    async fn revocation_log(&self, after: i64, now: i64, limit: i64) -> StorageResult<Vec<FeedEntry>>;

    /// The largest committed `seq` still stored (0 when none): a position no subscriber's
    /// cursor can rightly be beyond.
    async fn revocation_log_head(&self) -> StorageResult<i64>;

    /// Persists the revocation of signing key `kid` until `until`, announced to every
    /// instance and subscriber like a session revocation.
    async fn record_key_revocation(&self, kid: &str, until: i64) -> StorageResult<()>;
}
