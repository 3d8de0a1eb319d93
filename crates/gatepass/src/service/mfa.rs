//! Second factors: TOTP enrolment, confirmation and removal, recovery codes, and the
//! second step of a login (a challenge handed out after a correct password, finished with
//! a TOTP code or a recovery code).
//!
//! Every use of a secret is a compare-and-swap in storage: a challenge is taken once, a
//! time step is accepted once (replay protection), a recovery code is used once. Wrong
//! second factors are charged to the same per-account back-off as wrong passwords.

use rand::Rng;
use sha2::{Digest, Sha256};

use super::sessions::{BrowserLogin, Renewing};
use super::{Actor, AuthService, ClientInfo, Core, TokenGrant, event, now};
use crate::auth::keys::MasterKey;
use crate::auth::onetime;
use crate::auth::ratelimit::Action;
use crate::auth::totp;
use crate::domain::{User, UserId};
use crate::error::{Error, Result};
use crate::storage::audit::{FAILURE, SUCCESS};
use crate::storage::mfa::MfaChallenge;
use gatepass_verify::AccessClaims;

/// How long a login challenge can be answered, seconds.
pub const CHALLENGE_TTL_SECS: i64 = 300;
/// Recovery codes per account.
pub const RECOVERY_CODES: usize = 10;
/// Base32 characters per recovery code: 120 bits.
const RECOVERY_CODE_CHARS: usize = 24;
/// The issuer name authenticator apps show next to the account.
const TOTP_ISSUER: &str = "gatepass";
/// The second-factor methods a challenge can be answered with.
pub const METHODS: [&str; 2] = ["totp", "recovery_code"];
/// The method of a passkey at the second step, offered when the account has one.
pub const WEBAUTHN: &str = "webauthn";

/// What a TOTP enrolment shows the user, once.
#[derive(Debug)]
pub struct TotpEnrolment {
    /// The secret in base32, for typing into an app.
    pub secret: String,
    /// The `otpauth://` URI.
    pub otpauth_uri: String,
    /// The URI as a QR code, an SVG document.
    pub qr_svg: String,
}

/// The account's second factors as its owner may see them (never a secret).
#[derive(Debug)]
pub struct MfaStatus {
    /// `None`, `Some(false)` while enrolment is pending, `Some(true)` when active.
    pub totp: Option<bool>,
    /// Unused recovery codes.
    pub recovery_codes_left: i64,
    /// Registered passkeys.
    pub passkeys: i64,
}

impl MfaStatus {
    /// Whether the account has a second factor (an active app or a passkey): recovery codes,
    /// step-up with the factor and the role policy all follow from this.
    pub fn has_factor(&self) -> bool {
        self.totp == Some(true) || self.passkeys > 0
    }
}

/// The second factor presented at `/api/login/mfa`.
#[derive(Debug, Clone, Copy)]
pub enum SecondFactor<'a> {
    /// A six-digit TOTP code.
    Totp(&'a str),
    /// One of the recovery codes.
    RecoveryCode(&'a str),
    /// A passkey's assertion for the options of `/api/login/mfa/webauthn/options`.
    Webauthn(&'a super::passkeys::PublicKeyCredential),
}

/// The outcome of the password step of a login.
#[derive(Debug)]
pub enum LoginStep {
    /// Signed in.
    Granted(Box<TokenGrant>),
    /// The password was right and the account has a second factor: answer this challenge
    /// with one of these methods.
    MfaRequired(String, Vec<&'static str>),
    /// The password was right, the account's roles require a second factor and it has
    /// none: enrol one with this challenge ([`AuthService::enrolment_start`]).
    EnrolmentRequired(String),
}

/// What a challenge was handed out for; a challenge works only for its own purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengePurpose {
    /// The second login step (`/api/login/mfa`).
    Login,
    /// Enrolment during sign-in, required by the role policy (`/api/login/mfa/enrol…`).
    Enrol,
}

/// Hex SHA-256.
fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// The digest a challenge is bound to: the client's address and user agent, and the
/// purpose (so a challenge of one purpose never matches at the other's step).
pub(crate) fn client_digest(client: &ClientInfo, purpose: ChallengePurpose) -> String {
    let ip = client.ip.as_deref().unwrap_or("");
    let ua = client.user_agent.as_deref().unwrap_or("");
    match purpose {
        ChallengePurpose::Login => sha256_hex(format!("{ip}\0{ua}").as_bytes()),
        ChallengePurpose::Enrol => sha256_hex(format!("enrol\0{ip}\0{ua}").as_bytes()),
    }
}

/// The canonical form of a recovery code (case, spaces and dashes do not matter), or
/// `None` when it cannot be one.
fn normalize_recovery_code(code: &str) -> Option<String> {
    let c: String = code.chars().filter(|c| !matches!(c, '-' | ' ')).collect::<String>().to_ascii_lowercase();
    (c.len() == RECOVERY_CODE_CHARS && c.bytes().all(|b| matches!(b, b'a'..=b'z' | b'2'..=b'7'))).then_some(c)
}

/// Ten new recovery codes (120 random bits each, six groups of four base32 characters)
/// and the digests to store. At 112 bits or more a plain SHA-256 digest is a sound way to
/// store them (ASVS 5 §6.5.2): no guess can be tested against it faster than online.
pub(crate) fn new_recovery_codes() -> (Vec<String>, Vec<String>) {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut rng = rand::rng();
    let mut codes = Vec::with_capacity(RECOVERY_CODES);
    let mut hashes = Vec::with_capacity(RECOVERY_CODES);
    for _ in 0..RECOVERY_CODES {
        let raw: String = (0..RECOVERY_CODE_CHARS).map(|_| char::from(ALPHABET[rng.random_range(0..32)])).collect();
        hashes.push(sha256_hex(raw.as_bytes()));
        let groups: Vec<&str> = (0..RECOVERY_CODE_CHARS).step_by(4).map(|i| &raw[i..i + 4]).collect();
        codes.push(groups.join("-"));
    }
    (codes, hashes)
}

impl Core {
    /// Mails the owner (at a verified address) that something changed about their second
    /// factors. Best effort: the change has happened; a mail that cannot be queued is logged.
    pub(crate) async fn notify_mfa(&self, user: &User, kind: &'static str, subject: &str, what: String) {
        let Some(email) = user.email.as_ref().filter(|_| user.email_verified) else { return };
        let text = vec![
            format!(
                "{what} on your gatepass account \"{}\" at {}.",
                user.username,
                crate::domain::clock::rfc3339(now())
            ),
            "If this was not you, change your password and contact your administrator.".to_owned(),
        ];
        let queued = match self.notice(kind, email.as_str(), user, subject, text) {
            Ok(mail) => {
                let mails = [mail];
                self.storage.enqueue_mails(&mails).await.map(|()| self.queued(&mails)).map_err(Error::from)
            }
            Err(e) => Err(e),
        };
        if let Err(e) = queued {
            tracing::warn!(error = %e.message(), kind, "could not queue a second-factor notice");
        }
    }

    /// An administrator's reset: removes the account's authenticator app, passkeys and
    /// recovery codes in one transaction, audited. Its sessions stay (they were started
    /// with a factor or before it). Returns whether there was a factor.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn reset_mfa(&self, by: &Actor, user: &User) -> Result<bool> {
        let removed = self.storage.remove_all_factors(user.id.as_str()).await?;
        let ev = by.event("mfa_reset").subject(user.id.as_str());
        self.audit(ev.detail(serde_json::json!({ "had_factor": removed }))).await;
        if removed {
            let what =
                "An administrator removed your second factors: the authenticator app, passkeys and recovery codes"
                    .to_owned();
            self.notify_mfa(user, "mfa_reset", "Your second factors were removed", what).await;
        }
        Ok(removed)
    }
}

impl AuthService {
    pub(super) fn master(&self) -> Result<&MasterKey> {
        self.keys.master.as_deref().ok_or_else(|| Error::Internal("no master key to seal TOTP secrets".into()))
    }

    /// Whether the account has an active second factor.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn has_mfa(&self, user_id: &str) -> Result<bool> {
        Ok(self.core.storage.totp_factor(user_id).await?.is_some_and(|f| f.active) || self.has_passkey(user_id).await?)
    }

    /// The methods the second step offers this account: the app's and the recovery codes'
    /// always (they say nothing about what the account has), `webauthn` when it has a passkey.
    pub(super) async fn mfa_methods(&self, user_id: &str) -> Result<Vec<&'static str>> {
        let mut methods = METHODS.to_vec();
        if self.has_passkey(user_id).await? {
            methods.push(WEBAUTHN);
        }
        Ok(methods)
    }

    /// The step-up rule for sensitive actions (address change, ending other sessions): a
    /// fresh login that included the second factor when the account has one.
    ///
    /// # Errors
    /// [`Error::FreshLoginRequired`]; storage errors.
    pub async fn require_step_up(&self, claims: &AccessClaims) -> Result<()> {
        self.require_fresh(claims)?;
        self.require_second_factor_if_enrolled(claims).await
    }

    /// Refuses a session without the second factor when the account has one (a session
    /// that was started before the factor was enabled).
    ///
    /// # Errors
    /// [`Error::FreshLoginRequired`]; storage errors.
    pub async fn require_second_factor_if_enrolled(&self, claims: &AccessClaims) -> Result<()> {
        if !claims.is_mfa() && self.has_mfa(&claims.sub).await? {
            return Err(Error::FreshLoginRequired);
        }
        Ok(())
    }

    /// The step-up rule for changing second factors: a fresh login, and one that included
    /// the second factor.
    fn require_fresh_mfa(&self, claims: &AccessClaims) -> Result<()> {
        self.require_fresh(claims)?;
        if !claims.is_mfa() {
            return Err(Error::FreshLoginRequired);
        }
        Ok(())
    }

    /// The caller's second factors.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn mfa_status(&self, claims: &AccessClaims) -> Result<MfaStatus> {
        let storage = &self.core.storage;
        let totp = storage.totp_factor(&claims.sub).await?.map(|f| f.active);
        let passkeys = storage.passkey_count(&claims.sub).await?;
        let mut status = MfaStatus { totp, recovery_codes_left: 0, passkeys };
        if status.has_factor() {
            status.recovery_codes_left = storage.recovery_codes_left(&claims.sub).await?;
        }
        Ok(status)
    }

    /// Starts TOTP enrolment: a new secret, sealed and stored as pending (replacing any
    /// pending one), shown once.
    ///
    /// # Errors
    /// [`Error::MfaAlreadyEnabled`] when the account has an active factor; storage errors.
    pub async fn totp_enrol(&self, claims: &AccessClaims, client: &ClientInfo) -> Result<TotpEnrolment> {
        let user = self.current_user(claims).await?;
        self.start_totp(&user, client).await
    }

    /// A new secret for `user`, sealed and stored as pending (replacing any pending one).
    pub(super) async fn start_totp(&self, user: &User, client: &ClientInfo) -> Result<TotpEnrolment> {
        let id = user.id.as_str();
        let secret = totp::generate_secret();
        let sealed = self.master()?.seal_totp(id, &secret)?;
        if !self.core.storage.put_pending_totp(id, &sealed, now()).await? {
            return Err(Error::MfaAlreadyEnabled);
        }
        let otpauth_uri = totp::otpauth_uri(&secret, TOTP_ISSUER, user.username.as_str())?;
        let qr_svg = totp::qr_svg(&otpauth_uri)?;
        self.core.audit(event("mfa_totp_enrolment_started", SUCCESS, client).actor(id).subject(id)).await;
        Ok(TotpEnrolment { secret: totp::secret_base32(&secret).to_string(), otpauth_uri, qr_svg })
    }

    /// Confirms a pending enrolment with a code from the app: the factor becomes active
    /// and ten recovery codes are returned (shown once).
    ///
    /// # Errors
    /// [`Error::Validation`] for a wrong code or no pending enrolment;
    /// [`Error::MfaAlreadyEnabled`]; storage errors.
    pub async fn totp_confirm(&self, claims: &AccessClaims, code: &str, client: &ClientInfo) -> Result<Vec<String>> {
        let invalid = || Error::from(crate::domain::ValidationError::new("code", "is not a valid code"));
        let Some(factor) = self.core.storage.totp_factor(&claims.sub).await? else { return Err(invalid()) };
        if factor.active {
            return Err(Error::MfaAlreadyEnabled);
        }
        let secret = self.master()?.open_totp(&claims.sub, &factor.secret)?;
        let Some(step) = totp::verify(&secret, code.trim(), now()) else {
            let ev = event("mfa_totp_confirm_failed", FAILURE, client).actor(&claims.sub).subject(&claims.sub);
            self.core.audit(ev).await;
            return Err(invalid());
        };
        let (codes, hashes) = new_recovery_codes();
        if !self.core.storage.activate_totp(&claims.sub, &factor.secret, step, now(), &hashes).await? {
            // Another enrolment replaced the secret, or another confirmation won.
            return Err(invalid());
        }
        self.core.audit(event("mfa_totp_enabled", SUCCESS, client).actor(&claims.sub).subject(&claims.sub)).await;
        if let Ok(user) = self.current_user(claims).await {
            let what = "An authenticator app was set up".to_owned();
            self.core.notify_mfa(&user, "mfa_enabled", "Authenticator app set up", what).await;
        }
        Ok(codes)
    }

    /// Removes the TOTP factor and the recovery codes; needs a fresh login with the second
    /// factor.
    ///
    /// # Errors
    /// [`Error::FreshLoginRequired`]; [`Error::NotFound`] when there is no factor.
    pub async fn totp_remove(&self, claims: &AccessClaims, client: &ClientInfo) -> Result<()> {
        let active = self.has_mfa(&claims.sub).await?;
        if active {
            self.require_fresh_mfa(claims)?;
        }
        if !self.core.storage.remove_totp(&claims.sub).await? {
            return Err(Error::NotFound);
        }
        let ev = event("mfa_totp_removed", SUCCESS, client).actor(&claims.sub).subject(&claims.sub);
        self.core.audit(ev.detail(serde_json::json!({ "was_active": active }))).await;
        if let (true, Ok(user)) = (active, self.current_user(claims).await) {
            let what = "The authenticator app and recovery codes were removed".to_owned();
            self.core.notify_mfa(&user, "mfa_removed", "Authenticator app removed", what).await;
        }
        Ok(())
    }

    /// Replaces the recovery codes; needs a fresh login with the second factor.
    ///
    /// # Errors
    /// [`Error::FreshLoginRequired`]; [`Error::NotFound`] without an active factor.
    pub async fn regenerate_recovery_codes(&self, claims: &AccessClaims, client: &ClientInfo) -> Result<Vec<String>> {
        if !self.has_mfa(&claims.sub).await? {
            return Err(Error::NotFound);
        }
        self.require_fresh_mfa(claims)?;
        let (codes, hashes) = new_recovery_codes();
        if !self.core.storage.replace_recovery_codes(&claims.sub, &hashes, now()).await? {
            return Err(Error::NotFound);
        }
        let ev = event("mfa_recovery_codes_regenerated", SUCCESS, client).actor(&claims.sub).subject(&claims.sub);
        self.core.audit(ev).await;
        Ok(codes)
    }

    /// Hands out the challenge of the second login step for `user`, whose password was
    /// just proved by `client`.
    pub(crate) async fn issue_mfa_challenge(
        &self,
        user: &User,
        client: &ClientInfo,
        purpose: ChallengePurpose,
    ) -> Result<String> {
        let (challenge, digest) = onetime::generate();
        let t = now();
        let record = MfaChallenge {
            challenge_hash: digest,
            user_id: user.id.as_str().to_owned(),
            client_hash: client_digest(client, purpose),
            created_at: t,
            expires_at: t + CHALLENGE_TTL_SECS,
        };
        self.core.storage.insert_mfa_challenge(&record).await?;
        let ev = event("login_mfa_challenge", SUCCESS, client).actor(user.id.as_str()).subject(user.id.as_str());
        let purpose = match purpose {
            ChallengePurpose::Login => "login",
            ChallengePurpose::Enrol => "enrol",
        };
        self.core.audit(ev.detail(serde_json::json!({ "purpose": purpose }))).await;
        Ok(challenge)
    }

    /// The second login step: takes the challenge (once), checks that the same client
    /// answers it, then the factor, and starts a session whose tokens say how it was
    /// authenticated. Every refusal is [`Error::InvalidCredentials`], saying nothing about
    /// which part was wrong or which factors the account has; a wrong factor counts toward
    /// the account's back-off like a wrong password.
    ///
    /// # Errors
    /// [`Error::InvalidCredentials`]; [`Error::RateLimited`]; storage errors.
    pub async fn login_mfa(
        &self,
        challenge: &str,
        factor: SecondFactor<'_>,
        client: &ClientInfo,
        browser: Option<BrowserLogin<'_>>,
    ) -> Result<TokenGrant> {
        self.throttle(Action::Login, client, None).await?;
        let Some(digest) = onetime::parse(challenge) else { return Err(Error::InvalidCredentials) };
        let t = now();
        let Some(taken) = self.core.storage.take_mfa_challenge(&digest, t).await? else {
            self.core
                .audit(
                    event("login_mfa_failed", FAILURE, client)
                        .detail(serde_json::json!({ "reason": "challenge_invalid" })),
                )
                .await;
            return Err(Error::InvalidCredentials);
        };
        let refuse = |reason: &'static str| {
            event("login_mfa_failed", FAILURE, client)
                .actor(&taken.user_id)
                .subject(&taken.user_id)
                .detail(serde_json::json!({ "reason": reason }))
        };
        if !onetime::matches(&taken.client_hash, &client_digest(client, ChallengePurpose::Login)) {
            self.core.audit(refuse("other_client")).await;
            return Err(Error::InvalidCredentials);
        }
        let user = self.core.storage.user_by_id(&UserId::from_trusted(taken.user_id.clone())).await?;
        let Some(user) = user.filter(|u| !u.disabled) else {
            self.core.audit(refuse("account_unavailable")).await;
            return Err(Error::InvalidCredentials);
        };
        let device = Self::recognised(self.device_of(client).as_ref(), user.id.as_str());
        let attempt = self.password_gate(Action::Login, user.username.as_str(), client, device).await?;
        let verdict = self.check_factor(&user, factor, &digest, client).await;
        let mut amr = Vec::new();
        let outcome = match verdict {
            Ok(Some(accepted)) => {
                amr = accepted;
                Ok(user)
            }
            Ok(None) => Err(Error::InvalidCredentials),
            Err(e) => Err(e),
        };
        let user = match self.note_attempt(&attempt, outcome).await {
            Ok(user) => user,
            Err(e) => {
                metrics::counter!("gatepass_logins_total", "outcome" => "failed").increment(1);
                self.core.audit(refuse("wrong_factor")).await;
                return Err(e);
            }
        };
        metrics::counter!("gatepass_logins_total", "outcome" => "ok").increment(1);
        let method = match factor {
            SecondFactor::Totp(_) => "totp",
            SecondFactor::RecoveryCode(_) => "recovery_code",
            SecondFactor::Webauthn(_) => WEBAUTHN,
        };
        if matches!(factor, SecondFactor::RecoveryCode(_)) {
            let ev = event("mfa_recovery_code_used", SUCCESS, client).actor(user.id.as_str()).subject(user.id.as_str());
            self.core.audit(ev).await;
            let what = "A recovery code was used to sign in".to_owned();
            self.core.notify_mfa(&user, "mfa_recovery_code_used", "A recovery code was used", what).await;
        }
        let ev = event("login", SUCCESS, client).actor(user.id.as_str()).subject(user.id.as_str());
        self.core.audit(ev.detail(serde_json::json!({ "second_factor": method }))).await;
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

    /// Checks (and uses up) a second factor of `user`: a TOTP code whose time step is
    /// later than any accepted before, an unused recovery code, or a passkey's assertion
    /// for the options handed out for this challenge. The session's `amr` when accepted.
    pub(super) async fn check_factor(
        &self,
        user: &User,
        factor: SecondFactor<'_>,
        challenge_digest: &str,
        client: &ClientInfo,
    ) -> Result<Option<Vec<String>>> {
        let id = user.id.as_str();
        let storage = &self.core.storage;
        let amr = |m: &[&str]| m.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        match factor {
            SecondFactor::Totp(code) => {
                let Some(f) = storage.totp_factor(id).await?.filter(|f| f.active) else { return Ok(None) };
                let secret = self.master()?.open_totp(id, &f.secret)?;
                let Some(step) = totp::verify(&secret, code.trim(), now()) else { return Ok(None) };
                // The compare-and-swap refuses this step if it, or a later one, was used.
                Ok(storage.accept_totp_step(id, step).await?.then(|| amr(&["pwd", "otp", "mfa"])))
            }
            SecondFactor::RecoveryCode(code) => {
                let Some(code) = normalize_recovery_code(code) else { return Ok(None) };
                let used = storage.use_recovery_code(id, &sha256_hex(code.as_bytes()), now()).await?;
                Ok(used.then(|| amr(&["pwd", "mfa", "recovery_code"])))
            }
            SecondFactor::Webauthn(credential) => {
                self.check_passkey_factor(user, challenge_digest, credential, client).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_are_distinct_and_normalize_back() {
        let (codes, hashes) = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        for (code, hash) in codes.iter().zip(&hashes) {
            assert_eq!(code.len(), 29, "six groups of four: {code}");
            let n = normalize_recovery_code(&code.to_uppercase()).unwrap();
            assert_eq!(&sha256_hex(n.as_bytes()), hash);
        }
        let mut unique = hashes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), RECOVERY_CODES);
        assert!(normalize_recovery_code("short").is_none());
        assert!(normalize_recovery_code("0000-0000-0000-0000").is_none());
    }
}
