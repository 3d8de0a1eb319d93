//! Sessions: refresh-token rotation, logout, listing and ending sessions.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::{Delivery, rfc3339, token_response};
use crate::auth::ratelimit::Action;
use crate::error::{Error, Result};
use crate::http::cookies::CookieSettings;
use crate::http::extract::{Auth, Client};
use crate::http::{AppState, csrf};
use crate::service::LogoutScope;

/// Session routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/refresh", post(refresh))
        .route("/api/logout", post(logout))
        .route("/api/sessions", get(list))
        .route("/api/sessions/{id}", delete(end_one))
}

#[derive(Debug, Deserialize)]
struct RefreshRequest {
    refresh_token: Option<String>,
}

/// Accepts `{"refresh_token": ...}` or the refresh cookie. An access token alone (seed
/// 003's refresh) is refused with a message that says what to send: an access token must
/// never extend itself.
async fn refresh(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    body: Bytes,
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
        let req: RefreshRequest = serde_json::from_slice(&body).map_err(|e| Error::InvalidJson(e.to_string()))?;
        req.refresh_token.filter(|t| !t.is_empty())
    };
    let (token, delivery) = match from_body {
        Some(t) => (t, Delivery::Body),
        None => {
            let cookie =
                CookieSettings::get(&headers, state.cookies.refresh_name()).ok_or(Error::RefreshTokenRequired)?;
            if !csrf::same_origin(&headers) {
                return Err(Error::CsrfFailed);
            }
            (cookie, Delivery::Cookies)
        }
    };
    let grant = state.service.refresh(&token, &client).await?;
    Ok(token_response(&state, StatusCode::OK, "Token refreshed", &grant, delivery))
}

#[derive(Debug, Deserialize, Default)]
struct LogoutQuery {
    scope: Option<String>,
}

async fn logout(
    State(state): State<AppState>,
    Client(client): Client,
    auth: Auth,
    Query(q): Query<LogoutQuery>,
) -> Result<Response> {
    let scope = match q.scope.as_deref() {
        None | Some("local") => LogoutScope::Local,
        Some("global") => LogoutScope::Global,
        Some("others") => LogoutScope::Others,
        Some(_) => return Err(Error::BadRequest("scope must be local, global or others".into())),
    };
    let ended = state.service.logout(&auth.claims, scope, &client).await?;
    let mut headers = HeaderMap::new();
    if scope != LogoutScope::Others {
        state.cookies.clear_session(&mut headers);
    }
    Ok((headers, Json(json!({ "message": "Logged out successfully", "sessions_ended": ended }))).into_response())
}

async fn list(State(state): State<AppState>, auth: Auth) -> Result<Response> {
    let sessions = state.service.sessions(&auth.claims).await?;
    let items: Vec<_> = sessions
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "current": s.id == auth.claims.sid,
                "created_at": rfc3339(s.created_at),
                "last_used_at": rfc3339(s.last_used_at),
                "expires_at": rfc3339(s.expires_at),
                "user_agent": s.user_agent,
                "ip": s.ip,
            })
        })
        .collect();
    Ok(Json(json!({ "sessions": items })).into_response())
}

async fn end_one(State(state): State<AppState>, auth: Auth, Path(id): Path<String>) -> Result<Response> {
    state.service.end_session(&auth.claims, &id).await?;
    Ok(Json(json!({ "message": "Session ended" })).into_response())
}
