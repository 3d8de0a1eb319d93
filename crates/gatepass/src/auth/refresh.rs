//! Refresh-token material: opaque 256-bit random strings, stored only as SHA-256 digests.
//!
//! A token's successor is derived from it with a server-side HMAC key rather than drawn at
//! random. That lets a client whose refresh response was lost (or two tabs refreshing at
//! once) present the old token again within the grace window and receive *the same*
//! successor, instead of forking the session or tripping reuse detection. Without the key
//! nobody can compute a successor, so a stolen, already-rotated token is still useless.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Prefix that makes gatepass refresh tokens recognisable (and greppable in leaks).
const PREFIX: &str = "gpr_";
/// Prefix of the refresh tokens OAuth clients hold: neither kind is accepted where the
/// other belongs (`/api/refresh` takes only `gpr_`, the token endpoint only this).
pub const CLIENT_PREFIX: &str = "gpo_";

/// Creates and hashes refresh tokens.
#[derive(Clone)]
pub struct RefreshTokens {
    rotation_key: [u8; 32],
}

impl RefreshTokens {
    /// `secret` is the server secret; a separate key for rotation is derived from it.
    pub fn new(secret: &[u8]) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
        mac.update(b"gatepass refresh-token rotation v1");
        Self { rotation_key: mac.finalize().into_bytes().into() }
    }

    /// A new random token (first of a session).
    pub fn generate(&self) -> String {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        encode(&bytes)
    }

    /// A new random token with the OAuth clients' prefix ([`CLIENT_PREFIX`]).
    pub fn generate_for_client(&self) -> String {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        format!("{CLIENT_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The token that replaces `token` on rotation (with the same prefix).
    pub fn successor(&self, token: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.rotation_key).expect("HMAC accepts keys of any length");
        mac.update(token.as_bytes());
        let bytes = mac.finalize().into_bytes();
        if token.starts_with(CLIENT_PREFIX) {
            format!("{CLIENT_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
        } else {
            encode(&bytes)
        }
    }

    /// What storage keeps: the SHA-256 digest, hex-encoded.
    pub fn hash(token: &str) -> String {
        let digest = Sha256::digest(token.as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Cheap shape check so garbage never reaches storage (gatepass's own tokens).
    pub fn looks_valid(token: &str) -> bool {
        Self::shaped(token, PREFIX)
    }

    /// The same check for the refresh tokens of OAuth clients.
    pub fn looks_valid_for_client(token: &str) -> bool {
        Self::shaped(token, CLIENT_PREFIX)
    }

    fn shaped(token: &str, prefix: &str) -> bool {
        token.len() == prefix.len() + 43
            && token.starts_with(prefix)
            && URL_SAFE_NO_PAD.decode(&token[prefix.len()..]).is_ok_and(|b| b.len() == 32)
    }
}

fn encode(bytes: &[u8]) -> String {
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_shaped_and_successors_deterministic() {
        let r = RefreshTokens::new(&[1u8; 32]);
        let a = r.generate();
        assert!(RefreshTokens::looks_valid(&a));
        assert_ne!(a, r.generate());
        let next = r.successor(&a);
        assert!(RefreshTokens::looks_valid(&next));
        assert_eq!(next, r.successor(&a));
        assert_ne!(next, RefreshTokens::new(&[2u8; 32]).successor(&a));
        assert_eq!(RefreshTokens::hash(&a).len(), 64);
        assert!(!RefreshTokens::looks_valid("gpr_short"));
    }
}
