//! `/admin/users`: account search and one account's page, with the admin API's account
//! actions as form posts (roles, disable/enable, delete, sessions, second factors,
//! verification and reset links).

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::views::{AuditItem, ConfirmPage, Nav, SessionItem, Stamp, UserItem, UserPage, UsersPage, notice};
use super::{ConsoleAction, ConsoleAdmin, ConsoleForm, ConsolePage, with_notice};
use crate::domain::{Roles, User};
use crate::error::Error;
use crate::http::AppState;
use crate::http::extract::PathParam;
use crate::http::pages::actions::see_other_to;
use crate::http::pages::views::Notice;
use crate::http::pages::{clip, css_href, describe_agent, render};
use crate::service::console::SearchQuery;
use crate::storage::UserPatch;
use crate::storage::audit::AuditEntry;
use gatepass_verify::AccessClaims;

/// User routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search))
        .routes(routes!(show))
        .routes(routes!(set_roles))
        .routes(routes!(disable))
        .routes(routes!(enable))
        .routes(routes!(delete_confirm, delete))
        .routes(routes!(end_all))
        .routes(routes!(end_one))
        .routes(routes!(mfa_reset_confirm, mfa_reset))
        .routes(routes!(resend_verification))
        .routes(routes!(mark_verified))
        .routes(routes!(send_reset))
        .routes(routes!(set_email))
}

/// The search form's query; every field is optional and read leniently.
#[derive(Debug, Default, Deserialize)]
struct SearchParams {
    q: Option<String>,
    role: Option<String>,
    status: Option<String>,
    unverified: Option<String>,
    offset: Option<i64>,
}

/// An account as the console lists it.
pub fn user_item(u: &User) -> UserItem {
    UserItem {
        id: u.id.as_str().to_owned(),
        username: u.username.as_str().to_owned(),
        email: u.email.as_ref().map(|e| e.as_str().to_owned()),
        verified: u.email_verified,
        roles: u.roles.names().join(", "),
        disabled: u.disabled,
    }
}

/// An audit entry as the console lists it.
pub fn audit_item(e: &AuditEntry) -> AuditItem {
    AuditItem {
        id: e.id,
        at: Stamp::at(e.at),
        event: e.event.event.clone(),
        actor: e.event.actor.clone().unwrap_or_default(),
        subject: e.event.subject.clone().unwrap_or_default(),
        outcome: e.event.outcome.clone(),
        ip: e.event.ip.clone().unwrap_or_default(),
    }
}

/// The search page's link to `offset` under the same filters.
fn page_link(p: &SearchParams, offset: i64) -> String {
    let mut pairs = vec![];
    for (k, v) in [("q", &p.q), ("role", &p.role), ("status", &p.status), ("unverified", &p.unverified)] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            pairs.push((k, v.to_owned()));
        }
    }
    pairs.push(("offset", offset.to_string()));
    format!("/admin/users?{}", serde_urlencoded::to_string(pairs).unwrap_or_default())
}

/// Find users
///
/// By name or address prefix, role, disabled and unverified address; 50 a page.
#[utoipa::path(get, path = "/admin/users", tag = "admin console",
    params(("q" = Option<String>, Query, description = "Name or address prefix"),
        ("role" = Option<String>, Query, description = "Role"),
        ("status" = Option<String>, Query, description = "`any`, `enabled` or `disabled`"),
        ("unverified" = Option<String>, Query, description = "Any value: only unverified addresses"),
        ("offset" = Option<i64>, Query, description = "Accounts to skip")),
    responses(ConsolePage))]
async fn search(State(state): State<AppState>, admin: ConsoleAdmin, uri: Uri) -> Response {
    let p: SearchParams = serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default();
    let status = p.status.clone().filter(|s| s == "enabled" || s == "disabled").unwrap_or_else(|| "any".into());
    let query = SearchQuery {
        q: p.q.clone(),
        role: p.role.clone(),
        disabled: match status.as_str() {
            "enabled" => Some(false),
            "disabled" => Some(true),
            _ => None,
        },
        unverified: p.unverified.as_deref().is_some_and(|v| !v.is_empty()),
        limit: None,
        offset: p.offset,
    };
    let mut page = UsersPage {
        css_href: css_href(),
        nav: admin.nav(&state, "users"),
        notice: notice(uri.query()),
        error: None,
        q: clip(p.q.as_deref().unwrap_or("")),
        role: clip(p.role.as_deref().unwrap_or("")),
        status,
        unverified: query.unverified,
        users: vec![],
        total: 0,
        first: 0,
        last: 0,
        prev: None,
        next: None,
    };
    match state.service.core().search_users(&query).await {
        Ok(r) => {
            page.users = r.users.iter().map(user_item).collect();
            page.total = r.total;
            page.first = if r.users.is_empty() { 0 } else { r.offset + 1 };
            page.last = r.offset + r.users.len() as i64;
            page.prev = (r.offset > 0).then(|| page_link(&p, (r.offset - r.limit).max(0)));
            page.next = (page.last < r.total).then(|| page_link(&p, page.last));
            render(StatusCode::OK, &page)
        }
        Err(e) if e.status().is_client_error() => {
            page.error = Some(e.message());
            render(e.status(), &page)
        }
        Err(e) => e.into_response(),
    }
}

/// One account's page with `notice` or `error`, the roles field holding `roles_value`.
async fn user_page(
    state: &AppState,
    nav: Nav,
    user: User,
    status: StatusCode,
    notice: Option<Notice>,
    error: Option<(String, String)>,
) -> Response {
    let d = match state.service.core().user_detail(user).await {
        Ok(d) => d,
        Err(e) => return e.into_response(),
    };
    let (error, roles_value) = match error {
        Some((message, typed)) => (Some(message), clip(&typed)),
        None => (None, d.user.roles.names().join(", ")),
    };
    let totp = match d.totp {
        None => "none",
        Some(false) => "enrolment started, not confirmed",
        Some(true) => "active",
    };
    let sessions = d
        .sessions
        .iter()
        .map(|s| SessionItem {
            id: s.id.clone(),
            agent: s.user_agent.as_deref().map(describe_agent).unwrap_or_else(|| "Unknown client".into()),
            ip: s.ip.clone().unwrap_or_else(|| "unknown address".into()),
            created_at: Stamp::at(s.created_at),
            last_used_at: Stamp::at(s.last_used_at),
            client: s.client_id.clone(),
        })
        .collect();
    let page = UserPage {
        css_href: css_href(),
        nav,
        notice,
        error,
        user: user_item(&d.user),
        created_at: Stamp::at(d.user.created_at),
        roles_value,
        sessions,
        totp,
        passkeys: d.passkeys,
        recovery_codes_left: d.recovery_codes_left,
        consents: d.consents.into_iter().map(|(id, name, scopes)| (id, name, scopes.join(" "))).collect(),
        audit: d.audit.iter().map(audit_item).collect(),
    };
    render(status, &page)
}

/// One account
#[utoipa::path(get, path = "/admin/users/{id}", tag = "admin console",
    params(("id" = String, Path, description = "User id")), responses(ConsolePage))]
async fn show(State(state): State<AppState>, admin: ConsoleAdmin, PathParam(id): PathParam, uri: Uri) -> Response {
    match state.service.core().user(&id).await {
        Ok(user) => {
            user_page(&state, admin.nav(&state, "users"), user, StatusCode::OK, notice(uri.query()), None).await
        }
        Err(e) => e.into_response(),
    }
}

/// A form with only the CSRF token.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct TokenForm {
    /// The session's CSRF token.
    #[allow(dead_code)]
    csrf_token: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
struct RolesForm {
    /// Role names separated by commas or spaces.
    roles: Option<String>,
}

/// The account's page after an action: a 303 to it with `code` as the notice.
fn back_to(id: &str, code: &str) -> Response {
    see_other_to(&with_notice(&format!("/admin/users/{id}"), code))
}

/// Set an account's roles (form post)
///
/// As `PATCH /api/admin/users/{id}` with `roles`: a change ends the account's sessions. A
/// bad role shows the page again with the message and changes nothing.
#[utoipa::path(post, path = "/admin/users/{id}/roles", tag = "admin console",
    params(("id" = String, Path, description = "User id")),
    request_body(content = RolesForm, content_type = "application/x-www-form-urlencoded"),
    responses(ConsoleAction))]
async fn set_roles(
    State(state): State<AppState>,
    PathParam(id): PathParam,
    ConsoleForm { claims, actor, form }: ConsoleForm<RolesForm>,
) -> Response {
    let core = state.service.core();
    let user = match core.user(&id).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    let typed = form.roles.unwrap_or_default();
    let names: Vec<&str> = typed.split([',', ' ']).map(str::trim).filter(|n| !n.is_empty()).collect();
    let outcome = match Roles::parse(&names) {
        Ok(roles) => core.set_roles(&actor, &user, roles).await.map(|_| ()),
        Err(v) => Err(Error::from(v)),
    };
    match outcome {
        Ok(()) => back_to(&id, "roles"),
        Err(e) if e.status().is_client_error() => {
            let nav = ConsoleAdmin { claims }.nav(&state, "users");
            user_page(&state, nav, user, e.status(), None, Some((e.message(), typed))).await
        }
        Err(e) => e.into_response(),
    }
}

/// The answer to an account action: a 303 to the account's page with `code`, or the page
/// again with the refusal announced (nothing changed), or the JSON error for the rest.
async fn answer(state: &AppState, claims: AccessClaims, id: &str, outcome: Result<(), Error>, code: &str) -> Response {
    match outcome {
        Ok(()) => back_to(id, code),
        Err(e) if e.status().is_client_error() && e.status() != StatusCode::NOT_FOUND => {
            let user = match state.service.core().user(id).await {
                Ok(u) => u,
                Err(e) => return e.into_response(),
            };
            let nav = ConsoleAdmin { claims }.nav(state, "users");
            let typed = user.roles.names().join(", ");
            user_page(state, nav, user, e.status(), None, Some((e.message(), typed))).await
        }
        Err(e) => e.into_response(),
    }
}

/// Applies `patch` to account `id` through the admin API's use case.
async fn patch_user(
    state: &AppState,
    form: ConsoleForm<TokenForm>,
    id: &str,
    patch: UserPatch,
    code: &str,
) -> Response {
    let core = state.service.core();
    let outcome = match core.user(id).await {
        Ok(user) => core.update_user(&form.actor, &user, &patch).await.map(|_| ()),
        Err(e) => Err(e),
    };
    answer(state, form.claims, id, outcome, code).await
}

#[derive(Deserialize, utoipa::ToSchema)]
struct EmailForm {
    /// The new address; empty removes it.
    email: Option<String>,
}

/// Change or remove an account's address (form post)
///
/// As `PATCH /api/admin/users/{id}` with `email`: the new address is unverified. A bad or
/// taken address shows the page again with the message and changes nothing.
#[utoipa::path(post, path = "/admin/users/{id}/email", tag = "admin console",
    params(("id" = String, Path, description = "User id")),
    request_body(content = EmailForm, content_type = "application/x-www-form-urlencoded"),
    responses(ConsoleAction))]
async fn set_email(
    State(state): State<AppState>,
    PathParam(id): PathParam,
    ConsoleForm { claims, actor, form }: ConsoleForm<EmailForm>,
) -> Response {
    let core = state.service.core();
    let typed = form.email.as_deref().map(str::trim).unwrap_or("");
    let outcome = async {
        let email = if typed.is_empty() { None } else { Some(crate::domain::Email::parse(typed)?) };
        let patch = UserPatch { email: Some(email), ..UserPatch::default() };
        core.update_user(&actor, &core.user(&id).await?, &patch).await.map(|_| ())
    }
    .await;
    answer(&state, claims, &id, outcome, "email_changed").await
}

/// Disable an account (form post)
///
/// Sign-in is refused and every session ends at once: its access tokens are refused from
/// this moment.
#[utoipa::path(post, path = "/admin/users/{id}/disable", tag = "admin console",
    params(("id" = String, Path, description = "User id")),
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(ConsoleAction))]
async fn disable(State(state): State<AppState>, PathParam(id): PathParam, form: ConsoleForm<TokenForm>) -> Response {
    patch_user(&state, form, &id, UserPatch { disabled: Some(true), ..UserPatch::default() }, "disabled").await
}

/// Enable an account (form post)
#[utoipa::path(post, path = "/admin/users/{id}/enable", tag = "admin console",
    params(("id" = String, Path, description = "User id")),
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(ConsoleAction))]
async fn enable(State(state): State<AppState>, PathParam(id): PathParam, form: ConsoleForm<TokenForm>) -> Response {
    patch_user(&state, form, &id, UserPatch { disabled: Some(false), ..UserPatch::default() }, "enabled").await
}

/// The confirmation page of a destructive action.
pub async fn confirm_page(
    state: &AppState,
    admin: &ConsoleAdmin,
    section: &'static str,
    uri: &Uri,
    (title, message, button): (String, String, &'static str),
    back: String,
) -> Response {
    let needs_code = match state.service.has_mfa(&admin.claims.sub).await {
        Ok(m) => m,
        Err(e) => return e.into_response(),
    };
    let mut nav = admin.nav(state, section);
    // The step-up rule of the account pages: fresh, and with the factor when there is one.
    nav.fresh = nav.fresh && (admin.claims.is_mfa() || !needs_code);
    let page = ConfirmPage {
        css_href: css_href(),
        nav,
        notice: notice(uri.query()),
        error: None,
        title,
        message,
        action: uri.path().to_owned(),
        button,
        back,
        here: uri.path().to_owned(),
        needs_code,
    };
    render(StatusCode::OK, &page)
}

/// Runs a destructive action once the step-up rule holds; otherwise back to its
/// confirmation page (`confirm`), which asks for the password.
pub async fn destructive<F>(state: &AppState, claims: &AccessClaims, confirm: &str, act: F) -> Response
where
    F: AsyncFnOnce() -> Result<String, Error>,
{
    match state.service.require_step_up(claims).await {
        Ok(()) => {}
        Err(Error::FreshLoginRequired) => return see_other_to(confirm),
        Err(e) => return e.into_response(),
    }
    match act().await {
        Ok(location) => see_other_to(&location),
        Err(e) => e.into_response(),
    }
}

/// The confirmation page of an action on account `id`; `text` gets the account's name.
async fn confirm_for_user(
    state: &AppState,
    admin: &ConsoleAdmin,
    uri: &Uri,
    id: &str,
    text: impl FnOnce(&str) -> (String, String, &'static str),
) -> Response {
    match state.service.core().user(id).await {
        Ok(user) => {
            let text = text(user.username.as_str());
            confirm_page(state, admin, "users", uri, text, format!("/admin/users/{id}")).await
        }
        Err(e) => e.into_response(),
    }
}

/// Confirm deleting an account
#[utoipa::path(get, path = "/admin/users/{id}/delete", tag = "admin console",
    params(("id" = String, Path, description = "User id")), responses(ConsolePage))]
async fn delete_confirm(
    State(state): State<AppState>,
    admin: ConsoleAdmin,
    PathParam(id): PathParam,
    uri: Uri,
) -> Response {
    confirm_for_user(&state, &admin, &uri, &id, |name| {
        (
            format!("Delete {name}?"),
            format!(
                "The account {name} and everything it holds are deleted, and its sessions end at once. This cannot be undone."
            ),
            "Delete the account",
        )
    })
    .await
}

/// Delete an account (form post)
///
/// Needs a fresh sign-in (otherwise back to the confirmation page).
#[utoipa::path(post, path = "/admin/users/{id}/delete", tag = "admin console",
    params(("id" = String, Path, description = "User id")),
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(ConsoleAction))]
async fn delete(
    State(state): State<AppState>,
    PathParam(id): PathParam,
    ConsoleForm { claims, actor, .. }: ConsoleForm<TokenForm>,
) -> Response {
    let core = state.service.core();
    destructive(&state, &claims, &format!("/admin/users/{id}/delete"), async || {
        core.delete_user(&actor, &core.user(&id).await?).await?;
        Ok("/admin/users?notice=deleted".to_owned())
    })
    .await
}

/// End every session of an account (form post)
#[utoipa::path(post, path = "/admin/users/{id}/sessions/end-all", tag = "admin console",
    params(("id" = String, Path, description = "User id")),
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(ConsoleAction))]
async fn end_all(
    State(state): State<AppState>,
    PathParam(id): PathParam,
    ConsoleForm { claims, actor, .. }: ConsoleForm<TokenForm>,
) -> Response {
    let core = state.service.core();
    let outcome = async { core.logout_user(&actor, &core.user(&id).await?).await.map(|_| ()) }.await;
    answer(&state, claims, &id, outcome, "sessions_ended").await
}

/// End one session of an account (form post)
#[utoipa::path(post, path = "/admin/users/{id}/sessions/{sid}/end", tag = "admin console",
    params(("id" = String, Path, description = "User id"), ("sid" = String, Path, description = "Session id")),
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(ConsoleAction))]
async fn end_one(
    State(state): State<AppState>,
    axum::extract::Path((id, sid)): axum::extract::Path<(String, String)>,
    ConsoleForm { actor, .. }: ConsoleForm<TokenForm>,
) -> Response {
    let core = state.service.core();
    let outcome = async { core.end_user_session(&actor, &core.user(&id).await?, &sid).await }.await;
    match outcome {
        Ok(()) => back_to(&id, "session_ended"),
        Err(Error::NotFound) => back_to(&id, "session_gone"),
        Err(e) => e.into_response(),
    }
}

/// Confirm resetting an account's second factors
#[utoipa::path(get, path = "/admin/users/{id}/mfa-reset", tag = "admin console",
    params(("id" = String, Path, description = "User id")), responses(ConsolePage))]
async fn mfa_reset_confirm(
    State(state): State<AppState>,
    admin: ConsoleAdmin,
    PathParam(id): PathParam,
    uri: Uri,
) -> Response {
    confirm_for_user(&state, &admin, &uri, &id, |name| {
        (
            format!("Reset the second factors of {name}?"),
            format!(
                "The authenticator app, the passkeys and the recovery codes of {name} are removed; they sign in with the password alone until they set up a new factor."
            ),
            "Remove the second factors",
        )
    })
    .await
}

/// Reset an account's second factors (form post)
///
/// As `DELETE /api/admin/users/{id}/mfa`; needs a fresh sign-in.
#[utoipa::path(post, path = "/admin/users/{id}/mfa-reset", tag = "admin console",
    params(("id" = String, Path, description = "User id")),
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(ConsoleAction))]
async fn mfa_reset(
    State(state): State<AppState>,
    PathParam(id): PathParam,
    ConsoleForm { claims, actor, .. }: ConsoleForm<TokenForm>,
) -> Response {
    let core = state.service.core();
    destructive(&state, &claims, &format!("/admin/users/{id}/mfa-reset"), async || {
        core.reset_mfa(&actor, &core.user(&id).await?).await?;
        Ok(with_notice(&format!("/admin/users/{id}"), "mfa_reset"))
    })
    .await
}

/// Resend the verification link (form post)
#[utoipa::path(post, path = "/admin/users/{id}/verification", tag = "admin console",
    params(("id" = String, Path, description = "User id")),
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(ConsoleAction))]
async fn resend_verification(
    State(state): State<AppState>,
    PathParam(id): PathParam,
    ConsoleForm { claims, actor, .. }: ConsoleForm<TokenForm>,
) -> Response {
    let core = state.service.core();
    let outcome = async { core.resend_verification(&actor, &core.user(&id).await?).await }.await;
    answer(&state, claims, &id, outcome, "verification_sent").await
}

/// Mark the address verified (form post)
#[utoipa::path(post, path = "/admin/users/{id}/verify-email", tag = "admin console",
    params(("id" = String, Path, description = "User id")),
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(ConsoleAction))]
async fn mark_verified(
    State(state): State<AppState>,
    PathParam(id): PathParam,
    ConsoleForm { claims, actor, .. }: ConsoleForm<TokenForm>,
) -> Response {
    let core = state.service.core();
    let outcome = async { core.mark_email_verified(&actor, &core.user(&id).await?).await.map(|_| ()) }.await;
    answer(&state, claims, &id, outcome, "verified").await
}

/// Send a password-reset link (form post)
#[utoipa::path(post, path = "/admin/users/{id}/password-reset", tag = "admin console",
    params(("id" = String, Path, description = "User id")),
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(ConsoleAction))]
async fn send_reset(
    State(state): State<AppState>,
    PathParam(id): PathParam,
    ConsoleForm { claims, actor, .. }: ConsoleForm<TokenForm>,
) -> Response {
    let core = state.service.core();
    let outcome = match core.user(&id).await {
        Ok(user) if user.email.is_none() => Err(Error::BadRequest("the account has no e-mail address".into())),
        Ok(user) => core.send_password_reset(&actor, &user).await,
        Err(e) => Err(e),
    };
    let outcome = match outcome {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::BadRequest(
            "no link was sent: the account is disabled, or links were sent to it too often; try again later".into(),
        )),
        Err(e) => Err(e),
    };
    answer(&state, claims, &id, outcome, "reset_sent").await
}
