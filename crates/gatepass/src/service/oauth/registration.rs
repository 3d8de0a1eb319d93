//! Dynamic client registration (RFC 7591) at `/oauth/register`, for clients that register
//! themselves (MCP-style agents, CLIs). Off unless `GATEPASS_OAUTH_REGISTRATION` is `open`
//! or `token` (an initial access token, compared in constant time); rate-limited like the
//! other anonymous endpoints. What registers here is limited until an administrator
//! promotes it: a public client (no secret, PKCE), `authorization_code` and
//! `refresh_token` only, never first-party, no `resource` of its choosing. Refusals are the
//! RFC 7591 errors (`invalid_redirect_uri`, `invalid_client_metadata`) and store nothing.

use super::Registration;
use super::clients::{ClientMetadata, ClientView};
use crate::auth::oauth as primitives;
use crate::auth::ratelimit::Action;
use crate::error::{Error, OAuthCode, OAuthError, Result};
use crate::service::{Actor, AuthService, ClientInfo};

fn metadata_error(description: impl Into<String>) -> OAuthError {
    OAuthError::new(OAuthCode::InvalidClientMetadata, description)
}

impl AuthService {
    /// Registers a limited client from anonymous (or initial-access-token) metadata.
    /// `bearer` is the `Authorization: Bearer` token of the request, if any.
    ///
    /// # Errors
    /// The outer error: [`Error::NotFound`] while registration is off,
    /// [`Error::RateLimited`], storage errors. The inner one: the RFC 7591 / 6750 refusal
    /// (`invalid_token` without the right initial access token).
    pub async fn register_dynamic_client(
        &self,
        meta: ClientMetadata,
        bearer: Option<&str>,
        info: &ClientInfo,
    ) -> Result<std::result::Result<ClientView, OAuthError>> {
        let registration = self.oauth.registration();
        if matches!(registration, Registration::Off) {
            return Err(Error::NotFound);
        }
        // The bucket first, so that guessing the initial access token is throttled too.
        self.throttle(Action::Register, info, None).await?;
        if let Registration::Token(expected) = registration {
            // Digests of equal length compared in constant time: the time says nothing about
            // the token, not even its length.
            if !primitives::secret_matches(bearer.unwrap_or(""), &primitives::digest(expected)) {
                return Ok(Err(OAuthError::new(
                    OAuthCode::InvalidToken,
                    "registration needs the initial access token as a bearer token",
                )));
            }
        }
        if let Err(e) = check(&meta) {
            return Ok(Err(e));
        }
        let by = Actor { id: "oauth_registration".into(), ip: info.ip.clone(), user_agent: info.user_agent.clone() };
        let meta = ClientMetadata { token_endpoint_auth_method: Some("none".into()), ..meta };
        match self.core.add_client(meta, &by, true).await {
            Ok(view) => Ok(Ok(view)),
            Err(Error::BadRequest(message)) => Ok(Err(metadata_error(message))),
            Err(e) => Err(e),
        }
    }
}

/// What a self-registering client may not ask for, checked before anything is stored.
fn check(meta: &ClientMetadata) -> std::result::Result<(), OAuthError> {
    if meta.first_party.is_some() || meta.limited.is_some() || meta.resource.is_some() {
        return Err(metadata_error("first_party, limited and resource are set by an administrator"));
    }
    if meta.token_endpoint_auth_method.as_deref().is_some_and(|m| m != "none") {
        return Err(metadata_error(
            "a registered client is public: token_endpoint_auth_method must be \"none\" (PKCE protects its codes)",
        ));
    }
    if let Some(g) =
        meta.grant_types.iter().flatten().find(|g| !["authorization_code", "refresh_token"].contains(&g.as_str()))
    {
        return Err(metadata_error(format!("grant type {g:?} is not available to a registered client")));
    }
    let uris = meta.redirect_uris.as_deref().unwrap_or_default();
    if uris.is_empty() {
        return Err(OAuthError::new(OAuthCode::InvalidRedirectUri, "redirect_uris is required"));
    }
    let all = uris.iter().chain(meta.post_logout_redirect_uris.iter().flatten());
    if let Some(u) = all.clone().find(|u| !primitives::valid_redirect_uri(u)) {
        return Err(OAuthError::new(
            OAuthCode::InvalidRedirectUri,
            format!(
                "redirect URI {u:?} is not allowed: use https, http on a loopback address, or an app's own scheme \
                 (with a dot), without a fragment"
            ),
        ));
    }
    if all.count() > 40 {
        return Err(OAuthError::new(OAuthCode::InvalidRedirectUri, "too many redirect URIs"));
    }
    Ok(())
}
