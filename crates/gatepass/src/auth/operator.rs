//! The start-up operator token (seed 000): an admin credential printed once per process.
//!
//! It has its own JOSE type ([`OPERATOR_TOKEN_TYP`]) and claim set, so it never verifies
//! as an access token nor the reverse. It carries a random per-process boot id that lives
//! only in memory: after a restart the new process has a new boot id and refuses every
//! earlier operator token, even unexpired ones.

use gatepass_verify::{Verifier, VerifyError};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::auth::TokenIssuer;

/// JOSE `typ` of operator tokens.
pub const OPERATOR_TOKEN_TYP: &str = "gatepass-operator+jwt";

/// What `Verifier::verify_typed` says of a token of another kind: the one refusal after
/// which a token may still be judged as an access token.
pub const WRONG_TYPE: &str = "wrong token type";

/// `sub` of operator tokens (and the actor recorded in the audit trail).
pub const OPERATOR_SUBJECT: &str = "operator";

/// Claims of an operator token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorClaims {
    /// Issuer (the server's).
    pub iss: String,
    /// Always [`OPERATOR_SUBJECT`].
    pub sub: String,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Expires at.
    pub exp: i64,
    /// Unique token id.
    pub jti: String,
    /// The boot id of the process that minted it.
    pub boot: String,
    /// Audience, when the server is configured with one.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "gatepass_verify::present_string")]
    pub aud: Option<String>,
}

gatepass_verify::timed_claims!(OperatorClaims);

/// Mints and checks this process's operator tokens.
pub struct OperatorTokens {
    boot: String,
}

impl OperatorTokens {
    /// A fresh boot id (256 random bits), known only to this process.
    pub fn new() -> Self {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self { boot: bytes.iter().map(|b| format!("{b:02x}")).collect() }
    }

    /// Signs an operator token valid for `ttl_secs` from `now`.
    pub fn mint(&self, issuer: &TokenIssuer, verifier: &Verifier, ttl_secs: i64, now: i64) -> anyhow::Result<String> {
        let config = verifier.config();
        let claims = OperatorClaims {
            iss: config.issuer.clone(),
            sub: OPERATOR_SUBJECT.to_owned(),
            iat: now,
            nbf: now,
            exp: now + ttl_secs,
            jti: uuid::Uuid::now_v7().to_string(),
            boot: self.boot.clone(),
            aud: config.audience.clone(),
        };
        issuer.sign(OPERATOR_TOKEN_TYP, &claims)
    }

    /// Verifies signature, type, time claims and that the token was minted by this process.
    pub fn verify(&self, verifier: &Verifier, token: &str) -> Result<OperatorClaims, VerifyError> {
        let claims: OperatorClaims = verifier.verify_typed(token, OPERATOR_TOKEN_TYP)?;
        if claims.sub != OPERATOR_SUBJECT || !bool::from(claims.boot.as_bytes().ct_eq(self.boot.as_bytes())) {
            return Err(VerifyError::Invalid("operator token from an earlier run"));
        }
        Ok(claims)
    }
}

impl Default for OperatorTokens {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatepass_verify::VerifierConfig;

    const SECRET: &[u8] = b"0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a6978";

    #[test]
    fn operator_and_access_tokens_never_pass_as_each_other() {
        let (issuer, verifier) = TokenIssuer::hs256(SECRET, VerifierConfig::new("gatepass")).unwrap();
        let ops = OperatorTokens::new();
        let now = crate::domain::clock::now();
        let token = ops.mint(&issuer, &verifier, 3600, now).unwrap();
        assert!(ops.verify(&verifier, &token).is_ok());
        assert!(verifier.verify_access(&token).is_err());

        let user = crate::domain::User {
            id: crate::domain::UserId::new(),
            username: crate::domain::Username::parse("alice").unwrap(),
            email: None,
            email_verified: false,
            password_hash: String::new(),
            roles: crate::domain::Roles::parse(&["admin"]).unwrap(),
            disabled: false,
            created_at: now,
        };
        let access = issuer.issue(&user, "sid", now, &[], 900, now).unwrap();
        assert!(matches!(ops.verify(&verifier, &access.token), Err(VerifyError::Invalid(WRONG_TYPE))));
        assert!(matches!(verifier.verify_access(&token), Err(VerifyError::Invalid(WRONG_TYPE))));

        // Another process (another boot id) with the same signing key refuses it.
        assert!(OperatorTokens::new().verify(&verifier, &token).is_err());
    }
}
