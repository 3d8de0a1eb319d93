//! Signing in: the throttling gate in front of every password check, the check itself
//! (with the same cost for unknown, disabled and wrong), login, and step-up
//! re-authentication.

use gatepass_verify::AccessClaims;

use super::{AuthService, ClientInfo, TokenGrant, event, now};
use crate::auth::passwords::Verified;
use crate::auth::ratelimit::{self, Action};
use crate::auth::tokens::IssuedToken;
use crate::domain::{Password, User};
use crate::error::{Error, Result};
use crate::storage::audit::{FAILURE, SUCCESS};

/// Why a password check refused, for the audit trail only; clients always see
/// [`Error::InvalidCredentials`].
pub(crate) type Refusal = &'static str;

impl AuthService {
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
    pub(crate) async fn password_gate(
        &self,
        action: Action,
        raw_username: &str,
        client: &ClientInfo,
    ) -> Result<String> {
        let account = ratelimit::account_key(raw_username);
        self.throttle(action, client, Some(&account)).await?;
        let ip = client.ip.as_deref().and_then(|ip| ip.parse().ok());
        self.limiter
            .login_allowed(&self.settings().rate_limit, &account, ip)
            .map_err(|w| Error::RateLimited { retry_after: w.secs() })?;
        Ok(account)
    }

    /// Feeds the outcome of a password check into the back-off.
    pub(crate) fn note_attempt(&self, account: &str, client: &ClientInfo, outcome: Result<User>) -> Result<User> {
        let ip = client.ip.as_deref().and_then(|ip| ip.parse().ok());
        match &outcome {
            Ok(_) => self.limiter.login_succeeded(account, ip),
            Err(Error::InvalidCredentials) => self.limiter.login_failed(&self.settings().rate_limit, account, ip),
            Err(_) => {}
        }
        outcome
    }

    /// Checks a username (or verified address) and password and starts a session.
    ///
    /// Unknown user, wrong password and disabled account all answer
    /// [`Error::InvalidCredentials`] after the same amount of hashing work.
    pub async fn login(&self, username: &str, password: &str, client: &ClientInfo) -> Result<TokenGrant> {
        let account = self.password_gate(Action::Login, username, client).await?;
        let password = Password::parse_existing(password, "password")?;
        // A username, or an address the account has verified (sign-in by e-mail).
        let user = self.core.account_by_login(username).await?;
        let subject = user.as_ref().map(|u| u.id.as_str().to_owned());
        let verdict = self.check_password(user, &password).await?;
        let reason = verdict.as_ref().err().copied();
        match self.note_attempt(&account, client, verdict.map_err(|_| Error::InvalidCredentials)) {
            // Told only to whoever proved the password, so it reveals nothing to others.
            Ok(user) if self.settings().require_verified_email && !user.email_verified => {
                metrics::counter!("gatepass_logins_total", "outcome" => "unverified").increment(1);
                let ev = event("login_failed", FAILURE, client).actor(user.id.as_str()).subject(user.id.as_str());
                self.core.audit(ev.detail(serde_json::json!({ "reason": "email_not_verified" }))).await;
                Err(Error::EmailNotVerified)
            }
            Ok(user) => {
                metrics::counter!("gatepass_logins_total", "outcome" => "ok").increment(1);
                let ev = event("login", SUCCESS, client).actor(user.id.as_str()).subject(user.id.as_str());
                self.core.audit(ev).await;
                self.start_session(user, now(), client).await
            }
            Err(e) => {
                metrics::counter!("gatepass_logins_total", "outcome" => "failed").increment(1);
                // The reason is for the audit trail only; the client always sees the same error.
                let mut ev = event("login_failed", FAILURE, client).detail(serde_json::json!({ "reason": reason }));
                ev.subject = subject;
                self.core.audit(ev).await;
                Err(e)
            }
        }
    }

    /// Verifies `password` for `user` (dummy work when `None`), upgrading legacy hashes.
    /// A refusal carries its reason for the audit trail.
    pub(crate) async fn check_password(
        &self,
        user: Option<User>,
        password: &Password,
    ) -> Result<std::result::Result<User, Refusal>> {
        // A disabled account is verified against the dummy hash like an unknown user: same
        // cost, and never a rehash that would make it slower than a wrong password.
        let stored = user.as_ref().filter(|u| !u.disabled).map(|u| u.password_hash.as_str());
        let verdict = self.core.hasher.verify(password, stored).await?;
        let Some(mut user) = user else { return Ok(Err("unknown_user")) };
        if user.disabled {
            return Ok(Err("account_disabled"));
        }
        match verdict {
            Verified::No => return Ok(Err("wrong_password")),
            Verified::Yes => {}
            Verified::YesRehash(new_hash) => {
                self.core.storage.set_password_hash(&user.id, &new_hash, now()).await?;
                user.password_hash = new_hash;
            }
        }
        Ok(Ok(user))
    }

    /// Refuses when the password was last entered longer ago than the policy allows.
    ///
    /// # Errors
    /// [`Error::FreshLoginRequired`].
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
    ///
    /// The token carries the account as it is *after* the password check (roles can change
    /// during the hash), and is handed out only if the session is still not revoked when its
    /// expiry is recorded; a revocation after that point outlives it (see
    /// [`crate::storage::Storage::note_access_issued`]).
    ///
    /// It passes the same gate as a login (rate limits and the account's back-off), and a
    /// wrong password counts toward that back-off.
    pub async fn reauthenticate(
        &self,
        claims: &AccessClaims,
        password: &str,
        client: &ClientInfo,
    ) -> Result<IssuedToken> {
        let account = self.password_gate(Action::Login, &claims.username, client).await?;
        let password = Password::parse_existing(password, "password")?;
        let user = self.current_user(claims).await?;
        let verdict = self.check_password(Some(user), &password).await?;
        let reason = verdict.as_ref().err().copied();
        if let Err(e) = self.note_attempt(&account, client, verdict.map_err(|_| Error::InvalidCredentials)) {
            let ev = event("reauth_failed", FAILURE, client).actor(&claims.sub).subject(&claims.sub);
            self.core.audit(ev.detail(serde_json::json!({ "reason": reason }))).await;
            return Err(e);
        }
        let user = self.current_user(claims).await?;
        if user.disabled {
            return Err(Error::InvalidCredentials);
        }
        let t = now();
        let access = self.issuer.issue(&user, &claims.sid, t, self.settings().access_token_ttl, t)?;
        if !self.core.storage.note_access_issued(&claims.sid, access.claims.exp).await? {
            return Err(Error::TokenRevoked);
        }
        Ok(access)
    }
}
