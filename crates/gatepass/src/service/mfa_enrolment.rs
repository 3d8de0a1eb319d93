//! The operator's second-factor policy (`mfa_required_roles`): a member of such a role
//! who has no second factor gets, after a correct password, an enrolment challenge
//! instead of a session ([`LoginStep::EnrolmentRequired`](super::mfa::LoginStep)); with it
//! the client starts an authenticator app ([`AuthService::enrolment_start`]) and confirms
//! it ([`AuthService::enrolment_finish`]), which activates the factor and signs in.
//!
//! The challenge is bound to its client and to this purpose, lasts five minutes, and is
//! taken (compare-and-swap) only by a confirmation whose code is right: of concurrent
//! confirmations exactly one signs in and activates the factor. A wrong code counts toward
//! the account's back-off like a wrong password and leaves the challenge for a retry.
//!
//! Also here: the refresh rule, which refuses to renew a session started without a second
//! factor while the account's roles require one.

use super::mfa::{ChallengePurpose, TotpEnrolment, client_digest, new_recovery_codes};
use super::sessions::{BrowserLogin, Renewing};
use super::{AuthService, ClientInfo, TokenGrant, event, now};
use crate::auth::onetime;
use crate::auth::ratelimit::Action;
use crate::auth::refresh::RefreshTokens;
use crate::auth::totp;
use crate::domain::{User, UserId};
use crate::error::{Error, Result};
use crate::storage::audit::{FAILURE, SUCCESS};

/// A sign-in finished by enrolling an authenticator app.
#[derive(Debug)]
pub struct EnrolledSignIn {
    /// The new session.
    pub grant: TokenGrant,
    /// The ten recovery codes, shown once.
    pub recovery_codes: Vec<String>,
}

impl AuthService {
    /// The account an enrolment challenge stands for, if it is live, was handed to this
    /// client for enrolment, and the account is still enabled. The challenge stays.
    async fn enrolment_account(&self, challenge: &str, client: &ClientInfo) -> Result<(String, User)> {
        let refuse = |reason: &'static str, user: Option<&str>| {
            let mut ev = event("login_mfa_failed", FAILURE, client)
                .detail(serde_json::json!({ "reason": reason, "step": "enrolment" }));
            ev.subject = user.map(str::to_owned);
            ev
        };
        let Some(digest) = onetime::parse(challenge) else { return Err(Error::InvalidCredentials) };
        let Some(found) = self.core.storage.peek_mfa_challenge(&digest, now()).await? else {
            self.core.audit(refuse("challenge_invalid", None)).await;
            return Err(Error::InvalidCredentials);
        };
        if !onetime::matches(&found.client_hash, &client_digest(client, ChallengePurpose::Enrol)) {
            self.core.audit(refuse("other_client", Some(&found.user_id))).await;
            return Err(Error::InvalidCredentials);
        }
        let user = self.core.storage.user_by_id(&UserId::from_trusted(found.user_id.clone())).await?;
        let Some(user) = user.filter(|u| !u.disabled) else {
            self.core.audit(refuse("account_unavailable", Some(&found.user_id))).await;
            return Err(Error::InvalidCredentials);
        };
        Ok((digest, user))
    }

    /// Starts an authenticator app for the account of an enrolment challenge: a new
    /// secret, stored as pending (replacing an unconfirmed one), shown once. The challenge
    /// stays for [`Self::enrolment_finish`].
    ///
    /// # Errors
    /// [`Error::InvalidCredentials`] for a challenge that is unknown, expired, of another
    /// purpose or client, or whose account meanwhile has a factor; [`Error::RateLimited`].
    pub async fn enrolment_start(&self, challenge: &str, client: &ClientInfo) -> Result<TotpEnrolment> {
        self.throttle(Action::Login, client, None).await?;
        let (_, user) = self.enrolment_account(challenge, client).await?;
        match self.start_totp(&user, client).await {
            // Set up meanwhile (another tab): this sign-in starts over and asks for it.
            Err(Error::MfaAlreadyEnabled) => Err(Error::InvalidCredentials),
            other => other,
        }
    }

    /// Finishes a sign-in that needed enrolment: checks `code` against the pending secret,
    /// takes the challenge, activates the factor with ten new recovery codes and starts a
    /// session whose `amr` includes the app (`pwd otp mfa`).
    ///
    /// # Errors
    /// [`Error::InvalidCredentials`] for any refusal (the challenge stays usable after a
    /// wrong code until it expires); [`Error::RateLimited`]; storage errors.
    pub async fn enrolment_finish(
        &self,
        challenge: &str,
        code: &str,
        client: &ClientInfo,
        browser: Option<BrowserLogin<'_>>,
    ) -> Result<EnrolledSignIn> {
        self.throttle(Action::Login, client, None).await?;
        let (digest, user) = self.enrolment_account(challenge, client).await?;
        let id = user.id.as_str().to_owned();
        let device = Self::recognised(self.device_of(client).as_ref(), &id);
        let attempt = self.password_gate(Action::Login, user.username.as_str(), client, device).await?;
        let pending = self.core.storage.totp_factor(&id).await?.filter(|f| !f.active);
        let step = match &pending {
            Some(f) => totp::verify(&self.master()?.open_totp(&id, &f.secret)?, code.trim(), now()),
            None => None,
        };
        let outcome = if step.is_some() { Ok(user) } else { Err(Error::InvalidCredentials) };
        let user = match self.note_attempt(&attempt, outcome).await {
            Ok(user) => user,
            Err(e) => {
                let ev = event("mfa_totp_confirm_failed", FAILURE, client).actor(&id).subject(&id);
                self.core.audit(ev.detail(serde_json::json!({ "step": "enrolment" }))).await;
                return Err(e);
            }
        };
        let (Some(factor), Some(step)) = (pending, step) else { return Err(Error::InvalidCredentials) };
        // The single use: of concurrent confirmations, only the one that takes the
        // challenge goes on; the activation is a compare-and-swap on the sealed secret too.
        if self.core.storage.take_mfa_challenge(&digest, now()).await?.is_none() {
            return Err(Error::InvalidCredentials);
        }
        let (codes, hashes) = new_recovery_codes();
        if !self.core.storage.activate_totp(&id, &factor.secret, step, now(), &hashes).await? {
            return Err(Error::InvalidCredentials);
        }
        self.core.audit(event("mfa_totp_enabled", SUCCESS, client).actor(&id).subject(&id)).await;
        self.core
            .notify_mfa(&user, "mfa_enabled", "Authenticator app set up", "An authenticator app was set up".into())
            .await;
        metrics::counter!("gatepass_logins_total", "outcome" => "ok").increment(1);
        let ev = event("login", SUCCESS, client).actor(&id).subject(&id);
        self.core.audit(ev.detail(serde_json::json!({ "second_factor": "totp", "enrolled": true }))).await;
        let known = Self::recognised(self.device_of(client).as_ref(), &id).is_some();
        let held = browser.and_then(|b| b.held);
        let amr = vec!["pwd".to_owned(), "otp".to_owned(), "mfa".to_owned()];
        let mut grant = self.start_session(user, now(), &amr, client, Renewing::Held(held)).await?;
        let device = self.device_of(client);
        grant.device = Some(self.devices.remember(device.as_ref(), grant.user.id.as_str()));
        if browser.is_some() && !known {
            self.core.notify_new_device(&grant.user, client).await;
        }
        Ok(EnrolledSignIn { grant, recovery_codes: codes })
    }

    /// The refresh rule of the policy: a session started without a second factor is not
    /// renewed while its account's roles require one (the owner signs in again, and is led
    /// through enrolment if needed). Costs nothing while no role requires a factor.
    ///
    /// # Errors
    /// [`Error::MfaEnrollmentRequired`]; storage errors.
    pub(super) async fn refresh_allowed_by_policy(&self, refresh_token: &str, client: &ClientInfo) -> Result<()> {
        let settings = self.settings();
        if settings.mfa_required_roles.is_empty() || !RefreshTokens::looks_valid(refresh_token) {
            return Ok(());
        }
        let storage = &self.core.storage;
        let Some((sid, user_id)) = storage.session_of_refresh_token(&RefreshTokens::hash(refresh_token), now()).await?
        else {
            return Ok(());
        };
        let Some(user) = storage.user_by_id(&UserId::from_trusted(user_id)).await? else { return Ok(()) };
        if !settings.mfa_required_for(&user.roles) {
            return Ok(());
        }
        let with_factor = storage.session(&sid).await?.is_some_and(|s| s.amr.iter().any(|m| m == "mfa"));
        if with_factor {
            return Ok(());
        }
        let ev = event("refresh_refused", FAILURE, client).actor(user.id.as_str()).subject(user.id.as_str());
        self.core.audit(ev.detail(serde_json::json!({ "reason": "mfa_required_by_role", "session": sid }))).await;
        Err(Error::MfaEnrollmentRequired)
    }
}
