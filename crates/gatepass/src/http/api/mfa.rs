//! Second factors: the caller's factors, TOTP enrolment and removal, recovery codes, and
//! the second step of a login (`/api/login/mfa`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Delivery, token_response};
use crate::domain::ValidationError;
use crate::error::Result;
use crate::http::extract::{Auth, Client, Cookies, HeldSession, JsonBody, PathParam, QueryParams};
use crate::http::guard::AdminActor;
use crate::http::openapi::{
    AccessErrors, AuthErrors, BodyErrors, Conflict, GrantErrors, NotFound, SignedIn, Unauthorized,
};
use crate::http::{AppState, no_store};
use crate::service::mfa::SecondFactor;
use crate::service::sessions::BrowserLogin;

/// The routes of this file.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(status))
        .routes(routes!(enrol, remove))
        .routes(routes!(confirm))
        .routes(routes!(regenerate))
        .routes(routes!(login_mfa))
        .routes(routes!(admin_reset))
}

/// What an administrator's reset did.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaReset {
    /// What happened.
    message: &'static str,
    /// Whether the account had a second factor.
    had_factor: bool,
}

/// Remove an account's second factors (admin)
///
/// Removes the authenticator app, the passkeys and the recovery codes, for an owner who lost them;
/// audited as `mfa_reset`.
#[utoipa::path(delete, path = "/api/admin/users/{id}/mfa", tag = "admin",
    security(("operator_token" = []), ("bearer" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, description = "Removed (or there was none)", body = MfaReset), AccessErrors, NotFound))]
async fn admin_reset(
    State(state): State<AppState>,
    AdminActor(by): AdminActor,
    PathParam(id): PathParam,
) -> Result<Response> {
    let core = state.service.core();
    let had_factor = core.reset_mfa(&by, &core.user(&id).await?).await?;
    Ok(Json(MfaReset { message: "Second factors removed", had_factor }).into_response())
}

/// The caller's second factors (never a secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaView {
    /// Whether an authenticator app (TOTP) is active.
    totp: bool,
    /// Whether a TOTP enrolment waits for its confirming code.
    totp_pending: bool,
    /// Unused recovery codes.
    recovery_codes_left: i64,
    /// Registered passkeys (listed at `/api/passkeys`).
    passkeys: i64,
}

/// My second factors
#[utoipa::path(get, path = "/api/mfa", tag = "mfa", security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, description = "The factors", body = MfaView), AuthErrors))]
async fn status(State(state): State<AppState>, auth: Auth) -> Result<Response> {
    let s = state.service.mfa_status(&auth.claims).await?;
    let view = MfaView {
        totp: s.totp == Some(true),
        totp_pending: s.totp == Some(false),
        recovery_codes_left: s.recovery_codes_left,
        passkeys: s.passkeys,
    };
    Ok(no_store(Json(view).into_response()))
}

/// A new TOTP secret, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnrolmentView {
    /// The secret in base32, for typing into an authenticator app.
    secret: String,
    /// The `otpauth://totp/…` URI.
    otpauth_uri: String,
    /// The URI as a QR code (an SVG document, for inline display).
    qr_svg: String,
}

impl From<crate::service::mfa::TotpEnrolment> for TotpEnrolmentView {
    fn from(e: crate::service::mfa::TotpEnrolment) -> Self {
        TotpEnrolmentView { secret: e.secret, otpauth_uri: e.otpauth_uri, qr_svg: e.qr_svg }
    }
}

/// Start setting up an authenticator app
///
/// Creates a new TOTP secret (replacing an unconfirmed one). It becomes a factor only
/// once a code from the app is sent to `/api/mfa/totp/confirm`.
#[utoipa::path(post, path = "/api/mfa/totp", tag = "mfa", security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, description = "The secret, shown once", body = TotpEnrolmentView), AccessErrors,
        Conflict))]
async fn enrol(State(state): State<AppState>, Client(client): Client, auth: Auth) -> Result<Response> {
    let e = state.service.totp_enrol(&auth.claims, &client).await?;
    Ok(no_store(Json(TotpEnrolmentView::from(e)).into_response()))
}

/// `POST /api/mfa/totp/confirm`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    /// The six-digit code the app shows now.
    #[schema(value_type = String, required = true, min_length = 6, max_length = 6)]
    code: Option<String>,
}

/// New recovery codes, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// What happened.
    message: &'static str,
    /// Ten single-use codes; each can stand in for the app once.
    recovery_codes: Vec<String>,
}

/// Finish setting up an authenticator app
///
/// Activates the pending TOTP secret with a code from the app and answers ten recovery
/// codes, shown this once.
#[utoipa::path(post, path = "/api/mfa/totp/confirm", tag = "mfa", security(("bearer" = []), ("session_cookie" = [])),
    request_body = ConfirmRequest,
    responses((status = 200, description = "Active; the recovery codes", body = RecoveryCodes), BodyErrors,
        AccessErrors, Conflict))]
async fn confirm(
    State(state): State<AppState>,
    Client(client): Client,
    auth: Auth,
    JsonBody(req): JsonBody<ConfirmRequest>,
) -> Result<Response> {
    let code =
        req.code.as_deref().filter(|c| !c.is_empty()).ok_or_else(|| ValidationError::new("code", "is required"))?;
    let recovery_codes = state.service.totp_confirm(&auth.claims, code, &client).await?;
    let body = RecoveryCodes { message: "Authenticator app enabled; keep these recovery codes safe", recovery_codes };
    Ok(no_store(Json(body).into_response()))
}

/// Remove the authenticator app
///
/// Removes the TOTP factor and the recovery codes. Needs a fresh login that included the
/// second factor (`401 fresh_login_required` otherwise).
#[utoipa::path(delete, path = "/api/mfa/totp", tag = "mfa", security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 204, description = "Removed"), AccessErrors, NotFound))]
async fn remove(State(state): State<AppState>, Client(client): Client, auth: Auth) -> Result<Response> {
    state.service.totp_remove(&auth.claims, &client).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// New recovery codes
///
/// Replaces the recovery codes (the old ones stop working). Needs a fresh login that
/// included the second factor.
#[utoipa::path(post, path = "/api/mfa/recovery-codes", tag = "mfa", security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, description = "The new codes, shown once", body = RecoveryCodes), AccessErrors,
        NotFound))]
async fn regenerate(State(state): State<AppState>, Client(client): Client, auth: Auth) -> Result<Response> {
    let recovery_codes = state.service.regenerate_recovery_codes(&auth.claims, &client).await?;
    let body = RecoveryCodes { message: "New recovery codes; the old ones no longer work", recovery_codes };
    Ok(no_store(Json(body).into_response()))
}

/// The answer of `/api/login` for an account with a second factor: no tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaRequired {
    /// Always `true`.
    pub mfa_required: bool,
    /// Send it to `/api/login/mfa` within five minutes, from the same client; it works once.
    pub challenge: String,
    /// What the challenge can be answered with.
    pub methods: Vec<&'static str>,
}

/// `POST /api/login/mfa`: the challenge and exactly one factor.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginMfaRequest {
    /// The challenge from `/api/login`.
    #[schema(value_type = String, required = true)]
    challenge: Option<String>,
    /// A six-digit code from the authenticator app.
    totp: Option<String>,
    /// One of the recovery codes.
    recovery_code: Option<String>,
    /// A passkey's assertion for the options of `/api/login/mfa/webauthn/options`.
    #[schema(value_type = Object)]
    webauthn: Option<Box<crate::service::passkeys::PublicKeyCredential>>,
}

/// `?cookie=` of the second step.
#[derive(Debug, Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MfaDeliveryQuery {
    /// `true`: set the tokens as cookies and leave them out of the body.
    cookie: Option<bool>,
}

impl MfaDeliveryQuery {
    /// Whether the tokens go into cookies.
    pub fn cookie(&self) -> bool {
        self.cookie.unwrap_or(false)
    }
}

/// Log in: the second factor
///
/// Finishes a login that answered `mfa_required`: the challenge with a TOTP code, a
/// recovery code or a passkey's assertion (`webauthn`, for the options of
/// `/api/login/mfa/webauthn/options`). The answer is the same as `/api/login`'s. A challenge works once,
/// whatever the outcome, so a wrong code means signing in again; every refusal is
/// `401 invalid_credentials`.
#[utoipa::path(post, path = "/api/login/mfa", tag = "mfa", params(MfaDeliveryQuery), request_body = LoginMfaRequest,
    responses(SignedIn, GrantErrors, Unauthorized))]
async fn login_mfa(
    State(state): State<AppState>,
    Client(client): Client,
    Cookies(cookies): Cookies,
    HeldSession(held): HeldSession,
    QueryParams(query): QueryParams<MfaDeliveryQuery>,
    JsonBody(req): JsonBody<LoginMfaRequest>,
) -> Result<Response> {
    let challenge = req
        .challenge
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ValidationError::new("challenge", "is required"))?;
    let factor = match (req.totp.as_deref(), req.recovery_code.as_deref(), req.webauthn.as_deref()) {
        (Some(code), None, None) => SecondFactor::Totp(code),
        (None, Some(code), None) => SecondFactor::RecoveryCode(code),
        (None, None, Some(credential)) => SecondFactor::Webauthn(credential),
        _ => return Err(ValidationError::new("totp", "send exactly one of totp, recovery_code and webauthn").into()),
    };
    let delivery = if query.cookie.unwrap_or(false) { Delivery::Cookies(cookies) } else { Delivery::Body };
    let browser = matches!(delivery, Delivery::Cookies(_)).then_some(BrowserLogin { held: held.as_ref() });
    let grant = state.service.login_mfa(challenge, factor, &client, browser).await?;
    Ok(token_response(&state, StatusCode::OK, "Login successful", &grant, delivery))
}

/// Shapes the first step's answer for an account with a second factor.
pub fn mfa_required_response(challenge: String, methods: Vec<&'static str>) -> Response {
    let body = MfaRequired { mfa_required: true, challenge, methods };
    no_store(Json(body).into_response())
}
