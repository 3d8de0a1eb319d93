//! Signing-key operations: loading the key ring from storage, rotation, the public JWKS,
//! and the token introspection/revocation endpoints' service side.

use std::sync::Arc;

use super::{Actor, AuthService, Core, now};
use crate::auth::keys::{self, KeyRing, KeyState, KeyStatus, MasterKey, SigningAlgorithm};
use crate::auth::refresh::RefreshTokens;
use crate::domain::StoredKey;
use crate::error::{Error, Result};
use crate::storage::SessionFilter;

/// How signing keys are managed.
#[derive(Clone)]
pub struct KeyManagement {
    /// The configured signing algorithm.
    pub algorithm: SigningAlgorithm,
    /// Encrypts private keys at rest; `None` in HS256 mode with no master key resolved.
    pub master: Option<Arc<MasterKey>>,
    /// The HS256 secret, used to sign in HS256 mode.
    pub hs256_secret: Option<Arc<zeroize::Zeroizing<Vec<u8>>>>,
    /// Seconds a rotated-in key is published before it signs.
    pub activation_delay: i64,
    /// Seconds a retired key stays published: the longest token lifetime any verifier
    /// accepts, plus leeway.
    pub retention: i64,
}

impl Default for KeyManagement {
    fn default() -> Self {
        Self {
            algorithm: SigningAlgorithm::Hs256,
            master: None,
            hs256_secret: None,
            activation_delay: 600,
            retention: 86_460,
        }
    }
}

impl KeyManagement {
    /// Builds the ring for the stored keys at `now`.
    pub fn ring(&self, stored: &[StoredKey], now: i64, previous: Option<&KeyRing>) -> anyhow::Result<KeyRing> {
        let hs = match self.algorithm {
            SigningAlgorithm::Hs256 => {
                Some(self.hs256_secret.as_ref().ok_or_else(|| anyhow::anyhow!("HS256 needs a secret"))?.as_slice())
            }
            _ => None,
        };
        KeyRing::build(hs, stored, self.master.as_deref(), now, self.retention, previous)
    }
}

impl Core {
    /// Adds a new key of `alg` to storage. It is published at once and signs after `delay`
    /// seconds — or at once when no key of the ring can sign now (first key, or an
    /// algorithm change), since then there is nothing to wait for.
    ///
    /// # Errors
    /// [`Error::BadRequest`] for HS256; key generation and storage errors.
    pub async fn rotate_signing_key(&self, km: &KeyManagement, delay: i64, by: Option<&Actor>) -> Result<StoredKey> {
        let alg = km.algorithm;
        let master = km.master.clone().filter(|_| alg.is_asymmetric()).ok_or_else(|| {
            Error::BadRequest("key rotation applies to EdDSA, ES256 and RS256; HS256 uses the configured secret".into())
        })?;
        let t = now();
        let statuses = self.key_timeline(km.retention).await?;
        let current_fits = statuses.iter().any(|s| s.state == KeyState::Active && s.alg == alg.name());
        let wanted = if current_fits { t + delay.max(0) } else { t };
        let activates_at = keys::untied_activation(statuses.iter().map(|s| s.activates_at), wanted);
        // RSA key generation takes a noticeable moment; keep it off the async workers.
        let key = tokio::task::spawn_blocking(move || keys::generate(alg, &master, t, activates_at))
            .await
            .map_err(|e| Error::Internal(format!("key generation task failed: {e}")))??;
        self.storage.insert_signing_key(&key).await?;
        tracing::info!(kid = %key.kid, alg = %key.alg, activates_at, "generated a new signing key");
        // A rotation someone asked for is theirs on the audit trail; the start-up's own key
        // generation has no actor.
        if let Some(by) = by {
            let detail = serde_json::json!({ "kid": key.kid, "alg": key.alg, "activates_at": activates_at });
            self.audit(by.event("signing_key_rotated").detail(detail)).await;
        }
        Ok(key)
    }

    /// At start-up: makes sure a key of the configured algorithm exists and is (or will
    /// be) the newest, generating one that signs at once if not.
    ///
    /// # Errors
    /// No master key for an asymmetric algorithm; key generation and storage errors.
    pub async fn ensure_signing_key(&self, km: &KeyManagement) -> Result<()> {
        if !km.algorithm.is_asymmetric() {
            return Ok(());
        }
        if km.master.is_none() {
            return Err(Error::Internal("no master key".into()));
        }
        let statuses = self.key_timeline(km.retention).await?;
        // A revoked key signs nothing, whatever its place.
        if statuses.iter().rfind(|s| s.revoked_at.is_none()).is_some_and(|s| s.alg == km.algorithm.name()) {
            return Ok(());
        }
        self.rotate_signing_key(km, 0, None).await?;
        Ok(())
    }

    /// The key ring over the stored keys now. Its errors say what is wrong (a key that
    /// cannot be decrypted, say) since they stop start-up rather than reach a client.
    ///
    /// # Errors
    /// Keys that cannot be read or decrypted; HS256 without a secret.
    pub async fn key_ring(&self, km: &KeyManagement) -> anyhow::Result<KeyRing> {
        let stored = self.storage.signing_keys().await?;
        km.ring(&stored, now(), None)
    }

    /// Every stored key with its state now.
    ///
    /// # Errors
    /// When storage cannot be read.
    pub async fn key_timeline(&self, retention: i64) -> Result<Vec<KeyStatus>> {
        let stored = self.storage.signing_keys().await?;
        Ok(keys::timeline(&stored, now(), retention))
    }
}

impl AuthService {
    /// How signing keys are managed.
    pub fn key_management(&self) -> &KeyManagement {
        &self.keys
    }

    /// Reloads signing keys from storage: picks up rotations and revocations made elsewhere
    /// (CLI, other instances), activates pending keys, stops publishing expired ones (and
    /// deletes them); the OAuth provider's keys too.
    ///
    /// A key set that cannot sign is installed all the same (and logged): a key that was
    /// revoked must stop being trusted even then, so issuing fails rather than trusting it.
    pub async fn reload_keys(&self) -> Result<()> {
        let t = now();
        let stored = self.core.storage.signing_keys().await?;
        let expired: Vec<String> = keys::timeline(&stored, t, self.keys.retention)
            .into_iter()
            .filter(|s| s.state == KeyState::Expired)
            .map(|s| s.kid)
            .collect();
        let previous = self.issuer.ring();
        let ring = self.keys.ring(&stored, t, Some(&previous))?;
        if !ring.can_sign(t) {
            tracing::error!("no signing key is active: tokens cannot be issued until one is (gatepass keys rotate)");
        }
        let now_trusted = ring.verifying_keys();
        let dropped = self.verifier.keys().iter().any(|old| now_trusted.iter().all(|new| new.kid != old.kid));
        self.verifier.set_keys(now_trusted);
        self.issuer.set_ring(ring);
        // The cache holds tokens verified under the old set: forget them once a key left it,
        // or a revoked key's tokens would keep passing until they expire.
        if dropped {
            self.verified.clear();
        }
        if !expired.is_empty() {
            self.core.storage.delete_signing_keys(&expired).await?;
        }
        // The provider's keys rotate on the same schedule (service/oauth/keys.rs).
        self.reload_oauth_keys().await
    }

    /// Rotates the signing key (see [`Core::rotate_signing_key`]) and reloads the ring.
    pub async fn rotate_keys(&self, by: &Actor) -> Result<KeyStatus> {
        if self.keys.master.is_none() {
            return Err(Error::BadRequest("key rotation needs an asymmetric GATEPASS_JWT_ALGORITHM".into()));
        }
        let key = self.core.rotate_signing_key(&self.keys, self.keys.activation_delay, Some(by)).await?;
        self.reload_keys().await?;
        self.key_statuses()
            .await?
            .into_iter()
            .find(|s| s.kid == key.kid)
            .ok_or_else(|| Error::Internal("rotated key vanished".into()))
    }

    /// Every stored key with its state now.
    pub async fn key_statuses(&self) -> Result<Vec<KeyStatus>> {
        self.core.key_timeline(self.keys.retention).await
    }

    /// The public JWKS document.
    pub fn jwks(&self) -> serde_json::Value {
        let mut doc = self.issuer.ring().jwks();
        // The OAuth provider's keys (ID tokens, client access tokens) are published alongside.
        if let (Some(provider), Some(keys)) = (self.oauth().keys(), doc.get_mut("keys").and_then(|k| k.as_array_mut()))
        {
            keys.extend(provider.jwks().iter().cloned());
        }
        doc
    }

    /// RFC 7009 for gatepass's own tokens (`POST /api/revoke`): ends the session a refresh
    /// or access token belongs to. Unknown, malformed or expired tokens are not an error
    /// (the client's goal is reached either way).
    ///
    /// # Errors
    /// [`Error::BadRequest`] for an OAuth client's token: a client revokes those at
    /// `/oauth/revoke`, authenticated, so that a leaked token cannot end another client's
    /// grant. Storage errors.
    pub async fn revoke_token(&self, token: &str, client: &super::ClientInfo) -> Result<()> {
        if RefreshTokens::looks_valid_for_client(token) || self.verify_client_token(token).is_some() {
            return Err(Error::BadRequest(
                "this is an OAuth client's token: the client revokes it at /oauth/revoke with its credentials".into(),
            ));
        }
        if RefreshTokens::looks_valid(token) {
            if let Some((sid, user_id)) =
                self.core.storage.session_of_refresh_token(&RefreshTokens::hash(token), now()).await?
            {
                self.core.revoke(&user_id, SessionFilter::One(&sid)).await?;
            }
        } else if let Ok(claims) = self.authenticate(token) {
            self.logout(&claims, super::LogoutScope::Local, client).await?;
        }
        Ok(())
    }
}
