//! The provider's signing key: one RS256 key (OpenID Connect's default algorithm, which
//! every client library verifies) that signs ID tokens and the access tokens of clients,
//! whatever `GATEPASS_JWT_ALGORITHM` signs gatepass's own tokens with. It is generated on
//! first start, sealed with the master key and shared through storage by every instance,
//! and published in the JWKS next to the session keys. gatepass's own verifier does not
//! trust it, so a client's token never passes as a gatepass session token.

use gatepass_verify::{ACCESS_TOKEN_TYP, Verifier, VerifierConfig};
use std::sync::Arc;

use super::{ClientAccessClaims, Provider};
use crate::auth::keys::{self, SigningAlgorithm};
use crate::error::{Error, Result};
use crate::service::{AuthService, Core, now};

/// JOSE `typ` of ID tokens.
pub const ID_TOKEN_TYP: &str = "JWT";

impl Core {
    /// Loads the provider's key into `provider`, generating and storing one first if there is
    /// none (two instances starting together keep the one stored first).
    ///
    /// # Errors
    /// No master key, a stored key that does not decrypt, storage errors.
    pub async fn load_oauth_key(&self, provider: &Provider, master: Option<Arc<keys::MasterKey>>) -> Result<()> {
        let master = master.ok_or_else(|| Error::Internal("the OAuth provider needs a master key".into()))?;
        let stored = match self.storage.oauth_id_key().await? {
            Some(k) => k,
            None => {
                let sealer = Arc::clone(&master);
                let t = now();
                // RSA key generation takes a noticeable moment; keep it off the async workers.
                let key = tokio::task::spawn_blocking(move || keys::generate(SigningAlgorithm::Rs256, &sealer, t, t))
                    .await
                    .map_err(|e| Error::Internal(format!("key generation task failed: {e}")))??;
                if self.storage.insert_oauth_id_key(&key).await? {
                    tracing::info!(kid = %key.kid, "generated the OAuth provider's RS256 key");
                }
                self.storage
                    .oauth_id_key()
                    .await?
                    .ok_or_else(|| Error::Internal("the OAuth provider's key vanished".into()))?
            }
        };
        provider.set_key(keys::open_stored(&stored, &master)?);
        Ok(())
    }
}

impl AuthService {
    /// The provider (issuer URL and key).
    pub fn oauth(&self) -> &Provider {
        &self.oauth
    }

    /// The provider's public key as a JWK, for the JWKS.
    pub fn oauth_jwk(&self) -> Option<serde_json::Value> {
        self.oauth.key().map(|k| k.jwk.clone())
    }

    /// Signs `claims` with the provider's key as a token of JOSE type `typ`.
    pub(crate) fn oauth_sign<C: serde::Serialize>(&self, typ: &str, claims: &C) -> Result<String> {
        let key = self.oauth.key().ok_or_else(|| Error::Internal("the OAuth provider's key is not loaded".into()))?;
        Ok(key.signer.sign_jwt(typ, claims)?)
    }

    /// Verifies an access token issued to a client and checks that its grant has not been
    /// revoked. `None` for anything else (a gatepass session token included).
    pub fn verify_client_token(&self, token: &str) -> Option<ClientAccessClaims> {
        let issuer = self.oauth.issuer()?;
        let key = self.oauth.key()?;
        let mut config = VerifierConfig::new(issuer);
        config.leeway_secs = self.verifier().config().leeway_secs;
        let verifier = Verifier::new(vec![key.verifying.clone()], config);
        let claims: ClientAccessClaims = verifier.verify_typed(token, ACCESS_TOKEN_TYP).ok()?;
        if let Some(sid) = &claims.sid
            && self.core.revocations.check(sid).is_some()
        {
            return None;
        }
        Some(claims)
    }
}
