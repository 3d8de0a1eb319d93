//! Emergency revocation of a signing key (`gatepass keys revoke`,
//! `POST /api/admin/keys/{kid}/revoke`): for a key that leaked.
//!
//! The key is marked revoked in storage; from then on it is neither published nor trusted
//! nor used to sign, so every token it signed is refused. This instance reloads its keys
//! before answering; the others reload when the change reaches them (the change feed on
//! PostgreSQL, the once-a-second version check on every backend: see [`super::sync`]), and
//! a restart reads the revocation from storage. Revoking the key that signs now stores its
//! replacement, signing at once, in the same transaction, so no reader ever sees a key set
//! that cannot sign. Refresh tokens are not signed and keep working: a refresh mints an
//! access token with the replacement.

use super::{Actor, AuthService, Core, KeyManagement, now};
use crate::auth::keys::{self, KeyState, KeyStatus, SigningAlgorithm};
use crate::error::{Error, Result};
use crate::storage::KeyRevocation;

/// What [`Core::revoke_signing_key`] answers in HS256 mode for the secret's own key id, or
/// when there is no stored key at all.
pub const HS256_NOT_REVOCABLE: &str = "this server signs with the shared HS256 secret (GATEPASS_JWT_SECRET), \
     which is not a stored key and cannot be revoked: every holder of the secret can sign. To stop tokens \
     signed with it, set a new GATEPASS_JWT_SECRET on every instance (every access token then ends; refresh \
     tokens keep working)";

/// What a revocation did.
#[derive(Debug, Clone)]
pub struct KeyRevoked {
    /// The revoked key, as it is now.
    pub key: KeyStatus,
    /// The key that signs from now on, when the revoked key was the one signing.
    pub replacement: Option<KeyStatus>,
    /// Whether the key was revoked before this call (then nothing changed).
    pub already: bool,
}

impl Core {
    /// Revokes signing key `kid` on behalf of `by`, adding a replacement that signs at once
    /// when `kid` signs now; audited as `signing_key_revoked`. Revoking a revoked key
    /// changes nothing and says so.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown key; [`Error::BadRequest`] for the HS256 secret
    /// ([`HS256_NOT_REVOCABLE`]); storage and key-generation errors.
    pub async fn revoke_signing_key(&self, km: &KeyManagement, by: &Actor, kid: &str) -> Result<KeyRevoked> {
        let t = now();
        let stored = self.storage.signing_keys().await?;
        if km.algorithm == SigningAlgorithm::Hs256 {
            let secret_kid = km.hs256_secret.as_ref().map(|s| gatepass_verify::hs256_kid(s.as_slice()));
            if stored.is_empty() || secret_kid.as_deref() == Some(kid) {
                return Err(Error::BadRequest(HS256_NOT_REVOCABLE.into()));
            }
        }
        let key = stored.iter().find(|k| k.kid == kid).ok_or(Error::NotFound)?;
        // Judged from the stored keys rather than this process's configuration, so that a
        // command line run with another GATEPASS_JWT_ALGORITHM cannot leave the servers
        // without a key: the key that signs is replaced by one of its own algorithm.
        let signs_now =
            keys::timeline(&stored, t, km.retention).iter().any(|s| s.kid == kid && s.state == KeyState::Active);
        let replacement = match (signs_now, key.revoked_at) {
            (true, None) => {
                let alg = SigningAlgorithm::from_name(&key.alg)
                    .filter(|a| a.is_asymmetric())
                    .ok_or_else(|| Error::Internal(format!("stored key {kid} has algorithm {}", key.alg)))?;
                let master = km.master.clone().ok_or_else(|| {
                    Error::BadRequest(
                        "revoking the signing key needs GATEPASS_MASTER_KEY to generate its replacement".into(),
                    )
                })?;
                // RSA key generation takes a noticeable moment; keep it off the async workers.
                let fresh = tokio::task::spawn_blocking(move || keys::generate(alg, &master, t, t))
                    .await
                    .map_err(|e| Error::Internal(format!("key generation task failed: {e}")))??;
                Some(fresh)
            }
            _ => None,
        };
        let outcome = self.storage.revoke_signing_key(kid, t, replacement.as_ref(), t + km.retention).await?;
        let statuses = self.key_timeline(km.retention).await?;
        let find = |kid: &str| statuses.iter().find(|s| s.kid == kid).cloned();
        match outcome {
            KeyRevocation::Unknown => Err(Error::NotFound),
            KeyRevocation::AlreadyRevoked { .. } => {
                let key = find(kid).ok_or(Error::NotFound)?;
                Ok(KeyRevoked { key, replacement: None, already: true })
            }
            KeyRevocation::Revoked => {
                // Stored with the revocation; tell this instance's feed subscribers now.
                self.feed().wake();
                let replacement = replacement.as_ref().and_then(|r| find(&r.kid));
                tracing::warn!(
                    kid,
                    replacement = replacement.as_ref().map(|r| r.kid.as_str()),
                    by = %by.id,
                    "signing key revoked"
                );
                let detail = serde_json::json!({
                    "kid": kid,
                    "alg": key.alg,
                    "replacement": replacement.as_ref().map(|r| r.kid.as_str()),
                });
                self.audit(by.event("signing_key_revoked").detail(detail)).await;
                let key = find(kid).ok_or(Error::NotFound)?;
                Ok(KeyRevoked { key, replacement, already: false })
            }
        }
    }
}

impl AuthService {
    /// Revokes signing key `kid` (see [`Core::revoke_signing_key`]) and reloads the key set,
    /// so that this instance refuses the key's tokens and stops publishing it before
    /// answering.
    ///
    /// # Errors
    /// As [`Core::revoke_signing_key`]; a failed reload.
    pub async fn revoke_key(&self, by: &Actor, kid: &str) -> Result<KeyRevoked> {
        let revoked = self.core.revoke_signing_key(&self.keys, by, kid).await?;
        self.reload_keys().await?;
        Ok(revoked)
    }
}
