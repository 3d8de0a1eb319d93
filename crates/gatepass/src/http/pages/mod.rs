//! Server-rendered pages for browsers: the login page and signed-in profile at `/`, the
//! registration page, and the stylesheet. Form posts go to the `/ui/*` routes in
//! [`actions`], which answer with 303 redirects (Post/Redirect/Get).
//!
//! Pages read the session from cookies only, never from an `Authorization` header. GET
//! handlers never change server state: an expired sign-in is renewed by a POST from the
//! resume page (see `docs/browser.md`).

pub mod actions;
pub mod apps;
pub mod email;
pub mod mfa;
pub mod passkeys;
pub mod views;

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use gatepass_verify::{AccessClaims, VerifyError};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::Error;
use crate::http::cookies::CookieSettings;
use crate::http::extract::Cookies;
use crate::http::openapi::ServiceUnavailable;
use crate::http::{AppState, no_store};
use crate::service::oauth::describe_scope;
use views::{AppItem, HomeErrors, HomePage, LoginPage, Notice, RegisterPage, ResumePage, SessionItem, Stamp};

/// The stylesheet, compiled into the binary.
pub const CSS: &str = include_str!("../../../static/gatepass.css");

/// The resume page's only script: submit its form. Allowed by hash in the CSP.
pub const RESUME_SCRIPT: &str = r#"document.getElementById("resume").submit();"#;

/// POST route that renews an expired browser sign-in. It sits under the refresh
/// cookie's path, so the browser sends that cookie here and nowhere else.
pub const PAGE_REFRESH_PATH: &str = "/api/refresh/page";

/// Stylesheet URL carrying a digest of its content, so it can be cached for a year and
/// still change with each release.
static CSS_HREF: LazyLock<String> = LazyLock::new(|| {
    let digest = Sha256::digest(CSS.as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("/static/gatepass.css?v={hex}")
});

pub(crate) fn css_href() -> &'static str {
    CSS_HREF.as_str()
}

/// Page routes (GET) and the form routes of [`actions`].
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(home))
        .routes(routes!(register_page))
        .routes(routes!(stylesheet))
        .merge(actions::router())
        .merge(apps::router())
        .merge(email::router())
        .merge(mfa::router())
        .merge(passkeys::router())
}

/// What the cookies say about the browser's sign-in.
// One per request and short-lived: boxing the claims would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum PageSession {
    /// No session cookie.
    None,
    /// A valid, unrevoked access token.
    Active(AccessClaims),
    /// The access token has expired (the refresh cookie may still renew it).
    Expired,
    /// A token that fails verification or belongs to an ended session.
    Invalid,
}

/// Reads the access-token cookie and verifies it.
pub fn page_session(state: &AppState, cookies: CookieSettings, headers: &HeaderMap) -> PageSession {
    let Some(token) = CookieSettings::get(headers, cookies.session_name()) else {
        return PageSession::None;
    };
    match state.service.authenticate(&token) {
        Ok(claims) => PageSession::Active(claims),
        Err(Error::Token(VerifyError::Expired)) => PageSession::Expired,
        Err(_) => PageSession::Invalid,
    }
}

/// The CSRF cookie, if it has the shape of a token (it is echoed into the resume page).
fn csrf_cookie(cookies: CookieSettings, headers: &HeaderMap) -> Option<String> {
    CookieSettings::get(headers, cookies.csrf_name())
        .filter(|v| v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

/// Renders a template as an HTML response with `status`; a rendering failure is a 500.
pub fn render<T: Template>(status: StatusCode, template: &T) -> Response {
    match template.render() {
        Ok(html) => no_store((status, Html(html)).into_response()),
        Err(e) => Error::Internal(format!("template: {e}")).into_response(),
    }
}

/// The login page.
pub fn login_page(status: StatusCode, notice: Option<Notice>, error: Option<String>, username: &str) -> Response {
    login_page_returning(status, notice, error, username, None)
}

/// The login page whose sign-in goes on to `return_to` (see [`valid_return_to`]).
pub fn login_page_returning(
    status: StatusCode,
    notice: Option<Notice>,
    error: Option<String>,
    username: &str,
    return_to: Option<&str>,
) -> Response {
    let return_to = return_to.filter(|r| valid_return_to(r)).map(str::to_owned);
    passkeys::allow_script(render(
        status,
        &LoginPage { css_href: css_href(), notice, error, username: clip(username), return_to },
    ))
}

/// Whether a sign-in may go on to `path`: only to an OAuth authorization request or the
/// device verification page on this server (a local path, so never an open redirect), of
/// printable ASCII.
pub fn valid_return_to(path: &str) -> bool {
    (path.starts_with("/oauth/authorize?") || path == "/oauth/device" || path.starts_with("/oauth/device?"))
        && path.len() <= 4096
        && path.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
}

/// The registration page with the values entered and the errors next to their fields.
pub fn register_page_with(status: StatusCode, page: RegisterPage) -> Response {
    render(status, &page)
}

/// An empty registration form under the settings in force now (password rule, whether
/// registration is open).
pub fn blank_register_page(state: &AppState) -> RegisterPage {
    let settings = state.service.settings();
    RegisterPage {
        css_href: css_href(),
        error: None,
        username: String::new(),
        email: String::new(),
        username_error: None,
        email_error: None,
        password_error: None,
        confirm_error: None,
        notice: None,
        password_min_length: settings.password_min_length,
        closed: !settings.registration_open,
    }
}

/// Keeps an echoed value short; the field limits are far below this.
pub fn clip(s: &str) -> String {
    s.chars().take(256).collect()
}

/// The signed-in page for `claims`, with `errors` next to their fields.
pub async fn home_page(
    state: &AppState,
    claims: &AccessClaims,
    status: StatusCode,
    notice: Option<Notice>,
    errors: HomeErrors,
) -> Response {
    let user = match state.service.current_user(claims).await {
        Ok(u) => u,
        Err(Error::Token(_)) => return login_page(StatusCode::OK, Notice::from_code("invalid"), None, ""),
        Err(e) => return e.into_response(),
    };
    let sessions = match state.service.sessions(claims).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let mfa = match state.service.mfa_status(claims).await {
        Ok(m) => m,
        Err(e) => return e.into_response(),
    };
    let apps = match state.service.allowed_apps(claims).await {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let mfa_active = mfa.totp == Some(true);
    let has_factor = mfa.has_factor();
    // For an account with a second factor, sensitive actions need a fresh sign-in that
    // included it (the service enforces this; the page only shows which forms will work).
    let fresh = state.service.is_fresh(claims) && (claims.is_mfa() || !has_factor);
    let mut sessions: Vec<SessionItem> = sessions
        .into_iter()
        .map(|s| SessionItem {
            current: s.id == claims.sid,
            created_at: Stamp::at(s.created_at),
            last_used_at: Stamp::at(s.last_used_at),
            user_agent: s.user_agent.as_deref().map(describe_agent).unwrap_or_else(|| "Unknown client".into()),
            ip: s.ip.unwrap_or_else(|| "unknown address".into()),
            id: s.id,
        })
        .collect();
    sessions.sort_by_key(|s| !s.current);
    let page = render(
        status,
        &HomePage {
            css_href: css_href(),
            notice,
            username: user.username.as_str().to_owned(),
            email: user.email.as_ref().map(|e| e.as_str().to_owned()),
            email_verified: user.email_verified,
            roles: user.roles.names().join(", "),
            created_at: Stamp::at(user.created_at),
            sessions,
            apps: apps
                .into_iter()
                .map(|a| AppItem {
                    scopes: a.scopes.iter().map(|s| describe_scope(s)).collect(),
                    since: Stamp::at(a.since),
                    client_id: a.client_id,
                    name: a.name,
                })
                .collect(),
            fresh,
            csrf_token: state.csrf.token(&claims.sid),
            reauth_error: errors.reauth,
            password_form_error: errors.password_form,
            current_password_error: errors.current_password,
            new_password_error: errors.new_password,
            email_form_error: errors.email_form,
            new_email: clip(&errors.new_email),
            password_min_length: state.service.settings().password_min_length,
            mfa_active,
            has_factor,
            recovery_codes_left: mfa.recovery_codes_left,
            fresh_mfa: fresh && claims.is_mfa(),
            mfa_error: errors.mfa,
            mfa_reauth_error: errors.mfa_reauth,
        },
    );
    passkeys::allow_script(page)
}

/// A short, readable name for a `User-Agent` string.
pub(crate) fn describe_agent(ua: &str) -> String {
    let browser = ["Edg/", "Firefox/", "Chrome/", "Safari/", "curl/", "reqwest"].iter().find(|b| ua.contains(*b)).map(
        |b| match *b {
            "Edg/" => "Edge",
            "Firefox/" => "Firefox",
            "Chrome/" if ua.contains("HeadlessChrome") => "Headless Chrome",
            "Chrome/" => "Chrome",
            "Safari/" => "Safari",
            "curl/" => "curl",
            _ => "reqwest",
        },
    );
    let os = ["Android", "iPhone", "iPad", "Windows", "Mac OS X", "Linux"].iter().find(|o| ua.contains(*o));
    match (browser, os) {
        (Some(b), Some(o)) => format!("{b} on {}", o.replace("Mac OS X", "macOS")),
        (Some(b), None) => b.to_owned(),
        _ => clip(ua).chars().take(60).collect(),
    }
}

/// The home page
///
/// Signed in (session cookie): the account and its sessions. Otherwise the login form,
/// or a page that renews an expired sign-in.
#[utoipa::path(get, path = "/", tag = "pages",
    params(("notice" = Option<String>, Query, description = "A message to show, from a fixed list")),
    responses((status = 200, description = "The page", body = String, content_type = "text/html"),
        ServiceUnavailable))]
async fn home(State(state): State<AppState>, Cookies(cookies): Cookies, headers: HeaderMap, uri: Uri) -> Response {
    let notice = Notice::from_query(uri.query());
    match page_session(&state, cookies, &headers) {
        PageSession::Active(claims) => home_page(&state, &claims, StatusCode::OK, notice, HomeErrors::default()).await,
        // The access cookie expires (and the browser drops it) long before the refresh
        // cookie; the CSRF cookie lives as long as the refresh cookie and is visible here,
        // so its presence says a renewal is worth trying.
        PageSession::Expired | PageSession::None if csrf_cookie(cookies, &headers).is_some() => {
            let csrf_token = csrf_cookie(cookies, &headers).unwrap_or_default();
            render(StatusCode::OK, &ResumePage { css_href: css_href(), action: PAGE_REFRESH_PATH, csrf_token })
        }
        PageSession::Expired => login_page(StatusCode::OK, Notice::from_code("expired"), None, ""),
        PageSession::Invalid => login_page(StatusCode::OK, Notice::from_code("invalid"), None, ""),
        PageSession::None => login_page(StatusCode::OK, notice, None, ""),
    }
}

/// The registration page
#[utoipa::path(get, path = "/register", operation_id = "register_page", tag = "pages",
    responses((status = 200, description = "The form", body = String, content_type = "text/html"),
        (status = 303, description = "Already signed in: to `/`", headers(("Location" = String)))))]
async fn register_page(State(state): State<AppState>, Cookies(cookies): Cookies, headers: HeaderMap) -> Response {
    if let PageSession::Active(_) = page_session(&state, cookies, &headers) {
        return actions::see_other("/");
    }
    register_page_with(StatusCode::OK, blank_register_page(&state))
}

/// The stylesheet
#[utoipa::path(get, path = "/static/gatepass.css", tag = "pages",
    params(("v" = Option<String>, Query, description = "Cache-busting digest; any value")),
    responses((status = 200, description = "CSS, cacheable for a year", body = String, content_type = "text/css")))]
async fn stylesheet() -> Response {
    let mut response = ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::cookies::REFRESH_PATH;
    use base64::Engine as _;

    #[test]
    fn sign_in_returns_only_to_authorization_requests_and_the_device_page() {
        for ok in ["/oauth/authorize?client_id=x", "/oauth/device", "/oauth/device?user_code=WDJB-MJHT"] {
            assert!(valid_return_to(ok), "{ok}");
        }
        for bad in ["/", "/oauth/devices", "/oauth/device/x", "//evil.example/oauth/device", "/oauth/device?a=\\b"] {
            assert!(!valid_return_to(bad), "{bad}");
        }
    }

    #[test]
    fn csp_allows_exactly_the_resume_script() {
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(RESUME_SCRIPT.as_bytes()));
        assert!(crate::http::CSP.contains(&format!("script-src 'sha256-{hash}'")));
        let html =
            ResumePage { css_href: css_href(), action: PAGE_REFRESH_PATH, csrf_token: "t".into() }.render().unwrap();
        assert!(html.contains(&format!("<script>{RESUME_SCRIPT}</script>")));
        assert_eq!(html.matches("<script").count(), 1);
    }

    #[test]
    fn page_refresh_route_receives_the_refresh_cookie() {
        assert!(PAGE_REFRESH_PATH.starts_with(&format!("{REFRESH_PATH}/")));
        // The route itself is declared by its OpenAPI annotation; it must be this path.
        assert!(crate::http::openapi::document().paths.paths.contains_key(PAGE_REFRESH_PATH));
    }

    #[test]
    fn notices_come_from_a_fixed_list() {
        assert!(Notice::from_query(Some("notice=expired")).is_some());
        assert!(Notice::from_query(Some("notice=%3Cscript%3E")).is_none());
        assert!(Notice::from_query(Some("notice=a&notice=b")).is_none());
        assert!(Notice::from_query(None).is_none());
    }
}
