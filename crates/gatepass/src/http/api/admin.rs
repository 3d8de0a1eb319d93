//! The admin API (role `admin` or the operator token): accounts, the audit trail and its
//! chain check.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::rfc3339;
use super::sessions::Ended;
use crate::domain::{Email, Roles, User, ValidationError};
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::http::extract::{JsonBody, PathParam, QueryParams};
use crate::http::guard::{AdminActor, AdminCaller};
use crate::http::openapi::{AccessErrors, BadRequest, BodyErrors, Conflict, NotFound};
use crate::service::admin::{UserQuery, page_limit};
use crate::storage::UserPatch;
use crate::storage::audit::{AuditEntry, AuditQuery};

/// Admin routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(show, update, remove))
        .routes(routes!(logout_all))
        .routes(routes!(audit_log))
        .routes(routes!(audit_verify))
}

/// An account as administrators see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminUser {
    /// UUIDv7.
    id: String,
    /// Name.
    username: String,
    /// E-mail, if set.
    email: Option<String>,
    /// Whether the address is verified.
    email_verified: bool,
    /// Roles.
    roles: Vec<String>,
    /// Whether sign-in is refused.
    disabled: bool,
    /// RFC 3339.
    created_at: String,
    /// Live sessions (single-account view only).
    #[serde(skip_serializing_if = "Option::is_none")]
    live_sessions: Option<usize>,
}

fn admin_view(u: &User) -> AdminUser {
    AdminUser {
        id: u.id.as_str().to_owned(),
        username: u.username.as_str().to_owned(),
        email: u.email.as_ref().map(|e| e.as_str().to_owned()),
        email_verified: u.email.is_some() && u.email_verified,
        roles: u.roles.names(),
        disabled: u.disabled,
        created_at: rfc3339(u.created_at),
        live_sessions: None,
    }
}

/// Body with one account.
#[derive(Debug, Serialize, ToSchema)]
pub struct OneUser {
    /// The account.
    user: AdminUser,
}

/// Body of account creation.
#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    /// What happened.
    message: &'static str,
    /// The account.
    user: AdminUser,
}

/// Body of an account change.
#[derive(Debug, Serialize, ToSchema)]
pub struct Updated {
    /// The account after the change.
    user: AdminUser,
    /// Sessions ended by it (disabling or role changes end them).
    sessions_ended: usize,
}

/// Body of account creation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    /// 3–64 characters: Unicode letters and digits, `.`, `_` and `-` (RFC 8265
    /// UsernameCaseMapped: width-mapped, NFC, unique case-insensitively; scripts mixed in a
    /// confusable way, such as Latin with Cyrillic, are refused).
    #[schema(value_type = String, required = true, min_length = 3)]
    username: Option<String>,
    /// At least the configured minimum length (default 8), at most 1024 bytes, in the
    /// RFC 8265 OpaqueString profile (NFC before hashing); common passwords and ones
    /// containing the username are refused.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 1024)]
    password: Option<String>,
    /// E-mail address (optional).
    #[schema(format = Email)]
    email: Option<String>,
    /// Roles (`user` is always added), at most 16.
    #[serde(default)]
    roles: Vec<String>,
}

/// Create an account (admin)
#[utoipa::path(post, path = "/api/admin/users", tag = "admin",
    security(("operator_token" = []), ("bearer" = []), ("session_cookie" = [])), request_body = CreateRequest,
    responses((status = 201, description = "Created", body = Created), AccessErrors, BodyErrors, Conflict))]
async fn create(
    State(state): State<AppState>,
    AdminActor(by): AdminActor,
    JsonBody(req): JsonBody<CreateRequest>,
) -> Result<Response> {
    let username = req.username.as_deref().filter(|s| !s.is_empty());
    let username = username.ok_or_else(|| ValidationError::new("username", "is required"))?;
    let password = req.password.as_deref().filter(|s| !s.is_empty());
    let password = password.ok_or_else(|| ValidationError::new("password", "is required"))?;
    let roles = Roles::parse(&req.roles)?;
    let user = state.service.core().create_user(&by, username, password, req.email.as_deref(), roles).await?;
    Ok((StatusCode::CREATED, Json(Created { message: "User created", user: admin_view(&user) })).into_response())
}

/// Query of the account listing; unknown parameters are refused.
#[derive(Debug, Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only usernames starting with this (at most 64 characters).
    prefix: Option<String>,
    /// Page size, 1 to 200 (default 50).
    limit: Option<i64>,
    /// Accounts to skip (default 0).
    offset: Option<i64>,
}

/// A page of accounts.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    /// Accounts in username order.
    users: Vec<AdminUser>,
    /// Page size used.
    limit: i64,
    /// Offset used.
    offset: i64,
    /// Offset of the next page, if this one was full.
    next_offset: Option<i64>,
    /// All accounts.
    total_users: i64,
}

/// List accounts (admin)
#[utoipa::path(get, path = "/api/admin/users", tag = "admin",
    security(("operator_token" = []), ("bearer" = []), ("session_cookie" = [])), params(ListQuery),
    responses((status = 200, description = "A page of accounts", body = UserPage), AccessErrors, BadRequest))]
async fn list(
    State(state): State<AppState>,
    _: AdminCaller,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<Response> {
    let page =
        state.service.core().list_users(&UserQuery { prefix: q.prefix, limit: q.limit, offset: q.offset }).await?;
    let users = page.users.iter().map(admin_view).collect();
    let (limit, offset, next_offset, total_users) = (page.limit, page.offset, page.next_offset, page.total);
    Ok(Json(UserPage { users, limit, offset, next_offset, total_users }).into_response())
}

/// One account with its live-session count (admin)
#[utoipa::path(get, path = "/api/admin/users/{id}", tag = "admin",
    security(("operator_token" = []), ("bearer" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, description = "The account", body = OneUser), AccessErrors, NotFound))]
async fn show(State(state): State<AppState>, _: AdminCaller, PathParam(id): PathParam) -> Result<Response> {
    let user = state.service.core().user(&id).await?;
    let sessions = state.service.core().live_session_count(&user).await?;
    let mut view = admin_view(&user);
    view.live_sessions = Some(sessions);
    Ok(Json(OneUser { user: view }).into_response())
}

/// The shape `parse_patch` accepts (it reads the JSON map itself, to tell an absent
/// `email` from `null`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct UserPatchRequest {
    /// New roles (`user` is always kept).
    roles: Option<Vec<String>>,
    /// Refuse or allow sign-in; disabling ends the sessions.
    disabled: Option<bool>,
    /// New e-mail; `null` or `""` clears it.
    email: Option<String>,
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

/// Change roles, disabled flag or e-mail (admin)
///
/// Takes `{roles?, disabled?, email?}`; unknown keys and wrong types are refused.
#[utoipa::path(patch, path = "/api/admin/users/{id}", tag = "admin",
    security(("operator_token" = []), ("bearer" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "User id")), request_body = UserPatchRequest,
    responses((status = 200, description = "Changed", body = Updated), AccessErrors, BodyErrors, NotFound))]
async fn update(
    State(state): State<AppState>,
    AdminActor(by): AdminActor,
    PathParam(id): PathParam,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<Response> {
    let core = state.service.core();
    let user = core.user(&id).await?;
    let patch = parse_patch(&body)?;
    let (user, ended) = core.update_user(&by, &user, &patch).await?;
    Ok(Json(Updated { user: admin_view(&user), sessions_ended: ended }).into_response())
}

/// Delete an account and end its sessions (admin)
#[utoipa::path(delete, path = "/api/admin/users/{id}", tag = "admin",
    security(("operator_token" = []), ("bearer" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, description = "Deleted", body = Ended), AccessErrors, NotFound))]
async fn remove(
    State(state): State<AppState>,
    AdminActor(by): AdminActor,
    PathParam(id): PathParam,
) -> Result<Response> {
    let core = state.service.core();
    let ended = core.delete_user(&by, &core.user(&id).await?).await?;
    Ok(Json(Ended { message: "User deleted", sessions_ended: ended }).into_response())
}

/// End every session of an account (admin)
#[utoipa::path(post, path = "/api/admin/users/{id}/logout", tag = "admin",
    security(("operator_token" = []), ("bearer" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, description = "Sessions ended", body = Ended), AccessErrors, NotFound))]
async fn logout_all(
    State(state): State<AppState>,
    AdminActor(by): AdminActor,
    PathParam(id): PathParam,
) -> Result<Response> {
    let core = state.service.core();
    let ended = core.logout_user(&by, &core.user(&id).await?).await?;
    Ok(Json(Ended { message: "Sessions ended", sessions_ended: ended }).into_response())
}

/// Query of the audit trail; unknown parameters are refused.
#[derive(Debug, Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Entries whose actor or subject is this user id.
    user: Option<String>,
    /// Entries with this event name.
    event: Option<String>,
    /// From this time (epoch seconds or RFC 3339).
    from: Option<String>,
    /// Up to this time (epoch seconds or RFC 3339).
    to: Option<String>,
    /// Page size, 1 to 200 (default 50).
    limit: Option<i64>,
    /// Entries with an id below this (the previous page's `next_before`).
    before: Option<i64>,
}

/// A time given as epoch seconds or RFC 3339.
pub(crate) fn parse_time(field: &str, raw: Option<&str>) -> Result<Option<i64>> {
    let Some(raw) = raw.filter(|s| !s.is_empty()) else { return Ok(None) };
    if let Ok(n) = raw.parse::<i64>() {
        return Ok(Some(n));
    }
    time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map(|t| Some(t.unix_timestamp()))
        .map_err(|_| Error::BadRequest(format!("{field} must be epoch seconds or an RFC 3339 time")))
}

/// An audit entry as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryView {
    /// Sequence number.
    id: i64,
    /// RFC 3339.
    at: String,
    /// Event name, e.g. `login_failed`.
    event: String,
    /// Who acted: a user id, `operator` or `cli`.
    actor: Option<String>,
    /// The account acted upon.
    subject: Option<String>,
    /// Client IP.
    ip: Option<String>,
    /// Client user agent.
    user_agent: Option<String>,
    /// `success` or `failure`.
    outcome: String,
    /// Event-specific details.
    #[schema(value_type = Option<Object>)]
    detail: Option<Value>,
    /// Link of the previous entry (hex).
    prev_hash: String,
    /// This entry's chain link (hex): an HMAC under the audit key, or for entries from
    /// before the keyed chain a plain SHA-256.
    hash: String,
}

/// An audit entry as the API shows it.
pub fn entry_view(e: &AuditEntry) -> AuditEntryView {
    let detail = e.event.detail.as_deref().and_then(|d| serde_json::from_str::<Value>(d).ok());
    AuditEntryView {
        id: e.id,
        at: rfc3339(e.at),
        event: e.event.event.clone(),
        actor: e.event.actor.clone(),
        subject: e.event.subject.clone(),
        ip: e.event.ip.clone(),
        user_agent: e.event.user_agent.clone(),
        outcome: e.event.outcome.clone(),
        detail,
        prev_hash: e.prev_hash.clone(),
        hash: e.hash.clone(),
    }
}

/// A page of the audit trail, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Entries.
    entries: Vec<AuditEntryView>,
    /// `before` for the next page, if this one was full.
    next_before: Option<i64>,
}

/// The audit trail (admin)
#[utoipa::path(get, path = "/api/admin/audit", tag = "admin",
    security(("operator_token" = []), ("bearer" = []), ("session_cookie" = [])), params(AuditParams),
    responses((status = 200, description = "A page of entries", body = AuditPage), AccessErrors, BadRequest))]
async fn audit_log(
    State(state): State<AppState>,
    _: AdminCaller,
    QueryParams(p): QueryParams<AuditParams>,
) -> Result<Response> {
    let q = AuditQuery {
        user: p.user.filter(|s| !s.is_empty()),
        event: p.event.filter(|s| !s.is_empty()),
        from: parse_time("from", p.from.as_deref())?,
        to: parse_time("to", p.to.as_deref())?,
        before_id: p.before,
        limit: page_limit(p.limit)?,
    };
    let entries = state.service.core().audit_entries(&q).await?;
    let next = (entries.len() as i64 == q.limit).then(|| entries.last().map(|e| e.id)).flatten();
    let entries = entries.iter().map(entry_view).collect();
    Ok(Json(AuditPage { entries, next_before: next }).into_response())
}

/// The outcome of an audit-chain check: `intact` with what the chain holds, or where and
/// why it breaks.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditVerification {
    /// Whether every entry, and the anchor of the keyed chain, checks out.
    intact: bool,
    /// Entries checked (when intact).
    #[serde(skip_serializing_if = "Option::is_none")]
    entries: Option<i64>,
    /// Entries from before the keyed chain (plain SHA-256 links, pinned by the anchor).
    #[serde(skip_serializing_if = "Option::is_none")]
    plain_entries: Option<i64>,
    /// Id of the first entry linked with the audit key.
    #[serde(skip_serializing_if = "Option::is_none")]
    keyed_from: Option<i64>,
    /// When the anchor was sealed (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    sealed_at: Option<String>,
    /// The first entry found broken (none when the anchor itself is).
    #[serde(skip_serializing_if = "Option::is_none")]
    broken_at: Option<i64>,
    /// Why: `edited`, `unlinked`, `plain_part_rewritten`, `missing`, `anchor_missing`,
    /// `anchor_unsealed` or `anchor_invalid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    /// What an operator reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

/// Check the audit chain (admin)
///
/// Recomputes every link with the audit key (derived from the master key), so that an
/// entry edited by someone who also recomputed the links without the key is found; answers
/// 200 either way, with the verdict in the body.
#[utoipa::path(get, path = "/api/admin/audit/verify", tag = "admin",
    security(("operator_token" = []), ("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, description = "The verdict", body = AuditVerification), AccessErrors))]
async fn audit_verify(State(state): State<AppState>, _: AdminCaller) -> Result<Response> {
    let verdict = match state.service.core().verify_audit_chain().await? {
        Ok(r) => AuditVerification {
            intact: true,
            entries: Some(r.entries),
            plain_entries: Some(r.plain_entries()),
            keyed_from: Some(r.keyed_from),
            sealed_at: Some(rfc3339(r.sealed_at)),
            broken_at: None,
            reason: None,
            message: None,
        },
        Err(b) => AuditVerification {
            intact: false,
            entries: None,
            plain_entries: None,
            keyed_from: None,
            sealed_at: None,
            broken_at: b.id(),
            reason: Some(b.code()),
            message: Some(b.describe()),
        },
    };
    Ok(Json(verdict).into_response())
}
