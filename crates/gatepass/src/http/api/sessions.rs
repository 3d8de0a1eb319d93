//! Sessions: refresh-token rotation, logout, listing and ending sessions.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Delivery, rfc3339, token_response};
use crate::auth::ratelimit::Action;
use crate::error::{Error, Result};
use crate::http::cookies::CookieSettings;
use crate::http::extract::{Auth, Client, Cookies, PathParam, QueryParams, RawBody};
use crate::http::openapi::{
    AccessErrors, AuthErrors, BadRequest, Forbidden, GrantErrors, NotFound, Refreshed, ServiceUnavailable,
    TooManyRequests, Unauthorized,
};
use crate::http::{AppState, csrf};
use crate::service::LogoutScope;

/// Session routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(refresh))
        .routes(routes!(csrf_token))
        .routes(routes!(logout))
        .routes(routes!(list))
        .routes(routes!(end_one))
}

/// Refresh body; may be left out when the refresh cookie is sent instead.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token from the last grant.
    #[schema(value_type = String, required = true, min_length = 1)]
    refresh_token: Option<String>,
}

/// Refresh
///
/// Rotates a refresh token: `{"refresh_token": ...}` in the body, or the refresh cookie
/// (then from the same origin). An access token alone (seed 003's refresh) is refused
/// with a message that says what to send: an access token must never extend itself. A
/// refresh token used twice ends its session.
#[utoipa::path(post, path = "/api/refresh", tag = "sessions",
    request_body(content = Option<RefreshRequest>, content_type = "application/json"),
    responses(Refreshed, GrantErrors, Unauthorized))]
async fn refresh(
    State(state): State<AppState>,
    Client(client): Client,
    Cookies(cookies): Cookies,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response> {
    state.service.throttle(Action::Refresh, &client, None).await?;
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let is_json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("application/json"));
        if !is_json {
            return Err(Error::UnsupportedMediaType("application/json"));
        }
        // `null` counts as no body, as the description allows.
        let req: Option<RefreshRequest> =
            serde_json::from_slice(&body).map_err(|e| Error::InvalidJson(e.to_string()))?;
        req.and_then(|r| r.refresh_token).filter(|t| !t.is_empty())
    };
    let (grant, delivery) = match from_body {
        Some(token) => (state.service.refresh(&token, &client).await?, Delivery::Body),
        None => {
            let cookie = CookieSettings::get(&headers, cookies.refresh_name()).ok_or(Error::RefreshTokenRequired)?;
            // A cookie refresh is a cookie-authenticated state change like any other: same
            // origin rule, and the CSRF token of the session the refresh cookie belongs to.
            if !csrf::api_origin(&headers, cookies, &state.allowed_origins) {
                return Err(Error::CsrfFailed);
            }
            let presented = headers.get(csrf::HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
            let grant = state.service.refresh_bound(&cookie, &client, |sid| state.csrf.verify(sid, presented)).await?;
            (grant, Delivery::Cookies(cookies))
        }
    };
    Ok(token_response(&state, StatusCode::OK, "Token refreshed", &grant, delivery))
}

/// The CSRF token of the caller's browser session.
#[derive(Debug, Serialize, ToSchema)]
pub struct CsrfToken {
    /// Send it as `X-CSRF-Token` on every unsafe cookie-authenticated request.
    csrf_token: String,
}

/// The CSRF token of this browser's session
///
/// For a frontend on another origin of the CORS allow-list (`GATEPASS_CORS_ORIGINS`),
/// which cannot read gatepass's host-only cookies: answers the CSRF token of the session
/// the refresh cookie belongs to (the cookie's path reaches this route, so it works after a
/// reload and after the access cookie has expired). Only this origin and the allowed ones
/// are answered, and CORS lets only those read the answer.
#[utoipa::path(get, path = "/api/refresh/csrf", tag = "sessions", security(("refresh_cookie" = [])),
    responses((status = 200, description = "The token", body = CsrfToken), BadRequest, Unauthorized, Forbidden,
        TooManyRequests, ServiceUnavailable))]
async fn csrf_token(
    State(state): State<AppState>,
    Client(client): Client,
    Cookies(cookies): Cookies,
    headers: HeaderMap,
) -> Result<Response> {
    if !csrf::api_origin(&headers, cookies, &state.allowed_origins) {
        return Err(Error::CsrfFailed);
    }
    state.service.throttle(Action::Refresh, &client, None).await?;
    let cookie = CookieSettings::get(&headers, cookies.refresh_name()).ok_or(Error::RefreshTokenRequired)?;
    let sid = state.service.session_of_refresh_token(&cookie).await?;
    let body = CsrfToken { csrf_token: state.csrf.token(&sid) };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

/// Which sessions a logout ends.
#[derive(Debug, Deserialize, Default, Clone, Copy, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// This session (the default).
    #[default]
    Local,
    /// Every session of the account.
    Global,
    /// Every other session (needs a recent login).
    Others,
}

/// Query of logout.
#[derive(Debug, Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogoutQuery {
    /// Which sessions to end.
    #[param(inline)]
    scope: Option<Scope>,
}

/// Body of logout and session-ending responses.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ended {
    /// What happened.
    pub message: &'static str,
    /// How many sessions ended.
    pub sessions_ended: usize,
}

/// Log out
///
/// Ends this session (`scope=local`, the default), every session (`global`) or every
/// other one (`others`, which needs a recent login). Clears the cookies unless `others`.
#[utoipa::path(post, path = "/api/logout", tag = "sessions", params(LogoutQuery),
    security(("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "Logged out", body = Ended,
            headers(("Set-Cookie" = String, description = "Cleared cookies"))),
        AccessErrors, BadRequest))]
async fn logout(
    State(state): State<AppState>,
    Client(client): Client,
    auth: Auth,
    QueryParams(q): QueryParams<LogoutQuery>,
) -> Result<Response> {
    let scope = match q.scope.unwrap_or_default() {
        Scope::Local => LogoutScope::Local,
        Scope::Global => LogoutScope::Global,
        Scope::Others => LogoutScope::Others,
    };
    let ended = state.service.logout(&auth.claims, scope, &client).await?;
    let mut headers = HeaderMap::new();
    if scope != LogoutScope::Others {
        auth.cookies.clear_session(&mut headers);
    }
    Ok((headers, Json(Ended { message: "Logged out successfully", sessions_ended: ended })).into_response())
}

/// One of the caller's live sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// Session id (`sid` in its tokens).
    id: String,
    /// Whether the request came from this session.
    current: bool,
    /// RFC 3339.
    created_at: String,
    /// Last refresh (RFC 3339).
    last_used_at: String,
    /// Absolute end (RFC 3339).
    expires_at: String,
    /// Client user agent at login.
    user_agent: Option<String>,
    /// Client IP at login.
    ip: Option<String>,
}

/// Body of the session listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    /// Live sessions.
    sessions: Vec<SessionView>,
}

/// The caller's live sessions
#[utoipa::path(get, path = "/api/sessions", tag = "sessions", security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, description = "Live sessions", body = SessionList), AuthErrors))]
async fn list(State(state): State<AppState>, auth: Auth) -> Result<Response> {
    let sessions = state.service.sessions(&auth.claims).await?;
    let sessions = sessions
        .into_iter()
        .map(|s| SessionView {
            current: s.id == auth.claims.sid,
            created_at: rfc3339(s.created_at),
            last_used_at: rfc3339(s.last_used_at),
            expires_at: rfc3339(s.expires_at),
            user_agent: s.user_agent,
            ip: s.ip,
            id: s.id,
        })
        .collect();
    Ok(Json(SessionList { sessions }).into_response())
}

/// A plain confirmation.
#[derive(Debug, Serialize, ToSchema)]
pub struct Message {
    /// What happened.
    pub message: &'static str,
}

/// End one of the caller's sessions
///
/// Ending another session than the current one needs a recent login.
#[utoipa::path(delete, path = "/api/sessions/{id}", tag = "sessions",
    params(("id" = String, Path, description = "Session id")), security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, description = "Ended", body = Message), AccessErrors, NotFound))]
async fn end_one(State(state): State<AppState>, auth: Auth, PathParam(id): PathParam) -> Result<Response> {
    state.service.end_session(&auth.claims, &id).await?;
    Ok(Json(Message { message: "Session ended" }).into_response())
}
