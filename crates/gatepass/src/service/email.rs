//! Addresses: verification links (at registration, on request, by an administrator),
//! confirming a link, changing the address (confirmed at the new address, noticed at the
//! old one), marking an address verified, and the notices sent about an account.
//!
//! Every mail here is composed before its storage write and queued inside it (GP-35);
//! links carry a 256-bit one-time token stored only as a digest (GP-33).

use gatepass_verify::AccessClaims;

use super::mail::Compose;
use super::{Actor, AuthService, ClientInfo, Core, event, now};
use crate::auth::onetime;
use crate::auth::ratelimit::{self, Action};
use crate::domain::{Email, User};
use crate::error::{Error, Result};
use crate::storage::audit::SUCCESS;
use crate::storage::{EmailConfirmed, OneTimeToken, OutboxMail, StorageError, TokenPurpose};

/// Mails of one kind (verification, address change, reset) an account may be sent per
/// hour, whoever asks: a stranger cannot use gatepass to flood someone's mailbox.
pub const MAILS_PER_ACCOUNT_PER_HOUR: i64 = 5;

impl Core {
    /// A verification (or address-change) token for `email` of `user` and the mail that
    /// carries its link; nothing is stored.
    pub(crate) fn address_link(
        &self,
        user: &User,
        email: &Email,
        purpose: TokenPurpose,
    ) -> Result<(OneTimeToken, OutboxMail)> {
        let (token, digest) = onetime::generate();
        let t = now();
        let stored = OneTimeToken {
            token_hash: digest,
            purpose,
            user_id: user.id.as_str().to_owned(),
            email: Some(email.as_str().to_owned()),
            created_at: t,
            expires_at: t + self.mail.verify_ttl,
        };
        let hours = (self.mail.verify_ttl + 3599) / 3600;
        let link = self.link(&format!("/verify?token={token}"));
        let (kind, subject, first) = match purpose {
            TokenPurpose::ChangeEmail => (
                "change_email",
                "Confirm your new e-mail address",
                format!(
                    "Someone (hopefully you) asked to make {} the e-mail address of the gatepass account \"{}\". \
                     The address changes only once you confirm it.",
                    email.as_str(),
                    user.username
                ),
            ),
            _ => (
                "verify_email",
                "Verify your e-mail address",
                format!(
                    "Please confirm that {} is the e-mail address of your gatepass account \"{}\".",
                    email.as_str(),
                    user.username
                ),
            ),
        };
        let mail = self.compose(Compose {
            kind,
            to: email.as_str(),
            subject: subject.into(),
            username: user.username.as_str(),
            paragraphs: vec![first],
            action: Some(("Confirm this address".into(), link)),
            after: vec![
                format!("The link works once, for {hours} hour(s)."),
                "If you did not ask for this, ignore this mail: nothing changes.".into(),
            ],
        })?;
        Ok((stored, mail))
    }

    /// Whether the account may be sent another mail of `purpose` this hour.
    pub(crate) async fn mail_allowed(&self, user: &User, purpose: TokenPurpose) -> Result<bool> {
        let sent = self.storage.tokens_issued_since(user.id.as_str(), purpose, now() - 3600).await?;
        Ok(sent < MAILS_PER_ACCOUNT_PER_HOUR)
    }

    /// A notice about `user` to `to` (no link, no secret).
    pub(crate) fn notice(
        &self,
        kind: &'static str,
        to: &str,
        user: &User,
        subject: &str,
        text: Vec<String>,
    ) -> Result<OutboxMail> {
        self.compose(Compose {
            kind,
            to,
            subject: subject.into(),
            username: user.username.as_str(),
            paragraphs: text,
            action: None,
            after: vec!["If this was not you, reset your password at once and contact your administrator.".into()],
        })
    }

    /// The "your password was changed" notice, when switched on and the account has an
    /// address; `how` says by what means.
    pub(crate) fn password_notice(&self, user: &User, how: &str) -> Result<Vec<OutboxMail>> {
        match &user.email {
            Some(email) if self.mail.notify_password_changed => Ok(vec![self.notice(
                "password_changed",
                email.as_str(),
                user,
                "Your password was changed",
                vec![format!("The password of your gatepass account \"{}\" was {how}.", user.username)],
            )?]),
            _ => Ok(Vec::new()),
        }
    }

    /// Sends a new verification link for the account's current address.
    ///
    /// # Errors
    /// [`Error::BadRequest`] when the account has no address or it is verified already;
    /// [`Error::RateLimited`] past [`MAILS_PER_ACCOUNT_PER_HOUR`]; storage errors.
    pub async fn resend_verification(&self, by: &Actor, user: &User) -> Result<()> {
        let Some(email) = &user.email else {
            return Err(Error::BadRequest("the account has no e-mail address".into()));
        };
        if user.email_verified {
            return Err(Error::BadRequest("the e-mail address is already verified".into()));
        }
        if !self.mail_allowed(user, TokenPurpose::VerifyEmail).await? {
            return Err(Error::RateLimited { retry_after: 3600 });
        }
        let (token, mail) = self.address_link(user, email, TokenPurpose::VerifyEmail)?;
        let mails = [mail];
        self.storage.issue_token(&token, &mails, false).await?;
        self.queued(&mails);
        self.audit(by.event("verification_sent").subject(user.id.as_str())).await;
        Ok(())
    }

    /// Marks the account's address verified on an administrator's word.
    ///
    /// # Errors
    /// [`Error::BadRequest`] when it has no address; [`Error::NotFound`]; storage errors.
    pub async fn mark_email_verified(&self, by: &Actor, user: &User) -> Result<User> {
        if user.email.is_none() {
            return Err(Error::BadRequest("the account has no e-mail address".into()));
        }
        if !self.storage.mark_email_verified(&user.id, now()).await? {
            return Err(Error::NotFound);
        }
        self.audit(by.event("email_verified").subject(user.id.as_str()).detail(serde_json::json!({ "by": "admin" })))
            .await;
        self.storage.user_by_id(&user.id).await?.ok_or(Error::NotFound)
    }

    /// Uses a verification or address-change link. Returns the account as it is now.
    ///
    /// # Errors
    /// [`Error::LinkInvalid`] for an unknown, used or expired token (nothing changes);
    /// [`Error::EmailTaken`] when another account took the address meanwhile.
    pub async fn confirm_email(&self, token: &str, client: &ClientInfo) -> Result<User> {
        let digest = onetime::parse(token).ok_or(Error::LinkInvalid)?;
        let t = now();
        let mut found = None;
        for purpose in [TokenPurpose::VerifyEmail, TokenPurpose::ChangeEmail] {
            if let Some(tok) = self.storage.peek_token(&digest, purpose, t).await? {
                found = Some(tok);
                break;
            }
        }
        let Some(tok) = found.filter(|tok| onetime::matches(&tok.token_hash, &digest)) else {
            return Err(Error::LinkInvalid);
        };
        let user = self.find_by_id(&tok.user_id).await.map_err(|_| Error::LinkInvalid)?;
        // The old address hears of the change in the transaction that makes it.
        let mut mails = Vec::new();
        if tok.purpose == TokenPurpose::ChangeEmail
            && self.mail.notify_email_changed
            && let (Some(old), Some(new)) = (&user.email, &tok.email)
            && !old.as_str().eq_ignore_ascii_case(new)
        {
            mails.push(self.notice(
                "email_changed",
                old.as_str(),
                &user,
                "Your e-mail address was changed",
                vec![format!(
                    "The e-mail address of your gatepass account \"{}\" was changed from {} to {}. \
                     Mail about the account now goes to the new address.",
                    user.username,
                    old.as_str(),
                    new
                )],
            )?);
        }
        match self.storage.confirm_email(&digest, tok.purpose, now(), &mails).await? {
            EmailConfirmed::Confirmed { user_id, previous, email } => {
                self.queued(&mails);
                let name = if tok.purpose == TokenPurpose::ChangeEmail { "email_changed" } else { "email_verified" };
                let mut ev = event(name, SUCCESS, client).actor(&user_id).subject(&user_id);
                if tok.purpose == TokenPurpose::ChangeEmail {
                    ev = ev.detail(serde_json::json!({ "from": previous, "to": email }));
                }
                self.audit(ev).await;
                self.find_by_id(&user_id).await
            }
            EmailConfirmed::Invalid => Err(Error::LinkInvalid),
            EmailConfirmed::AddressTaken => Err(Error::EmailTaken),
        }
    }

    async fn find_by_id(&self, id: &str) -> Result<User> {
        let id = crate::domain::UserId::from_trusted(id);
        self.storage.user_by_id(&id).await?.ok_or(Error::NotFound)
    }

    /// The notice of a sign-in from a device this account was not seen on before. The
    /// login path calls it once it recognises devices (the device cookie); it does nothing
    /// when the notice is switched off or the account has no verified address, and a
    /// failure to queue is logged, never returned (the sign-in has happened).
    pub async fn notify_new_device(&self, user: &User, client: &ClientInfo) {
        let Some(email) = user.email.as_ref().filter(|_| user.email_verified && self.mail.notify_new_device) else {
            return;
        };
        let device = client.user_agent.as_deref().unwrap_or("an unknown client").chars().take(120).collect::<String>();
        let from = client.ip.as_deref().unwrap_or("an unknown address");
        let text = vec![format!(
            "Your gatepass account \"{}\" was signed in to from a device not seen before: {device}, from {from}, \
             at {}.",
            user.username,
            crate::domain::clock::rfc3339(now())
        )];
        let queued = match self.notice("new_device", email.as_str(), user, "New sign-in to your account", text) {
            Ok(mail) => {
                let mails = [mail];
                self.storage.enqueue_mails(&mails).await.map(|()| self.queued(&mails)).map_err(Error::from)
            }
            Err(e) => Err(e),
        };
        if let Err(e) = queued {
            tracing::warn!(error = %e.message(), "could not queue the new-device notice");
        }
    }
}

impl AuthService {
    /// Sends the caller a new verification link (throttled per client and per account).
    ///
    /// # Errors
    /// As [`Core::resend_verification`]; [`Error::RateLimited`].
    pub async fn resend_own_verification(&self, claims: &AccessClaims, client: &ClientInfo) -> Result<()> {
        self.throttle(Action::Mail, client, Some(&ratelimit::account_key(&claims.username))).await?;
        let user = self.current_user(claims).await?;
        self.core.resend_verification(&Actor::user(&claims.sub, client), &user).await
    }

    /// Starts a change of the caller's address: a confirmation link goes to the new
    /// address; the address changes only when it is followed. Needs a fresh login.
    ///
    /// # Errors
    /// [`Error::FreshLoginRequired`]; validation errors; [`Error::EmailTaken`];
    /// [`Error::RateLimited`]; storage errors.
    pub async fn change_email(&self, claims: &AccessClaims, new_email: &str, client: &ClientInfo) -> Result<()> {
        self.require_step_up(claims).await?;
        self.throttle(Action::Mail, client, Some(&ratelimit::account_key(&claims.username))).await?;
        let email = Email::parse(new_email)?;
        let user = self.current_user(claims).await?;
        if user.email.as_ref().is_some_and(|e| e.canonical() == email.canonical()) && user.email_verified {
            return Err(
                crate::domain::ValidationError::new("email", "is already the account's verified address").into()
            );
        }
        match self.core.storage.user_by_email(&email.canonical()).await? {
            Some(other) if other.id != user.id => return Err(Error::EmailTaken),
            _ => {}
        }
        if !self.core.mail_allowed(&user, TokenPurpose::ChangeEmail).await? {
            return Err(Error::RateLimited { retry_after: 3600 });
        }
        let (token, mail) = self.core.address_link(&user, &email, TokenPurpose::ChangeEmail)?;
        let mails = [mail];
        // Only the latest requested address can be confirmed.
        self.core.storage.issue_token(&token, &mails, true).await?;
        self.core.queued(&mails);
        let ev = event("email_change_requested", SUCCESS, client).actor(&claims.sub).subject(&claims.sub);
        self.core.audit(ev).await;
        Ok(())
    }
}

/// Which uniqueness an insert of `user` broke.
pub(crate) async fn conflict_of(core: &Core, user: &User) -> Error {
    if let Some(email) = &user.email
        && let Ok(Some(other)) = core.storage.user_by_email(&email.canonical()).await
        && other.id != user.id
    {
        return Error::EmailTaken;
    }
    Error::UsernameTaken
}

/// Maps a storage conflict on an address write to [`Error::EmailTaken`].
pub(crate) fn address_conflict(e: StorageError) -> Error {
    match e {
        StorageError::Conflict => Error::EmailTaken,
        other => other.into(),
    }
}
