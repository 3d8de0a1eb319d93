//! Account and session operations: the only place that combines storage and credentials.
//! Handlers call these and shape the responses; nothing here knows about HTTP.

use gatepass_verify::{AccessClaims, Verifier, VerifyError};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::auth::passwords::Verified;
use crate::auth::ratelimit::{self, Action, Limiter, LocalLimiter, RateLimitSettings};
use crate::auth::refresh::RefreshTokens;
use crate::auth::tokens::IssuedToken;
use crate::auth::verified_cache::VerifiedCache;
use crate::auth::{PasswordHasher, RevocationSet, TokenIssuer};
use crate::domain::{Email, Password, PasswordPolicy, Revocation, Roles, User, UserId, Username};
use crate::error::{Error, Result};
use crate::storage::audit::{AuditEvent, FAILURE, SUCCESS};
use crate::storage::{RevokedSession, RotateRequest, Rotation, SessionFilter, SessionRecord, Storage, StorageError};

mod keys;
pub use keys::{KeyManagement, ensure_signing_key as keys_ensure, rotate_signing_key};

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Settings that can change while the server runs (persisted by the admin API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeSettings {
    /// Access-token lifetime, seconds.
    pub access_token_ttl: i64,
    /// Refresh-token lifetime, seconds.
    pub refresh_token_ttl: i64,
    /// Whether self-registration is allowed.
    pub registration_open: bool,
    /// Throttling of credential endpoints.
    pub rate_limit: RateLimitSettings,
    /// Shortest new password accepted, bytes.
    pub password_min_length: usize,
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
}

/// Which sessions logout ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutScope {
    /// The current session.
    Local,
    /// Every session of the user.
    Global,
    /// Every session but the current one.
    Others,
}

/// The account and session service.
pub struct AuthService {
    storage: Arc<dyn Storage>,
    hasher: PasswordHasher,
    issuer: TokenIssuer,
    verifier: Arc<Verifier>,
    refresh: RefreshTokens,
    revocations: RevocationSet,
    settings: RwLock<RuntimeSettings>,
    policy: SessionPolicy,
    keys: KeyManagement,
    limiter: Arc<dyn Limiter>,
    verified: VerifiedCache,
}

impl AuthService {
    /// Assembles the service.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        storage: Arc<dyn Storage>,
        hasher: PasswordHasher,
        issuer: TokenIssuer,
        verifier: Arc<Verifier>,
        refresh: RefreshTokens,
        settings: RuntimeSettings,
        policy: SessionPolicy,
    ) -> Self {
        Self {
            storage,
            hasher,
            issuer,
            verifier,
            refresh,
            revocations: RevocationSet::new(),
            settings: RwLock::new(settings),
            policy,
            keys: KeyManagement::default(),
            limiter: Arc::new(LocalLimiter::default()),
            verified: VerifiedCache::default(),
        }
    }

    /// Sets how signing keys are managed (algorithm, master key, rotation timing).
    pub fn with_key_management(mut self, keys: KeyManagement) -> Self {
        self.keys = keys;
        self
    }

    /// Replaces the throttling backend (a shared one when several instances run).
    pub fn with_limiter(mut self, limiter: Arc<dyn Limiter>) -> Self {
        self.limiter = limiter;
        self
    }

    /// The throttling backend.
    pub fn limiter(&self) -> &Arc<dyn Limiter> {
        &self.limiter
    }

    /// Takes a token for `action` from the client's (and the account's) bucket.
    ///
    /// # Errors
    /// [`Error::RateLimited`] when a bucket is empty.
    pub async fn throttle(&self, action: Action, client: &ClientInfo, account: Option<&str>) -> Result<()> {
        let ip = client.ip.as_deref().and_then(|ip| ip.parse().ok());
        self.limiter
            .acquire(&self.settings().rate_limit, action, ip, account)
            .await
            .map_err(|w| Error::RateLimited { retry_after: w.secs() })
    }

    /// Rate limit plus per-account back-off before a password check; returns the account key.
    async fn password_gate(&self, action: Action, raw_username: &str, client: &ClientInfo) -> Result<String> {
        let account = ratelimit::account_key(raw_username);
        self.throttle(action, client, Some(&account)).await?;
        let ip = client.ip.as_deref().and_then(|ip| ip.parse().ok());
        self.limiter
            .login_allowed(&self.settings().rate_limit, &account, ip)
            .map_err(|w| Error::RateLimited { retry_after: w.secs() })?;
        Ok(account)
    }

    /// Feeds the outcome of a password check into the back-off.
    fn note_attempt(&self, account: &str, client: &ClientInfo, outcome: Result<User>) -> Result<User> {
        let ip = client.ip.as_deref().and_then(|ip| ip.parse().ok());
        match &outcome {
            Ok(_) => self.limiter.login_succeeded(account, ip),
            Err(Error::InvalidCredentials) => self.limiter.login_failed(&self.settings().rate_limit, account, ip),
            Err(_) => {}
        }
        outcome
    }

    /// The storage backend.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The token verifier (shared with extractors).
    pub fn verifier(&self) -> &Arc<Verifier> {
        &self.verifier
    }

    /// The token issuer.
    pub fn issuer(&self) -> &TokenIssuer {
        &self.issuer
    }

    /// The password hasher.
    pub fn hasher(&self) -> &PasswordHasher {
        &self.hasher
    }

    /// The revocation set.
    pub fn revocations(&self) -> &RevocationSet {
        &self.revocations
    }

    /// Session rules.
    pub fn policy(&self) -> &SessionPolicy {
        &self.policy
    }

    /// Current runtime settings.
    pub fn settings(&self) -> RuntimeSettings {
        self.settings.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces runtime settings in memory (callers persist them first).
    pub fn set_settings(&self, s: RuntimeSettings) {
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) = s;
    }

    /// Loads persisted revocations into memory (start-up and resync).
    pub async fn load_revocations(&self) -> Result<usize> {
        let list = self.storage.live_revocations(now()).await?;
        let n = list.len();
        self.apply_revocations(list);
        Ok(n)
    }

    /// Deletes expired rows and memory entries.
    pub async fn sweep(&self) -> Result<()> {
        let t = now();
        self.revocations.sweep(t);
        self.limiter.sweep();
        self.storage.purge_expired(t).await?;
        Ok(())
    }

    fn apply_revocations(&self, list: Vec<RevokedSession>) {
        for r in list {
            self.revocations.insert(r.sid, r.until, r.reason);
        }
    }

    /// Creates an account and its first session.
    pub async fn register(
        &self,
        username: &str,
        password: &str,
        email: Option<&str>,
        client: &ClientInfo,
    ) -> Result<TokenGrant> {
        if !self.settings().registration_open {
            return Err(Error::RegistrationClosed);
        }
        self.throttle(Action::Register, client, Some(&ratelimit::account_key(username))).await?;
        let user = self.create_user(username, password, email, Roles::default_user()).await?;
        self.audit(event("register", SUCCESS, client).actor(user.id.as_str()).subject(user.id.as_str())).await;
        self.start_session(user, now(), client).await
    }

    /// Validates and stores a new account (also used by admins).
    pub async fn create_user(&self, username: &str, password: &str, email: Option<&str>, roles: Roles) -> Result<User> {
        let policy = PasswordPolicy::new(self.settings().password_min_length);
        create_account_with(self.storage.as_ref(), &self.hasher, &policy, username, password, email, roles).await
    }

    /// Checks a username and password and starts a session.
    ///
    /// Unknown user, wrong password and disabled account all answer
    /// [`Error::InvalidCredentials`] after the same amount of hashing work.
    pub async fn login(&self, username: &str, password: &str, client: &ClientInfo) -> Result<TokenGrant> {
        let account = self.password_gate(Action::Login, username, client).await?;
        let password = Password::parse_existing(password, "password")?;
        let user = match Username::parse(username) {
            Ok(name) => self.storage.user_by_username(&name.canonical()).await?,
            Err(_) => None,
        };
        let subject = user.as_ref().map(|u| u.id.as_str().to_owned());
        let verdict = self.check_password_why(user, &password).await?;
        let reason = verdict.as_ref().err().copied();
        match self.note_attempt(&account, client, verdict.map_err(|_| Error::InvalidCredentials)) {
            Ok(user) => {
                metrics::counter!("gatepass_logins_total", "outcome" => "ok").increment(1);
                self.audit(event("login", SUCCESS, client).actor(user.id.as_str()).subject(user.id.as_str())).await;
                self.start_session(user, now(), client).await
            }
            Err(e) => {
                metrics::counter!("gatepass_logins_total", "outcome" => "failed").increment(1);
                // The reason is for the audit trail only; the client always sees the same error.
                let mut ev = event("login_failed", FAILURE, client).detail(serde_json::json!({ "reason": reason }));
                ev.subject = subject;
                self.audit(ev).await;
                Err(e)
            }
        }
    }

    /// Verifies `password` for `user` (dummy work when `None`), upgrading legacy hashes.
    /// A refusal carries its reason for the audit trail; clients only ever see
    /// [`Error::InvalidCredentials`].
    async fn check_password_why(
        &self,
        user: Option<User>,
        password: &Password,
    ) -> Result<std::result::Result<User, &'static str>> {
        // A disabled account is verified against the dummy hash like an unknown user: same
        // cost, and never a rehash that would make it slower than a wrong password.
        let stored = user.as_ref().filter(|u| !u.disabled).map(|u| u.password_hash.as_str());
        let verdict = self.hasher.verify(password, stored).await?;
        let Some(mut user) = user else { return Ok(Err("unknown_user")) };
        if user.disabled {
            return Ok(Err("account_disabled"));
        }
        match verdict {
            Verified::No => return Ok(Err("wrong_password")),
            Verified::Yes => {}
            Verified::YesRehash(new_hash) => {
                self.storage.set_password_hash(&user.id, &new_hash, now()).await?;
                user.password_hash = new_hash;
            }
        }
        Ok(Ok(user))
    }

    async fn start_session(&self, user: User, auth_time: i64, client: &ClientInfo) -> Result<TokenGrant> {
        let t = now();
        let settings = self.settings();
        let sid = uuid::Uuid::now_v7().to_string();
        let access = self.issuer.issue(&user, &sid, auth_time, settings.access_token_ttl, t)?;
        let refresh_token = self.refresh.generate();
        let session = SessionRecord {
            id: sid,
            user_id: user.id.as_str().to_owned(),
            created_at: t,
            last_used_at: t,
            expires_at: t + self.policy.session_max_age,
            auth_time,
            access_expires_at: access.claims.exp,
            user_agent: client.user_agent.clone(),
            ip: client.ip.clone(),
            revoked_at: None,
        };
        let refresh_exp = (t + settings.refresh_token_ttl).min(session.expires_at);
        self.storage.create_session(&session, &RefreshTokens::hash(&refresh_token), refresh_exp).await?;
        Ok(TokenGrant { user, access, refresh_token, expires_in: settings.access_token_ttl })
    }

    /// Rotates a refresh token: returns a new access token and the successor refresh
    /// token. See [`Rotation`] for reuse detection and the grace window.
    pub async fn refresh(&self, refresh_token: &str, client: &ClientInfo) -> Result<TokenGrant> {
        if !RefreshTokens::looks_valid(refresh_token) {
            return Err(Error::RefreshTokenInvalid);
        }
        let t = now();
        let settings = self.settings();
        let successor = self.refresh.successor(refresh_token);
        // The access token's expiry and the audit entry are recorded in the rotation's own
        // transaction: one write per refresh. The token issued below expires at exactly `exp`.
        let exp = t + settings.access_token_ttl;
        let audit = event("refresh", SUCCESS, client);
        let outcome = self
            .storage
            .rotate_refresh(RotateRequest {
                presented_hash: &RefreshTokens::hash(refresh_token),
                successor_hash: &RefreshTokens::hash(&successor),
                now: t,
                grace_secs: self.policy.reuse_grace,
                refresh_ttl_secs: settings.refresh_token_ttl,
                access_expires_at: exp,
                audit: Some(&audit),
            })
            .await?;
        let session = match outcome {
            Rotation::Rotated(s) | Rotation::Replayed(s) => s,
            Rotation::Reused(revoked) => {
                tracing::warn!(sid = %revoked.sid, "refresh token reuse detected; session revoked");
                let owner = self.storage.session(&revoked.sid).await.ok().flatten().map(|s| s.user_id);
                let mut ev = event("refresh_reuse_detected", FAILURE, client)
                    .detail(serde_json::json!({ "session": revoked.sid }));
                ev.subject = owner;
                self.apply_revocations(vec![revoked]);
                self.audit(ev).await;
                return Err(Error::RefreshTokenReused);
            }
            Rotation::Invalid => return Err(Error::RefreshTokenInvalid),
        };
        let user = self
            .storage
            .user_by_id(&UserId::from_trusted(session.user_id.clone()))
            .await?
            .filter(|u| !u.disabled)
            .ok_or(Error::RefreshTokenInvalid)?;
        let access = self.issuer.issue(&user, &session.id, session.auth_time, settings.access_token_ttl, t)?;
        debug_assert_eq!(access.claims.exp, exp);
        Ok(TokenGrant { user, access, refresh_token: successor, expires_in: settings.access_token_ttl })
    }

    /// Verifies an access token and checks that its session has not been revoked.
    pub fn authenticate(&self, token: &str) -> Result<AccessClaims> {
        let leeway = self.verifier.config().leeway_secs.min(60) as i64;
        let verified = match self.verified.get(token, now(), leeway) {
            Some(claims) => Ok(claims),
            None => self.verifier.verify_access(token).inspect(|claims| self.verified.insert(token, claims)),
        };
        // The revocation check is never cached: it runs on every request.
        let result = verified.map_err(Error::from).and_then(|claims| match self.revocations.check(&claims.sid) {
            None => Ok(claims),
            Some(Revocation::Revoked) => Err(Error::TokenRevoked),
            Some(Revocation::UserDeleted) => Err(Error::Token(VerifyError::Invalid("user deleted"))),
        });
        match &result {
            Ok(_) => metrics::counter!("gatepass_tokens_verified_total").increment(1),
            Err(e) => metrics::counter!("gatepass_tokens_rejected_total", "reason" => e.code()).increment(1),
        }
        result
    }

    /// The account behind verified claims; a vanished account makes the token invalid.
    pub async fn current_user(&self, claims: &AccessClaims) -> Result<User> {
        self.storage
            .user_by_id(&UserId::from_trusted(claims.sub.clone()))
            .await?
            .ok_or(Error::Token(VerifyError::Invalid("user not found")))
    }

    /// Ends sessions per `scope`; returns how many ended.
    pub async fn logout(&self, claims: &AccessClaims, scope: LogoutScope, client: &ClientInfo) -> Result<usize> {
        let filter = match scope {
            LogoutScope::Local => SessionFilter::One(&claims.sid),
            LogoutScope::Global => SessionFilter::All,
            LogoutScope::Others => {
                self.require_fresh(claims)?;
                SessionFilter::AllExcept(&claims.sid)
            }
        };
        let ended = self.revoke(&claims.sub, filter).await?;
        let scope = format!("{scope:?}").to_ascii_lowercase();
        let detail = serde_json::json!({ "scope": scope, "sessions_ended": ended });
        self.audit(event("logout", SUCCESS, client).actor(&claims.sub).subject(&claims.sub).detail(detail)).await;
        Ok(ended)
    }

    /// Ends every session of `user_id` selected by `filter` and refuses their tokens now.
    pub async fn revoke(&self, user_id: &str, filter: SessionFilter<'_>) -> Result<usize> {
        let revoked = self.storage.revoke_sessions(user_id, filter, now()).await?;
        let n = revoked.len();
        self.apply_revocations(revoked);
        Ok(n)
    }

    /// Applies revocations that storage already persisted (delete, admin actions).
    pub fn revoked(&self, revoked: Vec<RevokedSession>) {
        self.apply_revocations(revoked);
    }

    /// Appends a security event to the audit trail. A failed append is logged, not
    /// returned: the action it records has already happened.
    pub async fn audit(&self, event: AuditEvent) {
        if let Err(e) = self.storage.append_audit(&event, now()).await {
            tracing::error!(error = %e, event = %event.event, "could not append to the audit trail");
        }
    }

    /// The caller's live sessions.
    pub async fn sessions(&self, claims: &AccessClaims) -> Result<Vec<SessionRecord>> {
        Ok(self.storage.live_sessions(&claims.sub, now()).await?)
    }

    /// Ends one of the caller's sessions; another user's (or unknown) id is not found.
    pub async fn end_session(&self, claims: &AccessClaims, sid: &str) -> Result<()> {
        if sid != claims.sid {
            self.require_fresh(claims)?;
        }
        match self.revoke(&claims.sub, SessionFilter::One(sid)).await? {
            0 => Err(Error::NotFound),
            _ => Ok(()),
        }
    }

    /// Changes the caller's password after checking the current one, ends every session
    /// and starts a new one (new `sid`) whose tokens are returned.
    pub async fn change_password(
        &self,
        claims: &AccessClaims,
        current: &str,
        new: &str,
        client: &ClientInfo,
    ) -> Result<TokenGrant> {
        let account = self.password_gate(Action::PasswordChange, &claims.username, client).await?;
        let current = Password::parse_existing(current, "current_password")?;
        let policy = PasswordPolicy::new(self.settings().password_min_length);
        let new = policy.check(new, &claims.username, "new_password")?;
        let user = self.current_user(claims).await?;
        let verdict = self.check_password_why(Some(user), &current).await?;
        let reason = verdict.as_ref().err().copied();
        let user = match self.note_attempt(&account, client, verdict.map_err(|_| Error::InvalidCredentials)) {
            Ok(user) => user,
            Err(e) => {
                let ev = event("password_change_failed", FAILURE, client).actor(&claims.sub).subject(&claims.sub);
                self.audit(ev.detail(serde_json::json!({ "reason": reason }))).await;
                return Err(e);
            }
        };
        let hash = self.hasher.hash(&new).await?;
        self.storage.set_password_hash(&user.id, &hash, now()).await?;
        self.revoke(user.id.as_str(), SessionFilter::All).await?;
        self.audit(event("password_changed", SUCCESS, client).actor(user.id.as_str()).subject(user.id.as_str())).await;
        self.start_session(User { password_hash: hash, ..user }, now(), client).await
    }

    /// Refuses when the password was last entered longer ago than the policy allows.
    pub fn require_fresh(&self, claims: &AccessClaims) -> Result<()> {
        if !self.is_fresh(claims) {
            return Err(Error::FreshLoginRequired);
        }
        Ok(())
    }

    /// Whether the password was entered recently enough for sensitive actions.
    pub fn is_fresh(&self, claims: &AccessClaims) -> bool {
        now() - claims.auth_time <= self.policy.fresh_auth_max_age
    }

    /// Step-up: re-checks the caller's password and issues a new access token for the
    /// *same* session with `auth_time` = now. The session record keeps its original
    /// `auth_time`, so a later refresh returns to the older value (freshness is not
    /// extended by refreshing).
    pub async fn reauthenticate(&self, claims: &AccessClaims, password: &str) -> Result<IssuedToken> {
        let password = Password::parse_existing(password, "password")?;
        let user = self.current_user(claims).await?;
        let user = self.check_password_why(Some(user), &password).await?.map_err(|_| Error::InvalidCredentials)?;
        let t = now();
        let access = self.issuer.issue(&user, &claims.sid, t, self.settings().access_token_ttl, t)?;
        self.storage.note_access_issued(&claims.sid, access.claims.exp).await?;
        Ok(access)
    }
}

/// An audit event carrying the client's network details.
fn event(name: &str, outcome: &str, client: &ClientInfo) -> AuditEvent {
    AuditEvent::new(name, outcome).client(client.ip.as_deref(), client.user_agent.as_deref())
}

/// Validates and stores a new account: the one path by which accounts come to exist
/// (registration, admin API and CLI all use it).
pub async fn create_account(
    storage: &dyn Storage,
    hasher: &PasswordHasher,
    username: &str,
    password: &str,
    email: Option<&str>,
    roles: Roles,
) -> Result<User> {
    create_account_with(storage, hasher, &PasswordPolicy::default(), username, password, email, roles).await
}

/// [`create_account`] under an explicit password policy.
pub async fn create_account_with(
    storage: &dyn Storage,
    hasher: &PasswordHasher,
    policy: &PasswordPolicy,
    username: &str,
    password: &str,
    email: Option<&str>,
    roles: Roles,
) -> Result<User> {
    let username = Username::parse(username)?;
    let password = policy.check(password, username.as_str(), "password")?;
    let email = email.filter(|e| !e.is_empty()).map(Email::parse).transpose()?;
    let hash = hasher.hash(&password).await?;
    let user =
        User { id: UserId::new(), username, email, password_hash: hash, roles, disabled: false, created_at: now() };
    match storage.insert_user(&user).await {
        Ok(()) => Ok(user),
        Err(StorageError::Conflict) => Err(Error::UsernameTaken),
        Err(e) => Err(e.into()),
    }
}
