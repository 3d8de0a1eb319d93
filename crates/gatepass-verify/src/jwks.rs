//! Reading public keys from a JWKS document (RFC 7517) into algorithm-typed
//! [`VerifyingKey`]s.
//!
//! Each key must name its one algorithm (`alg`) and its `kid`; the algorithm must be an
//! asymmetric signature algorithm that matches the key type and curve. Symmetric (`oct`)
//! keys are refused outright: a JWKS is public, so an HMAC key in it would let anyone mint
//! tokens.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::{VerifyError, VerifyingKey};

/// Largest JWKS document accepted, in bytes.
pub const MAX_JWKS_LEN: usize = 256 * 1024;

/// The verifying keys of a JWKS document.
///
/// Keys gatepass cannot use safely (no `kid`, no `alg`, `use` other than `sig`, symmetric
/// keys, an `alg` that does not fit the key) are skipped rather than guessed at; the
/// document itself must be a JSON object with a `keys` array.
///
/// ```
/// let jwks = br#"{"keys":[{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","use":"sig","kid":"k1",
///                 "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
///                {"kty":"oct","alg":"HS256","kid":"k2","k":"c2VjcmV0"}]}"#;
/// let keys = gatepass_verify::keys_from_jwks(jwks).unwrap();
/// assert_eq!(keys.len(), 1);
/// assert_eq!(keys[0].kid, "k1");
/// assert_eq!(keys[0].alg, gatepass_verify::Algorithm::EdDSA);
/// ```
pub fn keys_from_jwks(document: &[u8]) -> Result<Vec<VerifyingKey>, VerifyError> {
    if document.len() > MAX_JWKS_LEN {
        return Err(VerifyError::Invalid("JWKS document too large"));
    }
    let set: JwkSet = serde_json::from_slice(document).map_err(|_| VerifyError::Invalid("not a JWKS document"))?;
    Ok(set.keys.iter().filter_map(|jwk| key_from_jwk(jwk).ok()).collect())
}

/// One JWK as a verifying key, or why it cannot be one.
pub fn key_from_jwk(jwk: &Jwk) -> Result<VerifyingKey, VerifyError> {
    let kid = jwk.common.key_id.clone().filter(|k| !k.is_empty()).ok_or(VerifyError::Invalid("JWK without kid"))?;
    if jwk.common.public_key_use.as_ref().is_some_and(|u| *u != PublicKeyUse::Signature) {
        return Err(VerifyError::Invalid("JWK not for signatures"));
    }
    let alg = jwk
        .common
        .key_algorithm
        .and_then(|a| a.to_string().parse::<Algorithm>().ok())
        .ok_or(VerifyError::Invalid("JWK without a supported alg"))?;
    let fits = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDSA) => p.curve == EllipticCurve::Ed25519,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => p.curve == EllipticCurve::P256,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES384) => p.curve == EllipticCurve::P384,
        (
            AlgorithmParameters::RSA(_),
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
        ) => true,
        _ => false,
    };
    if !fits {
        return Err(VerifyError::Invalid("JWK alg does not fit its key"));
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|_| VerifyError::Invalid("unreadable JWK"))?;
    VerifyingKey::new(kid, alg, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_symmetric_and_mismatched_keys() {
        let doc = br#"{"keys":[
            {"kty":"oct","alg":"HS256","kid":"a","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"},
            {"kty":"OKP","crv":"Ed25519","alg":"ES256","kid":"b","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty":"OKP","crv":"Ed25519","kid":"c","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty":"OKP","crv":"Ed25519","alg":"EdDSA","use":"enc","kid":"d","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
        ]}"#;
        assert!(keys_from_jwks(doc).unwrap().is_empty());
        assert!(keys_from_jwks(b"[1,2]").is_err());
    }
}
