//! The use cases: the only code that combines storage with credentials, and the only code
//! that touches storage at all. Handlers and the command line call these and shape the
//! answers; nothing here knows about HTTP.
//!
//! One use case per file: [`login`] (throttling gate, password check, step-up), [`backoff`]
//! (where the failed-login records live and how they change),
//! [`sessions`] (start, refresh, authenticate, logout, revoke, sweep), [`accounts`]
//! (register, create, change password, the one `set_password`), [`admin`] (listing and
//! changing accounts, the audit trail), [`audit_chain`] (the keyed audit chain: its anchor
//! and its check), [`console`] (what only the admin console asks: overview, account search), [`settings`] (runtime settings and their one reload), [`sync`]
//! (following other writers), [`keys`] (signing keys), [`key_revocation`] (revoking a
//! signing key in an emergency), [`import`] (accounts from another database), [`mail`]
//! (composing mail, the outbox sender), [`email`] (verifying and changing addresses,
//! notices), [`recovery`] (forgotten passwords), [`mfa`] (second factors and the
//! second login step), [`passkeys`] (WebAuthn credentials and their ceremonies) and [`oauth`] (gatepass as an OAuth 2.1 / OpenID Connect provider). A new feature gets a file of its own
//! here.

use gatepass_verify::Verifier;
use std::sync::{Arc, RwLock};

use crate::auth::device::{DeviceCookies, PresentedDevice};
use crate::auth::ratelimit::{Limiter, LocalLimiter};
use crate::auth::refresh::RefreshTokens;
use crate::auth::tokens::IssuedToken;
use crate::auth::verified_cache::VerifiedCache;
use crate::auth::{PasswordHasher, RevocationSet, TokenIssuer};
use crate::domain::User;
use crate::storage::Storage;
use crate::storage::audit::{AuditEvent, AuditKey};

pub mod accounts;
pub mod admin;
pub mod audit_chain;
pub mod backoff;
pub mod console;
pub mod email;
pub mod health;
pub mod import;
pub mod instances;
pub mod key_revocation;
pub mod keys;
pub mod login;
pub mod mail;
pub mod mfa;
pub mod mfa_enrolment;
pub mod oauth;
pub mod passkeys;
pub mod recovery;
pub mod revocation_feed;
pub mod sessions;
pub mod settings;
pub mod sync;

pub use admin::Actor;
pub use keys::KeyManagement;
pub use sessions::LogoutScope;
pub use settings::RuntimeSettings;

use crate::domain::clock::now;

/// The `amr` (RFC 8176) of a session started with a password alone.
pub(crate) fn pwd_amr() -> Vec<String> {
    vec!["pwd".to_owned()]
}

/// The `amr` of the session `claims` belong to; a token without one was a password sign-in.
pub(crate) fn amr_of(claims: &gatepass_verify::AccessClaims) -> Vec<String> {
    if claims.amr.is_empty() { pwd_amr() } else { claims.amr.clone() }
}

/// Fixed session rules.
#[derive(Debug, Clone)]
pub struct SessionPolicy {
    /// Absolute session lifetime, seconds.
    pub session_max_age: i64,
    /// Refresh reuse grace window, seconds.
    pub reuse_grace: i64,
    /// How recent `auth_time` must be for sensitive actions, seconds.
    pub fresh_auth_max_age: i64,
}

/// Who is calling, as far as the network tells.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// Client IP address.
    pub ip: Option<String>,
    /// `User-Agent`, truncated.
    pub user_agent: Option<String>,
    /// The device cookie the browser sent, unverified (the service checks it).
    pub device: Option<PresentedDevice>,
}

/// Tokens handed to a client after login, registration, refresh or password change.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    /// The account.
    pub user: User,
    /// The access token and its claims.
    pub access: IssuedToken,
    /// The refresh token (opaque; shown once).
    pub refresh_token: String,
    /// Access-token lifetime in seconds.
    pub expires_in: i64,
    /// After a password sign-in (login, registration): the device cookie value that makes
    /// this browser recognised for the account. Set only where tokens go into cookies.
    pub device: Option<String>,
}

/// The part of the service that needs no signing keys: storage, password hashing, the
/// revocations in force and the runtime settings. The server's [`AuthService`] is built
/// on one; the command line works with one alone (it changes accounts in the data
/// directory, and a running server picks the changes up from storage).
pub struct Core {
    storage: Arc<dyn Storage>,
    /// The audit chain's key (derived from the master key).
    audit_key: AuditKey,
    hasher: PasswordHasher,
    revocations: RevocationSet,
    /// Flags and environment: what stored settings are laid over on every reload.
    configured: RuntimeSettings,
    settings: RwLock<RuntimeSettings>,
    /// Held while the settings in memory change, so that changes apply in order.
    settings_updates: tokio::sync::Mutex<()>,
    /// How mail is built (links, sender, notices).
    mail: mail::MailConfig,
    /// Wakes this instance's outbox sender when a mail was queued.
    outbox_wake: tokio::sync::Notify,
    /// Publishes the revocation log to this instance's feed subscribers.
    feed: revocation_feed::FeedHub,
    /// The health check's last verdict.
    health: health::HealthProbe,
    /// The audit chain's last whole check.
    chain_check: audit_chain::LastCheck,
}

impl Core {
    /// Opens the core over `storage` with the configured settings, then lays the stored
    /// ones over them, and opens the audit trail for appends under `audit_key` (see
    /// [`audit_chain`]). Its errors say what is wrong, since they stop start-up (or the
    /// command) rather than reach a client.
    ///
    /// # Errors
    /// When the stored settings cannot be read; when the audit chain's anchor does not
    /// verify under `audit_key` (another master key, or an altered anchor).
    pub async fn open(
        storage: Arc<dyn Storage>,
        hasher: PasswordHasher,
        configured: RuntimeSettings,
        audit_key: AuditKey,
    ) -> anyhow::Result<Self> {
        audit_chain::open(storage.as_ref(), &audit_key).await?;
        let core = Self {
            storage,
            audit_key,
            hasher,
            revocations: RevocationSet::new(),
            settings: RwLock::new(configured.clone()),
            configured,
            settings_updates: tokio::sync::Mutex::const_new(()),
            mail: mail::MailConfig::default(),
            outbox_wake: tokio::sync::Notify::new(),
            feed: revocation_feed::FeedHub::new(revocation_feed::DEFAULT_BUFFER),
            health: health::HealthProbe::new(),
            chain_check: audit_chain::LastCheck::default(),
        };
        core.reload_settings().await?;
        Ok(core)
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        self.storage.backend()
    }

    /// The password hasher.
    pub fn hasher(&self) -> &PasswordHasher {
        &self.hasher
    }

    /// The revocations in force on this instance.
    pub fn revocations(&self) -> &RevocationSet {
        &self.revocations
    }

    /// Appends a security event to the audit trail. A failed append is logged, not
    /// returned: the action it records has already happened.
    pub async fn audit(&self, event: AuditEvent) {
        if let Err(e) = self.storage.append_audit(&event, now()).await {
            tracing::error!(error = %e, event = %event.event, "could not append to the audit trail");
        }
    }
}

/// The account and session service of a running server: the [`Core`] plus what tokens
/// need (issuer, verifier, refresh-token material, signing keys) and throttling.
pub struct AuthService {
    core: Core,
    issuer: TokenIssuer,
    verifier: Arc<Verifier>,
    refresh: RefreshTokens,
    policy: SessionPolicy,
    keys: KeyManagement,
    limiter: Arc<dyn Limiter>,
    devices: DeviceCookies,
    verified: VerifiedCache,
    /// The WebAuthn relying party; `None` when the public URL cannot be one.
    rp: Option<Arc<passkeys::RelyingParty>>,
    oauth: oauth::Provider,
}

impl AuthService {
    /// Assembles the service.
    pub fn new(
        core: Core,
        issuer: TokenIssuer,
        verifier: Arc<Verifier>,
        refresh: RefreshTokens,
        policy: SessionPolicy,
    ) -> Self {
        Self {
            core,
            issuer,
            verifier,
            refresh,
            policy,
            keys: KeyManagement::default(),
            limiter: Arc::new(LocalLimiter::default()),
            devices: DeviceCookies::ephemeral(),
            verified: VerifiedCache::default(),
            rp: None,
            oauth: oauth::Provider::default(),
        }
    }

    /// Sets how signing keys are managed (algorithm, master key, rotation timing).
    pub fn with_key_management(mut self, keys: KeyManagement) -> Self {
        self.keys = keys;
        self
    }

    /// Sets how many entries a revocation-feed subscriber may fall behind before it is
    /// dropped (the per-connection buffer).
    pub fn with_feed_buffer(mut self, buffer: usize) -> Self {
        self.core.feed = revocation_feed::FeedHub::new(buffer);
        self
    }

    /// Sets the OAuth provider (see [`oauth::Provider`]); its key is loaded separately.
    pub fn with_oauth(mut self, provider: oauth::Provider) -> Self {
        self.oauth = provider;
        self
    }

    /// Replaces the throttling backend (a shared one when several instances run).
    pub fn with_limiter(mut self, limiter: Arc<dyn Limiter>) -> Self {
        self.limiter = limiter;
        self
    }

    /// Sets the device-cookie key (derived from the server secret, so that every instance
    /// and every restart recognises the same browsers; until then a key of this process).
    pub fn with_device_cookies(mut self, devices: DeviceCookies) -> Self {
        self.devices = devices;
        self
    }

    /// Turns passkeys on for this relying party.
    pub fn with_relying_party(mut self, rp: passkeys::RelyingParty) -> Self {
        self.rp = Some(Arc::new(rp));
        self
    }

    /// Account administration, settings and the audit trail.
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// The throttling backend.
    pub fn limiter(&self) -> &Arc<dyn Limiter> {
        &self.limiter
    }

    /// The token verifier (shared with extractors).
    pub fn verifier(&self) -> &Arc<Verifier> {
        &self.verifier
    }

    /// The token issuer.
    pub fn issuer(&self) -> &TokenIssuer {
        &self.issuer
    }

    /// Session rules.
    pub fn policy(&self) -> &SessionPolicy {
        &self.policy
    }

    /// Current runtime settings.
    pub fn settings(&self) -> RuntimeSettings {
        self.core.settings()
    }
}

/// An audit event carrying the client's network details.
pub(crate) fn event(name: &str, outcome: &str, client: &ClientInfo) -> AuditEvent {
    AuditEvent::new(name, outcome).client(client.ip.as_deref(), client.user_agent.as_deref())
}
