//! Change feed capability: how a backend tells running instances that shared state
//! (revocations, runtime settings, signing keys) changed, so each keeps its in-memory copy current
//! without a database round trip per request.
//!
//! Backends that can push (PostgreSQL `LISTEN/NOTIFY`) return a [`ChangeSubscription`];
//! the others return `None` and `crate::service::sync` polls instead. This module owns the
//! event vocabulary only, not what instances do with it.

use async_trait::async_trait;

use super::{RevokedSession, StorageResult};

/// One change announced by the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A session's tokens are now refused until `until`.
    Revoked(RevokedSession),
    /// Runtime settings changed: reload them.
    SettingsChanged,
    /// Signing keys changed (a rotation, a revocation): reload them.
    KeysChanged,
    /// The feed was interrupted (reconnect): changes may have been missed, reload everything.
    Resync,
}

/// A live subscription to a backend's change feed.
#[async_trait]
pub trait ChangeSubscription: Send {
    /// Waits for the next change. After an interruption the subscription is re-established
    /// before [`Change::Resync`] is returned, so a reload done then misses nothing. An error
    /// means the subscription is unusable; open a new one.
    async fn next(&mut self) -> StorageResult<Change>;
}

/// Storage that can announce changes made by other writers.
#[async_trait]
pub trait ChangeFeed: Send + Sync {
    /// Opens a subscription, or `None` when the backend cannot push (poll instead).
    async fn subscribe(&self) -> StorageResult<Option<Box<dyn ChangeSubscription>>> {
        Ok(None)
    }
}
