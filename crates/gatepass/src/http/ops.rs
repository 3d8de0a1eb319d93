//! Operational routes: health.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::AppState;

/// `/healthz`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz))
}

/// Whether the database answers.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// It does.
    Ok,
    /// It does not.
    Unavailable,
}

/// Body of `/healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// The verdict.
    pub status: HealthStatus,
}

/// Health check
///
/// 200 when the database answers, else 503. The database is asked at most once a second
/// however often this is called; in between, the last answer is repeated.
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, description = "The database answers", body = Health),
        (status = 503, description = "The database does not answer", body = Health)))]
async fn healthz(State(state): State<AppState>) -> Response {
    if state.service.healthy().await {
        axum::Json(Health { status: HealthStatus::Ok }).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(Health { status: HealthStatus::Unavailable })).into_response()
    }
}
