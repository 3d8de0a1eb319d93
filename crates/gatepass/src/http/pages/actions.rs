//! The HTML form routes (`/ui/*` and the page-refresh route). Each one checks that the
//! post comes from our own origin ([`SameOriginForm`]), and for signed-in forms the
//! session and its hidden `csrf_token` field ([`SignedInForm`]), then acts through [`AuthService`](crate::service::AuthService), and
//! answers with a 303 redirect, or re-renders the form with the errors next to its
//! fields. A browser whose post fails the CSRF checks the way a stale tab does (a token
//! from an earlier sign-in; for the login and registration forms, a failed origin check)
//! gets the same form back with "This page had expired", what it typed except passwords,
//! and a fresh token (403). Other callers, and cross-site posts to signed-in forms, get the
//! usual JSON `csrf_failed`; malformed requests the usual JSON errors.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::views::{HomeErrors, Notice};
use super::{PageSession, blank_register_page, clip, home_page, login_page_returning, page_session, valid_return_to};
use crate::error::{Error, Result};
use crate::http::api::set_grant_cookies;
use crate::http::cookies::CookieSettings;
use crate::http::extract::{Client, Cookies, HeldSession, PathParam, RawBody, cookie_settings};
use crate::http::openapi::{FormConflict, FormErrors, FormPasswordErrors, FormRedirect, FormTooManyRequests};
use crate::http::{AppState, csrf, no_store};
use crate::service::mfa::LoginStep;
use crate::service::sessions::BrowserLogin;
use crate::service::{LogoutScope, TokenGrant};
use crate::storage::SessionFilter;
use gatepass_verify::AccessClaims;

/// Form routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(register))
        .routes(routes!(logout))
        .routes(routes!(change_password))
        .routes(routes!(reauth))
        .routes(routes!(end_others))
        .routes(routes!(end_session))
        .routes(routes!(page_refresh))
}

/// A `303 See Other` to `location` (a fixed local path), never cached.
pub fn see_other(location: &'static str) -> Response {
    see_other_with(location, HeaderMap::new())
}

/// A `303 See Other` to `location` (a local path or, for OAuth responses, a client's
/// registered redirect URI), never cached.
pub fn see_other_to(location: &str) -> Response {
    see_other_with(location, HeaderMap::new())
}

fn see_other_with(location: &str, mut headers: HeaderMap) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => {
            headers.insert(header::LOCATION, v);
            no_store((StatusCode::SEE_OTHER, headers).into_response())
        }
        Err(_) => Error::BadRequest("invalid redirect location".into()).into_response(),
    }
}

/// A 303 to `location` that sets the cookies of `grant` (a new sign-in).
pub(crate) fn redirect_with_grant(
    state: &AppState,
    cookies: CookieSettings,
    location: &str,
    grant: &TokenGrant,
) -> Response {
    let mut headers = HeaderMap::new();
    set_grant_cookies(state, cookies, &mut headers, grant);
    see_other_with(location, headers)
}

fn redirect_clearing_cookies(cookies: CookieSettings, location: &'static str) -> Response {
    redirect_clearing_cookies_to(cookies, location)
}

/// A 303 to `location` (a local path or a client's registered URI) that drops the
/// browser's session cookies.
pub fn redirect_clearing_cookies_to(cookies: CookieSettings, location: &str) -> Response {
    let mut headers = HeaderMap::new();
    cookies.clear_session(&mut headers);
    see_other_with(location, headers)
}

/// The body of a form post, read once the checks that need only the headers have passed.
struct FormBody {
    /// Whether it is declared `application/x-www-form-urlencoded`.
    is_form: bool,
    bytes: Bytes,
}

impl FormBody {
    async fn read<S: Send + Sync>(req: Request, state: &S) -> Result<Self> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        Ok(FormBody { is_form, bytes })
    }

    /// The `csrf_token` field, read leniently: a body that is no form has none.
    fn csrf_token(&self) -> String {
        self.field("csrf_token")
    }

    /// One field, read leniently (empty when absent or when the body is no form).
    fn field(&self, field: &str) -> String {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&self.bytes).unwrap_or_default();
        pairs.into_iter().find(|(name, _)| name == field).map(|(_, value)| value).unwrap_or_default()
    }

    /// The whole form: 415 for another content type, 400 for a malformed one.
    fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        if !self.is_form {
            return Err(Error::UnsupportedMediaType("application/x-www-form-urlencoded"));
        }
        serde_urlencoded::from_bytes(&self.bytes).map_err(|e| Error::BadRequest(format!("invalid form body: {e}")))
    }
}

/// Whether the request comes from a page that shows HTML (a browser's form post sends
/// `Accept: text/html…`); other callers keep getting JSON errors.
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/html"))
}

fn require_same_origin(req: &Request, state: &AppState) -> Result<()> {
    let cookies = cookie_settings(req.extensions(), req.headers(), state);
    if csrf::same_origin_required(req.headers(), cookies) { Ok(()) } else { Err(Error::CsrfFailed) }
}

/// A form post that needs no session (login, registration, page renewal): same origin
/// first, so a cross-site post learns nothing, then the form.
pub struct SameOriginForm<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for SameOriginForm<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &AppState) -> Result<Self> {
        require_same_origin(&req, state)?;
        FormBody::read(req, state).await?.parse().map(SameOriginForm)
    }
}

/// The login or registration form. Same origin first, as for [`SameOriginForm`]; when
/// that fails for a browser (`Accept: text/html`), the form is still parsed so the page
/// can be shown again with what was typed, and `stale` is set: the handler must then act
/// on nothing.
pub struct PageForm<T> {
    /// The parsed form.
    pub form: T,
    /// The origin check failed: show the form again, do not act.
    pub stale: bool,
}

impl<T: DeserializeOwned> FromRequest<AppState> for PageForm<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &AppState) -> Result<Self> {
        let stale = match require_same_origin(&req, state) {
            Ok(()) => false,
            Err(_) if wants_html(req.headers()) => true,
            Err(e) => return Err(e),
        };
        let form = FormBody::read(req, state).await?.parse()?;
        Ok(PageForm { form, stale })
    }
}

/// A form post from a signed-in browser, checked in this order: same origin, an active
/// session, the session's token in the `csrf_token` field (constant time), then the form.
pub struct SignedInForm<T> {
    /// The session's claims.
    pub claims: AccessClaims,
    /// The parsed form.
    pub form: T,
}

/// Why a [`SignedInForm`] was refused.
pub enum FormRejection {
    /// A failed check or a malformed form: the JSON error.
    Error(Error),
    /// No active session; what the cookies showed instead.
    SignedOut(PageSession),
    /// A same-origin browser post whose token no longer matches the session (a tab
    /// opened before the last sign-in): the signed-in page, shown again with a fresh token.
    Stale(Response),
}

impl From<Error> for FormRejection {
    fn from(e: Error) -> Self {
        FormRejection::Error(e)
    }
}

impl IntoResponse for FormRejection {
    fn into_response(self) -> Response {
        match self {
            FormRejection::Error(e) => e.into_response(),
            // `/` renews an expired sign-in or shows the login page with the right message.
            FormRejection::SignedOut(_) => see_other("/"),
            FormRejection::Stale(page) => page,
        }
    }
}

impl<T: DeserializeOwned> FromRequest<AppState> for SignedInForm<T> {
    type Rejection = FormRejection;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, FormRejection> {
        require_same_origin(&req, state)?;
        let cookies = cookie_settings(req.extensions(), req.headers(), state);
        let claims = match page_session(state, cookies, req.headers()) {
            PageSession::Active(claims) => claims,
            other => return Err(FormRejection::SignedOut(other)),
        };
        let html = wants_html(req.headers());
        let body = FormBody::read(req, state).await?;
        if !state.csrf.verify(&claims.sid, &body.csrf_token()) {
            if !html {
                return Err(Error::CsrfFailed.into());
            }
            // The origin check passed, so this is our own page with an old token. Nothing
            // is done; the page carries the session's current token for the retry, and
            // keeps a typed address (never a password).
            let errors = HomeErrors { new_email: body.field("email"), ..HomeErrors::default() };
            let notice = Notice::from_code("page_expired");
            return Err(FormRejection::Stale(home_page(state, &claims, StatusCode::FORBIDDEN, notice, errors).await));
        }
        Ok(SignedInForm { form: body.parse()?, claims })
    }
}

#[derive(Deserialize, ToSchema)]
struct LoginForm {
    username: Option<String>,
    password: Option<String>,
    /// After signing in, go on to this OAuth authorization request (`/oauth/authorize?…`).
    return_to: Option<String>,
}

/// Login form post
///
/// Same-origin only; signs in and redirects to `/`, or shows the form again.
#[utoipa::path(post, path = "/ui/login", operation_id = "ui_login", tag = "pages",
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(FormRedirect, FormPasswordErrors))]
async fn login(
    State(state): State<AppState>,
    Cookies(cookies): Cookies,
    Client(client): Client,
    HeldSession(held): HeldSession,
    // Login CSRF: there is no session yet to bind a token to, so the origin check is it.
    PageForm { form: f, stale }: PageForm<LoginForm>,
) -> Result<Response> {
    let username = f.username.unwrap_or_default();
    let return_to = f.return_to.as_deref().filter(|r| valid_return_to(r));
    let page = |status, notice, error| login_page_returning(status, notice, error, &username, return_to);
    if stale {
        return Ok(page(StatusCode::FORBIDDEN, Notice::from_code("page_expired"), None));
    }
    let password = f.password.unwrap_or_default();
    if username.is_empty() || password.is_empty() {
        let msg = "Enter your username and password.".to_owned();
        return Ok(page(StatusCode::BAD_REQUEST, None, Some(msg)));
    }
    match state.service.login_step(&username, &password, &client, Some(BrowserLogin { held: held.as_ref() })).await {
        Ok(LoginStep::Granted(grant)) => Ok(redirect_with_grant(&state, cookies, return_to.unwrap_or("/"), &grant)),
        // No cookie yet: the second step (or the enrolment the role policy requires) first.
        Ok(LoginStep::MfaRequired(challenge, methods)) => {
            Ok(super::mfa::second_step_page(StatusCode::OK, challenge, &username, &methods, return_to))
        }
        Ok(LoginStep::EnrolmentRequired(challenge)) => Ok(super::mfa::enrolment_required_page(challenge, &username)),
        Err(Error::InvalidCredentials | Error::Validation(_)) => {
            Ok(page(StatusCode::UNAUTHORIZED, None, Some("Invalid username or password.".into())))
        }
        Err(e) if e.status().is_client_error() => Ok(page(e.status(), None, Some(e.message()))),
        Err(e) => Err(e),
    }
}

#[derive(Deserialize, ToSchema)]
struct RegisterForm {
    username: Option<String>,
    password: Option<String>,
    /// The password again; checked when sent (the page always sends it).
    confirm_password: Option<String>,
    email: Option<String>,
}

/// Registration form post
///
/// Same-origin only; creates the account and redirects to `/`, or shows the form again
/// with every field's problem at once. Refused with the "registration is closed" page
/// while registration is closed.
#[utoipa::path(post, path = "/ui/register", operation_id = "ui_register", tag = "pages",
    request_body(content = RegisterForm, content_type = "application/x-www-form-urlencoded"),
    responses(FormRedirect, FormErrors, FormConflict, FormTooManyRequests))]
async fn register(
    State(state): State<AppState>,
    Cookies(cookies): Cookies,
    Client(client): Client,
    PageForm { form: f, stale }: PageForm<RegisterForm>,
) -> Result<Response> {
    let username = f.username.unwrap_or_default();
    let password = f.password.unwrap_or_default();
    let email = f.email.unwrap_or_default();
    let mut page = blank_register_page(&state);
    if page.closed {
        return Ok(super::register_page_with(StatusCode::FORBIDDEN, page));
    }
    page.username = clip(&username);
    page.email = clip(&email);
    if stale {
        page.notice = Notice::from_code("page_expired");
        return Ok(super::register_page_with(StatusCode::FORBIDDEN, page));
    }
    if username.is_empty() {
        page.username_error = Some("Choose a username.".into());
    }
    if password.is_empty() {
        page.password_error = Some("Choose a password.".into());
    }
    match &f.confirm_password {
        Some(c) if c.is_empty() && !password.is_empty() => {
            page.confirm_error = Some("Enter the password again.".into());
        }
        Some(c) if !password.is_empty() && !bool::from(c.as_bytes().ct_eq(password.as_bytes())) => {
            page.confirm_error = Some("The two passwords do not match.".into());
        }
        _ => {}
    }
    let email = Some(email.as_str()).filter(|e| !e.is_empty());
    // Every field's problem at once, not one per attempt.
    for v in state.service.registration_problems(&username, &password, email) {
        let slot = match v.field {
            "username" => &mut page.username_error,
            "email" => &mut page.email_error,
            "password" => &mut page.password_error,
            _ => &mut page.error,
        };
        if slot.is_none() {
            *slot = Some(format!("{} {}.", field_label(v.field), v.message));
        }
    }
    if page.has_field_errors() || page.error.is_some() {
        return Ok(super::register_page_with(StatusCode::BAD_REQUEST, page));
    }
    match state.service.register(&username, &password, email, &client).await {
        Ok(grant) => Ok(redirect_with_grant(&state, cookies, "/", &grant)),
        Err(Error::Validation(v)) => {
            let text = format!("{} {}.", field_label(v.field), v.message);
            match v.field {
                "username" => page.username_error = Some(text),
                "email" => page.email_error = Some(text),
                "password" => page.password_error = Some(text),
                _ => page.error = Some(text),
            }
            Ok(super::register_page_with(StatusCode::BAD_REQUEST, page))
        }
        Err(Error::UsernameTaken) => {
            page.username_error = Some("This username is already taken.".into());
            Ok(super::register_page_with(StatusCode::CONFLICT, page))
        }
        // Closed between the check above and now.
        Err(Error::RegistrationClosed) => {
            page.closed = true;
            Ok(super::register_page_with(StatusCode::FORBIDDEN, page))
        }
        Err(e) if e.status().is_client_error() => {
            let status = e.status();
            page.error = Some(e.message());
            Ok(super::register_page_with(status, page))
        }
        Err(e) => Err(e),
    }
}

fn field_label(field: &str) -> &'static str {
    match field {
        "username" => "Username",
        "email" => "E-mail",
        "password" => "Password",
        "current_password" => "Current password",
        "new_password" => "New password",
        _ => "Value",
    }
}

#[derive(Deserialize, ToSchema)]
struct CsrfForm {
    #[serde(default)]
    csrf_token: String,
}

/// Log out (form post)
#[utoipa::path(post, path = "/ui/logout", operation_id = "ui_logout", tag = "pages",
    request_body(content = CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses(FormRedirect, FormErrors))]
async fn logout(
    State(state): State<AppState>,
    Cookies(cookies): Cookies,
    Client(client): Client,
    headers: HeaderMap,
    signed: Result<SignedInForm<CsrfForm>, FormRejection>,
) -> Result<Response> {
    match signed {
        Ok(SignedInForm { claims, .. }) => {
            state.service.logout(&claims, LogoutScope::Local, &client).await?;
            Ok(redirect_clearing_cookies(cookies, "/?notice=logged_out"))
        }
        Err(FormRejection::Error(e)) => Err(e),
        Err(FormRejection::Stale(page)) => Ok(page),
        // Without a verifiable access token we cannot tell which session to end; `/`
        // renews the sign-in first, then the person presses Log out again.
        Err(FormRejection::SignedOut(PageSession::Expired)) => Ok(see_other("/?notice=logout_retry")),
        // A session cookie that names no live session: drop the cookies.
        Err(FormRejection::SignedOut(PageSession::Invalid)) => {
            Ok(redirect_clearing_cookies(cookies, "/?notice=logged_out"))
        }
        Err(FormRejection::SignedOut(_)) if CookieSettings::get(&headers, cookies.csrf_name()).is_some() => {
            Ok(see_other("/?notice=logout_retry"))
        }
        Err(FormRejection::SignedOut(_)) => Ok(see_other("/")),
    }
}

#[derive(Deserialize, ToSchema)]
struct PasswordForm {
    // Checked by `SignedInForm` before the form is parsed; listed for the description.
    #[serde(default)]
    #[allow(dead_code)]
    csrf_token: String,
    current_password: Option<String>,
    new_password: Option<String>,
}

/// Change the password (form post)
#[utoipa::path(post, path = "/ui/password", operation_id = "ui_password", tag = "pages",
    request_body(content = PasswordForm, content_type = "application/x-www-form-urlencoded"),
    responses(FormRedirect, FormPasswordErrors))]
async fn change_password(
    State(state): State<AppState>,
    Cookies(cookies): Cookies,
    Client(client): Client,
    SignedInForm { claims, form: f }: SignedInForm<PasswordForm>,
) -> Result<Response> {
    let current = f.current_password.unwrap_or_default();
    let new = f.new_password.unwrap_or_default();
    let mut errors = HomeErrors::default();
    if current.is_empty() {
        errors.current_password = Some("Enter your current password.".into());
    }
    if new.is_empty() {
        errors.new_password = Some("Choose a new password.".into());
    }
    if errors.current_password.is_some() || errors.new_password.is_some() {
        return Ok(home_page(&state, &claims, StatusCode::BAD_REQUEST, None, errors).await);
    }
    let status = match state.service.change_password(&claims, &current, &new, &client).await {
        Ok(grant) => return Ok(redirect_with_grant(&state, cookies, "/?notice=password_changed", &grant)),
        Err(Error::InvalidCredentials) => {
            errors.current_password = Some("Current password is incorrect.".into());
            StatusCode::UNAUTHORIZED
        }
        Err(Error::Validation(v)) => {
            let text = format!("{} {}.", field_label(v.field), v.message);
            if v.field == "current_password" {
                errors.current_password = Some(text);
            } else if v.field == "new_password" {
                errors.new_password = Some(text);
            } else {
                errors.password_form = Some(text);
            }
            StatusCode::BAD_REQUEST
        }
        Err(e) if e.status().is_client_error() => {
            errors.password_form = Some(e.message());
            e.status()
        }
        Err(e) => return Err(e),
    };
    Ok(home_page(&state, &claims, status, None, errors).await)
}

#[derive(Deserialize, ToSchema)]
struct ReauthForm {
    // Checked by `SignedInForm` before the form is parsed; listed for the description.
    #[serde(default)]
    #[allow(dead_code)]
    csrf_token: String,
    password: Option<String>,
    /// For an account with a second factor: a code from the app, or a recovery code.
    code: Option<String>,
    /// Which form sent it (`mfa` for the second-factor section), to show errors there.
    section: Option<String>,
}

/// Confirm the password (form post)
///
/// Step-up: re-enter the password to make the login fresh again.
#[utoipa::path(post, path = "/ui/reauth", operation_id = "ui_reauth", tag = "pages",
    request_body(content = ReauthForm, content_type = "application/x-www-form-urlencoded"),
    responses(FormRedirect, FormPasswordErrors))]
async fn reauth(
    State(state): State<AppState>,
    Client(client): Client,
    Cookies(cookies): Cookies,
    SignedInForm { claims, form: f }: SignedInForm<ReauthForm>,
) -> Result<Response> {
    let password = f.password.unwrap_or_default();
    let in_mfa_section = f.section.as_deref() == Some("mfa");
    let refused = |msg: &str| match in_mfa_section {
        true => HomeErrors { mfa_reauth: Some(msg.to_owned()), ..HomeErrors::default() },
        false => HomeErrors { reauth: Some(msg.to_owned()), ..HomeErrors::default() },
    };
    if password.is_empty() {
        let errors = refused("Enter your password.");
        return Ok(home_page(&state, &claims, StatusCode::BAD_REQUEST, None, errors).await);
    }
    let code = f.code.as_deref().map(str::trim).filter(|c| !c.is_empty());
    let factor = code.map(super::mfa::factor_of);
    match state.service.reauthenticate(&claims, &password, factor, &client).await {
        Ok(grant) if grant.access.claims.is_mfa() => {
            Ok(redirect_with_grant(&state, cookies, "/?notice=mfa_confirmed", &grant))
        }
        Ok(grant) => Ok(redirect_with_grant(&state, cookies, "/?notice=reauthed", &grant)),
        Err(Error::MfaRequired) => {
            let errors = refused("Enter a code from your authenticator app (or a recovery code) too.");
            Ok(home_page(&state, &claims, StatusCode::BAD_REQUEST, None, errors).await)
        }
        Err(Error::InvalidCredentials | Error::Validation(_)) if factor.is_some() => {
            let errors = refused("Password or code is incorrect.");
            Ok(home_page(&state, &claims, StatusCode::UNAUTHORIZED, None, errors).await)
        }
        Err(Error::InvalidCredentials | Error::Validation(_)) => {
            let errors = refused("Password is incorrect.");
            Ok(home_page(&state, &claims, StatusCode::UNAUTHORIZED, None, errors).await)
        }
        Err(e) if e.status().is_client_error() => {
            let status = e.status();
            Ok(home_page(&state, &claims, status, None, refused(&e.message())).await)
        }
        Err(e) => Err(e),
    }
}

/// End one session (form post)
#[utoipa::path(post, path = "/ui/sessions/{id}/end", operation_id = "ui_sessions_id_end", tag = "pages",
    params(("id" = String, Path, description = "Session id")),
    request_body(content = CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses(FormRedirect, FormErrors))]
async fn end_session(
    State(state): State<AppState>,
    Cookies(cookies): Cookies,
    PathParam(id): PathParam,
    SignedInForm { claims, .. }: SignedInForm<CsrfForm>,
) -> Result<Response> {
    match state.service.end_session(&claims, &id).await {
        Ok(()) if id == claims.sid => Ok(redirect_clearing_cookies(cookies, "/?notice=logged_out")),
        Ok(()) => Ok(see_other("/?notice=session_ended")),
        Err(Error::FreshLoginRequired) => Ok(see_other("/?notice=fresh")),
        Err(Error::NotFound) => Ok(see_other("/?notice=session_gone")),
        Err(e) => Err(e),
    }
}

/// End every other session (form post)
#[utoipa::path(post, path = "/ui/sessions/end-others", operation_id = "ui_sessions_end_others", tag = "pages",
    request_body(content = CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses(FormRedirect, FormErrors))]
async fn end_others(
    State(state): State<AppState>,
    Client(client): Client,
    SignedInForm { claims, .. }: SignedInForm<CsrfForm>,
) -> Result<Response> {
    match state.service.logout(&claims, LogoutScope::Others, &client).await {
        Ok(_) => Ok(see_other("/?notice=sessions_ended")),
        Err(Error::FreshLoginRequired) => Ok(see_other("/?notice=fresh")),
        Err(e) => Err(e),
    }
}

/// Renew a browser sign-in (form post)
///
/// Renews an expired browser sign-in with the refresh cookie, exactly as
/// `POST /api/refresh` does (same rotation and reuse detection), then goes back to `/`.
#[utoipa::path(post, path = "/api/refresh/page", operation_id = "page_refresh", tag = "pages",
    request_body(content = CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses(FormRedirect, FormErrors))]
async fn page_refresh(
    State(state): State<AppState>,
    Cookies(cookies): Cookies,
    Client(client): Client,
    headers: HeaderMap,
    SameOriginForm(f): SameOriginForm<CsrfForm>,
) -> Result<Response> {
    // Double submit: the field must equal the CSRF cookie, which another site can neither
    // read nor (with `__Host-` names) set.
    let cookie = CookieSettings::get(&headers, cookies.csrf_name()).unwrap_or_default();
    if f.csrf_token.is_empty() || !bool::from(cookie.as_bytes().ct_eq(f.csrf_token.as_bytes())) {
        return Err(Error::CsrfFailed);
    }
    let Some(refresh) = CookieSettings::get(&headers, cookies.refresh_name()) else {
        return Ok(redirect_clearing_cookies(cookies, "/?notice=expired"));
    };
    match state.service.refresh(&refresh, &client).await {
        Ok(grant) => {
            // The token must also be the one bound to the session being renewed. If not,
            // the cookies were planted or mixed up: end that session (its successor token
            // was never delivered) and start over at the login page.
            if !state.csrf.verify(&grant.access.claims.sid, &f.csrf_token) {
                let sid = &grant.access.claims.sid;
                state.service.core().revoke(grant.user.id.as_str(), SessionFilter::One(sid)).await?;
                return Ok(redirect_clearing_cookies(cookies, "/?notice=invalid"));
            }
            Ok(redirect_with_grant(&state, cookies, "/", &grant))
        }
        Err(Error::RefreshTokenInvalid | Error::RefreshTokenReused) => {
            Ok(redirect_clearing_cookies(cookies, "/?notice=expired"))
        }
        // The role policy: this session was started without a second factor.
        Err(Error::MfaEnrollmentRequired) => Ok(redirect_clearing_cookies(cookies, "/?notice=mfa_policy")),
        Err(e) => Err(e),
    }
}
