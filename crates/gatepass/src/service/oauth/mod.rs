//! gatepass as an OAuth 2.1 / OpenID Connect provider: other applications sign their users
//! in with gatepass. One use case per file: [`clients`] (registering and managing
//! clients), [`apps`] (the applications a user has allowed, and withdrawing one),
//! [`authorize`] (the authorization request, sign-in and consent, codes), [`device`] (the
//! device authorization grant, RFC 8628), [`token`] (the token endpoint's grants),
//! [`revoke`] (a client revoking its tokens, RFC 7009), [`userinfo`], [`logout`]
//! (RP-initiated logout), [`registration`] (dynamic client registration), [`resource`]
//! (RFC 8707 resource indicators: the audience of access tokens) and [`keys`] (the keys
//! that sign ID tokens and client access tokens).
//!
//! A grant a client holds for a user is a session (with the client and scopes on its row),
//! so rotation with reuse detection, revocation and the revocation feed cover it as they
//! cover gatepass's own sign-ins. Client tokens are signed with the provider's key only,
//! which gatepass's own verifier does not trust: a client's token never opens gatepass's
//! own API.

pub mod apps;
pub mod authorize;
pub mod clients;
pub mod device;
pub mod keys;
pub mod logout;
pub mod registration;
pub mod resource;
pub mod revoke;
pub mod token;
pub mod userinfo;

use serde::{Deserialize, Serialize};
use std::sync::{Arc, RwLock};

pub use keys::ProviderKeys;

/// Scopes whose meaning gatepass defines (clients may also be given scopes of their own
/// APIs, which gatepass only passes on in access tokens).
pub const KNOWN_SCOPES: &[&str] = &["openid", "profile", "email", "roles", "offline_access"];
/// The grant type of the device authorization grant (RFC 8628 §3.4).
pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// Grant types the token endpoint serves.
pub const GRANT_TYPES: &[&str] = &["authorization_code", "refresh_token", "client_credentials", DEVICE_GRANT];
/// Claims the provider can return (ID token and userinfo).
pub const CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "amr",
    "at_hash",
    "sid",
    "preferred_username",
    "name",
    "email",
    "email_verified",
    "roles",
];
/// How long an authorization code is valid, seconds.
pub const CODE_TTL: i64 = 60;
/// How long a device code (and its user code) is valid, seconds.
pub const DEVICE_CODE_TTL: i64 = 600;
/// Seconds a device waits between polls at first (RFC 8628 §3.2).
pub const DEVICE_POLL_INTERVAL: i64 = 5;

/// The words a consent page shows for a scope.
pub fn describe_scope(scope: &str) -> String {
    match scope {
        "openid" => "Know who you are on gatepass (an identifier for your account)".into(),
        "profile" => "See your username".into(),
        "email" => "See your e-mail address and whether it is verified".into(),
        "roles" => "See your roles".into(),
        "offline_access" => "Stay signed in when you are away (until you sign it out)".into(),
        other => format!("Use the API permission \"{other}\""),
    }
}

/// Whether `s` is a scope token (RFC 6749 §3.3), of a sane length.
pub fn valid_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// A space-separated scope string as a sorted set without duplicates.
pub fn scope_set(scope: &str) -> Vec<String> {
    let mut v: Vec<String> = scope.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect();
    v.sort();
    v.dedup();
    v
}

/// Claims of an access token issued to a client (RFC 9068).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClientAccessClaims {
    /// The provider's issuer URL.
    pub iss: String,
    /// The user id, or the client id for `client_credentials`.
    pub sub: String,
    /// The client's resource, or its id.
    pub aud: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Expires at.
    pub exp: i64,
    /// Token id.
    pub jti: String,
    /// The grant (session) the token belongs to; absent for `client_credentials`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// When the user authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// The user's roles, with the `roles` scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
}

impl gatepass_verify::TimedClaims for ClientAccessClaims {
    fn issued_at(&self) -> i64 {
        self.iat
    }
    fn expires_at(&self) -> i64 {
        self.exp
    }
    // The audience is the client's resource, checked by whoever consumes the token; the
    // provider's own endpoints (userinfo, introspection) accept every audience it issues.
    fn audience(&self) -> Option<&str> {
        None
    }
}

impl ClientAccessClaims {
    /// Whether the token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.split(' ').any(|s| s == scope)
    }
}

/// Claims of an ID token (OpenID Connect Core §2).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdTokenClaims {
    /// Issuer.
    pub iss: String,
    /// The user id.
    pub sub: String,
    /// The client id.
    pub aud: String,
    /// Expires at.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// When the user authenticated.
    pub auth_time: i64,
    /// The authorization request's nonce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// How the user authenticated (RFC 8176).
    pub amr: Vec<String>,
    /// Left half of the SHA-256 of the access token issued with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    /// The grant (session) id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// Who may register clients at `/oauth/register` (RFC 7591), `GATEPASS_OAUTH_REGISTRATION`.
#[derive(Clone, Default)]
pub enum Registration {
    /// Nobody: the endpoint answers 404 (the default).
    #[default]
    Off,
    /// Anyone (rate-limited like the other anonymous endpoints).
    Open,
    /// Whoever presents this initial access token as a bearer token.
    Token(Arc<str>),
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Registration::Off => "Off",
            Registration::Open => "Open",
            Registration::Token(_) => "Token(..)",
        })
    }
}

/// The provider's configuration and signing keys. Disabled (every OAuth endpoint answers
/// 404) unless the issuer is an `http(s)` URL, since OpenID Connect identifies a provider
/// by its URL.
#[derive(Default)]
pub struct Provider {
    issuer: Option<String>,
    keys: RwLock<Option<Arc<ProviderKeys>>>,
    registration: Registration,
}

impl Provider {
    /// A provider for `issuer` when it is an `http(s)` URL (trailing `/` dropped); else disabled.
    pub fn new(issuer: &str) -> Self {
        let lower = issuer.to_ascii_lowercase();
        let enabled =
            (lower.starts_with("https://") || lower.starts_with("http://")) && url::Url::parse(issuer).is_ok();
        Self {
            issuer: enabled.then(|| issuer.trim_end_matches('/').to_owned()),
            keys: RwLock::new(None),
            registration: Registration::Off,
        }
    }

    /// The provider with dynamic client registration set to `registration`.
    pub fn with_registration(mut self, registration: Registration) -> Self {
        self.registration = registration;
        self
    }

    /// Who may register clients; always [`Registration::Off`] while the provider is off.
    pub fn registration(&self) -> &Registration {
        static OFF: Registration = Registration::Off;
        if self.issuer.is_some() { &self.registration } else { &OFF }
    }

    /// The issuer URL, when the provider is enabled.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The signing keys, once loaded.
    pub fn keys(&self) -> Option<Arc<ProviderKeys>> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn set_keys(&self, keys: ProviderKeys) {
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(keys));
    }
}
