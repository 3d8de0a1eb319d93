//! The UserInfo endpoint (OpenID Connect Core §5.3): the claims of the user a client's
//! access token was issued for, as far as its scopes allow.

use serde::Serialize;

use crate::domain::UserId;
use crate::error::{OAuthCode, OAuthError};
use crate::service::AuthService;

/// Claims about the user (absent ones are left out).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserInfo {
    /// The user id (the ID token's `sub`).
    pub sub: String,
    /// With `profile`: the username.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// With `profile`: the username (gatepass keeps no other name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// With `email`, when the account has an address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// With `email`, when the account has an address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// With `roles`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
}

impl AuthService {
    /// The claims for the bearer `token`.
    ///
    /// # Errors
    /// `invalid_token` for a token that is not a valid, unrevoked client access token of a
    /// user (or whose user is gone or disabled); `insufficient_scope` without `openid`.
    pub async fn userinfo(&self, token: &str) -> Result<UserInfo, OAuthError> {
        let invalid = || OAuthError::new(OAuthCode::InvalidToken, "the access token is invalid, expired or revoked");
        let claims = self.verify_client_token(token).ok_or_else(invalid)?;
        if claims.sid.is_none() {
            // client_credentials: there is no user.
            return Err(invalid());
        }
        if !claims.has_scope("openid") {
            return Err(OAuthError::new(OAuthCode::InsufficientScope, "the token lacks the openid scope"));
        }
        let user = self
            .core
            .storage
            .user_by_id(&UserId::from_trusted(claims.sub.clone()))
            .await?
            .filter(|u| !u.disabled)
            .ok_or_else(invalid)?;
        let profile = claims.has_scope("profile");
        let email = claims.has_scope("email") && user.email.is_some();
        Ok(UserInfo {
            sub: claims.sub.clone(),
            preferred_username: profile.then(|| user.username.as_str().to_owned()),
            name: profile.then(|| user.username.as_str().to_owned()),
            email: if email { user.email.as_ref().map(|e| e.as_str().to_owned()) } else { None },
            email_verified: email.then_some(user.email_verified),
            roles: claims.has_scope("roles").then(|| user.roles.names()),
        })
    }
}
