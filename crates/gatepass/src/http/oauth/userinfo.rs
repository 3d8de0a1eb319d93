//! `GET`/`POST /oauth/userinfo` (OpenID Connect Core §5.3): the bearer token from the
//! `Authorization` header only (never the query string or a cookie).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{OAuthCode, OAuthError};
use crate::http::oauth::token::OAuthErrorBody;
use crate::http::{AppState, no_store};
use crate::service::oauth::userinfo::UserInfo;

/// The userinfo routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(userinfo_get, userinfo_post))
}

fn bearer(headers: &HeaderMap) -> Result<String, OAuthError> {
    let missing = || OAuthError::new(OAuthCode::InvalidToken, "a bearer access token is required");
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next().ok_or_else(missing)?.to_str().map_err(|_| missing())?;
    if values.next().is_some() {
        return Err(OAuthError::new(OAuthCode::InvalidRequest, "one Authorization header only"));
    }
    let (scheme, token) = value.split_once(' ').ok_or_else(missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(missing());
    }
    Ok(token.trim().to_owned())
}

async fn answer(state: &AppState, headers: &HeaderMap) -> Result<Response, OAuthError> {
    let token = bearer(headers)?;
    let info = state.service.userinfo(&token).await?;
    Ok(no_store(Json(info).into_response()))
}

/// UserInfo (OpenID Connect)
///
/// The claims the access token's scopes allow: `sub`; `preferred_username` and `name`
/// (`profile`); `email`, `email_verified` (`email`); `roles` (`roles`). 401
/// `invalid_token` (with `WWW-Authenticate: Bearer`) for a missing, invalid, expired or
/// revoked token; 403 `insufficient_scope` without `openid`.
#[utoipa::path(get, path = "/oauth/userinfo", tag = "oauth", security(("bearer" = [])),
    responses((status = 200, description = "The claims", body = UserInfo),
        (status = 400, description = "Malformed request", body = OAuthErrorBody),
        (status = 401, description = "`invalid_token`", body = OAuthErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"gatepass\", error=\"invalid_token\"`"))),
        (status = 403, description = "`insufficient_scope`", body = OAuthErrorBody)))]
async fn userinfo_get(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, OAuthError> {
    answer(&state, &headers).await
}

/// UserInfo (OpenID Connect), by POST
///
/// The same as the GET.
#[utoipa::path(post, path = "/oauth/userinfo", tag = "oauth", security(("bearer" = [])),
    responses((status = 200, description = "The claims", body = UserInfo),
        (status = 400, description = "Malformed request", body = OAuthErrorBody),
        (status = 401, description = "`invalid_token`", body = OAuthErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"gatepass\", error=\"invalid_token\"`"))),
        (status = 403, description = "`insufficient_scope`", body = OAuthErrorBody)))]
async fn userinfo_post(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, OAuthError> {
    answer(&state, &headers).await
}
