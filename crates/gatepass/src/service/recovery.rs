//! Forgotten passwords: asking for a reset link, and using it (GP-34).
//!
//! Asking reveals nothing: the answer and its timing are the same whether the account
//! exists, has an address or was throttled (the work is padded to a fixed minimum
//! duration). Links are built from the configured public URL only. Using a link applies
//! the password policy, and in one transaction sets the password, ends every session,
//! voids the account's other reset links and queues the "password changed" notice.

use std::time::{Duration, Instant};

use super::mail::Compose;
use super::{Actor, AuthService, ClientInfo, Core, event, now};
use crate::auth::onetime;
use crate::auth::ratelimit::{self, Action};
use crate::domain::{Email, User, UserId, Username};
use crate::error::{Error, Result};
use crate::storage::audit::SUCCESS;
use crate::storage::{OneTimeToken, TokenPurpose};

/// Every forgotten-password request takes at least this long, so that its timing does
/// not tell whether a mail was queued.
const FORGOT_MIN_DURATION: Duration = Duration::from_millis(250);

/// The longest `login` a forgotten-password request may name (an address's limit).
const MAX_LOGIN_LEN: usize = 254;

impl Core {
    /// The account `login` names: a username, or a verified address.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn account_by_login(&self, login: &str) -> Result<Option<User>> {
        if login.contains('@') {
            let Ok(email) = Email::parse(login) else { return Ok(None) };
            let user = self.storage.user_by_email(&email.canonical()).await?;
            return Ok(user.filter(|u| u.email_verified));
        }
        match Username::parse(login) {
            Ok(name) => Ok(self.storage.user_by_username(&name.canonical()).await?),
            Err(_) => Ok(None),
        }
    }

    /// Queues a reset link for `user` to the account's address. `Ok(false)` (nothing
    /// queued) when the account has no address, is disabled, or had its hourly share of
    /// reset mails.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn send_password_reset(&self, by: &Actor, user: &User) -> Result<bool> {
        let Some(email) = user.email.as_ref().filter(|_| !user.disabled) else { return Ok(false) };
        if !self.mail_allowed(user, TokenPurpose::PasswordReset).await? {
            return Ok(false);
        }
        let (token, digest) = onetime::generate();
        let t = now();
        let stored = OneTimeToken {
            token_hash: digest,
            purpose: TokenPurpose::PasswordReset,
            user_id: user.id.as_str().to_owned(),
            email: Some(email.as_str().to_owned()),
            created_at: t,
            expires_at: t + self.mail.reset_ttl,
        };
        let minutes = (self.mail.reset_ttl + 59) / 60;
        let mail = self.compose(Compose {
            kind: "password_reset",
            to: email.as_str(),
            subject: "Reset your password".into(),
            username: user.username.as_str(),
            paragraphs: vec![format!(
                "Someone (hopefully you) asked to reset the password of the gatepass account \"{}\".",
                user.username
            )],
            action: Some(("Choose a new password".into(), self.link(&format!("/reset?token={token}")))),
            after: vec![
                format!("The link works once, for {minutes} minutes."),
                "If you did not ask for this, ignore this mail: your password stays as it is.".into(),
            ],
        })?;
        let mails = [mail];
        self.storage.issue_token(&stored, &mails, false).await?;
        self.queued(&mails);
        self.audit(by.event("password_reset_requested").subject(user.id.as_str())).await;
        Ok(true)
    }

    /// Sets a new password with a reset link's token.
    ///
    /// # Errors
    /// [`Error::LinkInvalid`] for an unknown, used or expired token (nothing changes);
    /// password-policy validation errors (the token stays usable); storage errors.
    pub async fn reset_password(&self, token: &str, new_password: &str, client: &ClientInfo) -> Result<()> {
        let digest = onetime::parse(token).ok_or(Error::LinkInvalid)?;
        let tok = self
            .storage
            .peek_token(&digest, TokenPurpose::PasswordReset, now())
            .await?
            .filter(|t| onetime::matches(&t.token_hash, &digest))
            .ok_or(Error::LinkInvalid)?;
        let user_id = UserId::from_trusted(tok.user_id);
        let user = self.storage.user_by_id(&user_id).await?.filter(|u| !u.disabled).ok_or(Error::LinkInvalid)?;
        let new = self.password_policy().check(new_password, user.username.as_str(), "new_password")?;
        let hash = self.hasher.hash(&new).await?;
        let mails = self.password_notice(&user, "reset with a link sent by e-mail")?;
        let revoked =
            self.storage.reset_password(&digest, &user.id, &hash, now(), &mails).await?.ok_or(Error::LinkInvalid)?;
        let ended = revoked.len();
        self.apply_revocations(revoked);
        self.queued(&mails);
        let ev = event("password_reset", SUCCESS, client).actor(user.id.as_str()).subject(user.id.as_str());
        self.audit(ev.detail(serde_json::json!({ "via": "email_link", "sessions_ended": ended }))).await;
        Ok(())
    }
}

impl AuthService {
    /// A forgotten-password request for `login` (username or verified address). Always
    /// succeeds the same way, after the same minimum time, whether or not a mail was
    /// queued; throttled per client (429 does not depend on the account either).
    ///
    /// # Errors
    /// [`Error::RateLimited`] per client; validation of the field's shape; storage errors.
    pub async fn forgot_password(&self, login: &str, client: &ClientInfo) -> Result<()> {
        let started = Instant::now();
        if login.trim().is_empty() || login.len() > MAX_LOGIN_LEN || login.chars().any(char::is_control) {
            return Err(crate::domain::ValidationError::new("login", "must be a username or an e-mail address").into());
        }
        // The account bucket is keyed by the name as typed, existing or not, so a 429 says
        // nothing about the account; the hourly share per account is enforced silently.
        self.throttle(Action::Mail, client, Some(&ratelimit::account_key(login))).await?;
        let outcome = match self.core.account_by_login(login.trim()).await {
            Ok(Some(user)) => self.core.send_password_reset(&Actor::user("anonymous", client), &user).await.map(|_| ()),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        if let Some(rest) = FORGOT_MIN_DURATION.checked_sub(started.elapsed()) {
            tokio::time::sleep(rest).await;
        }
        outcome
    }

    /// Uses a reset link (throttled per client).
    ///
    /// # Errors
    /// As [`Core::reset_password`]; [`Error::RateLimited`].
    pub async fn reset_password(&self, token: &str, new_password: &str, client: &ClientInfo) -> Result<()> {
        self.throttle(Action::Mail, client, None).await?;
        self.core.reset_password(token, new_password, client).await
    }
}
