//! Accounts: register, login, profile, the protected example route, password change.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::{Delivery, UserView, token_response};
use crate::domain::ValidationError;
use crate::error::{Error, Result};
use crate::http::extract::{Auth, Client, JsonBody, JsonOrForm};
use crate::http::{AppState, csrf};

/// Routes for accounts; `/register` and `/login` are also served at the root for the seeds.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/register", post(register))
        .route("/register", post(register))
        .route("/api/login", post(login))
        .route("/login", post(login))
        .route("/api/profile", get(profile))
        .route("/api/protected", get(protected))
        .route("/api/password", post(change_password))
}

/// Register body. Unknown fields (e.g. `roles`, `is_admin`) are refused, not ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    username: Option<String>,
    password: Option<String>,
    email: Option<String>,
}

impl RegisterRequest {
    /// The submitted username, password and e-mail (fuzzing and tests).
    pub fn fields(&self) -> (Option<&str>, Option<&str>, Option<&str>) {
        (self.username.as_deref(), self.password.as_deref(), self.email.as_deref())
    }
}

/// Login body (JSON or form).
#[derive(Debug, Deserialize)]
pub struct LoginRequest {
    username: Option<String>,
    password: Option<String>,
}

impl LoginRequest {
    /// The submitted username and password (fuzzing and tests).
    pub fn fields(&self) -> (Option<&str>, Option<&str>) {
        (self.username.as_deref(), self.password.as_deref())
    }
}

/// `?cookie=true` asks for cookies instead of tokens in the body.
#[derive(Debug, Deserialize, Default)]
pub struct DeliveryQuery {
    #[serde(default)]
    cookie: bool,
}

fn required<'a>(value: &'a Option<String>, field: &'static str) -> Result<&'a str> {
    match value.as_deref() {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ValidationError::new(field, "is required").into()),
    }
}

/// Login CSRF (GP-26): a form post that a browser sent from another site is refused.
/// Seed 001's scripted clients send neither `Origin` nor `Sec-Fetch-Site` and still pass.
fn refuse_cross_site_form(headers: &HeaderMap, from_form: bool) -> Result<()> {
    if from_form && !csrf::same_origin(headers) {
        return Err(Error::CsrfFailed);
    }
    Ok(())
}

async fn register(
    State(state): State<AppState>,
    Client(client): Client,
    Query(q): Query<DeliveryQuery>,
    headers: HeaderMap,
    body: JsonOrForm<RegisterRequest>,
) -> Result<Response> {
    refuse_cross_site_form(&headers, body.from_form)?;
    let req = body.value;
    let username = required(&req.username, "username")?;
    let password = required(&req.password, "password")?;
    let grant = state.service.register(username, password, req.email.as_deref(), &client).await?;
    let delivery = if q.cookie || body.from_form { Delivery::Cookies } else { Delivery::Body };
    Ok(token_response(&state, StatusCode::CREATED, "User created successfully", &grant, delivery))
}

async fn login(
    State(state): State<AppState>,
    Client(client): Client,
    Query(q): Query<DeliveryQuery>,
    headers: HeaderMap,
    body: JsonOrForm<LoginRequest>,
) -> Result<Response> {
    refuse_cross_site_form(&headers, body.from_form)?;
    let req = body.value;
    let username = required(&req.username, "username")?;
    let password = required(&req.password, "password")?;
    let grant = state.service.login(username, password, &client).await?;
    let delivery = if q.cookie || body.from_form { Delivery::Cookies } else { Delivery::Body };
    Ok(token_response(&state, StatusCode::OK, "Login successful", &grant, delivery))
}

async fn profile(State(state): State<AppState>, auth: Auth) -> Result<Response> {
    let user = state.service.current_user(&auth.claims).await?;
    Ok(Json(json!({ "user": UserView::from(&user) })).into_response())
}

async fn protected(auth: Auth) -> Response {
    Json(json!({
        "message": format!("Hello {}! This is a protected route.", auth.claims.username),
        "user_id": auth.claims.sub,
    }))
    .into_response()
}

/// Password change body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordRequest {
    current_password: Option<String>,
    new_password: Option<String>,
}

impl PasswordRequest {
    /// The submitted current and new password (fuzzing and tests).
    pub fn fields(&self) -> (Option<&str>, Option<&str>) {
        (self.current_password.as_deref(), self.new_password.as_deref())
    }
}

async fn change_password(
    State(state): State<AppState>,
    Client(client): Client,
    auth: Auth,
    JsonBody(req): JsonBody<PasswordRequest>,
) -> Result<Response> {
    let current = required(&req.current_password, "current_password")?;
    let new = required(&req.new_password, "new_password")?;
    let grant = state.service.change_password(&auth.claims, current, new, &client).await?;
    let delivery = match auth.source {
        gatepass_verify::TokenSource::Cookie => Delivery::Cookies,
        gatepass_verify::TokenSource::Header => Delivery::Body,
    };
    Ok(token_response(&state, StatusCode::OK, "Password changed; other sessions ended", &grant, delivery))
}
