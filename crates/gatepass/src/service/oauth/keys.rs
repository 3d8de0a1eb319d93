//! The provider's signing keys, one per job, whatever `GATEPASS_JWT_ALGORITHM` signs
//! gatepass's own tokens with:
//!
//! - **RS256 signs ID tokens**: OpenID Connect's default algorithm, the one every client
//!   library verifies.
//! - **ES256 signs client access tokens**: an RSA-3072 signature costs about a millisecond
//!   of CPU, a P-256 one a few dozen microseconds, and access tokens are issued far more
//!   often than ID tokens (every `client_credentials` call). Resource servers verify them
//!   from the JWKS like any other key.
//!
//! Each is generated on first start, sealed with the master key and shared through storage
//! by every instance, and published in the JWKS next to the session keys. gatepass's own
//! verifier trusts neither, so a client's token never passes as a gatepass session token.

use gatepass_verify::{ACCESS_TOKEN_TYP, Verifier, VerifierConfig};
use std::sync::Arc;

use super::{ClientAccessClaims, Provider};
use crate::auth::keys::{self, MasterKey, OpenedKey, SigningAlgorithm};
use crate::error::{Error, Result};
use crate::service::{AuthService, Core, now};

/// JOSE `typ` of ID tokens.
pub const ID_TOKEN_TYP: &str = "JWT";

/// The provider's keys, loaded together.
pub struct ProviderKeys {
    /// Signs ID tokens (RS256).
    pub id: OpenedKey,
    /// Signs client access tokens (ES256).
    pub access: OpenedKey,
    /// Verifies client access tokens: the ES256 key, and the RS256 key for access tokens
    /// issued before access tokens had a key of their own (they expire within minutes of
    /// an upgrade; the `typ` check keeps ID tokens out).
    verifier: Verifier,
    /// Digests device user codes ([`MasterKey::user_code_digest`]).
    master: Arc<MasterKey>,
}

impl ProviderKeys {
    /// The public keys as JWKs, for the JWKS.
    pub fn jwks(&self) -> [&serde_json::Value; 2] {
        [&self.id.jwk, &self.access.jwk]
    }

    /// What storage keeps of a (normalised) device user code.
    pub fn user_code_digest(&self, code: &str) -> String {
        self.master.user_code_digest(code)
    }
}

impl Core {
    /// Loads the provider's keys into `provider`, generating and storing any that is
    /// missing first (two instances starting together keep the one stored first).
    /// `leeway_secs` is the clock skew allowed when verifying client access tokens.
    ///
    /// # Errors
    /// No master key, a stored key that does not decrypt, storage errors.
    pub async fn load_oauth_keys(
        &self,
        provider: &Provider,
        master: Option<Arc<MasterKey>>,
        leeway_secs: u64,
    ) -> Result<()> {
        let master = master.ok_or_else(|| Error::Internal("the OAuth provider needs a master key".into()))?;
        let Some(issuer) = provider.issuer() else { return Ok(()) };
        let id = self.oauth_key(SigningAlgorithm::Rs256, &master).await?;
        let access = self.oauth_key(SigningAlgorithm::Es256, &master).await?;
        let mut config = VerifierConfig::new(issuer);
        config.leeway_secs = leeway_secs;
        let verifier = Verifier::new(vec![access.verifying.clone(), id.verifying.clone()], config);
        provider.set_keys(ProviderKeys { id, access, verifier, master });
        Ok(())
    }

    /// The stored provider key of `alg`, generated and stored first if there is none.
    async fn oauth_key(&self, alg: SigningAlgorithm, master: &Arc<MasterKey>) -> Result<OpenedKey> {
        let stored = match self.storage.oauth_key(alg.name()).await? {
            Some(k) => k,
            None => {
                let sealer = Arc::clone(master);
                let t = now();
                // RSA key generation takes a noticeable moment; keep it off the async workers.
                let key = tokio::task::spawn_blocking(move || keys::generate(alg, &sealer, t, t))
                    .await
                    .map_err(|e| Error::Internal(format!("key generation task failed: {e}")))??;
                if self.storage.insert_oauth_key(&key).await? {
                    tracing::info!(kid = %key.kid, alg = alg.name(), "generated an OAuth provider key");
                }
                self.storage
                    .oauth_key(alg.name())
                    .await?
                    .ok_or_else(|| Error::Internal("the OAuth provider's key vanished".into()))?
            }
        };
        Ok(keys::open_stored(&stored, master)?)
    }
}

impl AuthService {
    /// The provider (issuer URL and keys).
    pub fn oauth(&self) -> &Provider {
        &self.oauth
    }

    /// The provider's keys, or an internal error when they are not loaded.
    pub(super) fn oauth_keys(&self) -> Result<Arc<ProviderKeys>> {
        self.oauth.keys().ok_or_else(|| Error::Internal("the OAuth provider's keys are not loaded".into()))
    }

    /// The key ID tokens are signed with (to check an `id_token_hint`).
    pub(crate) fn oauth_id_jwk(&self) -> Option<serde_json::Value> {
        self.oauth.keys().map(|k| k.id.jwk.clone())
    }

    /// Signs ID-token `claims` with the provider's RS256 key.
    pub(crate) fn sign_id_token<C: serde::Serialize>(&self, claims: &C) -> Result<String> {
        Ok(self.oauth_keys()?.id.signer.sign_jwt(ID_TOKEN_TYP, claims)?)
    }

    /// Signs a client access token with the provider's ES256 key.
    pub(crate) fn sign_client_access(&self, claims: &ClientAccessClaims) -> Result<String> {
        Ok(self.oauth_keys()?.access.signer.sign_jwt(ACCESS_TOKEN_TYP, claims)?)
    }

    /// Verifies an access token issued to a client and checks that its grant has not been
    /// revoked. `None` for anything else (a gatepass session token included).
    pub fn verify_client_token(&self, token: &str) -> Option<ClientAccessClaims> {
        let keys = self.oauth.keys()?;
        let claims: ClientAccessClaims = keys.verifier.verify_typed(token, ACCESS_TOKEN_TYP).ok()?;
        if let Some(sid) = &claims.sid
            && self.core.revocations.check(sid).is_some()
        {
            return None;
        }
        Some(claims)
    }
}
