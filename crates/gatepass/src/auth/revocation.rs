//! The in-memory set of revoked sessions that every protected request consults.
//!
//! Checking a token costs one hash-map lookup under a read lock, never a database round
//! trip. The set is loaded from storage at start-up (revocations are persisted when they
//! happen), and entries are swept once every access token of that session has expired,
//! so memory is bounded by revoked-but-still-unexpired sessions.
//!
//! Scale-out: each instance keeps its own copy. On PostgreSQL a revocation written through
//! one instance is published (`NOTIFY` with the session id) and every instance inserts it
//! on receipt; after a reconnect an instance reloads the whole set from storage, because
//! messages sent while it was away are lost. On SQLite a once-a-second check of the
//! revocations' version reloads the set when it changed (see `service::sync`). Redis
//! carries rate limits only, never revocations.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::domain::Revocation;

/// Revoked session ids with the time after which no token of theirs can still be valid.
#[derive(Debug, Default)]
pub struct RevocationSet {
    inner: RwLock<HashMap<String, (i64, Revocation)>>,
}

impl RevocationSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that tokens of `sid` are refused until `until` (epoch seconds).
    pub fn insert(&self, sid: String, until: i64, why: Revocation) {
        let mut map = self.inner.write().unwrap_or_else(|p| p.into_inner());
        map.insert(sid, (until, why));
    }

    /// Whether (and why) tokens of `sid` are refused.
    pub fn check(&self, sid: &str) -> Option<Revocation> {
        let map = self.inner.read().unwrap_or_else(|p| p.into_inner());
        map.get(sid).map(|(_, why)| *why)
    }

    /// Drops entries whose tokens have all expired by `now`; returns how many were dropped.
    pub fn sweep(&self, now: i64) -> usize {
        let mut map = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let before = map.len();
        map.retain(|_, (until, _)| *until > now);
        before - map.len()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_check_sweep() {
        let set = RevocationSet::new();
        set.insert("a".into(), 100, Revocation::Revoked);
        set.insert("b".into(), 200, Revocation::UserDeleted);
        assert_eq!(set.check("a"), Some(Revocation::Revoked));
        assert_eq!(set.check("c"), None);
        assert_eq!(set.sweep(150), 1);
        assert_eq!(set.check("a"), None);
        assert_eq!(set.check("b"), Some(Revocation::UserDeleted));
    }
}
