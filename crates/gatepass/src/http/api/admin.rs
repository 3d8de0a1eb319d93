//! The admin API (role `admin` or the operator token): accounts and the audit trail.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::rfc3339;
use crate::admin::{self, Actor};
use crate::domain::{Email, Roles, User, ValidationError};
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::http::extract::{Client, JsonBody};
use crate::http::guard::{AdminCaller, Caller};
use crate::service::{ClientInfo, now};
use crate::storage::UserPatch;
use crate::storage::audit::{AuditEntry, AuditQuery};

/// Largest page of the listings.
pub const MAX_PAGE: i64 = 200;
const DEFAULT_PAGE: i64 = 50;

/// Admin routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/admin/users", post(create).get(list))
        .route("/api/admin/users/{id}", get(show).patch(update).delete(remove))
        .route("/api/admin/users/{id}/logout", post(logout_all))
        .route("/api/admin/audit", get(audit_log))
}

/// The actor of an admin request, for the audit trail.
pub fn actor(caller: &Caller, client: ClientInfo) -> Actor {
    Actor { id: caller.actor_id().to_owned(), ip: client.ip, user_agent: client.user_agent }
}

/// Parses the query string strictly: unknown or malformed parameters are a 400.
pub fn query<T: DeserializeOwned>(raw: Option<String>) -> Result<T> {
    serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|e| Error::BadRequest(format!("invalid query string: {e}")))
}

fn admin_view(u: &User) -> Value {
    json!({
        "id": u.id.as_str(),
        "username": u.username.as_str(),
        "email": u.email.as_ref().map(|e| e.as_str()),
        "roles": u.roles.names(),
        "disabled": u.disabled,
        "created_at": rfc3339(u.created_at),
    })
}

async fn target(state: &AppState, id: std::result::Result<Path<String>, PathRejection>) -> Result<User> {
    let Path(id) = id.map_err(|_| Error::NotFound)?;
    let id = crate::domain::UserId::parse(&id).ok_or(Error::NotFound)?;
    state.service.storage().user_by_id(&id).await?.ok_or(Error::NotFound)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    username: Option<String>,
    password: Option<String>,
    email: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
}

async fn create(
    State(state): State<AppState>,
    Client(client): Client,
    AdminCaller(caller): AdminCaller,
    JsonBody(req): JsonBody<CreateRequest>,
) -> Result<Response> {
    let username = req.username.as_deref().filter(|s| !s.is_empty());
    let username = username.ok_or_else(|| ValidationError::new("username", "is required"))?;
    let password = req.password.as_deref().filter(|s| !s.is_empty());
    let password = password.ok_or_else(|| ValidationError::new("password", "is required"))?;
    let roles = Roles::parse(&req.roles)?;
    let user = state.service.create_user(username, password, req.email.as_deref(), roles).await?;
    admin::record_created(state.service.storage().as_ref(), &actor(&caller, client), &user).await;
    Ok((StatusCode::CREATED, Json(json!({ "message": "User created", "user": admin_view(&user) }))).into_response())
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    prefix: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

fn page_limit(limit: Option<i64>) -> Result<i64> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(Error::BadRequest(format!("limit must be from 1 to {MAX_PAGE}"))),
    }
}

async fn list(State(state): State<AppState>, _: AdminCaller, RawQuery(raw): RawQuery) -> Result<Response> {
    let q: ListQuery = query(raw)?;
    let limit = page_limit(q.limit)?;
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(Error::BadRequest("offset must not be negative".into()));
    }
    let prefix = q.prefix.as_deref().filter(|p| !p.is_empty());
    if prefix.is_some_and(|p| p.len() > 64) {
        return Err(Error::BadRequest("prefix is at most 64 characters".into()));
    }
    let storage = state.service.storage();
    let users = storage.list_users(prefix, limit, offset).await?;
    let next = (users.len() as i64 == limit).then_some(offset + limit);
    let total = storage.count_users().await?;
    let users: Vec<Value> = users.iter().map(admin_view).collect();
    Ok(Json(json!({ "users": users, "limit": limit, "offset": offset, "next_offset": next, "total_users": total }))
        .into_response())
}

async fn show(
    State(state): State<AppState>,
    _: AdminCaller,
    id: std::result::Result<Path<String>, PathRejection>,
) -> Result<Response> {
    let user = target(&state, id).await?;
    let sessions = state.service.storage().live_sessions(user.id.as_str(), now()).await?.len();
    let mut view = admin_view(&user);
    view["live_sessions"] = sessions.into();
    Ok(Json(json!({ "user": view })).into_response())
}

/// Reads `{roles?, disabled?, email?}` strictly: unknown keys and wrong types are refused.
fn parse_patch(body: &Map<String, Value>) -> Result<UserPatch> {
    if body.is_empty() {
        return Err(ValidationError::new("user", "nothing to change").into());
    }
    let mut patch = UserPatch::default();
    for (key, value) in body {
        match key.as_str() {
            "roles" => {
                let names = value
                    .as_array()
                    .and_then(|a| a.iter().map(|v| v.as_str()).collect::<Option<Vec<_>>>())
                    .ok_or_else(|| ValidationError::new("roles", "must be an array of role names"))?;
                patch.roles = Some(Roles::parse(&names)?);
            }
            "disabled" => {
                patch.disabled =
                    Some(value.as_bool().ok_or_else(|| ValidationError::new("disabled", "must be true or false"))?);
            }
            "email" => {
                patch.email = Some(match value {
                    Value::Null => None,
                    Value::String(s) if s.is_empty() => None,
                    Value::String(s) => Some(Email::parse(s)?),
                    _ => return Err(ValidationError::new("email", "must be a string or null").into()),
                });
            }
            _ => return Err(ValidationError::new("user", "unknown field; expected roles, disabled or email").into()),
        }
    }
    Ok(patch)
}

async fn update(
    State(state): State<AppState>,
    Client(client): Client,
    AdminCaller(caller): AdminCaller,
    id: std::result::Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<Response> {
    let user = target(&state, id).await?;
    let patch = parse_patch(&body)?;
    let by = actor(&caller, client);
    let (user, revoked) = admin::update_user(state.service.storage().as_ref(), &by, &user, &patch).await?;
    let ended = revoked.len();
    state.service.revoked(revoked);
    Ok(Json(json!({ "user": admin_view(&user), "sessions_ended": ended })).into_response())
}

async fn remove(
    State(state): State<AppState>,
    Client(client): Client,
    AdminCaller(caller): AdminCaller,
    id: std::result::Result<Path<String>, PathRejection>,
) -> Result<Response> {
    let user = target(&state, id).await?;
    let revoked = admin::delete_user(state.service.storage().as_ref(), &actor(&caller, client), &user).await?;
    let ended = revoked.len();
    state.service.revoked(revoked);
    Ok(Json(json!({ "message": "User deleted", "sessions_ended": ended })).into_response())
}

async fn logout_all(
    State(state): State<AppState>,
    Client(client): Client,
    AdminCaller(caller): AdminCaller,
    id: std::result::Result<Path<String>, PathRejection>,
) -> Result<Response> {
    let user = target(&state, id).await?;
    let revoked = admin::logout_user(state.service.storage().as_ref(), &actor(&caller, client), &user).await?;
    let ended = revoked.len();
    state.service.revoked(revoked);
    Ok(Json(json!({ "message": "Sessions ended", "sessions_ended": ended })).into_response())
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    user: Option<String>,
    event: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<i64>,
    before: Option<i64>,
}

/// A time given as epoch seconds or RFC 3339.
fn parse_time(field: &str, raw: Option<&str>) -> Result<Option<i64>> {
    let Some(raw) = raw.filter(|s| !s.is_empty()) else { return Ok(None) };
    if let Ok(n) = raw.parse::<i64>() {
        return Ok(Some(n));
    }
    time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map(|t| Some(t.unix_timestamp()))
        .map_err(|_| Error::BadRequest(format!("{field} must be epoch seconds or an RFC 3339 time")))
}

/// An audit entry as the API shows it.
pub fn entry_view(e: &AuditEntry) -> Value {
    let detail = e.event.detail.as_deref().and_then(|d| serde_json::from_str::<Value>(d).ok());
    json!({
        "id": e.id,
        "at": rfc3339(e.at),
        "event": e.event.event,
        "actor": e.event.actor,
        "subject": e.event.subject,
        "ip": e.event.ip,
        "user_agent": e.event.user_agent,
        "outcome": e.event.outcome,
        "detail": detail,
        "prev_hash": e.prev_hash,
        "hash": e.hash,
    })
}

async fn audit_log(State(state): State<AppState>, _: AdminCaller, RawQuery(raw): RawQuery) -> Result<Response> {
    let p: AuditParams = query(raw)?;
    let q = AuditQuery {
        user: p.user.filter(|s| !s.is_empty()),
        event: p.event.filter(|s| !s.is_empty()),
        from: parse_time("from", p.from.as_deref())?,
        to: parse_time("to", p.to.as_deref())?,
        before_id: p.before,
        limit: page_limit(p.limit)?,
    };
    let entries = state.service.storage().audit_entries(&q).await?;
    let next = (entries.len() as i64 == q.limit).then(|| entries.last().map(|e| e.id)).flatten();
    let entries: Vec<Value> = entries.iter().map(entry_view).collect();
    Ok(Json(json!({ "entries": entries, "next_before": next })).into_response())
}
