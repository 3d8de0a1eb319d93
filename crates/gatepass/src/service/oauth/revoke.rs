//! Token revocation for OAuth clients (RFC 7009, `POST /oauth/revoke`): a client ends one
//! of its grants by presenting a refresh or access token of it, after authenticating as at
//! the token endpoint (RFC 7009 §2.1: a confidential client with its secret, a public one
//! with its `client_id`).
//!
//! A token issued to another client, or to a sign-in to gatepass itself, is refused
//! (`unauthorized_client`) and left alone: without this check, anyone holding a leaked
//! token could end grants of clients they cannot authenticate as. An unknown, expired or
//! malformed token is not an error (§2.2: the client's goal is reached either way).

use serde::Deserialize;

use super::token::{ClientCredentials, TokenRequest};
use crate::auth::refresh::RefreshTokens;
use crate::error::{OAuthCode, OAuthError};
use crate::service::{AuthService, ClientInfo, event, now};
use crate::storage::SessionFilter;
use crate::storage::audit::SUCCESS;

type OResult<T> = Result<T, OAuthError>;

/// A revocation request's parameters (form body, RFC 7009 §2.1).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct RevocationRequest {
    /// The refresh or access token to revoke.
    pub token: Option<String>,
    /// `refresh_token` or `access_token`. A hint only: the token's form tells which it is.
    pub token_type_hint: Option<String>,
    /// The client (`client_secret_post` and public clients).
    pub client_id: Option<String>,
    /// The secret (`client_secret_post`).
    pub client_secret: Option<String>,
}

/// The grant a presented token belongs to.
struct Grant {
    /// `None`: a `client_credentials` access token, which belongs to no grant.
    sid: Option<String>,
    user_id: String,
    /// `None`: a sign-in to gatepass itself, no client's.
    client_id: Option<String>,
}

fn err(code: OAuthCode, description: &str) -> OAuthError {
    OAuthError::new(code, description)
}

impl AuthService {
    /// Revokes the grant `req.token` belongs to, for the client that authenticates with
    /// `req` and `creds`.
    ///
    /// # Errors
    /// `invalid_client` when client authentication fails, `invalid_request` without a
    /// token or while the provider is off, `unauthorized_client` for a token that is not
    /// this client's, `unsupported_token_type` for a `client_credentials` access token (it
    /// belongs to no grant and lives until it expires); storage failures as `server_error`
    /// or `temporarily_unavailable`.
    pub async fn revoke_client_token(
        &self,
        req: RevocationRequest,
        creds: ClientCredentials,
        info: &ClientInfo,
    ) -> OResult<()> {
        if self.oauth.issuer().is_none() {
            return Err(err(OAuthCode::InvalidRequest, "this server does not act as an OAuth provider"));
        }
        let auth =
            TokenRequest { client_id: req.client_id, client_secret: req.client_secret, ..TokenRequest::default() };
        let client = self.authenticate_client(&auth, &creds).await?;
        let token =
            req.token.filter(|t| !t.is_empty()).ok_or_else(|| err(OAuthCode::InvalidRequest, "token is required"))?;
        let Some(grant) = self.grant_of(&token).await? else { return Ok(()) };
        if grant.client_id.as_deref() != Some(client.client_id.as_str()) {
            return Err(err(OAuthCode::UnauthorizedClient, "the token was not issued to this client"));
        }
        let Some(sid) = grant.sid else {
            return Err(err(
                OAuthCode::UnsupportedTokenType,
                "a client_credentials access token belongs to no grant; it lives until it expires",
            ));
        };
        let ended = self.core.revoke(&grant.user_id, SessionFilter::One(&sid)).await?;
        if ended > 0 {
            let detail = serde_json::json!({ "client_id": client.client_id, "sid": sid });
            self.core
                .audit(
                    event("oauth_token_revoked", SUCCESS, info)
                        .actor(&grant.user_id)
                        .subject(&grant.user_id)
                        .detail(detail),
                )
                .await;
        }
        Ok(())
    }

    /// The live grant `token` belongs to (or, for a `client_credentials` access token, its
    /// client); `None` for a token that is unknown, expired, revoked or malformed.
    async fn grant_of(&self, token: &str) -> OResult<Option<Grant>> {
        if RefreshTokens::looks_valid_for_client(token) || RefreshTokens::looks_valid(token) {
            let Some((sid, user_id)) =
                self.core.storage.session_of_refresh_token(&RefreshTokens::hash(token), now()).await?
            else {
                return Ok(None);
            };
            let client_id = self.core.storage.session(&sid).await?.and_then(|s| s.client_id);
            return Ok(Some(Grant { sid: Some(sid), user_id, client_id }));
        }
        if let Some(claims) = self.verify_client_token(token) {
            return Ok(Some(Grant { sid: claims.sid, user_id: claims.sub, client_id: Some(claims.client_id) }));
        }
        // A gatepass session's access token: a grant, but no client's.
        Ok(self.authenticate(token).ok().map(|c| Grant { sid: Some(c.sid), user_id: c.sub, client_id: None }))
    }
}
