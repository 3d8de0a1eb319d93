//! Enrolment during sign-in, for the operator's policy (`mfa_required_roles`): the
//! password step answered `mfa_enrollment_required` with a challenge; these routes start an
//! authenticator app with it and confirm it, which signs in.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::mfa::{MfaDeliveryQuery, TotpEnrolmentView};
use super::{Delivery, GrantBody, grant_parts};
use crate::domain::ValidationError;
use crate::error::Result;
use crate::http::extract::{Client, Cookies, HeldSession, JsonBody, QueryParams};
use crate::http::openapi::{GrantErrors, Unauthorized};
use crate::http::{AppState, no_store};
use crate::service::sessions::BrowserLogin;

/// The routes of this file.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(enrol_start)).routes(routes!(enrol_confirm))
}

/// The answer of `/api/login` for a member of a role that requires a second factor who has
/// none: no tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaEnrollmentRequired {
    /// Always `true`.
    pub mfa_enrollment_required: bool,
    /// Send it to `/api/login/mfa/enrol` and then `/api/login/mfa/enrol/confirm`, within five
    /// minutes, from the same client.
    pub challenge: String,
    /// What can be set up: `["totp"]`.
    pub methods: Vec<&'static str>,
}

/// Shapes the password step's answer when the policy requires enrolment first.
pub fn enrollment_required_response(challenge: String) -> Response {
    let body = MfaEnrollmentRequired { mfa_enrollment_required: true, challenge, methods: vec!["totp"] };
    no_store(Json(body).into_response())
}

fn required<'a>(value: &'a Option<String>, field: &'static str) -> Result<&'a str> {
    Ok(value.as_deref().filter(|v| !v.is_empty()).ok_or_else(|| ValidationError::new(field, "is required"))?)
}

/// `POST /api/login/mfa/enrol`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolStartRequest {
    /// The challenge from `/api/login`'s `mfa_enrollment_required` answer.
    #[schema(value_type = String, required = true)]
    challenge: Option<String>,
}

/// Log in: start the required authenticator app
///
/// For a login that answered `mfa_enrollment_required`: a new TOTP secret for the account
/// (shown once; calling again replaces it). The challenge stays for the confirmation. Any
/// refusal is `401 invalid_credentials`.
#[utoipa::path(post, path = "/api/login/mfa/enrol", tag = "mfa", request_body = EnrolStartRequest,
    responses((status = 200, description = "The secret, shown once", body = TotpEnrolmentView), GrantErrors,
        Unauthorized))]
async fn enrol_start(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(req): JsonBody<EnrolStartRequest>,
) -> Result<Response> {
    let challenge = required(&req.challenge, "challenge")?;
    let e = state.service.enrolment_start(challenge, &client).await?;
    Ok(no_store(Json(TotpEnrolmentView::from(e)).into_response()))
}

/// `POST /api/login/mfa/enrol/confirm`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolConfirmRequest {
    /// The challenge from `/api/login`.
    #[schema(value_type = String, required = true)]
    challenge: Option<String>,
    /// The six-digit code the app shows now.
    #[schema(value_type = String, required = true, min_length = 6, max_length = 6)]
    code: Option<String>,
}

/// A sign-in finished by enrolment: the grant and the recovery codes.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnrolledSignInBody<'a> {
    /// The grant, as `/api/login` answers it.
    #[serde(flatten)]
    grant: GrantBody<'a>,
    /// Ten single-use recovery codes, shown this once.
    recovery_codes: Vec<String>,
}

/// Log in: confirm the required authenticator app
///
/// Activates the app with a code from it and signs in: the answer is a login's (tokens,
/// or cookies with `?cookie=true`) plus ten `recovery_codes`, shown once. The challenge
/// is used up by the confirmation that succeeds; a wrong code is `401
/// invalid_credentials`, counts toward the account's back-off, and can be retried with
/// the same challenge until it expires.
#[utoipa::path(post, path = "/api/login/mfa/enrol/confirm", tag = "mfa", params(MfaDeliveryQuery),
    request_body = EnrolConfirmRequest,
    responses((status = 200, description = "Signed in; the recovery codes", body = EnrolledSignInBody), GrantErrors,
        Unauthorized))]
async fn enrol_confirm(
    State(state): State<AppState>,
    Client(client): Client,
    Cookies(cookies): Cookies,
    HeldSession(held): HeldSession,
    QueryParams(query): QueryParams<MfaDeliveryQuery>,
    JsonBody(req): JsonBody<EnrolConfirmRequest>,
) -> Result<Response> {
    let challenge = required(&req.challenge, "challenge")?;
    let code = required(&req.code, "code")?;
    let delivery = if query.cookie() { Delivery::Cookies(cookies) } else { Delivery::Body };
    let browser = matches!(delivery, Delivery::Cookies(_)).then_some(BrowserLogin { held: held.as_ref() });
    let done = state.service.enrolment_finish(challenge, code, &client, browser).await?;
    let (headers, grant) = grant_parts(&state, "Login successful", &done.grant, delivery);
    let body = EnrolledSignInBody { grant, recovery_codes: done.recovery_codes };
    Ok(no_store((StatusCode::OK, headers, Json(body)).into_response()))
}
