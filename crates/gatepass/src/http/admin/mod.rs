//! The admin console: server-rendered pages under `/admin` for accounts, keys, the audit
//! trail, settings and OAuth clients. Handlers here only read the request, make one
//! service call (the same use case the admin API calls) and render a template from
//! `templates/admin/`.
//!
//! Who gets in is decided once, by [`ConsoleAdmin`] (pages) and [`ConsoleForm`] (form
//! posts): a browser session (cookies only, never an `Authorization` header) whose user
//! has the `admin` role and, when the operator's `mfa_required_roles` names `admin`, signed
//! in with a second factor. Form posts also pass the origin check and carry the session's
//! CSRF token. Destructive actions additionally need a fresh sign-in (the step-up rule of
//! the account pages) and go through a confirmation page first.

pub mod apps;
pub mod audit;
pub mod keys;
pub mod new_user;
pub mod overview;
pub mod settings;
pub mod users;
pub mod views;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatepass_verify::AccessClaims;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use utoipa::IntoResponses;
use utoipa::openapi::{RefOr, ResponseBuilder};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::Role;
use crate::error::Error;
use crate::http::extract::{Client, Cookies, RawBody, cookie_settings};
use crate::http::openapi::FormRedirect;
use crate::http::openapi::html_or_error_response;
use crate::http::pages::actions::{redirect_with_grant, see_other, see_other_to};
use crate::http::pages::{PageSession, css_href, page_session, render};
use crate::http::{AppState, csrf};
use crate::service::Actor;
use views::{ForbiddenPage, Nav};

/// Console routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(reauth))
        .merge(overview::router())
        .merge(users::router())
        .merge(new_user::router())
        .merge(keys::router())
        .merge(audit::router())
        .merge(settings::router())
        .merge(apps::router())
}

/// Why the console turned a request away.
pub enum Refusal {
    /// No active browser session: `/` signs in (or renews an expired sign-in).
    SignIn,
    /// Signed in, but not allowed: the 403 page with this reason.
    Forbidden(&'static str),
    /// A failed origin or CSRF check, or a malformed form: the JSON error.
    Error(Error),
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Refusal::Error(e)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::SignIn => see_other("/"),
            Refusal::Forbidden(reason) => {
                render(StatusCode::FORBIDDEN, &ForbiddenPage { css_href: css_href(), reason })
            }
            Refusal::Error(e) => e.into_response(),
        }
    }
}

/// Refused to a signed-in user without the `admin` role.
const NOT_ADMIN: &str = "This console is for administrators only.";
/// Refused to an admin session started without a second factor under a policy requiring one.
const NEEDS_MFA: &str = "Administrators must sign in with a second factor. Log out, then sign in again with your \
                         authenticator app or passkey.";
/// Shown to a browser whose form carried an old token (a tab from an earlier sign-in).
const PAGE_EXPIRED: &str = "This page had expired. Go back, reload the page and try again.";

/// Whether `claims` may use the console under the settings in force now.
fn admit(state: &AppState, claims: &AccessClaims) -> Result<(), Refusal> {
    if !claims.has_role(Role::ADMIN) {
        return Err(Refusal::Forbidden(NOT_ADMIN));
    }
    let settings = state.service.settings();
    let mfa_required = settings.mfa_required_roles.iter().any(|r| claims.has_role(r));
    if mfa_required && !claims.is_mfa() {
        return Err(Refusal::Forbidden(NEEDS_MFA));
    }
    Ok(())
}

/// A browser session allowed into the console (for the pages, which change nothing).
pub struct ConsoleAdmin {
    /// The admin's claims.
    pub claims: AccessClaims,
}

impl ConsoleAdmin {
    /// The navigation bar of a page in `section`, carrying the session's CSRF token for
    /// the page's forms.
    pub fn nav(&self, state: &AppState, section: &'static str) -> Nav {
        Nav {
            section,
            admin: self.claims.username.clone(),
            csrf_token: state.csrf.token(&self.claims.sid),
            fresh: state.service.is_fresh(&self.claims),
        }
    }
}

impl FromRequestParts<AppState> for ConsoleAdmin {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Refusal> {
        let cookies = cookie_settings(&parts.extensions, &parts.headers, state);
        let PageSession::Active(claims) = page_session(state, cookies, &parts.headers) else {
            return Err(Refusal::SignIn);
        };
        admit(state, &claims)?;
        Ok(ConsoleAdmin { claims })
    }
}

/// A console form post, checked in this order: same origin, an active session, the
/// console's access rule, the session's token in the `csrf_token` field (constant time),
/// then the form.
pub struct ConsoleForm<T> {
    /// The admin's claims.
    pub claims: AccessClaims,
    /// The admin as the audit trail names them.
    pub actor: Actor,
    /// The parsed form.
    pub form: T,
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(|v| v.contains("text/html"))
}

impl<T: DeserializeOwned> FromRequest<AppState> for ConsoleForm<T> {
    type Rejection = Refusal;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Refusal> {
        let cookies = cookie_settings(req.extensions(), req.headers(), state);
        if !csrf::same_origin_required(req.headers(), cookies) {
            return Err(Error::CsrfFailed.into());
        }
        let PageSession::Active(claims) = page_session(state, cookies, req.headers()) else {
            return Err(Refusal::SignIn);
        };
        admit(state, &claims)?;
        let html = wants_html(req.headers());
        let (mut parts, body) = req.into_parts();
        let Client(client) = Client::from_request_parts(&mut parts, state).await?;
        let RawBody(bytes) = RawBody::from_request(Request::from_parts(parts, body), state).await?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
        let token = pairs.iter().find(|(k, _)| k == "csrf_token").map(|(_, v)| v.as_str()).unwrap_or("");
        if !state.csrf.verify(&claims.sid, token) {
            // Nothing is done either way; a browser gets a page that says what to do.
            return Err(if html { Refusal::Forbidden(PAGE_EXPIRED) } else { Error::CsrfFailed.into() });
        }
        let form =
            serde_urlencoded::from_bytes(&bytes).map_err(|e| Error::BadRequest(format!("invalid form body: {e}")))?;
        let actor = Actor::user(&claims.sub, &client);
        Ok(ConsoleForm { claims, actor, form })
    }
}

/// Responses of a console page.
pub struct ConsolePage;

impl IntoResponses for ConsolePage {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let html = |d: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(d)
                    .content("text/html", utoipa::openapi::Content::new(Some(String::schema())))
                    .build(),
            )
        };
        let mut map = BTreeMap::new();
        map.insert("200".to_owned(), html("The page"));
        map.insert("303".to_owned(), FormRedirect::responses().remove("303").unwrap_or_else(|| html("Redirect")));
        map.insert("400".to_owned(), RefOr::T(html_or_error_response(StatusCode::BAD_REQUEST, "A bad filter")));
        map.insert("403".to_owned(), html("Signed in without the `admin` role, or without the required second factor"));
        map.insert("404".to_owned(), RefOr::T(html_or_error_response(StatusCode::NOT_FOUND, "No such item")));
        map
    }
}

/// Responses of a console form post.
pub struct ConsoleAction;

impl IntoResponses for ConsoleAction {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let mut map = ConsolePage::responses();
        map.insert("200".to_owned(), map["200"].clone());
        map.insert(
            "403".to_owned(),
            RefOr::T(html_or_error_response(
                StatusCode::FORBIDDEN,
                "Not an admin, no second factor where required or a stale page (HTML); CSRF check failed (JSON)",
            )),
        );
        map.insert("409".to_owned(), RefOr::T(html_or_error_response(StatusCode::CONFLICT, "A conflicting change")));
        map
    }
}

use utoipa::PartialSchema as _;

/// Whether `path` is a console page a step-up may return to (a local path, so never an
/// open redirect).
fn console_path(path: &str) -> bool {
    (path == "/admin" || path.starts_with("/admin/"))
        && path.len() <= 512
        && !path.contains("//")
        && path.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
}

#[derive(Deserialize, utoipa::ToSchema)]
struct ReauthForm {
    /// The admin's password.
    password: Option<String>,
    /// For an account with a second factor: a code from the app, or a recovery code.
    code: Option<String>,
    /// The console page to go back to.
    return_to: Option<String>,
}

/// Confirm the password in the console (form post)
///
/// The step-up of the account pages (`/ui/reauth`), going back to the console page that
/// asked for it: destructive console actions need a fresh sign-in.
#[utoipa::path(post, path = "/admin/reauth", tag = "admin console",
    request_body(content = ReauthForm, content_type = "application/x-www-form-urlencoded"),
    responses(ConsoleAction))]
async fn reauth(
    axum::extract::State(state): axum::extract::State<AppState>,
    Cookies(cookies): Cookies,
    Client(client): Client,
    ConsoleForm { claims, form, .. }: ConsoleForm<ReauthForm>,
) -> Response {
    let back = form.return_to.filter(|p| console_path(p)).unwrap_or_else(|| "/admin".to_owned());
    let password = form.password.unwrap_or_default();
    let code = form.code.as_deref().map(str::trim).filter(|c| !c.is_empty());
    let factor = code.map(crate::http::pages::mfa::factor_of);
    match state.service.reauthenticate(&claims, &password, factor, &client).await {
        Ok(grant) => redirect_with_grant(&state, cookies, &with_notice(&back, "reauthed"), &grant),
        Err(e) if e.status().is_client_error() => see_other_to(&with_notice(&back, "reauth_failed")),
        Err(e) => e.into_response(),
    }
}

/// `path` with `notice=code` added to its query.
pub fn with_notice(path: &str, code: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}notice={code}")
}
