//! A bounded cache of access tokens whose signature and claims have already been verified.
//!
//! Verifying a token means base64, JSON and an HMAC or signature check; a client sends the
//! same token on every request until it expires, so the work is repeated for nothing. The
//! cache is keyed by the exact token string, so a hit is only ever the very bytes that
//! passed verification. Time claims are re-checked on every hit, and the revocation check
//! is not cached at all: callers consult the revocation set after every lookup, so a
//! logout takes effect exactly as without the cache.

use gatepass_verify::AccessClaims;
use std::collections::HashMap;
use std::sync::RwLock;

/// Entries kept before the cache is emptied and refilled (about 700 bytes each).
pub const DEFAULT_CAPACITY: usize = 10_000;

/// Token string → its verified claims.
#[derive(Debug)]
pub struct VerifiedCache {
    entries: RwLock<HashMap<Box<str>, AccessClaims>>,
    capacity: usize,
}

impl Default for VerifiedCache {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl VerifiedCache {
    /// A cache holding at most `capacity` tokens.
    pub fn new(capacity: usize) -> Self {
        Self { entries: RwLock::new(HashMap::new()), capacity: capacity.max(1) }
    }

    /// The claims of `token` if it was verified before and is within its validity window
    /// at `now` (with `leeway` seconds of skew); otherwise `None`, and the caller verifies.
    pub fn get(&self, token: &str, now: i64, leeway: i64) -> Option<AccessClaims> {
        let map = self.entries.read().unwrap_or_else(|p| p.into_inner());
        map.get(token).filter(|c| c.exp + leeway > now && c.nbf - leeway <= now).cloned()
    }

    /// Remembers a token that has just been verified.
    pub fn insert(&self, token: &str, claims: &AccessClaims) {
        let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
        // Emptying at capacity keeps memory bounded without bookkeeping on every hit; the
        // cost is one verification per token afterwards.
        if map.len() >= self.capacity {
            map.clear();
        }
        map.insert(token.into(), claims.clone());
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
            aud: None,
        }
    }

    #[test]
    fn hits_only_the_same_token_inside_its_window() {
        let cache = VerifiedCache::new(2);
        cache.insert("a.b.c", &claims(100, 200));
        assert!(cache.get("a.b.c", 150, 0).is_some());
        assert!(cache.get("a.b.d", 150, 0).is_none());
        assert!(cache.get("a.b.c", 200, 0).is_none(), "expired");
        assert!(cache.get("a.b.c", 205, 10).is_some(), "within leeway");
        assert!(cache.get("a.b.c", 50, 10).is_none(), "not yet valid");
        cache.insert("x", &claims(100, 200));
        cache.insert("y", &claims(100, 200));
        assert_eq!(cache.len(), 1, "emptied at capacity");
    }
}
