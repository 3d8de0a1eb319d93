//! CSRF tokens bound to a session: `base64url(HMAC-SHA256(key, sid))`.
//!
//! Because the token is a MAC of the session id, a page script can read it from a cookie
//! and echo it in a header, but a cross-site attacker can neither read nor forge it, and a
//! token stolen from one session is worthless in another.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Issues and checks CSRF tokens.
#[derive(Clone)]
pub struct CsrfTokens {
    key: Vec<u8>,
}

impl CsrfTokens {
    /// Derives the CSRF key from the server secret.
    pub fn new(secret: &[u8]) -> Self {
        Self { key: mac(secret, b"gatepass csrf v1") }
    }

    /// The CSRF token of session `sid`.
    pub fn token(&self, sid: &str) -> String {
        URL_SAFE_NO_PAD.encode(mac(&self.key, sid.as_bytes()))
    }

    /// Constant-time check of a presented token against session `sid`.
    pub fn verify(&self, sid: &str, presented: &str) -> bool {
        let expected = self.token(sid);
        !presented.is_empty() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
    }
}

fn mac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bound_to_the_session() {
        let c = CsrfTokens::new(&[3u8; 32]);
        let t = c.token("sid-1");
        assert!(c.verify("sid-1", &t));
        assert!(!c.verify("sid-2", &t));
        assert!(!c.verify("sid-1", ""));
        assert!(!CsrfTokens::new(&[4u8; 32]).verify("sid-1", &t));
    }
}
