//! Accounts: register, login, profile, the protected example route, password change.

use axum::Json;
use axum::extract::{FromRequestParts, MatchedPath, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Delivery, UserView, token_response};
use crate::domain::ValidationError;
use crate::error::{Error, Result};
use crate::http::cookies::CookieSettings;
use crate::http::extract::{Auth, Client, Cookies, HeldSession, JsonBody, JsonOrForm, QueryParams};
use crate::http::openapi::{
    AuthErrors, Conflict, GrantErrors, PasswordChanged, Registered, SignedInOrMfa, Unauthorized, with_alias,
};
use crate::http::{AppState, csrf};
use crate::service::mfa::LoginStep;
use crate::service::sessions::BrowserLogin;

/// Routes for accounts; `/register` and `/login` are also served at the root for the seeds.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(with_alias(routes!(register), "/register", &[("register", "Register")]))
        .routes(with_alias(routes!(login), "/login", &[("login", "Log in")]))
        .routes(routes!(profile))
        .routes(routes!(protected))
        .routes(routes!(change_password))
}

/// Register body. Unknown fields (e.g. `roles`, `is_admin`) are refused, not ignored.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
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
    /// The password again, as many sign-up forms send it (optional; must match).
    #[schema(value_type = String)]
    confirm_password: Option<String>,
}

impl RegisterRequest {
    /// The submitted username, password and e-mail (fuzzing and tests).
    pub fn fields(&self) -> (Option<&str>, Option<&str>, Option<&str>) {
        (self.username.as_deref(), self.password.as_deref(), self.email.as_deref())
    }
}

/// Login body (JSON or form). Unknown fields are refused, as on every route.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The username (any case), or an e-mail address the account has verified.
    #[schema(value_type = String, required = true, min_length = 1)]
    username: Option<String>,
    /// The password.
    #[schema(value_type = String, required = true, min_length = 1)]
    password: Option<String>,
}

impl LoginRequest {
    /// The submitted username and password (fuzzing and tests).
    pub fn fields(&self) -> (Option<&str>, Option<&str>) {
        (self.username.as_deref(), self.password.as_deref())
    }
}

/// `?cookie=true` asks for cookies instead of tokens in the body.
#[derive(Debug, Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// `true`: set the tokens as cookies and leave them out of the body; `false`: the
    /// body. Default: the body, except for a form post to the seed paths `/login` and
    /// `/register`, which keep seed 001's cookie answer.
    cookie: Option<bool>,
}

/// How a grant request wants its tokens: its `?cookie=` and whether it came in on a seed
/// path (`/login`, `/register`).
struct Asked {
    query: DeliveryQuery,
    seed_path: bool,
}

impl Asked {
    /// Whether this request asked (or, on a seed path, defaults) for cookies.
    fn cookies(&self, from_form: bool) -> bool {
        self.query.cookie.unwrap_or(from_form && self.seed_path)
    }
}

impl FromRequestParts<AppState> for Asked {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let QueryParams(query) = QueryParams::<DeliveryQuery>::from_request_parts(parts, state).await?;
        let seed_path = parts.extensions.get::<MatchedPath>().is_some_and(|p| !p.as_str().starts_with("/api/"));
        Ok(Self { query, seed_path })
    }
}

/// A `confirm_password` that was sent must equal the password it confirms.
fn confirmed(password: &str, confirmation: &Option<String>) -> Result<()> {
    match confirmation {
        Some(c) if !bool::from(subtle::ConstantTimeEq::ct_eq(c.as_bytes(), password.as_bytes())) => {
            Err(ValidationError::new("confirm_password", "does not match the password").into())
        }
        _ => Ok(()),
    }
}

fn required<'a>(value: &'a Option<String>, field: &'static str) -> Result<&'a str> {
    match value.as_deref() {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ValidationError::new(field, "is required").into()),
    }
}

/// Login CSRF (GP-26): a form post that a browser sent from another site is refused.
/// Seed 001's scripted clients send neither `Origin` nor `Sec-Fetch-Site` and still pass.
fn refuse_cross_site_form(headers: &HeaderMap, cookies: CookieSettings, from_form: bool) -> Result<()> {
    if from_form && !csrf::same_origin(headers, cookies) {
        return Err(Error::CsrfFailed);
    }
    Ok(())
}

/// Register
///
/// Creates an account and signs it in: the tokens in the body, or (`?cookie=true`) as
/// cookies. JSON and form bodies answer alike.
#[utoipa::path(post, path = "/api/register", operation_id = "register", tag = "accounts", params(DeliveryQuery),
    request_body(content((RegisterRequest = "application/json"),
            (RegisterRequest = "application/x-www-form-urlencoded"))),
    responses(Registered, GrantErrors, Conflict))]
async fn register(
    State(state): State<AppState>,
    Client(client): Client,
    asked: Asked,
    Cookies(cookies): Cookies,
    headers: HeaderMap,
    body: JsonOrForm<RegisterRequest>,
) -> Result<Response> {
    refuse_cross_site_form(&headers, cookies, body.from_form)?;
    let req = body.value;
    let username = required(&req.username, "username")?;
    let password = required(&req.password, "password")?;
    confirmed(password, &req.confirm_password)?;
    let grant = state.service.register(username, password, req.email.as_deref(), &client).await?;
    let delivery = if asked.cookies(body.from_form) { Delivery::Cookies(cookies) } else { Delivery::Body };
    Ok(token_response(&state, StatusCode::CREATED, "User created successfully", &grant, delivery))
}

/// Log in
///
/// Checks the password and starts a session: the tokens in the body, or
/// (`?cookie=true`) as cookies. JSON and form bodies answer alike. Cookie delivery also
/// sets the long-lived device cookie, by which the failed-login back-off recognises this
/// browser for the account: attempts from it are judged by their own record, so strangers'
/// failed guesses cannot keep its owner out.
///
/// An account with a second factor gets no tokens here: the answer is `200
/// {"mfa_required": true, "challenge", "methods"}`, and `/api/login/mfa` finishes the login.
/// A member of a role that requires a second factor (`mfa_required_roles`) who has none
/// gets `200 {"mfa_enrollment_required": true, "challenge", "methods": ["totp"]}` and sets one
/// up through `/api/login/mfa/enrol` and `/api/login/mfa/enrol/confirm`.
#[utoipa::path(post, path = "/api/login", operation_id = "login", tag = "accounts", params(DeliveryQuery),
    request_body(content((LoginRequest = "application/json"), (LoginRequest = "application/x-www-form-urlencoded"))),
    responses(SignedInOrMfa, GrantErrors, Unauthorized))]
async fn login(
    State(state): State<AppState>,
    Client(client): Client,
    asked: Asked,
    Cookies(cookies): Cookies,
    HeldSession(held): HeldSession,
    headers: HeaderMap,
    body: JsonOrForm<LoginRequest>,
) -> Result<Response> {
    refuse_cross_site_form(&headers, cookies, body.from_form)?;
    let req = body.value;
    let username = required(&req.username, "username")?;
    let password = required(&req.password, "password")?;
    let delivery = if asked.cookies(body.from_form) { Delivery::Cookies(cookies) } else { Delivery::Body };
    // Only a login that replaces the browser's cookies ends the session those cookies hold.
    let browser = matches!(delivery, Delivery::Cookies(_)).then_some(BrowserLogin { held: held.as_ref() });
    match state.service.login_step(username, password, &client, browser).await? {
        LoginStep::Granted(grant) => Ok(token_response(&state, StatusCode::OK, "Login successful", &grant, delivery)),
        // No token of any kind, whichever delivery was asked for: the second step issues them.
        LoginStep::MfaRequired(challenge, methods) => Ok(super::mfa::mfa_required_response(challenge, methods)),
        LoginStep::EnrolmentRequired(challenge) => Ok(super::mfa_enrolment::enrollment_required_response(challenge)),
    }
}

/// Body of the profile.
#[derive(Debug, Serialize, ToSchema)]
pub struct Profile {
    /// The caller's account.
    user: UserView,
}

/// The caller's account
#[utoipa::path(get, path = "/api/profile", tag = "accounts", security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, description = "The account", body = Profile), AuthErrors))]
async fn profile(State(state): State<AppState>, auth: Auth) -> Result<Response> {
    let user = state.service.current_user(&auth.claims).await?;
    Ok(Json(Profile { user: UserView::from(&user) }).into_response())
}

/// Body of the protected example route.
#[derive(Debug, Serialize, ToSchema)]
pub struct Greeting {
    /// A greeting naming the caller.
    message: String,
    /// The caller's user id.
    user_id: String,
}

/// An example protected route
#[utoipa::path(get, path = "/api/protected", tag = "accounts", security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, description = "A greeting", body = Greeting), Unauthorized))]
async fn protected(auth: Auth) -> Response {
    Json(Greeting {
        message: format!("Hello {}! This is a protected route.", auth.claims.username),
        user_id: auth.claims.sub,
    })
    .into_response()
}

/// Password change body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordRequest {
    /// The password now.
    #[schema(value_type = String, required = true, min_length = 1)]
    current_password: Option<String>,
    /// The new password (same rules as at registration).
    #[schema(value_type = String, required = true, min_length = 1, max_length = 1024)]
    new_password: Option<String>,
    /// The new password again (optional; must match).
    #[schema(value_type = String)]
    confirm_password: Option<String>,
}

impl PasswordRequest {
    /// The submitted current and new password (fuzzing and tests).
    pub fn fields(&self) -> (Option<&str>, Option<&str>) {
        (self.current_password.as_deref(), self.new_password.as_deref())
    }
}

/// Change the password
///
/// Needs the current password; ends every other session and returns a new grant
/// (cookies when the caller used the session cookie).
#[utoipa::path(post, path = "/api/password", tag = "accounts", security(("bearer" = []), ("session_cookie" = [])),
    request_body = PasswordRequest,
    responses(PasswordChanged, GrantErrors, Unauthorized))]
async fn change_password(
    State(state): State<AppState>,
    Client(client): Client,
    auth: Auth,
    JsonBody(req): JsonBody<PasswordRequest>,
) -> Result<Response> {
    let current = required(&req.current_password, "current_password")?;
    let new = required(&req.new_password, "new_password")?;
    confirmed(new, &req.confirm_password)?;
    let grant = state.service.change_password(&auth.claims, current, new, &client).await?;
    let delivery = match auth.source {
        gatepass_verify::TokenSource::Cookie => Delivery::Cookies(auth.cookies),
        gatepass_verify::TokenSource::Header => Delivery::Body,
    };
    Ok(token_response(&state, StatusCode::OK, "Password changed; other sessions ended", &grant, delivery))
}
