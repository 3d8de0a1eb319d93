//! RP-initiated logout: `GET`/`POST /oauth/logout` (the client's request, from any site, as
//! the specification allows: it ends a session only with an `id_token_hint` for the
//! signed-in user) and `POST /oauth/logout/confirm` (the confirmation page's form:
//! same-origin, with the browser session's CSRF token). Pages are gatepass's own (usual
//! CSP, `X-Frame-Options: DENY`, `no-store`).

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::Error;
use crate::http::AppState;
use crate::http::cookies::CookieSettings;
use crate::http::extract::{Client, Cookies, QueryParams, RawBody};
use crate::http::openapi::{FormBadRequest, FormErrors, FormRedirect, ServiceUnavailable};
use crate::http::pages::actions::{SameOriginForm, redirect_clearing_cookies_to};
use crate::http::pages::{PageSession, css_href, page_session, render};
use crate::service::ClientInfo;
use crate::service::oauth::logout::{BrowserSession, LogoutOutcome, LogoutRequest};

/// The logout routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(logout_get, logout_post)).routes(routes!(confirm))
}

/// The confirmation page.
#[derive(Template)]
#[template(path = "logout_confirm.html")]
struct ConfirmPage {
    css_href: &'static str,
    client_name: Option<String>,
    csrf_token: String,
    /// The logout request, as hidden fields.
    fields: Vec<(String, String)>,
}

/// The page shown instead of acting on, or redirecting for, a request that fails a check.
#[derive(Template)]
#[template(path = "logout_error.html")]
struct ErrorPage {
    css_href: &'static str,
    message: String,
}

/// The browser's gatepass sign-in, from its session cookie.
fn browser_session(state: &AppState, cookies: CookieSettings, headers: &HeaderMap) -> Option<BrowserSession> {
    match page_session(state, cookies, headers) {
        PageSession::Active(claims) => Some(BrowserSession { sid: claims.sid, user_id: claims.sub }),
        _ => None,
    }
}

async fn respond(
    state: &AppState,
    cookies: CookieSettings,
    req: &LogoutRequest,
    session: Option<&BrowserSession>,
    confirmed: bool,
    client: &ClientInfo,
) -> Response {
    let outcome = match state.service.rp_logout(req, session, confirmed, client).await {
        Ok(outcome) => outcome,
        Err(e) => return e.into_response(),
    };
    match outcome {
        LogoutOutcome::ErrorPage(message) => {
            render(StatusCode::BAD_REQUEST, &ErrorPage { css_href: css_href(), message })
        }
        LogoutOutcome::Confirm { client_name, request } => {
            let Some(session) = session else { return redirect_clearing_cookies_to(cookies, "/") };
            let fields: Vec<(String, String)> =
                serde_urlencoded::from_str(&serde_urlencoded::to_string(&*request).unwrap_or_default())
                    .unwrap_or_default();
            let page =
                ConfirmPage { css_href: css_href(), client_name, csrf_token: state.csrf.token(&session.sid), fields };
            render(StatusCode::OK, &page)
        }
        // The cookies go either way: a browser whose access cookie had expired, or whose
        // session ended elsewhere, is signed out here too.
        LogoutOutcome::Done { redirect: Some(url), .. } => redirect_clearing_cookies_to(cookies, &url),
        LogoutOutcome::Done { redirect: None, .. } => redirect_clearing_cookies_to(cookies, "/?notice=logged_out"),
    }
}

/// RP-initiated logout (OpenID Connect)
///
/// With an `id_token_hint` gatepass issued (expired ones too) for the signed-in user: ends
/// the browser session and the client's grant the hint names, then 303 to the registered
/// `post_logout_redirect_uri` (with `state`) or to gatepass's signed-out page. Without a
/// hint, or with one for another user: a confirmation page (200). An invalid hint, an
/// unknown client, a `client_id` that is not the hint's audience or an unregistered
/// `post_logout_redirect_uri`: an error page (400), never a redirect. Unknown parameters
/// are ignored.
#[utoipa::path(get, path = "/oauth/logout", tag = "oauth", params(LogoutRequest),
    responses((status = 200, description = "The confirmation page (HTML)", content_type = "text/html"),
        (status = 303, description = "Signed out: to the client's registered URI, or to gatepass's page"),
        FormBadRequest, ServiceUnavailable))]
async fn logout_get(
    State(state): State<AppState>,
    Cookies(cookies): Cookies,
    Client(client): Client,
    headers: HeaderMap,
    QueryParams(req): QueryParams<LogoutRequest>,
) -> Response {
    let session = browser_session(&state, cookies, &headers);
    respond(&state, cookies, &req, session.as_ref(), false, &client).await
}

/// RP-initiated logout, form post
///
/// The same request as `GET /oauth/logout`, as an `application/x-www-form-urlencoded`
/// body (a client's page may post it from its own origin).
#[utoipa::path(post, path = "/oauth/logout", tag = "oauth",
    request_body(content = LogoutRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The confirmation page (HTML)", content_type = "text/html"),
        (status = 303, description = "Signed out: to the client's registered URI, or to gatepass's page"),
        FormErrors))]
async fn logout_post(
    State(state): State<AppState>,
    Cookies(cookies): Cookies,
    Client(client): Client,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Response {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Error::UnsupportedMediaType("application/x-www-form-urlencoded").into_response();
    }
    let req: LogoutRequest = match serde_urlencoded::from_bytes(&body) {
        Ok(r) => r,
        Err(e) => return Error::BadRequest(format!("invalid form body: {e}")).into_response(),
    };
    let session = browser_session(&state, cookies, &headers);
    respond(&state, cookies, &req, session.as_ref(), false, &client).await
}

/// The confirmation form: the logout request's parameters and the CSRF token.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ConfirmForm {
    /// The browser session's CSRF token.
    csrf_token: Option<String>,
    /// The logout request (without the hint).
    #[serde(flatten)]
    request: LogoutRequest,
}

/// Confirm signing out (form post)
///
/// Same-origin, with the browser session's CSRF token: ends the browser session, then 303
/// as `GET /oauth/logout` does. A browser that is no longer signed in just goes on.
#[utoipa::path(post, path = "/oauth/logout/confirm", tag = "oauth",
    request_body(content = ConfirmForm, content_type = "application/x-www-form-urlencoded"),
    responses(FormRedirect, FormErrors))]
async fn confirm(
    State(state): State<AppState>,
    Cookies(cookies): Cookies,
    Client(client): Client,
    headers: HeaderMap,
    SameOriginForm(form): SameOriginForm<ConfirmForm>,
) -> Response {
    let session = browser_session(&state, cookies, &headers);
    if let Some(s) = &session
        && !state.csrf.verify(&s.sid, form.csrf_token.as_deref().unwrap_or(""))
    {
        return Error::CsrfFailed.into_response();
    }
    // The confirmation stands for the hint only the client holds: without one it is the
    // user who asks, through this form.
    let req = LogoutRequest { id_token_hint: None, ..form.request };
    respond(&state, cookies, &req, session.as_ref(), true, &client).await
}
