//! Issuing access tokens. Verification lives in the `gatepass-verify` crate so that other
//! services check tokens with exactly the same code.

use gatepass_verify::{ACCESS_TOKEN_TYP, AccessClaims, Verifier, VerifierConfig};
use std::sync::{Arc, RwLock};

use crate::auth::keys::KeyRing;
use crate::domain::User;

/// Signs access tokens with the key the current [`KeyRing`] selects. Clones share the
/// ring, so a reload reaches every holder.
#[derive(Clone)]
pub struct TokenIssuer {
    ring: Arc<RwLock<Arc<KeyRing>>>,
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
        Ok(Self::with_ring(KeyRing::hs256(secret)?, config))
    }

    /// An issuer over `ring`, and the verifier that accepts every key the ring publishes.
    pub fn with_ring(ring: KeyRing, config: VerifierConfig) -> (Self, Verifier) {
        let verifier = Verifier::new(ring.verifying_keys(), config.clone());
        let issuer =
            Self { ring: Arc::new(RwLock::new(Arc::new(ring))), issuer: config.issuer, audience: config.audience };
        (issuer, verifier)
    }

    /// The key ring in force.
    pub fn ring(&self) -> Arc<KeyRing> {
        self.ring.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the key ring (after a reload or rotation).
    pub fn set_ring(&self, ring: KeyRing) {
        *self.ring.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ring);
    }

    /// Signs an access token for `user` in session `sid`, valid for `ttl_secs`, saying it
    /// was authenticated with the methods `amr`.
    pub fn issue(
        &self,
        user: &User,
        sid: &str,
        auth_time: i64,
        amr: &[String],
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
            email_verified: user.email.as_ref().map(|_| user.email_verified),
            amr: amr.to_vec(),
            aud: self.audience.clone(),
        };
        let token = self.sign(ACCESS_TOKEN_TYP, &claims)?;
        metrics::counter!("gatepass_tokens_issued_total").increment(1);
        Ok(IssuedToken { token, claims })
    }

    /// Signs arbitrary claims with JOSE type `typ` (each token kind has its own), with the
    /// key active now; the header always carries its `kid`.
    pub fn sign<C: serde::Serialize>(&self, typ: &str, claims: &C) -> anyhow::Result<String> {
        let now = crate::domain::clock::now();
        let key = self.ring().signer(now).ok_or_else(|| anyhow::anyhow!("no signing key is active"))?;
        key.sign_jwt(typ, claims)
    }
}
