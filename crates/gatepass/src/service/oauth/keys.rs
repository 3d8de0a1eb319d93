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
//!
//! They rotate like the session keys ([`crate::auth::keys::timeline`]): a rotation adds a
//! key of each algorithm that is published at once and signs after the activation delay
//! (clients that cache the JWKS fetch it first); the key it replaces stays published, and
//! keeps verifying, until every token it signed has expired, and is then deleted. Every
//! instance reloads them with its session keys, so a rotation made on one reaches all.

use gatepass_verify::{ACCESS_TOKEN_TYP, Verifier, VerifierConfig};
use std::collections::HashMap;
use std::sync::Arc;

use super::{ClientAccessClaims, Provider};
use crate::auth::keys::{self, KeyState, KeyStatus, MasterKey, OpenedKey, SigningAlgorithm};
use crate::domain::StoredKey;
use crate::error::{Error, Result};
use crate::service::keys::KeyManagement;
use crate::service::{Actor, AuthService, Core, now};
use crate::storage::IdTokenAlg;

/// JOSE `typ` of ID tokens.
pub const ID_TOKEN_TYP: &str = "JWT";

/// The provider's two algorithms: ID tokens, client access tokens.
const ALGORITHMS: [SigningAlgorithm; 2] = [SigningAlgorithm::Rs256, SigningAlgorithm::Es256];

/// The provider's keys as loaded: the two that sign, and every one published.
pub struct ProviderKeys {
    /// Signs ID tokens (the active RS256 key).
    pub id: OpenedKey,
    /// Signs client access tokens, and the ID tokens of clients that asked for ES256 (the
    /// active ES256 key; the JOSE `typ` tells the two apart).
    pub access: OpenedKey,
    /// The JWKs of every published key (pending, active and retired), for the JWKS, and
    /// for an `id_token_hint` to name (ID tokens are RS256, or ES256 for a client that
    /// asked).
    published: Vec<serde_json::Value>,
    /// Verifies client access tokens: every published key (the RS256 ones for access
    /// tokens issued before access tokens had a key of their own; the `typ` check keeps
    /// ID tokens out).
    verifier: Verifier,
    /// Digests device user codes ([`MasterKey::user_code_digest`]).
    master: Arc<MasterKey>,
    /// Every published key, opened, by `kid`: a reload reuses them instead of decrypting
    /// and parsing each key again every few seconds.
    opened: HashMap<String, OpenedKey>,
}

impl ProviderKeys {
    /// The public keys as JWKs, for the JWKS.
    pub fn jwks(&self) -> &[serde_json::Value] {
        &self.published
    }

    /// What storage keeps of a (normalised) device user code.
    pub fn user_code_digest(&self, code: &str) -> String {
        self.master.user_code_digest(code)
    }
}

impl Core {
    /// Loads the provider's keys into `provider`, generating and storing a first key of an
    /// algorithm that has none (two instances starting together keep the one stored
    /// first), and deleting keys no unexpired token can name. `leeway_secs` is the clock
    /// skew allowed when verifying client access tokens; `retention` how long a replaced
    /// key stays published.
    ///
    /// # Errors
    /// No master key, a stored key that does not decrypt, storage errors.
    pub async fn load_oauth_keys(
        &self,
        provider: &Provider,
        master: Option<Arc<MasterKey>>,
        leeway_secs: u64,
        retention: i64,
    ) -> Result<()> {
        let master = master.ok_or_else(|| Error::Internal("the OAuth provider needs a master key".into()))?;
        let Some(issuer) = provider.issuer() else { return Ok(()) };
        let mut stored = self.storage.oauth_keys().await?;
        for alg in ALGORITHMS {
            if !stored.iter().any(|k| k.alg == alg.name()) {
                self.first_oauth_key(alg, &master).await?;
                stored = self.storage.oauth_keys().await?;
            }
        }
        let t = now();
        let previous = provider.keys();
        let (mut signing, mut published, mut verifying, mut expired) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut opened_now = HashMap::new();
        for alg in ALGORITHMS {
            let of_alg: Vec<StoredKey> = stored.iter().filter(|k| k.alg == alg.name()).cloned().collect();
            let mut active = None;
            for status in keys::timeline(&of_alg, t, retention) {
                let Some(key) = of_alg.iter().find(|k| k.kid == status.kid) else { continue };
                match status.state {
                    KeyState::Expired | KeyState::Revoked => {
                        expired.push(status.kid);
                        continue;
                    }
                    _ => {}
                }
                let opened = match previous.as_ref().and_then(|p| p.opened.get(&status.kid)) {
                    Some(open) => open.clone(),
                    None => keys::open_stored(key, &master)?,
                };
                published.push(opened.jwk.clone());
                verifying.push(opened.verifying.clone());
                if status.state == KeyState::Active {
                    active = Some(opened.clone());
                }
                opened_now.insert(status.kid, opened);
            }
            signing
                .push(active.ok_or_else(|| {
                    Error::Internal(format!("no {} key of the OAuth provider is active", alg.name()))
                })?);
        }
        let (Some(access), Some(id)) = (signing.pop(), signing.pop()) else {
            return Err(Error::Internal("the OAuth provider's keys are incomplete".into()));
        };
        let mut config = VerifierConfig::new(issuer);
        config.leeway_secs = leeway_secs;
        let verifier = Verifier::new(verifying, config);
        provider.set_keys(ProviderKeys { id, access, published, verifier, master, opened: opened_now });
        if !expired.is_empty() {
            self.storage.delete_oauth_keys(&expired).await?;
        }
        Ok(())
    }

    /// Generates and stores the first key of `alg`, signing at once, unless another
    /// instance stored one meanwhile.
    async fn first_oauth_key(&self, alg: SigningAlgorithm, master: &Arc<MasterKey>) -> Result<()> {
        let key = generate(alg, master, None).await?;
        if self.storage.insert_first_oauth_key(&key).await? {
            tracing::info!(kid = %key.kid, alg = alg.name(), "generated an OAuth provider key");
        }
        Ok(())
    }

    /// Every stored provider key with its state now.
    ///
    /// # Errors
    /// When storage cannot be read.
    pub async fn oauth_key_timeline(&self, retention: i64) -> Result<Vec<KeyStatus>> {
        let stored = self.storage.oauth_keys().await?;
        let t = now();
        let mut out = Vec::new();
        for alg in ALGORITHMS {
            let of_alg: Vec<StoredKey> = stored.iter().filter(|k| k.alg == alg.name()).cloned().collect();
            out.extend(keys::timeline(&of_alg, t, retention));
        }
        Ok(out)
    }

    /// Rotates the provider's keys: a new key of each algorithm, published at once and
    /// signing after `km.activation_delay`. Running servers take them up at their next key
    /// reload. Returns the new keys' states.
    ///
    /// # Errors
    /// No master key; key generation and storage errors.
    pub async fn rotate_oauth_keys(&self, km: &KeyManagement, by: &Actor) -> Result<Vec<KeyStatus>> {
        let master =
            km.master.clone().ok_or_else(|| Error::Internal("the OAuth provider needs a master key".into()))?;
        let stored = self.storage.oauth_keys().await?;
        // Both keys activate in the same second, however long generating them takes.
        let wanted = now() + km.activation_delay.max(0);
        let mut kids = Vec::new();
        for alg in ALGORITHMS {
            let of_alg = stored.iter().filter(|k| k.alg == alg.name()).map(|k| k.activates_at);
            let key = generate(alg, &master, Some(keys::untied_activation(of_alg, wanted))).await?;
            self.storage.add_oauth_key(&key).await?;
            tracing::info!(kid = %key.kid, alg = alg.name(), activates_at = key.activates_at, "rotated an OAuth provider key");
            kids.push(key.kid);
        }
        let new: Vec<KeyStatus> =
            self.oauth_key_timeline(km.retention).await?.into_iter().filter(|s| kids.contains(&s.kid)).collect();
        let detail = serde_json::json!({
            "keys": new.iter().map(|s| serde_json::json!({ "kid": s.kid, "alg": s.alg, "activates_at": s.activates_at })).collect::<Vec<_>>(),
        });
        self.audit(by.event("oauth_keys_rotated").detail(detail)).await;
        Ok(new)
    }
}

/// A new provider key of `alg`, signing from `activates_at` (`None`: from its creation).
async fn generate(alg: SigningAlgorithm, master: &Arc<MasterKey>, activates_at: Option<i64>) -> Result<StoredKey> {
    let sealer = Arc::clone(master);
    // RSA key generation takes a noticeable moment; keep it off the async workers.
    tokio::task::spawn_blocking(move || {
        let t = now();
        keys::generate(alg, &sealer, t, activates_at.unwrap_or(t))
    })
    .await
    .map_err(|e| Error::Internal(format!("key generation task failed: {e}")))?
    .map_err(Into::into)
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

    /// The published keys ID tokens may be signed with (to check an `id_token_hint`, which
    /// names its key by `kid`).
    pub(crate) fn oauth_id_jwks(&self) -> Vec<serde_json::Value> {
        self.oauth.keys().map(|k| k.published.clone()).unwrap_or_default()
    }

    /// The provider's keys with their states (admin), [`Error::NotFound`] while the
    /// provider is off.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn provider_key_statuses(&self) -> Result<Vec<KeyStatus>> {
        if self.oauth.issuer().is_none() {
            return Err(Error::NotFound);
        }
        self.core.oauth_key_timeline(self.keys.retention).await
    }

    /// Rotates the provider's keys (admin, audited as `oauth_keys_rotated`) and takes them
    /// up on this instance at once; the others do at their next key reload. Returns the new
    /// keys' states. [`Error::NotFound`] while the provider is off.
    ///
    /// # Errors
    /// Key generation and storage errors.
    pub async fn rotate_provider_keys(&self, by: &Actor) -> Result<Vec<KeyStatus>> {
        if self.oauth.issuer().is_none() {
            return Err(Error::NotFound);
        }
        let new = self.core.rotate_oauth_keys(&self.keys, by).await?;
        self.reload_oauth_keys().await?;
        Ok(new)
    }

    /// Reloads the provider's keys (a rotation made elsewhere, a key that became active or
    /// expired); nothing while the provider is off.
    ///
    /// # Errors
    /// A stored key that does not decrypt; storage errors.
    pub async fn reload_oauth_keys(&self) -> Result<()> {
        if self.oauth.issuer().is_none() {
            return Ok(());
        }
        let leeway = self.verifier().config().leeway_secs;
        self.core.load_oauth_keys(&self.oauth, self.key_management().master.clone(), leeway, self.keys.retention).await
    }

    /// Signs ID-token `claims` with the provider's key of `alg` (the client's choice).
    pub(crate) fn sign_id_token<C: serde::Serialize>(&self, alg: IdTokenAlg, claims: &C) -> Result<String> {
        let keys = self.oauth_keys()?;
        let key = match alg {
            IdTokenAlg::Rs256 => &keys.id,
            IdTokenAlg::Es256 => &keys.access,
        };
        Ok(key.signer.sign_jwt(ID_TOKEN_TYP, claims)?)
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
