//! Routes the seed tutorials' clients call, answered the way those clients expect.

use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::AppState;
use crate::http::extract::Auth;
use crate::http::openapi::Unauthorized;

/// Seed routes: `/protected` (seed 002), `/auth` and `/public` (seed 001).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(protected)).routes(routes!(auth_check)).routes(routes!(public))
}

/// Body of seed 002's `/protected`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoggedInAs {
    /// The caller's username.
    pub logged_in_as: String,
}

/// Who is signed in (seed 002)
#[utoipa::path(get, path = "/protected", tag = "compat", security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, description = "The caller's username", body = LoggedInAs), Unauthorized))]
async fn protected(auth: Auth) -> Response {
    axum::Json(LoggedInAs { logged_in_as: auth.claims.username }).into_response()
}

/// Token check (seed 001)
#[utoipa::path(get, path = "/auth", tag = "compat", security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, description = "`JWT Authorized`", body = String, content_type = "text/plain"),
        Unauthorized))]
async fn auth_check(_: Auth) -> &'static str {
    "JWT Authorized"
}

/// Public content (seed 001)
#[utoipa::path(get, path = "/public", tag = "compat",
    responses((status = 200, description = "`Public Content`", body = String, content_type = "text/plain")))]
async fn public() -> &'static str {
    "Public Content"
}
