//! Passkeys (WebAuthn Level 2, through webauthn-rs): adding, listing, renaming and
//! removing an account's passkeys, passwordless sign-in with a discoverable credential,
//! and a passkey as the second factor of a password login (`/api/login/mfa`).
//!
//! The relying party is the host of `GATEPASS_PUBLIC_URL` and the origin is that URL's
//! origin. A ceremony's state lives in storage between its start and its finish, so any
//! instance can finish it; it is taken once (whatever the outcome), lives five minutes,
//! and is bound to its account (registration) or to its client (sign-in). A passkey's sign
//! counter moves by compare-and-swap; a counter that goes back while non-zero is a cloned
//! authenticator: refused and audited.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatepass_verify::AccessClaims;
use sha2::{Digest, Sha256};
use webauthn_rs::prelude::{
    AuthenticationResult, CreationChallengeResponse, DiscoverableAuthentication, Passkey, PasskeyAuthentication,
    PasskeyRegistration, RequestChallengeResponse, Url, Uuid, Webauthn, WebauthnBuilder, WebauthnError,
};

pub use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};

use super::mfa::{ChallengePurpose, client_digest, new_recovery_codes};
use super::sessions::{BrowserLogin, Renewing};
use super::{AuthService, ClientInfo, TokenGrant, event, now};
use crate::auth::onetime;
use crate::auth::ratelimit::Action;
use crate::domain::{PasskeyName, User, UserId, ValidationError};
use crate::error::{Error, Result};
use crate::storage::StorageError;
use crate::storage::audit::{FAILURE, SUCCESS};
use crate::storage::passkeys::{PasskeyCeremony, PasskeyRecord, PasskeyUse};

/// How long a ceremony can be finished, seconds (also the timeout the browser is given).
pub const CEREMONY_TTL_SECS: i64 = 300;
/// Most passkeys one account can have: each is read at every second-factor sign-in.
pub const MAX_PASSKEYS: usize = 20;

const KIND_REGISTRATION: &str = "registration";
const KIND_LOGIN: &str = "login";
const KIND_MFA: &str = "mfa";

/// The relying party: who passkeys are made for.
pub struct RelyingParty {
    webauthn: Webauthn,
    /// The RP id (the public URL's host).
    pub id: String,
    /// The origin browsers must report.
    pub origin: String,
}

impl std::fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelyingParty").field("id", &self.id).field("origin", &self.origin).finish()
    }
}

impl RelyingParty {
    /// The relying party for `public_url`: its host is the RP id, its origin the only
    /// origin accepted. `Ok(None)` when the host is an IP address: browsers accept only
    /// a domain as RP id (for development, `http://localhost:PORT` works: browsers treat
    /// localhost as a secure context).
    ///
    /// # Errors
    /// A URL that cannot be parsed or that webauthn-rs refuses.
    pub fn for_public_url(public_url: &str) -> anyhow::Result<Option<Self>> {
        let url = Url::parse(public_url).map_err(|e| anyhow::anyhow!("GATEPASS_PUBLIC_URL {public_url:?}: {e}"))?;
        let Some(host) = url.domain().map(str::to_owned) else { return Ok(None) };
        let origin_text = url.origin().ascii_serialization();
        let origin = Url::parse(&origin_text)?;
        let webauthn = WebauthnBuilder::new(&host, &origin)
            .and_then(|b| {
                b.rp_name("gatepass").timeout(std::time::Duration::from_secs(CEREMONY_TTL_SECS as u64)).build()
            })
            .map_err(|e| anyhow::anyhow!("passkeys cannot use GATEPASS_PUBLIC_URL {public_url:?}: {e}"))?;
        Ok(Some(Self { webauthn, id: host, origin: origin_text }))
    }
}

/// The options of a started ceremony and the handle that finishes it.
#[derive(Debug)]
pub struct Started<T> {
    /// Sent back with the finish.
    pub ceremony: String,
    /// The `PublicKeyCredential*Options` for `navigator.credentials`.
    pub options: T,
}

/// A passkey was added.
#[derive(Debug)]
pub struct Added {
    /// The new passkey.
    pub passkey: PasskeyRecord,
    /// Ten recovery codes when this was the account's first second factor (shown once).
    pub recovery_codes: Option<Vec<String>>,
}

/// The RFC 8176 `amr` of a passkey sign-in: `hwk` for a key that cannot leave its device
/// (not backup eligible), `swk` for one that may be synced; `pwd` first when a password
/// was entered too; `mfa` when the authenticator verified the user (PIN or biometrics)
/// or a password came first, since either way two factors were shown.
pub fn passkey_amr(backup_eligible: bool, user_verified: bool, with_password: bool) -> Vec<String> {
    let mut amr = Vec::with_capacity(3);
    if with_password {
        amr.push("pwd".to_owned());
    }
    amr.push(if backup_eligible { "swk" } else { "hwk" }.to_owned());
    if with_password || user_verified {
        amr.push("mfa".to_owned());
    }
    amr
}

/// The user handle passkeys carry for an account: its id when that is a UUID (as gatepass
/// makes them), otherwise a UUID derived from it.
fn user_handle(user_id: &str) -> Uuid {
    Uuid::parse_str(user_id).unwrap_or_else(|_| {
        let d = Sha256::digest(user_id.as_bytes());
        let mut b = [0u8; 16];
        b.copy_from_slice(&d[..16]);
        uuid::Builder::from_custom_bytes(b).into_uuid()
    })
}

/// Hex SHA-256 of a ceremony handle.
fn handle_digest(handle: &str) -> String {
    Sha256::digest(handle.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn ceremony_invalid() -> Error {
    Error::BadRequest("the ceremony is unknown, was already used or has expired: start again".into())
}

/// Serialises ceremony state; webauthn-rs's types do not fail to serialise.
fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Internal(format!("serialise passkey state: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| Error::Internal(format!("stored passkey state unreadable: {e}")))
}

/// The stored credential with the counter the database holds (the authoritative one, moved
/// only by compare-and-swap), so webauthn-rs checks the new counter against it.
fn credential_at(record: &PasskeyRecord) -> Result<Passkey> {
    let mut v: serde_json::Value = from_json(&record.credential)?;
    let counter = u32::try_from(record.sign_count).unwrap_or(u32::MAX);
    if let Some(c) = v.get_mut("cred").and_then(|c| c.as_object_mut()) {
        c.insert("counter".into(), counter.into());
    }
    serde_json::from_value(v).map_err(|e| Error::Internal(format!("stored passkey unreadable: {e}")))
}

/// The signature counter an assertion reports (authenticator data bytes 33–36), for the
/// audit trail.
fn reported_counter(credential: &PublicKeyCredential) -> Option<u32> {
    let data = credential.response.authenticator_data.get(33..37)?;
    Some(u32::from_be_bytes([data[0], data[1], data[2], data[3]]))
}

/// Runs a WebAuthn check (signature verification) off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Internal(format!("passkey check panicked: {e}")))
}

impl AuthService {
    fn relying_party(&self) -> Result<Arc<RelyingParty>> {
        self.rp.clone().ok_or(Error::PasskeysUnavailable)
    }

    /// The caller's passkeys, oldest first.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn passkeys(&self, claims: &AccessClaims) -> Result<Vec<PasskeyRecord>> {
        Ok(self.core.storage.passkeys(&claims.sub).await?)
    }

    /// Whether the account has a passkey (a second factor).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn has_passkey(&self, user_id: &str) -> Result<bool> {
        Ok(self.core.storage.passkey_count(user_id).await? > 0)
    }

    async fn put_ceremony(
        &self,
        id: String,
        kind: &str,
        user_id: Option<&str>,
        client: &ClientInfo,
        state: String,
    ) -> Result<()> {
        let t = now();
        let ceremony = PasskeyCeremony {
            id,
            kind: kind.to_owned(),
            user_id: user_id.map(str::to_owned),
            client_hash: client_digest(client, ChallengePurpose::Login),
            state,
            created_at: t,
            expires_at: t + CEREMONY_TTL_SECS,
        };
        Ok(self.core.storage.put_passkey_ceremony(&ceremony).await?)
    }

    /// Starts adding a passkey to the caller's account: creation options (a resident,
    /// user-verifying credential; the account's passkeys excluded) and the ceremony handle.
    ///
    /// # Errors
    /// [`Error::PasskeysUnavailable`]; a validation error at [`MAX_PASSKEYS`]; storage errors.
    pub async fn passkey_registration_start(
        &self,
        claims: &AccessClaims,
        client: &ClientInfo,
    ) -> Result<Started<serde_json::Value>> {
        let rp = self.relying_party()?;
        let user = self.current_user(claims).await?;
        let existing = self.core.storage.passkeys(&claims.sub).await?;
        if existing.len() >= MAX_PASSKEYS {
            return Err(ValidationError::new("passkeys", format!("an account can have at most {MAX_PASSKEYS}")).into());
        }
        let mut exclude = Vec::with_capacity(existing.len());
        for p in &existing {
            exclude.push(credential_at(p)?.cred_id().clone());
        }
        let name = user.username.as_str();
        let (ccr, state): (CreationChallengeResponse, PasskeyRegistration) = rp
            .webauthn
            .start_passkey_registration(user_handle(user.id.as_str()), name, name, Some(exclude))
            .map_err(|e| Error::Internal(format!("start passkey registration: {e}")))?;
        let mut options = serde_json::to_value(&ccr).map_err(|e| Error::Internal(e.to_string()))?;
        // Passwordless sign-in finds the account from the credential alone, so the
        // credential must be discoverable (stored on the authenticator with the user handle).
        if let Some(sel) = options.pointer_mut("/publicKey/authenticatorSelection").and_then(|s| s.as_object_mut()) {
            sel.insert("residentKey".into(), "required".into());
            sel.insert("requireResidentKey".into(), true.into());
        }
        let (handle, _) = onetime::generate();
        self.put_ceremony(handle_digest(&handle), KIND_REGISTRATION, Some(&claims.sub), client, to_json(&state)?)
            .await?;
        Ok(Started { ceremony: handle, options })
    }

    /// Finishes adding a passkey: takes the ceremony (once), checks it belongs to the
    /// caller, verifies the authenticator's answer and stores the passkey under `name`.
    /// The account's first second factor comes with ten recovery codes, as for an app.
    ///
    /// # Errors
    /// [`Error::Validation`] for a bad name or a credential the ceremony refuses;
    /// [`Error::PasskeyNameTaken`]; [`Error::BadRequest`] for an unknown, used, expired or
    /// foreign ceremony; storage errors.
    pub async fn passkey_registration_finish(
        &self,
        claims: &AccessClaims,
        ceremony: &str,
        name: &str,
        credential: RegisterPublicKeyCredential,
        client: &ClientInfo,
    ) -> Result<Added> {
        let rp = self.relying_party()?;
        let name = PasskeyName::parse(name)?;
        // Checked before the ceremony is used, so a taken name can be corrected and retried.
        if self.core.storage.passkeys(&claims.sub).await?.iter().any(|p| p.name == name.as_str()) {
            return Err(Error::PasskeyNameTaken);
        }
        let Some(digest) = onetime::parse(ceremony).map(|_| handle_digest(ceremony)) else {
            return Err(ceremony_invalid());
        };
        let Some(taken) = self.core.storage.take_passkey_ceremony(&digest, KIND_REGISTRATION, now()).await? else {
            return Err(ceremony_invalid());
        };
        if taken.user_id.as_deref() != Some(claims.sub.as_str()) {
            return Err(ceremony_invalid());
        }
        let state: PasskeyRegistration = from_json(&taken.state)?;
        let rp2 = rp.clone();
        let verified = blocking(move || rp2.webauthn.finish_passkey_registration(&credential, &state)).await?;
        let passkey = match verified {
            Ok(p) => p,
            Err(e) => {
                let ev = event("passkey_registration_failed", FAILURE, client).actor(&claims.sub).subject(&claims.sub);
                self.core.audit(ev.detail(serde_json::json!({ "reason": e.to_string() }))).await;
                return Err(ValidationError::new("credential", format!("was refused: {e}")).into());
            }
        };
        let credential = to_json(&passkey)?;
        let flags: serde_json::Value = from_json(&credential)?;
        let flag = |k: &str| flags.pointer(&format!("/cred/{k}")).and_then(|v| v.as_bool()).unwrap_or(false);
        let t = now();
        let record = PasskeyRecord {
            id: uuid::Uuid::now_v7().to_string(),
            user_id: claims.sub.clone(),
            name: name.as_str().to_owned(),
            credential_id: URL_SAFE_NO_PAD.encode::<&[u8]>(passkey.cred_id().as_ref()),
            credential,
            sign_count: flags.pointer("/cred/counter").and_then(|v| v.as_i64()).unwrap_or(0),
            backup_eligible: flag("backup_eligible"),
            backup_state: flag("backup_state"),
            created_at: t,
            last_used_at: None,
        };
        let (codes, hashes) = new_recovery_codes();
        let codes_stored = match self.core.storage.add_passkey(&record, &hashes).await {
            Ok(stored) => stored,
            Err(StorageError::Conflict) => {
                let mine = self.core.storage.passkeys(&claims.sub).await?;
                if mine.iter().any(|p| p.name == record.name) {
                    return Err(Error::PasskeyNameTaken);
                }
                return Err(ValidationError::new("credential", "this passkey is already registered").into());
            }
            Err(e) => return Err(e.into()),
        };
        let ev = event("passkey_added", SUCCESS, client).actor(&claims.sub).subject(&claims.sub);
        let detail =
            serde_json::json!({ "passkey": record.id, "name": record.name, "backup_eligible": record.backup_eligible });
        self.core.audit(ev.detail(detail)).await;
        if let Ok(user) = self.current_user(claims).await {
            let what = format!("A passkey (\"{}\") was added", record.name);
            self.core.notify_mfa(&user, "passkey_added", "Passkey added", what).await;
        }
        Ok(Added { passkey: record, recovery_codes: codes_stored.then_some(codes) })
    }

    /// Renames one of the caller's passkeys.
    ///
    /// # Errors
    /// [`Error::Validation`]; [`Error::PasskeyNameTaken`]; [`Error::NotFound`].
    pub async fn passkey_rename(&self, claims: &AccessClaims, id: &str, name: &str, client: &ClientInfo) -> Result<()> {
        let name = PasskeyName::parse(name)?;
        match self.core.storage.rename_passkey(&claims.sub, id, name.as_str()).await {
            Ok(true) => {}
            Ok(false) => return Err(Error::NotFound),
            Err(StorageError::Conflict) => return Err(Error::PasskeyNameTaken),
            Err(e) => return Err(e.into()),
        }
        let ev = event("passkey_renamed", SUCCESS, client).actor(&claims.sub).subject(&claims.sub);
        self.core.audit(ev.detail(serde_json::json!({ "passkey": id, "name": name.as_str() }))).await;
        Ok(())
    }

    /// Removes one of the caller's passkeys; needs the same step-up as removing the app:
    /// a fresh sign-in that included a second factor. The recovery codes go with the last
    /// factor.
    ///
    /// # Errors
    /// [`Error::FreshLoginRequired`]; [`Error::NotFound`].
    pub async fn passkey_remove(&self, claims: &AccessClaims, id: &str, client: &ClientInfo) -> Result<()> {
        let mine = self.core.storage.passkeys(&claims.sub).await?;
        let Some(p) = mine.iter().find(|p| p.id == id) else { return Err(Error::NotFound) };
        self.require_fresh(claims)?;
        if !claims.is_mfa() {
            return Err(Error::FreshLoginRequired);
        }
        if !self.core.storage.remove_passkey(&claims.sub, id).await? {
            return Err(Error::NotFound);
        }
        let ev = event("passkey_removed", SUCCESS, client).actor(&claims.sub).subject(&claims.sub);
        self.core.audit(ev.detail(serde_json::json!({ "passkey": id, "name": p.name }))).await;
        if let Ok(user) = self.current_user(claims).await {
            let what = format!("A passkey (\"{}\") was removed", p.name);
            self.core.notify_mfa(&user, "passkey_removed", "Passkey removed", what).await;
        }
        Ok(())
    }

    /// Starts a passwordless sign-in: request options for a discoverable credential (no
    /// `allowCredentials`, `mediation: "conditional"` for the browser's autofill) and the
    /// ceremony handle, bound to this client. Passes the client's login rate limit.
    ///
    /// # Errors
    /// [`Error::PasskeysUnavailable`]; [`Error::RateLimited`]; storage errors.
    pub async fn passkey_login_start(&self, client: &ClientInfo) -> Result<Started<RequestChallengeResponse>> {
        let rp = self.relying_party()?;
        self.throttle(Action::Login, client, None).await?;
        let (options, state): (RequestChallengeResponse, DiscoverableAuthentication) = rp
            .webauthn
            .start_discoverable_authentication()
            .map_err(|e| Error::Internal(format!("start passkey sign-in: {e}")))?;
        let (handle, _) = onetime::generate();
        self.put_ceremony(handle_digest(&handle), KIND_LOGIN, None, client, to_json(&state)?).await?;
        Ok(Started { ceremony: handle, options })
    }

    /// Audits a refused passkey sign-in.
    async fn refuse_login(&self, client: &ClientInfo, user_id: Option<&str>, reason: &str) {
        let mut ev =
            event("login_failed", FAILURE, client).detail(serde_json::json!({ "reason": reason, "method": "passkey" }));
        if let Some(id) = user_id {
            ev = ev.actor(id).subject(id);
        }
        self.core.audit(ev).await;
    }

    /// Finishes a passwordless sign-in: takes the ceremony (once), checks the client, finds
    /// the account by the credential, passes the same gate as a password (rate limits and
    /// the account's back-off), verifies the assertion and the counter, and starts a
    /// session. Every refusal is [`Error::InvalidCredentials`].
    ///
    /// # Errors
    /// [`Error::InvalidCredentials`]; [`Error::RateLimited`]; storage errors.
    pub async fn passkey_login_finish(
        &self,
        ceremony: &str,
        credential: PublicKeyCredential,
        client: &ClientInfo,
        browser: Option<BrowserLogin<'_>>,
    ) -> Result<TokenGrant> {
        let rp = self.relying_party()?;
        self.throttle(Action::Login, client, None).await?;
        let taken = match onetime::parse(ceremony) {
            Some(_) => self.core.storage.take_passkey_ceremony(&handle_digest(ceremony), KIND_LOGIN, now()).await?,
            None => None,
        };
        let Some(taken) = taken else {
            self.refuse_login(client, None, "ceremony_invalid").await;
            return Err(Error::InvalidCredentials);
        };
        if !onetime::matches(&taken.client_hash, &client_digest(client, ChallengePurpose::Login)) {
            self.refuse_login(client, None, "other_client").await;
            return Err(Error::InvalidCredentials);
        }
        let credential_id = URL_SAFE_NO_PAD.encode(&credential.raw_id);
        let Some(record) = self.core.storage.passkey_by_credential_id(&credential_id).await? else {
            self.refuse_login(client, None, "unknown_passkey").await;
            return Err(Error::InvalidCredentials);
        };
        let user = self.core.storage.user_by_id(&UserId::from_trusted(record.user_id.clone())).await?;
        let Some(user) = user.filter(|u| !u.disabled) else {
            self.refuse_login(client, Some(&record.user_id), "account_unavailable").await;
            return Err(Error::InvalidCredentials);
        };
        let device = Self::recognised(self.device_of(client).as_ref(), user.id.as_str());
        let attempt = self.password_gate(Action::Login, user.username.as_str(), client, device).await?;
        let state: DiscoverableAuthentication = from_json(&taken.state)?;
        let reported = reported_counter(&credential);
        let handle_ok = credential.get_user_unique_id().is_some_and(|h| h == user_handle(user.id.as_str()).as_bytes());
        let verdict = if handle_ok {
            let passkey = credential_at(&record)?;
            let rp2 = rp.clone();
            blocking(move || rp2.webauthn.finish_discoverable_authentication_v2(&credential, state, &passkey)).await?
        } else {
            Err(WebauthnError::InvalidUserUniqueId)
        };
        let accepted = self.accept_use(&record, verdict, reported, client).await?;
        let outcome = match &accepted {
            Some(_) => Ok(user),
            None => Err(Error::InvalidCredentials),
        };
        let user = match self.note_attempt(&attempt, outcome).await {
            Ok(user) => user,
            Err(e) => {
                metrics::counter!("gatepass_logins_total", "outcome" => "failed").increment(1);
                self.refuse_login(client, Some(&record.user_id), "passkey_refused").await;
                return Err(e);
            }
        };
        let Some(result) = accepted else { return Err(Error::InvalidCredentials) };
        metrics::counter!("gatepass_logins_total", "outcome" => "ok").increment(1);
        let amr = passkey_amr(result.backup_eligible(), result.user_verified(), false);
        let ev = event("login", SUCCESS, client).actor(user.id.as_str()).subject(user.id.as_str());
        self.core.audit(ev.detail(serde_json::json!({ "method": "passkey", "passkey": record.id, "amr": amr }))).await;
        let known = Self::recognised(self.device_of(client).as_ref(), user.id.as_str()).is_some();
        let held = browser.and_then(|b| b.held);
        let mut grant = self.start_session(user, now(), &amr, client, Renewing::Held(held)).await?;
        let device = self.device_of(client);
        grant.device = Some(self.devices.remember(device.as_ref(), grant.user.id.as_str()));
        if browser.is_some() && !known {
            self.core.notify_new_device(&grant.user, client).await;
        }
        Ok(grant)
    }

    /// Settles a verified (or refused) assertion for `record`: a counter that went back is
    /// audited as a cloned authenticator; an accepted one moves the stored counter by
    /// compare-and-swap (a concurrent use of the same counter value loses). `None` when
    /// refused.
    async fn accept_use(
        &self,
        record: &PasskeyRecord,
        verdict: std::result::Result<AuthenticationResult, WebauthnError>,
        reported: Option<u32>,
        client: &ClientInfo,
    ) -> Result<Option<AuthenticationResult>> {
        let result = match verdict {
            Ok(r) => r,
            Err(WebauthnError::CredentialPossibleCompromise) => {
                let ev =
                    event("passkey_clone_suspected", FAILURE, client).actor(&record.user_id).subject(&record.user_id);
                let detail = serde_json::json!({
                    "passkey": record.id,
                    "stored_counter": record.sign_count,
                    "reported_counter": reported,
                });
                self.core.audit(ev.detail(detail)).await;
                tracing::warn!(passkey = %record.id, "passkey counter went back: possibly a cloned authenticator");
                return Ok(None);
            }
            Err(e) => {
                tracing::debug!(error = %e, "passkey assertion refused");
                return Ok(None);
            }
        };
        let mut passkey = credential_at(record)?;
        passkey.update_credential(&result);
        let credential = to_json(&passkey)?;
        let used = PasskeyUse {
            id: &record.id,
            old_count: record.sign_count,
            new_count: i64::from(result.counter()),
            credential: &credential,
            backup_state: result.backup_state(),
            now: now(),
        };
        if !self.core.storage.record_passkey_use(used).await? {
            return Ok(None);
        }
        let ev = event("passkey_used", SUCCESS, client).actor(&record.user_id).subject(&record.user_id);
        self.core.audit(ev.detail(serde_json::json!({ "passkey": record.id }))).await;
        Ok(Some(result))
    }

    /// Request options for answering a second-step challenge with a passkey: the
    /// account's passkeys as `allowCredentials`. The challenge is not used up (the answer
    /// goes to `/api/login/mfa`), but must be live and come from the client that got it.
    ///
    /// # Errors
    /// [`Error::InvalidCredentials`] for an unknown, expired or foreign challenge or an
    /// account without passkeys; [`Error::PasskeysUnavailable`]; storage errors.
    pub async fn passkey_mfa_options(&self, challenge: &str, client: &ClientInfo) -> Result<RequestChallengeResponse> {
        let rp = self.relying_party()?;
        let Some(digest) = onetime::parse(challenge) else { return Err(Error::InvalidCredentials) };
        let Some(c) = self.core.storage.peek_mfa_challenge(&digest, now()).await? else {
            return Err(Error::InvalidCredentials);
        };
        if !onetime::matches(&c.client_hash, &client_digest(client, ChallengePurpose::Login)) {
            return Err(Error::InvalidCredentials);
        }
        let records = self.core.storage.passkeys(&c.user_id).await?;
        if records.is_empty() {
            return Err(Error::InvalidCredentials);
        }
        let passkeys = records.iter().map(credential_at).collect::<Result<Vec<_>>>()?;
        let (options, state): (RequestChallengeResponse, PasskeyAuthentication) = rp
            .webauthn
            .start_passkey_authentication(&passkeys)
            .map_err(|e| Error::Internal(format!("start passkey check: {e}")))?;
        // Keyed by the login challenge: asking again replaces the options, and the second
        // step takes them together with the challenge.
        self.put_ceremony(digest, KIND_MFA, Some(&c.user_id), client, to_json(&state)?).await?;
        Ok(options)
    }

    /// Checks a passkey assertion as the second factor of `user` for the login challenge
    /// whose digest is `challenge_digest` (already taken by the caller). Returns the
    /// session's `amr` when accepted.
    pub(crate) async fn check_passkey_factor(
        &self,
        user: &User,
        challenge_digest: &str,
        credential: &PublicKeyCredential,
        client: &ClientInfo,
    ) -> Result<Option<Vec<String>>> {
        let rp = self.relying_party()?;
        let Some(taken) = self.core.storage.take_passkey_ceremony(challenge_digest, KIND_MFA, now()).await? else {
            return Ok(None);
        };
        if taken.user_id.as_deref() != Some(user.id.as_str()) {
            return Ok(None);
        }
        let credential_id = URL_SAFE_NO_PAD.encode(&credential.raw_id);
        let Some(record) = self.core.storage.passkey_by_credential_id(&credential_id).await? else { return Ok(None) };
        if record.user_id != user.id.as_str() {
            return Ok(None);
        }
        let state: PasskeyAuthentication = from_json(&taken.state)?;
        let reported = reported_counter(credential);
        let credential = credential.clone();
        let verdict = blocking(move || rp.webauthn.finish_passkey_authentication(&credential, &state)).await?;
        let Some(result) = self.accept_use(&record, verdict, reported, client).await? else { return Ok(None) };
        Ok(Some(passkey_amr(result.backup_eligible(), result.user_verified(), true)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amr_follows_the_backup_flag_and_counts_two_factors() {
        assert_eq!(passkey_amr(false, true, false), ["hwk", "mfa"]);
        assert_eq!(passkey_amr(true, true, false), ["swk", "mfa"]);
        assert_eq!(passkey_amr(true, false, false), ["swk"]);
        assert_eq!(passkey_amr(false, false, true), ["pwd", "hwk", "mfa"]);
    }

    #[test]
    fn the_relying_party_is_the_public_urls_host() {
        let rp = RelyingParty::for_public_url("http://localhost:8080").unwrap().unwrap();
        assert_eq!((rp.id.as_str(), rp.origin.as_str()), ("localhost", "http://localhost:8080"));
        let rp = RelyingParty::for_public_url("https://auth.example.com/").unwrap().unwrap();
        assert_eq!((rp.id.as_str(), rp.origin.as_str()), ("auth.example.com", "https://auth.example.com"));
        assert!(RelyingParty::for_public_url("http://127.0.0.1:8080").unwrap().is_none());
        assert!(RelyingParty::for_public_url("http://[::1]:8080").unwrap().is_none());
    }

    #[test]
    fn user_handles_are_the_uuid_or_derived_from_the_id() {
        let id = uuid::Uuid::now_v7();
        assert_eq!(user_handle(&id.to_string()), id);
        assert_eq!(user_handle("legacy-id"), user_handle("legacy-id"));
        assert_ne!(user_handle("legacy-id"), user_handle("legacy-id2"));
    }
}
