//! Verify gatepass access tokens inside any Rust service.
//!
//! This crate holds what a resource server needs and nothing more: the
//! [`AccessClaims`] type, a strict [`Verifier`], and (with the default `axum`
//! feature) extractors for protected routes and role guards. It pulls in no
//! storage, HTML or password hashing.
//!
//! Keys come from one of three places:
//! - a shared HS256 secret ([`Verifier::hs256`]), when gatepass signs with HS256;
//! - public keys: [`Verifier::new`] with [`VerifyingKey`]s, or a JWKS document
//!   ([`Verifier::from_jwks_json`]);
//! - a remote JWKS URL, cached and refetched on an unknown `kid` at most once per interval
//!   (feature `remote`: `Verifier::from_jwks_url`).
//!
//! With the `revocation-feed` feature, a [`feed::RevocationFeed`] attached with
//! `Verifier::with_revocation_feed` makes logouts, disabled accounts and revoked keys take
//! effect within milliseconds while every token is still verified locally.
//!
//! Access tokens that gatepass's OAuth provider issues to other applications (RFC 9068,
//! [`OAuthAccessClaims`]) are verified with [`Verifier::verify_oauth_access`], which
//! requires the verifier's configured audience (the resource server's own resource
//! indicator); the `RequireScope` extractor admits only tokens granted a scope.
//!
//! Each key is typed by its algorithm; a token's `alg` must equal its key's, so algorithm
//! confusion (an HS256 token keyed with a public key, `alg: none`, keys embedded in the
//! header) cannot verify.
//!
//! ```
//! use gatepass_verify::{Verifier, VerifierConfig, VerifyError};
//!
//! let verifier = Verifier::hs256(b"0123456789abcdef0123456789abcdef", VerifierConfig::new("gatepass"))
//!     .expect("a 32-byte secret is accepted");
//! assert!(matches!(verifier.verify_access("not-a-token"), Err(VerifyError::Malformed(_))));
//! ```

#![warn(missing_docs)]

mod claims;
mod error;
#[cfg(feature = "axum")]
pub mod extract;
#[cfg(feature = "revocation-feed")]
pub mod feed;
mod jwks;
#[cfg(feature = "remote")]
mod remote;
mod strict;
mod verifier;

pub use claims::{ACCESS_TOKEN_TYP, AccessClaims, OAuthAccessClaims, TimedClaims, present_string};
pub use error::VerifyError;
#[cfg(feature = "revocation-feed")]
pub use feed::{RevocationFeed, RevocationFeedOptions};
pub use jwks::{MAX_JWKS_LEN, key_from_jwk, keys_from_jwks};
#[cfg(feature = "remote")]
pub use remote::{RemoteJwksError, RemoteJwksOptions};
pub use verifier::{MAX_TOKEN_LEN, MIN_SECRET_LEN, P256_HALF_ORDER, Verifier, VerifierConfig, VerifyingKey, hs256_kid};

/// Re-exported so that callers can name algorithms without depending on the JWT crate.
pub use jsonwebtoken::Algorithm;

/// Finds the token in a request: the `Authorization: Bearer` header first, then the
/// `session` cookie.
///
/// Returns `Ok(None)` when neither is present and `Err(VerifyError::Malformed)` when an
/// `Authorization` header is present but is not a single well-formed Bearer credential.
/// The header wins over the cookie so the outcome never depends on cookie order; callers
/// that accept cookies must still apply CSRF rules to cookie-borne tokens.
pub fn token_from_headers(headers: &http::HeaderMap) -> Result<Option<(String, TokenSource)>, VerifyError> {
    let mut auth = headers.get_all(http::header::AUTHORIZATION).iter();
    if let Some(value) = auth.next() {
        if auth.next().is_some() {
            return Err(VerifyError::Malformed("more than one Authorization header"));
        }
        let value = value.to_str().map_err(|_| VerifyError::Malformed("Authorization header is not visible ASCII"))?;
        let (scheme, token) =
            value.split_once(' ').ok_or(VerifyError::Malformed("expected `Authorization: Bearer <token>`"))?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(VerifyError::Malformed("expected the Bearer scheme"));
        }
        let token = token.trim_matches(' ');
        if token.is_empty() || token.contains(' ') {
            return Err(VerifyError::Malformed("expected `Authorization: Bearer <token>`"));
        }
        return Ok(Some((token.to_owned(), TokenSource::Header)));
    }
    Ok(session_cookie(headers).map(|t| (t, TokenSource::Cookie)))
}

/// Where a request's token came from; cookie-borne tokens need CSRF protection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: Bearer …`
    Header,
    /// The `session` (or `__Host-session`) cookie.
    Cookie,
}

/// Names of the access-token cookie, in order of preference.
pub const SESSION_COOKIE_NAMES: [&str; 2] = ["__Host-session", "session"];

fn session_cookie(headers: &http::HeaderMap) -> Option<String> {
    for name in SESSION_COOKIE_NAMES {
        for value in headers.get_all(http::header::COOKIE) {
            let Ok(value) = value.to_str() else { continue };
            for pair in value.split(';') {
                if let Some((k, v)) = pair.trim().split_once('=')
                    && k == name
                    && !v.is_empty()
                {
                    return Some(v.to_owned());
                }
            }
        }
    }
    None
}
