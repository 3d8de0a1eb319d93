//! One-time tokens mailed as links (address verification, address change, password
//! reset): 256 random bits, shown once in the link, stored only as a SHA-256 digest
//! (GP-33). Storage finds a token by its digest; [`matches()`] compares digests in constant
//! time where a second comparison is made.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A new token and the digest to store.
pub fn generate() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let digest = digest(&token);
    (token, digest)
}

/// The digest of a presented token, or `None` when it cannot be one of ours (so garbage
/// never reaches storage).
pub fn parse(token: &str) -> Option<String> {
    let ok = token.len() == 43 && URL_SAFE_NO_PAD.decode(token).is_ok_and(|b| b.len() == 32);
    ok.then(|| digest(token))
}

fn digest(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Constant-time equality of two digests.
pub fn matches(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bit_and_only_their_digest_matches() {
        let (token, digest) = generate();
        assert_eq!(token.len(), 43);
        assert_eq!(parse(&token).as_deref(), Some(digest.as_str()));
        assert!(matches(&digest, &parse(&token).unwrap()));
        assert_ne!(generate().0, token);
        for bad in ["", "short", &"A".repeat(44), &format!("{}=", &token[..42]), "../../etc/passwd"] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
