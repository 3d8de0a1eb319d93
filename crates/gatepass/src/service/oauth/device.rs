//! The OAuth 2.0 Device Authorization Grant (RFC 8628): a device without a browser asks
//! `/oauth/device_authorization` for a device code and a user code; the user signs in on
//! `/oauth/device`, types the user code, sees the client and the scopes, and approves or
//! denies; the device polls the token endpoint with the device code until it gets tokens.
//!
//! The device code is 256 random bits, the user code 8 letters (about 2^34.6 values):
//! both are kept as digests only, valid 10 minutes; the user code's is keyed (HMAC under
//! a key derived from the master secret), since so few values are quickly tried against a
//! plain digest in a leaked database. The user code can be guessed only
//! through the page, which is throttled per network and per account and needs a signed-in
//! user. The page always asks for confirmation, first-party client or not (RFC 8628
//! §5.4: the user must see which device they let in). A decision is one compare-and-swap,
//! as is the redemption: of concurrent polls after approval one gets tokens.
//!
//! Unlike an authorization code, a device code presented again after its tokens were
//! issued revokes nothing: it never travels through a browser, and a device that polls
//! once more is buggy rather than evidence of a stolen code.

use serde::{Deserialize, Serialize};

use super::authorize::ScopeLine;
use super::token::{GrantOrigin, TokenRequest, TokenResponse};
use super::{DEVICE_CODE_TTL, DEVICE_GRANT, DEVICE_POLL_INTERVAL, KNOWN_SCOPES, describe_scope, scope_set};
use crate::auth::oauth::{self as primitives, DEVICE_CODE_PREFIX};
use crate::auth::ratelimit::{self, Action};
use crate::domain::UserId;
use crate::error::{Error, OAuthCode, OAuthError, Result};
use crate::service::oauth::token::ClientCredentials;
use crate::service::{AuthService, ClientInfo, amr_of, event, now};
use crate::storage::audit::SUCCESS;
use crate::storage::device::{DEVICE_APPROVED, DEVICE_DENIED, DEVICE_PENDING, DEVICE_USED};
use crate::storage::{DeviceApproval, DeviceCode, DeviceRedemption, OAuthClient, StorageError};

type OResult<T> = std::result::Result<T, OAuthError>;

fn err(code: OAuthCode, description: &str) -> OAuthError {
    OAuthError::new(code, description)
}

/// Longest interval `slow_down` grows a device's polling to, seconds.
const MAX_POLL_INTERVAL: i64 = 60;

/// What the page says to a wrong, expired or used user code (one message for all: the
/// page tells a guesser nothing about which codes exist).
const WRONG_CODE: &str =
    "That code is not valid: it may be mistyped, expired or already used. Check the code on your device.";

/// A device authorization request's parameters (form body, RFC 8628 §3.1).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceAuthorizationRequest {
    /// The client (`client_secret_post` and public clients).
    pub client_id: Option<String>,
    /// The secret (`client_secret_post`).
    pub client_secret: Option<String>,
    /// Space-separated scopes, each one the client may ask for.
    pub scope: Option<String>,
    /// The resource (RFC 8707) the access token is for; one of the client's.
    pub resource: Option<String>,
}

/// The device authorization response (RFC 8628 §3.2).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeviceAuthorizationResponse {
    /// What the device polls the token endpoint with.
    pub device_code: String,
    /// What the user types on the verification page, `XXXX-XXXX`.
    pub user_code: String,
    /// The page where the user enters the code (`{issuer}/oauth/device`).
    pub verification_uri: String,
    /// The page with the code filled in (for a QR code or a link).
    pub verification_uri_complete: String,
    /// Seconds until both codes expire.
    pub expires_in: i64,
    /// Seconds the device waits between polls.
    pub interval: i64,
}

/// What the verification page shows next.
#[derive(Debug, Clone)]
pub enum DevicePage {
    /// The form asking for the user code.
    Form {
        /// The code to prefill (as typed or as the link carried it).
        user_code: String,
        /// Why the form is shown again.
        error: Option<String>,
        /// The attempt was refused by the rate limiter (the page answers 429).
        throttled: bool,
    },
    /// The client and the scopes, with Approve and Deny.
    Confirm {
        /// The client's name.
        client_name: String,
        /// What it asks for, in plain words.
        scopes: Vec<ScopeLine>,
        /// The user code, `XXXX-XXXX`.
        user_code: String,
    },
    /// The provider is off: an error page with this message.
    Unavailable(String),
    /// The decision was recorded.
    Done {
        /// Approved (else denied).
        approved: bool,
        /// The client's name.
        client_name: String,
    },
}

impl DevicePage {
    /// The form with `user_code` (as typed, shortened and restricted to what a code can
    /// hold, since it is shown again) and `error`.
    fn form(user_code: &str, error: Option<&str>) -> Self {
        Self::form_with(user_code, error, false)
    }

    fn form_with(user_code: &str, error: Option<&str>, throttled: bool) -> Self {
        let shown: String = user_code.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(16).collect();
        DevicePage::Form { user_code: shown, error: error.map(str::to_owned), throttled }
    }
}

/// The page while the provider is off.
fn unavailable() -> DevicePage {
    DevicePage::Unavailable("This server does not act as an OAuth provider.".into())
}

/// A pending device code the user typed.
struct Typed {
    /// Keyed digest of the normalised user code ([`super::keys::ProviderKeys::user_code_digest`]).
    hash: String,
    /// Its client.
    client: OAuthClient,
    /// The scopes asked for.
    scope: String,
    /// The normalised user code.
    code: String,
    /// When it was looked up.
    t: i64,
}

impl AuthService {
    /// Serves a device authorization request: authenticates the client as the token
    /// endpoint does, checks the grant, scopes and resource, and issues the code pair.
    ///
    /// # Errors
    /// The RFC 6749 error; storage failures as `server_error`/`temporarily_unavailable`.
    pub async fn device_authorization(
        &self,
        req: DeviceAuthorizationRequest,
        creds: ClientCredentials,
    ) -> OResult<DeviceAuthorizationResponse> {
        let (Some(iss), Some(keys)) = (self.oauth.issuer(), self.oauth.keys()) else {
            return Err(err(OAuthCode::InvalidRequest, "this server does not act as an OAuth provider"));
        };
        let as_token_request = TokenRequest {
            client_id: req.client_id.clone(),
            client_secret: req.client_secret.clone(),
            ..TokenRequest::default()
        };
        let client = self.authenticate_client(&as_token_request, &creds).await?;
        if !client.grant_types.iter().any(|g| g == DEVICE_GRANT) {
            return Err(err(OAuthCode::UnauthorizedClient, "this client may not use the device authorization grant"));
        }
        let scopes = scope_set(req.scope.as_deref().unwrap_or(""));
        if scopes.is_empty() {
            return Err(err(OAuthCode::InvalidScope, "scope is required"));
        }
        if let Some(s) = scopes.iter().find(|s| !client.scopes.contains(s)) {
            let what = if KNOWN_SCOPES.contains(&s.as_str()) { "not allowed for this client" } else { "unknown" };
            return Err(err(OAuthCode::InvalidScope, &format!("scope {s} is {what}")));
        }
        let resource = req.resource.filter(|r| !r.is_empty());
        if let Some(r) = &resource {
            super::resource::check(&client, r).map_err(|why| err(OAuthCode::InvalidTarget, &why))?;
        }
        let t = now();
        // A user code colliding with a live one is drawn again; three collisions in a row
        // (about one chance in 10^30 at a million live codes) are an error, never a reuse.
        for _ in 0..3 {
            let device_code = primitives::generate(DEVICE_CODE_PREFIX);
            let user_code = primitives::generate_user_code();
            let stored = DeviceCode {
                device_hash: primitives::digest(&device_code),
                user_code_hash: keys.user_code_digest(&user_code),
                client_id: client.client_id.clone(),
                scope: scopes.join(" "),
                resource: resource.clone(),
                created_at: t,
                expires_at: t + DEVICE_CODE_TTL,
                interval_secs: DEVICE_POLL_INTERVAL,
                last_poll_at: None,
                status: DEVICE_PENDING.to_owned(),
                user_id: None,
                browser_sid: None,
                auth_time: None,
                amr: None,
                decided_at: None,
                used_at: None,
                issued_sid: None,
            };
            match self.core.storage.insert_device_code(&stored).await {
                Ok(()) => {
                    let verification_uri = format!("{iss}/oauth/device");
                    let shown = primitives::format_user_code(&user_code);
                    return Ok(DeviceAuthorizationResponse {
                        device_code,
                        verification_uri_complete: format!("{verification_uri}?user_code={shown}"),
                        verification_uri,
                        user_code: shown,
                        expires_in: DEVICE_CODE_TTL,
                        interval: DEVICE_POLL_INTERVAL,
                    });
                }
                Err(StorageError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Internal("user code collisions".into()).into())
    }

    /// The verification page's first view: the form, prefilled with `user_code`.
    pub fn device_form(&self, user_code: Option<&str>) -> DevicePage {
        if self.oauth.issuer().is_none() {
            return unavailable();
        }
        DevicePage::form(user_code.unwrap_or(""), None)
    }

    /// The user typed `user_code`: the client and the scopes to confirm, or the form again
    /// with why not (nothing changes either way). Throttled per network and account.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn device_lookup(
        &self,
        claims: &gatepass_verify::AccessClaims,
        user_code: &str,
        info: &ClientInfo,
    ) -> Result<DevicePage> {
        match self.pending_device_code(claims, user_code, info).await? {
            Ok(typed) => Ok(DevicePage::Confirm {
                scopes: scope_set(&typed.scope)
                    .iter()
                    .map(|s| ScopeLine { scope: s.clone(), text: describe_scope(s) })
                    .collect(),
                client_name: typed.client.name,
                user_code: primitives::format_user_code(&typed.code),
            }),
            Err(page) => Ok(page),
        }
    }

    /// The user approved (`allow`) or denied the device code `user_code`. The decision is
    /// taken once: a code already decided, expired or unknown shows the form again and
    /// changes nothing. An approval also remembers the consent to the scopes.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn device_decide(
        &self,
        claims: &gatepass_verify::AccessClaims,
        user_code: &str,
        allow: bool,
        info: &ClientInfo,
    ) -> Result<DevicePage> {
        let Typed { hash, client, t, .. } = match self.pending_device_code(claims, user_code, info).await? {
            Ok(found) => found,
            Err(page) => return Ok(page),
        };
        let amr = amr_of(claims).join(" ");
        let approval = allow.then_some(DeviceApproval {
            user_id: &claims.sub,
            browser_sid: &claims.sid,
            auth_time: claims.auth_time,
            amr: &amr,
        });
        if !self.core.storage.decide_device_code(&hash, &claims.sub, approval, t).await? {
            return Ok(DevicePage::form(user_code, Some(WRONG_CODE)));
        }
        let name = if allow { "oauth_device_approved" } else { "oauth_device_denied" };
        let detail = serde_json::json!({ "client_id": client.client_id });
        self.core.audit(event(name, SUCCESS, info).actor(&claims.sub).subject(&claims.sub).detail(detail)).await;
        Ok(DevicePage::Done { approved: allow, client_name: client.name })
    }

    /// The pending, unexpired device code the user typed, with its client, scope and
    /// normalised code, after the throttle; or the page to show instead.
    async fn pending_device_code(
        &self,
        claims: &gatepass_verify::AccessClaims,
        user_code: &str,
        info: &ClientInfo,
    ) -> Result<std::result::Result<Typed, DevicePage>> {
        if self.oauth.issuer().is_none() {
            return Ok(Err(unavailable()));
        }
        // Every attempt costs a token, a right one too: guessing needs many attempts.
        let account = ratelimit::account_key(&claims.username);
        match self.throttle(Action::DeviceCode, info, Some(&account)).await {
            Ok(()) => {}
            Err(Error::RateLimited { retry_after }) => {
                let msg = format!("Too many attempts. Wait {retry_after} seconds, then try again.");
                return Ok(Err(DevicePage::form_with(user_code, Some(&msg), true)));
            }
            Err(e) => return Err(e),
        }
        let wrong = || Ok(Err(DevicePage::form(user_code, Some(WRONG_CODE))));
        let Some(code) = primitives::normalize_user_code(user_code) else { return wrong() };
        let hash = self.oauth_keys()?.user_code_digest(&code);
        let t = now();
        let Some(stored) = self.core.storage.device_code_by_user_code(&hash).await? else { return wrong() };
        if stored.status != DEVICE_PENDING || stored.expires_at <= t {
            return wrong();
        }
        let Some(client) = self.core.storage.client(&stored.client_id).await? else { return wrong() };
        Ok(Ok(Typed { hash, client, scope: stored.scope, code, t }))
    }

    /// The device code grant (RFC 8628 §3.4): pending, slow down, denied, expired, or the
    /// tokens an authorization-code exchange would issue (no nonce).
    pub(super) async fn device_code_grant(
        &self,
        client: &OAuthClient,
        req: &TokenRequest,
        info: &ClientInfo,
    ) -> OResult<TokenResponse> {
        let invalid = |d: &str| err(OAuthCode::InvalidGrant, d);
        let code =
            req.device_code.as_deref().ok_or_else(|| err(OAuthCode::InvalidRequest, "device_code is required"))?;
        if !primitives::looks_generated(code, DEVICE_CODE_PREFIX) {
            return Err(invalid("the device code is invalid"));
        }
        let hash = primitives::digest(code);
        let storage = &self.core.storage;
        let stored = storage.device_code(&hash).await?.ok_or_else(|| invalid("the device code is invalid"))?;
        if stored.client_id != client.client_id {
            return Err(invalid("the device code was issued to another client"));
        }
        let t = now();
        if stored.status == DEVICE_USED {
            return Err(invalid("the device code was already used"));
        }
        if stored.expires_at <= t {
            return Err(err(OAuthCode::ExpiredToken, "the device code has expired; start again"));
        }
        match stored.status.as_str() {
            DEVICE_DENIED => return Err(err(OAuthCode::AccessDenied, "the user denied the request")),
            DEVICE_PENDING => {
                // slow_down is a variant of pending (RFC 8628 §3.5): only an undecided code
                // is paced; a decided one is answered at once.
                let too_fast = stored.last_poll_at.is_some_and(|p| t - p < stored.interval_secs);
                let interval =
                    if too_fast { (stored.interval_secs + 5).min(MAX_POLL_INTERVAL) } else { stored.interval_secs };
                let recorded = storage.record_device_poll(&hash, stored.last_poll_at, t, interval).await?;
                // A poll that lost the compare-and-swap came in at the same time as another.
                if too_fast || !recorded {
                    return Err(err(OAuthCode::SlowDown, "polling too fast; wait longer between requests"));
                }
                return Err(err(OAuthCode::AuthorizationPending, "the user has not decided yet"));
            }
            DEVICE_APPROVED => {}
            _ => return Err(invalid("the device code is invalid")),
        }
        let (Some(user_id), Some(auth_time), Some(amr)) = (&stored.user_id, stored.auth_time, &stored.amr) else {
            return Err(invalid("the device code is invalid"));
        };
        let user = storage
            .user_by_id(&UserId::from_trusted(user_id.clone()))
            .await?
            .filter(|u| !u.disabled)
            .ok_or_else(|| invalid("the account is no longer available"))?;
        let audience = super::resource::audience(client, req.resource.as_deref(), stored.resource.as_deref())
            .map_err(|why| err(OAuthCode::InvalidTarget, &why))?;
        let origin = GrantOrigin { scope: &stored.scope, auth_time, amr, resource: stored.resource.as_deref() };
        let pending = self.pending_grant(client, &user, info, t, origin, req.resource.as_deref());
        match storage.redeem_device_code(&hash, t, pending.new_session(&user)).await? {
            DeviceRedemption::Issued => {}
            DeviceRedemption::Refused => return Err(invalid("the device code is invalid, expired or used")),
        }
        let refresh = pending.refresh_for(client);
        self.client_tokens(client, &user, &pending.record, &audience, &stored.scope, None, refresh, t)
    }
}
