//! The claims gatepass puts in an access token.

use serde::{Deserialize, Serialize};

/// The JOSE `typ` header of gatepass access tokens (RFC 9068).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Claims of a gatepass access token.
///
/// Every field is required when verifying; a claim with the wrong JSON type makes the
/// token invalid rather than being treated as absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer; must equal the verifier's configured issuer.
    pub iss: String,
    /// The user id (a UUIDv7 string).
    pub sub: String,
    /// The user's name at the time the token was issued.
    pub username: String,
    /// Roles, e.g. `["user"]` or `["user", "admin"]`.
    pub roles: Vec<String>,
    /// Issued at (seconds since the Unix epoch).
    pub iat: i64,
    /// Not valid before (seconds since the Unix epoch).
    pub nbf: i64,
    /// Expires at (seconds since the Unix epoch).
    pub exp: i64,
    /// Unique token id.
    pub jti: String,
    /// Session id; logging out ends every token that carries it.
    pub sid: String,
    /// When the user last proved their password (seconds since the Unix epoch).
    pub auth_time: i64,
    /// Whether the account's e-mail address is verified (OpenID Connect's claim); present
    /// when the account has an address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// How the user authenticated (RFC 8176 values such as `pwd`, `otp`, `mfa`). Tokens
    /// from servers before second factors have none, which reads as empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// Audience, present when the server is configured with one.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present_string")]
    pub aud: Option<String>,
}

/// For an optional registered claim: absent is `None` (with `#[serde(default)]`), but a
/// claim that is present must have its RFC 7519 type, so `"aud": null` or a number is a
/// malformed token rather than "no audience".
///
/// # Errors
/// Any JSON value but a string.
pub fn present_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

impl AccessClaims {
    /// Whether the token carries `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether the session was authenticated with more than one factor (`amr` has `mfa`).
    pub fn is_mfa(&self) -> bool {
        self.amr.iter().any(|m| m == "mfa")
    }
}

/// Time claims every verified token kind exposes, so the verifier can apply the checks
/// the JWT crate leaves out (`iat` sanity, maximum lifetime, unexpected `aud`).
pub trait TimedClaims {
    /// `iat`
    fn issued_at(&self) -> i64;
    /// `exp`
    fn expires_at(&self) -> i64;
    /// `aud`, if any.
    fn audience(&self) -> Option<&str>;
}

/// Implements [`TimedClaims`] for a claims struct with the registered fields `iat: i64`,
/// `exp: i64` and `aud: Option<String>`, so that every token kind reads them one way.
#[macro_export]
macro_rules! timed_claims {
    ($claims:ty) => {
        impl $crate::TimedClaims for $claims {
            fn issued_at(&self) -> i64 {
                self.iat
            }
            fn expires_at(&self) -> i64 {
                self.exp
            }
            fn audience(&self) -> Option<&str> {
                self.aud.as_deref()
            }
        }
    };
}

timed_claims!(AccessClaims);

/// Claims of an access token gatepass's OAuth provider issues to a client (RFC 9068):
/// what a resource server behind gatepass-as-identity-provider receives from the clients
/// calling it. Verify them with [`crate::Verifier::verify_oauth_access`], which requires
/// the configured audience.
///
/// `client_id` and `scope` are required, and gatepass's own session tokens carry neither,
/// so a session token never verifies as a client token (nor, lacking `username` and
/// `roles`, a client token as an [`AccessClaims`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthAccessClaims {
    /// The provider's issuer URL.
    pub iss: String,
    /// The user the client acts for, or the client itself (`client_credentials`).
    pub sub: String,
    /// The resource the token is for (RFC 8707), or the client id.
    pub aud: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// Granted scopes, space-separated (RFC 9068 §2.2.3).
    pub scope: String,
    /// Issued at (seconds since the Unix epoch).
    pub iat: i64,
    /// Not valid before.
    pub nbf: i64,
    /// Expires at.
    pub exp: i64,
    /// Unique token id.
    pub jti: String,
    /// The grant (a session on gatepass); absent for `client_credentials`.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present_string")]
    pub sid: Option<String>,
    /// When the user authenticated; absent for `client_credentials`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// The user's roles, when the client was granted the `roles` scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
}

impl OAuthAccessClaims {
    /// Whether the token was granted `scope` (an exact member of the space-separated list).
    pub fn has_scope(&self, scope: &str) -> bool {
        !scope.is_empty() && self.scope.split(' ').any(|s| s == scope)
    }

    /// The granted scopes.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }

    /// Whether the token was issued to the client itself (`client_credentials`), not to a
    /// client acting for a user.
    pub fn is_client_only(&self) -> bool {
        self.sid.is_none() && self.sub == self.client_id
    }
}

impl TimedClaims for OAuthAccessClaims {
    fn issued_at(&self) -> i64 {
        self.iat
    }
    fn expires_at(&self) -> i64 {
        self.exp
    }
    fn audience(&self) -> Option<&str> {
        Some(&self.aud)
    }
}
