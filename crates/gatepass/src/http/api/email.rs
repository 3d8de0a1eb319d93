//! E-mail routes: forgotten password and reset, address verification and change, and the
//! administrator's mail actions (send a reset link, resend a verification, mark verified).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::UserView;
use crate::domain::ValidationError;
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::http::extract::{Auth, Client, JsonBody, PathParam};
use crate::http::guard::AdminActor;
use crate::http::openapi::{
    AccessErrors, AuthErrors, BadRequest, BodyErrors, Conflict, NotFound, ServiceUnavailable, TooManyRequests,
};

/// The routes of this file.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(forgot))
        .routes(routes!(reset))
        .routes(routes!(verify))
        .routes(routes!(resend))
        .routes(routes!(change))
        .routes(routes!(admin_send_reset))
        .routes(routes!(admin_resend_verification))
        .routes(routes!(admin_mark_verified))
}

/// A plain acknowledgement.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// What happens next.
    message: &'static str,
}

/// The answer to every forgotten-password request, whether or not an account matched.
pub const FORGOT_ANSWER: &str =
    "If an account matches, a link to reset its password has been sent to its e-mail address";

fn required<'a>(value: &'a Option<String>, field: &'static str) -> Result<&'a str> {
    match value.as_deref() {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ValidationError::new(field, "is required").into()),
    }
}

/// `POST /api/password/forgot`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgotRequest {
    /// A username or a verified e-mail address.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 254)]
    login: Option<String>,
}

/// Ask for a password-reset link
///
/// Always the same 202 answer, after the same minimum time, whether or not an account
/// matches (a username, or a verified address). The link goes to the account's address.
#[utoipa::path(post, path = "/api/password/forgot", tag = "accounts", request_body = ForgotRequest,
    responses((status = 202, description = "Accepted (whether or not an account matched)", body = Accepted),
        BodyErrors, TooManyRequests, ServiceUnavailable))]
async fn forgot(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(req): JsonBody<ForgotRequest>,
) -> Result<Response> {
    state.service.forgot_password(required(&req.login, "login")?, &client).await?;
    Ok((StatusCode::ACCEPTED, Json(Accepted { message: FORGOT_ANSWER })).into_response())
}

/// `POST /api/password/reset`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    /// The token from the reset link.
    #[schema(value_type = String, required = true, min_length = 1)]
    token: Option<String>,
    /// The new password (the password policy applies).
    #[schema(value_type = String, required = true, min_length = 1, max_length = 1024)]
    new_password: Option<String>,
}

/// Set a new password with a reset link
///
/// Ends every session of the account, voids its other reset links and mails a notice.
#[utoipa::path(post, path = "/api/password/reset", tag = "accounts", request_body = ResetRequest,
    responses((status = 200, description = "Password set; every session ended", body = Accepted),
        BodyErrors, TooManyRequests, ServiceUnavailable))]
async fn reset(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(req): JsonBody<ResetRequest>,
) -> Result<Response> {
    let token = required(&req.token, "token")?;
    let new_password = required(&req.new_password, "new_password")?;
    state.service.reset_password(token, new_password, &client).await?;
    Ok(Json(Accepted { message: "Password changed; every session has been ended. Log in with the new password." })
        .into_response())
}

/// `POST /api/email/verify`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The token from a verification or address-change link.
    #[schema(value_type = String, required = true, min_length = 1)]
    token: Option<String>,
}

/// The account after a confirmed address.
#[derive(Debug, Serialize, ToSchema)]
pub struct Verified {
    message: &'static str,
    user: UserView,
}

/// Confirm an address with a mailed link
///
/// A verification link marks the account's address verified; an address-change link
/// makes the new address the account's (verified) and notifies the old one.
#[utoipa::path(post, path = "/api/email/verify", tag = "accounts", request_body = VerifyRequest,
    responses((status = 200, description = "Address confirmed", body = Verified), BodyErrors, Conflict,
        TooManyRequests, ServiceUnavailable))]
async fn verify(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(req): JsonBody<VerifyRequest>,
) -> Result<Response> {
    let token = required(&req.token, "token")?;
    state.service.throttle(crate::auth::ratelimit::Action::Mail, &client, None).await?;
    let user = state.service.core().confirm_email(token, &client).await?;
    Ok(Json(Verified { message: "E-mail address confirmed", user: UserView::from(&user) }).into_response())
}

/// Send me a new verification link
#[utoipa::path(post, path = "/api/email/resend", tag = "accounts", security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 202, description = "A new link is on its way", body = Accepted), BadRequest, AuthErrors,
        TooManyRequests))]
async fn resend(State(state): State<AppState>, Client(client): Client, auth: Auth) -> Result<Response> {
    state.service.resend_own_verification(&auth.claims, &client).await?;
    Ok((StatusCode::ACCEPTED, Json(Accepted { message: "A verification link has been sent" })).into_response())
}

/// `POST /api/email/change`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeEmailRequest {
    /// The new address.
    #[schema(value_type = String, required = true, format = Email, max_length = 254)]
    email: Option<String>,
}

/// Change my address
///
/// Needs a fresh login. A confirmation link goes to the new address; the address changes
/// only when it is followed, and the old address is then notified.
#[utoipa::path(post, path = "/api/email/change", tag = "accounts", security(("bearer" = []), ("session_cookie" = [])),
    request_body = ChangeEmailRequest,
    responses((status = 202, description = "A confirmation link went to the new address", body = Accepted),
        BodyErrors, AuthErrors, Conflict, TooManyRequests))]
async fn change(
    State(state): State<AppState>,
    Client(client): Client,
    auth: Auth,
    JsonBody(req): JsonBody<ChangeEmailRequest>,
) -> Result<Response> {
    let email = required(&req.email, "email")?;
    state.service.change_email(&auth.claims, email, &client).await?;
    let message = "A confirmation link has been sent to the new address; the address changes once it is followed";
    Ok((StatusCode::ACCEPTED, Json(Accepted { message })).into_response())
}

/// Send a password-reset link to an account (admin)
#[utoipa::path(post, path = "/api/admin/users/{id}/password-reset", tag = "admin",
    security(("operator_token" = []), ("bearer" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "User id")),
    responses((status = 202, description = "A reset link is on its way", body = Accepted), BadRequest, AccessErrors,
        NotFound, TooManyRequests))]
async fn admin_send_reset(
    State(state): State<AppState>,
    AdminActor(by): AdminActor,
    PathParam(id): PathParam,
) -> Result<Response> {
    let core = state.service.core();
    let user = core.user(&id).await?;
    if user.email.is_none() {
        return Err(Error::BadRequest("the account has no e-mail address".into()));
    }
    if !core.send_password_reset(&by, &user).await? {
        return Err(Error::RateLimited { retry_after: 3600 });
    }
    Ok((StatusCode::ACCEPTED, Json(Accepted { message: "A password-reset link has been sent" })).into_response())
}

/// Resend a verification link to an account (admin)
#[utoipa::path(post, path = "/api/admin/users/{id}/verification", tag = "admin",
    security(("operator_token" = []), ("bearer" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "User id")),
    responses((status = 202, description = "A verification link is on its way", body = Accepted), BadRequest,
        AccessErrors, NotFound, TooManyRequests))]
async fn admin_resend_verification(
    State(state): State<AppState>,
    AdminActor(by): AdminActor,
    PathParam(id): PathParam,
) -> Result<Response> {
    let core = state.service.core();
    core.resend_verification(&by, &core.user(&id).await?).await?;
    Ok((StatusCode::ACCEPTED, Json(Accepted { message: "A verification link has been sent" })).into_response())
}

/// Mark an account's address verified (admin)
#[utoipa::path(post, path = "/api/admin/users/{id}/verify-email", tag = "admin",
    security(("operator_token" = []), ("bearer" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, description = "The account, address verified", body = Verified), BadRequest,
        AccessErrors, NotFound))]
async fn admin_mark_verified(
    State(state): State<AppState>,
    AdminActor(by): AdminActor,
    PathParam(id): PathParam,
) -> Result<Response> {
    let core = state.service.core();
    let user = core.mark_email_verified(&by, &core.user(&id).await?).await?;
    Ok(Json(Verified { message: "E-mail address marked verified", user: UserView::from(&user) }).into_response())
}
