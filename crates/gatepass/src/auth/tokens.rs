//! Issuing access tokens. Verification lives in the `gatepass-verify` crate so that other
//! services check tokens with exactly the same code.

use gatepass_verify::{ACCESS_TOKEN_TYP, AccessClaims, Algorithm, Verifier, VerifierConfig, VerifyingKey, hs256_kid};
use jsonwebtoken::{EncodingKey, Header};

use crate::domain::User;

/// Signs access tokens with the server's key.
#[derive(Clone)]
pub struct TokenIssuer {
    kid: String,
    key: EncodingKey,
    issuer: String,
    audience: Option<String>,
}

/// A freshly signed access token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The compact JWT.
    pub token: String,
    /// Its claims.
    pub claims: AccessClaims,
}

impl TokenIssuer {
    /// An HS256 issuer, and the verifier that accepts what it issues.
    pub fn hs256(secret: &[u8], config: VerifierConfig) -> anyhow::Result<(Self, Verifier)> {
        let kid = hs256_kid(secret);
        let verifier = Verifier::new(
            vec![VerifyingKey::hs256(kid.clone(), secret).map_err(|e| anyhow::anyhow!("{e}"))?],
            config.clone(),
        );
        let issuer =
            Self { kid, key: EncodingKey::from_secret(secret), issuer: config.issuer, audience: config.audience };
        Ok((issuer, verifier))
    }

    /// Signs an access token for `user` in session `sid`, valid for `ttl_secs`.
    pub fn issue(
        &self,
        user: &User,
        sid: &str,
        auth_time: i64,
        ttl_secs: i64,
        now: i64,
    ) -> anyhow::Result<IssuedToken> {
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: user.id.as_str().to_owned(),
            username: user.username.as_str().to_owned(),
            roles: user.roles.names(),
            iat: now,
            nbf: now,
            exp: now + ttl_secs,
            jti: uuid::Uuid::now_v7().to_string(),
            sid: sid.to_owned(),
            auth_time,
            aud: self.audience.clone(),
        };
        let token = self.sign(ACCESS_TOKEN_TYP, &claims)?;
        metrics::counter!("gatepass_tokens_issued_total").increment(1);
        Ok(IssuedToken { token, claims })
    }

    /// Signs arbitrary claims with JOSE type `typ` (each token kind has its own).
    pub fn sign<C: serde::Serialize>(&self, typ: &str, claims: &C) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some(typ.to_owned());
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.key)?)
    }
}
