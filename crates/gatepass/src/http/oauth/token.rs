//! `POST /oauth/token`: a form body (RFC 6749 §3.2) and the client's credentials in, the
//! token response or an RFC 6749 error out, never cached.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{OAuthCode, OAuthError};
use crate::http::api::introspect::basic_credentials;
use crate::http::extract::{Client, RawBody};
use crate::http::{AppState, no_store};
use crate::service::oauth::token::{ClientCredentials, TokenRequest, TokenResponse};

/// The token route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(token))
}

/// The body of an OAuth error (RFC 6749 §5.2).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`, `invalid_scope`, `invalid_target` (RFC 8707), `server_error`,
    /// `temporarily_unavailable`; for the device grant (RFC 8628) `authorization_pending`,
    /// `slow_down`, `access_denied`, `expired_token`; for revocation (RFC 7009)
    /// `unsupported_token_type`.
    error: String,
    /// What was wrong.
    error_description: String,
}

/// Token endpoint (OAuth 2.1)
///
/// `authorization_code` (with `code_verifier` and `redirect_uri`), `refresh_token`
/// (rotating; an already-used token revokes the grant), `client_credentials` and
/// `urn:ietf:params:oauth:grant-type:device_code` (with `device_code`; RFC 8628 answers
/// `authorization_pending`, `slow_down`, `access_denied`, `expired_token`); each
/// takes an optional `resource` (RFC 8707), the access token's audience. Client
/// authentication: HTTP Basic, `client_id` + `client_secret` in the body, or `client_id`
/// alone for a public client. Errors are RFC 6749 JSON; a failed client authentication is
/// 401 with `WWW-Authenticate: Basic`.
#[utoipa::path(post, path = "/oauth/token", tag = "oauth", security((), ("oauth_client" = [])),
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Tokens", body = TokenResponse),
        (status = 400, description = "RFC 6749 error", body = OAuthErrorBody),
        (status = 401, description = "Client authentication failed (`invalid_client`)", body = OAuthErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Basic realm=\"gatepass\"`"))),
        (status = 500, description = "`server_error`", body = OAuthErrorBody),
        (status = 503, description = "`temporarily_unavailable`", body = OAuthErrorBody)))]
async fn token(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, OAuthError> {
    let (req, creds) = client_form::<TokenRequest>(&headers, &body)?;
    let tokens = state.service.token(req, creds, &client).await?;
    Ok(no_store(Json(tokens).into_response()))
}

/// A client's form post to an OAuth endpoint (token, device authorization): the form
/// (RFC 6749 §3.2: `application/x-www-form-urlencoded`) and how the client authenticated.
pub(crate) fn client_form<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(T, ClientCredentials), OAuthError> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Err(OAuthError::new(
            OAuthCode::InvalidRequest,
            "send the parameters as application/x-www-form-urlencoded",
        ));
    }
    let req: T = serde_urlencoded::from_bytes(body)
        .map_err(|e| OAuthError::new(OAuthCode::InvalidRequest, format!("malformed parameters: {e}")))?;
    let creds = ClientCredentials {
        basic: basic_credentials(headers),
        malformed: headers.contains_key(header::AUTHORIZATION) && basic_credentials(headers).is_none(),
    };
    Ok((req, creds))
}
