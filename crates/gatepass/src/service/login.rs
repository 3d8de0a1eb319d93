//! Signing in: the throttling gate in front of every password check (token buckets and the
//! failed-login back-off, with the device cookie that tells the owner from strangers), the
//! check itself (with the same cost for unknown, disabled and wrong), login, and step-up
//! re-authentication.

use gatepass_verify::AccessClaims;

use super::backoff::Step;
use super::mfa::{ChallengePurpose, LoginStep, SecondFactor};
use super::sessions::{BrowserLogin, Renewing};
use super::{AuthService, ClientInfo, TokenGrant, event, now};
use crate::auth::device::Device;
use crate::auth::passwords::Verified;
use crate::auth::ratelimit::{self, Action, FailureRecord, RetryAfter, device_wait, stranger_wait};
use crate::domain::clock::now_ms;
use crate::domain::{Password, User};
use crate::error::{Error, Result};
use crate::storage::audit::{FAILURE, SUCCESS};

/// Why a password check refused, for the audit trail only; clients always see
/// [`Error::InvalidCredentials`].
pub(crate) type Refusal = &'static str;

/// A password attempt let through the gate: the record it was charged to, settled by
/// [`AuthService::note_attempt`] once the password has been checked.
pub(crate) struct Attempt {
    /// Key of the account-wide record.
    account: String,
    /// Key of the recognised device's record, when the attempt was judged by it.
    device: Option<String>,
    /// When the attempt was charged (epoch ms); `None` while throttling is off.
    charged_ms: Option<i64>,
}

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

    /// The device this client's cookie stands for, if it shows a valid one.
    pub(crate) fn device_of(&self, client: &ClientInfo) -> Option<Device> {
        client.device.as_ref().and_then(|d| self.devices.verify(d))
    }

    /// The key of the record that judges `device` for the account `user_id`, when the
    /// account signed in from it before.
    pub(crate) fn recognised(device: Option<&Device>, user_id: &str) -> Option<String> {
        device.filter(|d| d.knows(user_id)).map(|d| ratelimit::device_record_key(user_id, &d.id))
    }

    /// The gate before a password check: the token buckets, then the back-off, which
    /// charges the attempt to its record before any hashing (so that concurrent attempts
    /// through any number of instances cannot overtake the threshold). A recognised device
    /// (`device`: its record's key) skips the account bucket and is judged by its own
    /// record; everyone else by the account-wide one.
    ///
    /// # Errors
    /// [`Error::RateLimited`] when a bucket is empty or the record says wait; storage errors.
    pub(crate) async fn password_gate(
        &self,
        action: Action,
        raw_username: &str,
        client: &ClientInfo,
        device: Option<String>,
    ) -> Result<Attempt> {
        let name = ratelimit::account_key(raw_username);
        self.throttle(action, client, device.is_none().then_some(name.as_str())).await?;
        let account = ratelimit::account_record_key(&name);
        let s = self.settings().rate_limit;
        if !s.enabled {
            return Ok(Attempt { account, device, charged_ms: None });
        }
        let t = now_ms();
        let charge = |wait: Option<RetryAfter>, r: &FailureRecord| match wait {
            Some(wait) => Step::Keep(Err(wait)),
            None => Step::Put(r.charged(&s, t), Ok(())),
        };
        let verdict = match &device {
            None => self.update_failures(&account, &s, |r| charge(stranger_wait(r, &s, t), r)).await?,
            Some(key) => {
                // Read, not locked: the account's hour only bounds a device that is itself
                // backing off (a stolen cookie), where a stale read costs one attempt at most.
                let acct = self.failure_record(&account).await?;
                self.update_failures(key, &s, |r| charge(device_wait(r, &acct, &s, t), r)).await?
            }
        };
        verdict.map_err(|w| Error::RateLimited { retry_after: w.secs() })?;
        Ok(Attempt { account, device, charged_ms: Some(t) })
    }

    /// Settles an attempt with the outcome of its password check. A success ends the
    /// streak of the record that judged it (and takes its charge back); a wrong password
    /// stays charged, and from a recognised device also counts in the account's hour.
    /// Other errors stay charged (fail closed).
    pub(crate) async fn note_attempt(&self, attempt: &Attempt, outcome: Result<User>) -> Result<User> {
        let Some(charged) = attempt.charged_ms else { return outcome };
        let s = self.settings().rate_limit;
        let t = now_ms();
        let settled = match (&outcome, &attempt.device) {
            (Ok(_), device) => {
                let key = device.as_ref().unwrap_or(&attempt.account);
                self.update_failures(key, &s, |r| Step::Put(r.succeeded(&s, t, charged), ())).await
            }
            (Err(Error::InvalidCredentials), Some(_)) => {
                self.update_failures(&attempt.account, &s, |r| Step::Put(r.counted(&s, t), ())).await
            }
            (Err(_), _) => Ok(()),
        };
        if let Err(e) = settled {
            // The password check stands; only the record lags (a success still counted as a
            // failure errs on the safe side).
            tracing::warn!(error = %e, "could not settle a login attempt in its failure record");
        }
        outcome
    }

    /// Checks a username (or verified address) and password and starts a session. The
    /// grant carries the device cookie to set for this browser.
    ///
    /// Unknown user, wrong password and disabled account all answer
    /// [`Error::InvalidCredentials`] after the same amount of hashing work. `browser` is
    /// set for a login that answers with cookies: the session its cookies held ends when the
    /// new one starts, and a browser not recognised for this account triggers the
    /// new-device notice (a bearer client is not a device the owner would recognise).
    ///
    /// An account with a second factor gets no session here: [`Error::MfaRequired`] (a way
    /// of signing in that cannot ask for the factor fails closed); see [`Self::login_step`].
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        client: &ClientInfo,
        browser: Option<BrowserLogin<'_>>,
    ) -> Result<TokenGrant> {
        match self.login_step(username, password, client, browser).await? {
            LoginStep::Granted(grant) => Ok(*grant),
            LoginStep::MfaRequired(..) => Err(Error::MfaRequired),
            LoginStep::EnrolmentRequired(_) => Err(Error::MfaEnrollmentRequired),
        }
    }

    /// The password step of a login, as [`Self::login`] describes it, except that an
    /// account with an active second factor gets a challenge to answer at the second step
    /// ([`Self::login_mfa`]) instead of a session. Whether an account has a second factor
    /// is told only to whoever proved its password.
    pub async fn login_step(
        &self,
        username: &str,
        password: &str,
        client: &ClientInfo,
        browser: Option<BrowserLogin<'_>>,
    ) -> Result<LoginStep> {
        let password = Password::parse_existing(password, "password")?;
        let device = self.device_of(client);
        // Recognising a device needs the account's id before the gate, so a client showing
        // a valid device cookie has the account read first; anyone else only after the gate.
        let early = match &device {
            Some(_) => Some(self.core.account_by_login(username).await?),
            None => None,
        };
        let recognised = early.as_ref().and_then(|u| Self::recognised(device.as_ref(), u.as_ref()?.id.as_str()));
        let attempt = self.password_gate(Action::Login, username, client, recognised).await?;
        // A username, or an address the account has verified (sign-in by e-mail).
        let user = match early {
            Some(user) => user,
            None => self.core.account_by_login(username).await?,
        };
        let subject = user.as_ref().map(|u| u.id.as_str().to_owned());
        let verdict = self.check_password(user, &password).await?;
        let reason = verdict.as_ref().err().copied();
        match self.note_attempt(&attempt, verdict.map_err(|_| Error::InvalidCredentials)).await {
            // Told only to whoever proved the password, so it reveals nothing to others.
            Ok(user) if self.settings().require_verified_email && !user.email_verified => {
                metrics::counter!("gatepass_logins_total", "outcome" => "unverified").increment(1);
                let ev = event("login_failed", FAILURE, client).actor(user.id.as_str()).subject(user.id.as_str());
                self.core.audit(ev.detail(serde_json::json!({ "reason": "email_not_verified" }))).await;
                Err(Error::EmailNotVerified)
            }
            Ok(user) if self.has_mfa(user.id.as_str()).await? => {
                metrics::counter!("gatepass_logins_total", "outcome" => "mfa_required").increment(1);
                let challenge = self.issue_mfa_challenge(&user, client, ChallengePurpose::Login).await?;
                Ok(LoginStep::MfaRequired(challenge, self.mfa_methods(user.id.as_str()).await?))
            }
            // The role policy: no token until a factor is set up, with a challenge that
            // works only for that (and, like the other, only for this client).
            Ok(user) if self.settings().mfa_required_for(&user.roles) => {
                metrics::counter!("gatepass_logins_total", "outcome" => "mfa_enrollment_required").increment(1);
                Ok(LoginStep::EnrolmentRequired(
                    self.issue_mfa_challenge(&user, client, ChallengePurpose::Enrol).await?,
                ))
            }
            Ok(user) => {
                metrics::counter!("gatepass_logins_total", "outcome" => "ok").increment(1);
                let ev = event("login", SUCCESS, client).actor(user.id.as_str()).subject(user.id.as_str());
                self.core.audit(ev).await;
                let known = Self::recognised(device.as_ref(), user.id.as_str()).is_some();
                let held = browser.and_then(|b| b.held);
                let mut grant =
                    self.start_session(user, now(), &super::pwd_amr(), client, Renewing::Held(held)).await?;
                grant.device = Some(self.devices.remember(device.as_ref(), grant.user.id.as_str()));
                if browser.is_some() && !known {
                    self.core.notify_new_device(&grant.user, client).await;
                }
                Ok(LoginStep::Granted(Box::new(grant)))
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

    /// Step-up: re-checks the caller's password and replaces the caller's session with a
    /// new one whose `auth_time` is now (ASVS 5 §7.2.4: a new session id on
    /// re-authentication, so the old access token, refresh token and CSRF token all end).
    ///
    /// The new session carries the account as it is *after* the password check (roles can
    /// change during the hash), and is created only if the old session is still live at
    /// that moment, in one transaction with ending it: a revocation that wins the race
    /// leaves nothing behind ([`Error::TokenRevoked`]).
    ///
    /// It passes the same gate as a login (rate limits and the account's back-off, with
    /// the browser's device cookie), and a wrong password counts toward that back-off.
    ///
    /// An account with a second factor must send one too (`factor`): the factor is checked
    /// (and used up) only after the password was right, the two count as one attempt, and
    /// the new session's `amr` names the factor. Without it: [`Error::MfaRequired`].
    pub async fn reauthenticate(
        &self,
        claims: &AccessClaims,
        password: &str,
        factor: Option<SecondFactor<'_>>,
        client: &ClientInfo,
    ) -> Result<TokenGrant> {
        let password = Password::parse_existing(password, "password")?;
        // A password alone cannot renew a session of an account with a second factor
        // (checked before the gate charges an attempt).
        let has_mfa = self.has_mfa(&claims.sub).await?;
        let factor = match (has_mfa, factor) {
            (true, None) => return Err(Error::MfaRequired),
            (true, Some(f)) => Some(f),
            (false, _) => None,
        };
        let device = Self::recognised(self.device_of(client).as_ref(), &claims.sub);
        let attempt = self.password_gate(Action::Login, &claims.username, client, device).await?;
        let user = self.current_user(claims).await?;
        let mut verdict = self.check_password(Some(user), &password).await?;
        let mut factor_amr = None;
        if let (Ok(user), Some(f)) = (&verdict, factor) {
            // No second-step challenge here: a passkey assertion cannot match one.
            match self.check_factor(user, f, "", client).await? {
                Some(amr) => factor_amr = Some(amr),
                None => verdict = Err("wrong_factor"),
            }
        }
        let reason = verdict.as_ref().err().copied();
        if let Err(e) = self.note_attempt(&attempt, verdict.map_err(|_| Error::InvalidCredentials)).await {
            let ev = event("reauth_failed", FAILURE, client).actor(&claims.sub).subject(&claims.sub);
            self.core.audit(ev.detail(serde_json::json!({ "reason": reason }))).await;
            return Err(e);
        }
        let user = self.current_user(claims).await?;
        if user.disabled {
            return Err(Error::InvalidCredentials);
        }
        let amr = factor_amr.unwrap_or_else(super::pwd_amr);
        let grant = self.start_session(user, now(), &amr, client, Renewing::Required(claims)).await?;
        let ev = event("reauth", SUCCESS, client).actor(&claims.sub).subject(&claims.sub);
        self.core.audit(ev.detail(serde_json::json!({ "replaced_session": claims.sid }))).await;
        Ok(grant)
    }
}
