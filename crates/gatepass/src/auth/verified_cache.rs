//! A bounded cache of access tokens whose signature and claims have already been verified.
//!
//! Verifying a token means base64, JSON and an HMAC or signature check; a client sends the
//! same token on every request until it expires, so the work is repeated for nothing. The
//! cache is keyed by the exact token string, so a hit is only ever the very bytes that
//! passed verification. Time claims are re-checked on every hit, and the revocation check
//! is not cached at all: callers consult the revocation set after every lookup, so a
//! logout takes effect exactly as without the cache. When a key stops being trusted (an
//! emergency revocation) the cache is emptied, and a verification that began under the old
//! key set cannot put its result back afterwards (see [`VerifiedCache::generation`]).

use gatepass_verify::AccessClaims;
use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Entries kept before the cache is emptied and refilled (about 700 bytes each).
pub const DEFAULT_CAPACITY: usize = 10_000;

/// Token string → its verified claims.
#[derive(Debug)]
pub struct VerifiedCache {
    entries: RwLock<HashMap<Box<str>, AccessClaims>>,
    capacity: usize,
    /// Advanced by every [`VerifiedCache::clear`], under the write lock.
    generation: AtomicU64,
}

impl Default for VerifiedCache {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl VerifiedCache {
    /// A cache holding at most `capacity` tokens.
    pub fn new(capacity: usize) -> Self {
        Self { entries: RwLock::new(HashMap::new()), capacity: capacity.max(1), generation: AtomicU64::new(0) }
    }

    /// The claims of `token` if it was verified before and is within its validity window
    /// at `now` (with `leeway` seconds of skew); otherwise `None`, and the caller verifies.
    pub fn get(&self, token: &str, now: i64, leeway: i64) -> Option<AccessClaims> {
        let map = self.entries.read().unwrap_or_else(|p| p.into_inner());
        map.get(token).filter(|c| c.exp + leeway > now && c.nbf - leeway <= now).cloned()
    }

    /// The current generation: read it before verifying, and pass it to [`Self::insert`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Remembers a token that has just been verified, unless the cache was cleared since
    /// `generation` was read (the verification may have used keys no longer trusted).
    pub fn insert(&self, token: &str, claims: &AccessClaims, generation: u64) {
        let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        // Emptying at capacity keeps memory bounded without bookkeeping on every hit; the
        // cost is one verification per token afterwards.
        if map.len() >= self.capacity {
            map.clear();
        }
        map.insert(token.into(), claims.clone());
    }

    /// Forgets every token (after a key stopped being trusted); verifications under way
    /// cannot add theirs back.
    pub fn clear(&self) {
        let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.clear();
    }

    /// Number of cached tokens.
    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(nbf: i64, exp: i64) -> AccessClaims {
        AccessClaims {
            iss: "gatepass".into(),
            sub: "u".into(),
            username: "u".into(),
            roles: vec!["user".into()],
            iat: nbf,
            nbf,
            exp,
            jti: "j".into(),
            sid: "s".into(),
            auth_time: nbf,
            email_verified: None,
            amr: Vec::new(),
            aud: None,
        }
    }

    #[test]
    fn hits_only_the_same_token_inside_its_window() {
        let cache = VerifiedCache::new(2);
        cache.insert("a.b.c", &claims(100, 200), cache.generation());
        assert!(cache.get("a.b.c", 150, 0).is_some());
        assert!(cache.get("a.b.d", 150, 0).is_none());
        assert!(cache.get("a.b.c", 200, 0).is_none(), "expired");
        assert!(cache.get("a.b.c", 205, 10).is_some(), "within leeway");
        assert!(cache.get("a.b.c", 50, 10).is_none(), "not yet valid");
        cache.insert("x", &claims(100, 200), cache.generation());
        cache.insert("y", &claims(100, 200), cache.generation());
        assert_eq!(cache.len(), 1, "emptied at capacity");
    }

    #[test]
    fn a_verification_from_before_a_clear_is_not_cached() {
        let cache = VerifiedCache::new(10);
        let before = cache.generation();
        cache.insert("a", &claims(100, 200), before);
        cache.clear();
        assert!(cache.is_empty());
        cache.insert("b", &claims(100, 200), before);
        assert!(cache.get("b", 150, 0).is_none(), "began under the old keys");
        cache.insert("b", &claims(100, 200), cache.generation());
        assert!(cache.get("b", 150, 0).is_some());
    }
}
