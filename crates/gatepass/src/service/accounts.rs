//! Accounts coming to exist and changing password: registration, creation by an
//! administrator or the command line, import, and the one [`Core::set_password`] that
//! every password change goes through (it ends the account's sessions, GP-18).

use gatepass_verify::AccessClaims;

use super::sessions::Renewing;
use super::{Actor, AuthService, ClientInfo, Core, TokenGrant, event, now};
use crate::auth::ratelimit::{self, Action};
use crate::auth::refresh::RefreshTokens;
use crate::domain::{Email, Password, PasswordPolicy, Roles, User, UserId, Username, ValidationError};
use crate::error::{Error, Result};
use crate::storage::audit::{FAILURE, SUCCESS};
use crate::storage::{NewSession, PasswordReplace, StorageError, TokenPurpose};

impl Core {
    /// The rules for new passwords in force now (the minimum length is a runtime setting).
    pub fn password_policy(&self) -> PasswordPolicy {
        PasswordPolicy::new(self.settings().password_min_length)
    }

    /// Validates a new account and hashes its password; nothing is stored.
    async fn new_account(&self, username: &str, password: &str, email: Option<&str>, roles: Roles) -> Result<User> {
        let username = Username::parse(username)?;
        let password = self.password_policy().check(password, username.as_str(), "password")?;
        let email = email.filter(|e| !e.is_empty()).map(Email::parse).transpose()?;
        let password_hash = self.hasher.hash(&password).await?;
        Ok(User {
            id: UserId::new(),
            username,
            email,
            email_verified: false,
            password_hash,
            roles,
            disabled: false,
            created_at: now(),
        })
    }

    /// Stores a new account; with `verify`, one with an unverified address gets its
    /// verification link queued in the same transaction. A taken username is
    /// [`Error::UsernameTaken`], a taken address [`Error::EmailTaken`].
    async fn insert(&self, user: User, verify: bool) -> Result<User> {
        let (token, mails) = match &user.email {
            Some(email) if verify && !user.email_verified => {
                let (token, mail) = self.address_link(&user, email, TokenPurpose::VerifyEmail)?;
                (Some(token), vec![mail])
            }
            _ => (None, Vec::new()),
        };
        match self.storage.insert_user_with(&user, token.as_ref(), &mails).await {
            Ok(()) => {
                self.queued(&mails);
                Ok(user)
            }
            Err(StorageError::Conflict) => Err(super::email::conflict_of(self, &user).await),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates an account on behalf of `by` (an administrator, the operator or the command
    /// line) and records it in the audit trail.
    ///
    /// # Errors
    /// Validation errors (username, password policy, e-mail), [`Error::UsernameTaken`].
    pub async fn create_user(
        &self,
        by: &Actor,
        username: &str,
        password: &str,
        email: Option<&str>,
        roles: Roles,
    ) -> Result<User> {
        let user = self.new_account(username, password, email, roles).await?;
        self.add_account(by, user, false).await
    }

    /// Stores an account prepared elsewhere (an import, whose password hashes are kept as
    /// they are) and records its creation like any other.
    ///
    /// # Errors
    /// [`Error::UsernameTaken`], storage errors.
    pub(crate) async fn add_account(&self, by: &Actor, user: User, imported: bool) -> Result<User> {
        // Imported accounts are not mailed in bulk; an administrator resends per account.
        let user = self.insert(user, !imported).await?;
        let mut detail = serde_json::json!({ "username": user.username.as_str(), "roles": user.roles.names() });
        if imported {
            detail["imported"] = true.into();
        }
        self.audit(by.event("user_created").subject(user.id.as_str()).detail(detail)).await;
        Ok(user)
    }

    /// Sets `user`'s password to `new` and ends every session of the account, so that
    /// whoever knew the old password is signed out. Recorded as `event` (for example
    /// `password_changed` or `password_reset`) on behalf of `by`. Returns the new hash and
    /// the number of sessions ended.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the account vanished; storage errors.
    pub async fn set_password(&self, by: &Actor, user: &User, new: &Password, event: &str) -> Result<usize> {
        let hash = self.hasher.hash(new).await?;
        let mails = self.password_notice(user, "changed by an administrator")?;
        let change = PasswordReplace {
            user_id: &user.id,
            expected_hash: None,
            new_hash: &hash,
            now: now(),
            new_session: None,
            mails: &mails,
        };
        self.replace_password(by, user, change, event).await?.ok_or(Error::NotFound)
    }

    /// Runs a password replacement (one storage transaction), puts its revocations in
    /// force and audits it. `None` when storage refused it (see
    /// [`crate::storage::Storage::replace_password`]).
    async fn replace_password(
        &self,
        by: &Actor,
        user: &User,
        change: PasswordReplace<'_>,
        event: &str,
    ) -> Result<Option<usize>> {
        let mails = change.mails;
        let Some(revoked) = self.storage.replace_password(change).await? else { return Ok(None) };
        self.queued(mails);
        let ended = revoked.len();
        self.apply_revocations(revoked);
        let detail = serde_json::json!({ "sessions_ended": ended });
        self.audit(by.event(event).subject(user.id.as_str()).detail(detail)).await;
        Ok(Some(ended))
    }
}

impl AuthService {
    /// Every problem with the fields of a new account, in the order a form shows them
    /// (username, e-mail, password), so a page can show them all at once. Empty when
    /// [`AuthService::register`] would accept the fields (a taken name is found only there).
    pub fn registration_problems(&self, username: &str, password: &str, email: Option<&str>) -> Vec<ValidationError> {
        let mut problems = Vec::new();
        // The password rule compares against the name as it will be stored, when it parses.
        let name = match Username::parse(username) {
            Ok(name) => name.as_str().to_owned(),
            Err(e) => {
                problems.push(e);
                username.to_owned()
            }
        };
        if let Some(Err(e)) = email.filter(|e| !e.is_empty()).map(Email::parse) {
            problems.push(e);
        }
        if let Err(e) = self.core.password_policy().check(password, &name, "password") {
            problems.push(e);
        }
        problems
    }

    /// Creates an account and its first session; the grant carries the device cookie to set
    /// for this browser.
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
        let user = self.core.new_account(username, password, email, Roles::default_user()).await?;
        let user = self.core.insert(user, true).await?;
        self.core.audit(event("register", SUCCESS, client).actor(user.id.as_str()).subject(user.id.as_str())).await;
        let mut grant = self.start_session(user, now(), &super::pwd_amr(), client, Renewing::Nothing).await?;
        // The browser that created the account is its owner's.
        grant.device = Some(self.devices.remember(self.device_of(client).as_ref(), grant.user.id.as_str()));
        Ok(grant)
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
        // Malformed input is refused before the gate: it proves nothing about the password,
        // so it must not be charged as a failed attempt.
        let current = Password::parse_existing(current, "current_password")?;
        self.require_second_factor_if_enrolled(claims).await?;
        let new = self.core.password_policy().check(new, &claims.username, "new_password")?;
        let device = Self::recognised(self.device_of(client).as_ref(), &claims.sub);
        let attempt = self.password_gate(Action::PasswordChange, &claims.username, client, device).await?;
        let user = self.current_user(claims).await?;
        let verdict = self.check_password(Some(user), &current).await?;
        let reason = verdict.as_ref().err().copied();
        let user = match self.note_attempt(&attempt, verdict.map_err(|_| Error::InvalidCredentials)).await {
            Ok(user) => user,
            Err(e) => {
                let ev = event("password_change_failed", FAILURE, client).actor(&claims.sub).subject(&claims.sub);
                self.core.audit(ev.detail(serde_json::json!({ "reason": reason }))).await;
                return Err(e);
            }
        };
        // The new hash, the end of every session and the new session are one transaction,
        // and it only applies while the hash is the one just checked: of several changes
        // racing from the same current password, one wins and the others are refused.
        let hash = self.core.hasher.hash(&new).await?;
        let by = Actor::user(user.id.as_str(), client);
        let checked = user.password_hash.clone();
        let (grant, session, refresh_exp) =
            self.new_session(User { password_hash: hash.clone(), ..user }, now(), &super::amr_of(claims), client)?;
        let refresh_hash = RefreshTokens::hash(&grant.refresh_token);
        let mails = self.core.password_notice(&grant.user, "changed by someone who knew the old one")?;
        let change = PasswordReplace {
            user_id: &grant.user.id,
            expected_hash: Some(&checked),
            new_hash: &hash,
            now: now(),
            new_session: Some(NewSession {
                record: &session,
                roles: &grant.user.roles,
                refresh_hash: &refresh_hash,
                refresh_expires_at: refresh_exp,
                replaces: None,
            }),
            mails: &mails,
        };
        match self.core.replace_password(&by, &grant.user, change, "password_changed").await? {
            Some(_) => Ok(grant),
            None => Err(Error::InvalidCredentials),
        }
    }
}
