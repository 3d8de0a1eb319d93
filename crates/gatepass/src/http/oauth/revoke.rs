//! `POST /oauth/revoke`: a client's form post (RFC 7009) and its credentials in, an empty
//! 200 or an RFC 6749 error out.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::token::{OAuthErrorBody, client_form};
use crate::error::OAuthError;
use crate::http::api::introspect::Empty;
use crate::http::extract::{Client, RawBody};
use crate::http::{AppState, no_store};
use crate::service::oauth::revoke::RevocationRequest;

/// The revocation route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(revoke))
}

/// Revoke a client's token (RFC 7009)
///
/// Ends the grant a refresh or access token of the authenticated client belongs to.
/// Client authentication as at the token endpoint (HTTP Basic, `client_secret_post`, or
/// `client_id` alone for a public client). 200 also for an unknown, expired or malformed
/// token; `unauthorized_client` for another client's token (or a gatepass session's),
/// which is left alone; `unsupported_token_type` for a `client_credentials` access token,
/// which belongs to no grant. Errors are RFC 6749 JSON; a failed client authentication is
/// 401 with `WWW-Authenticate: Basic`.
#[utoipa::path(post, path = "/oauth/revoke", tag = "oauth", security((), ("oauth_client" = [])),
    request_body(content = RevocationRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Revoked (or nothing to revoke)", body = Empty),
        (status = 400, description = "RFC 6749 / RFC 7009 error", body = OAuthErrorBody),
        (status = 401, description = "Client authentication failed (`invalid_client`)", body = OAuthErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Basic realm=\"gatepass\"`"))),
        (status = 500, description = "`server_error`", body = OAuthErrorBody),
        (status = 503, description = "`temporarily_unavailable`", body = OAuthErrorBody)))]
async fn revoke(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, OAuthError> {
    let (req, creds) = client_form::<RevocationRequest>(&headers, &body)?;
    state.service.revoke_client_token(req, creds, &client).await?;
    Ok(no_store(Json(Empty {}).into_response()))
}
