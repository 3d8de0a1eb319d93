//! Routes the seed tutorials' clients call, answered the way those clients expect.

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::http::AppState;
use crate::http::extract::Auth;

/// Seed routes: `/protected` (seed 002), `/auth` and `/public` (seed 001).
pub fn router() -> Router<AppState> {
    Router::new().route("/protected", get(protected)).route("/auth", get(auth_check)).route("/public", get(public))
}

async fn protected(auth: Auth) -> Response {
    axum::Json(json!({ "logged_in_as": auth.claims.username })).into_response()
}

async fn auth_check(_: Auth) -> &'static str {
    "JWT Authorized"
}

async fn public() -> &'static str {
    "Public Content"
}
