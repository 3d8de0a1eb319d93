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
/// 200 when the database answers, else 503.
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, description = "The database answers", body = Health),
        (status = 503, description = "The database does not answer", body = Health)))]
async fn healthz(State(state): State<AppState>) -> Response {
    match state.service.ping().await {
        Ok(()) => axum::Json(Health { status: HealthStatus::Ok }).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(Health { status: HealthStatus::Unavailable })).into_response()
        }
    }
}
