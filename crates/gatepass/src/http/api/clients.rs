//! Admin API for OAuth clients: register (RFC 7591 metadata in and out; the secret is shown
//! once), list, show, change, rotate the secret, delete (which revokes the client's grants).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::Result;
use crate::http::AppState;
use crate::http::extract::{JsonBody, PathParam};
use crate::http::guard::{AdminActor, AdminCaller};
use crate::http::openapi::{AccessErrors, BodyErrors, NotFound};
use crate::service::oauth::clients::{ClientMetadata, ClientView};

/// The client routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register, list))
        .routes(routes!(show, update, delete))
        .routes(routes!(rotate_secret))
}

/// Every client.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientList {
    /// The clients (never a secret).
    clients: Vec<ClientView>,
}

/// What deleting a client did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientDeleted {
    /// The client.
    client_id: String,
    /// How many grants (users' sign-ins to it) ended.
    grants_revoked: usize,
}

/// Register an OAuth client
///
/// RFC 7591 metadata in and out (admin only, audited as `client_registered`). A
/// confidential client's `client_secret` is in this answer only; gatepass keeps a digest.
#[utoipa::path(post, path = "/api/admin/clients", tag = "admin",
    security(("operator_token" = []), ("bearer" = []), ("session_cookie" = [])), request_body = ClientMetadata,
    responses((status = 201, description = "Registered", body = ClientView), AccessErrors, BodyErrors))]
async fn register(
    State(state): State<AppState>,
    AdminActor(by): AdminActor,
    JsonBody(meta): JsonBody<ClientMetadata>,
) -> Result<Response> {
    let view = state.service.core().register_client(meta, &by).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// List OAuth clients
#[utoipa::path(get, path = "/api/admin/clients", tag = "admin",
    security(("operator_token" = []), ("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, description = "The clients", body = ClientList), AccessErrors))]
async fn list(State(state): State<AppState>, _: AdminCaller) -> Result<Response> {
    Ok(Json(ClientList { clients: state.service.core().clients().await? }).into_response())
}

/// Show an OAuth client
#[utoipa::path(get, path = "/api/admin/clients/{client_id}", tag = "admin",
    security(("operator_token" = []), ("bearer" = []), ("session_cookie" = [])),
    params(("client_id" = String, Path, description = "Client id")),
    responses((status = 200, description = "The client", body = ClientView), AccessErrors, NotFound))]
async fn show(State(state): State<AppState>, _: AdminCaller, PathParam(id): PathParam) -> Result<Response> {
    Ok(Json(state.service.core().client(&id).await?).into_response())
}

/// Change an OAuth client
///
/// Fields sent replace the stored ones; the others stay. Public and confidential do not
/// swap. Audited as `client_updated`.
#[utoipa::path(patch, path = "/api/admin/clients/{client_id}", tag = "admin",
    security(("operator_token" = []), ("bearer" = []), ("session_cookie" = [])),
    params(("client_id" = String, Path, description = "Client id")), request_body = ClientMetadata,
    responses((status = 200, description = "The client", body = ClientView), AccessErrors, BodyErrors, NotFound))]
async fn update(
    State(state): State<AppState>,
    AdminActor(by): AdminActor,
    PathParam(id): PathParam,
    JsonBody(meta): JsonBody<ClientMetadata>,
) -> Result<Response> {
    Ok(Json(state.service.core().update_client(&id, meta, &by).await?).into_response())
}

/// Delete an OAuth client
///
/// Its grants are revoked at once: their access and refresh tokens are refused like those
/// of an ended session. Audited as `client_deleted`.
#[utoipa::path(delete, path = "/api/admin/clients/{client_id}", tag = "admin",
    security(("operator_token" = []), ("bearer" = []), ("session_cookie" = [])),
    params(("client_id" = String, Path, description = "Client id")),
    responses((status = 200, description = "Deleted", body = ClientDeleted), AccessErrors, NotFound))]
async fn delete(
    State(state): State<AppState>,
    AdminActor(by): AdminActor,
    PathParam(id): PathParam,
) -> Result<Response> {
    let grants_revoked = state.service.core().delete_client(&id, &by).await?;
    Ok(Json(ClientDeleted { client_id: id, grants_revoked }).into_response())
}

/// Rotate an OAuth client's secret
///
/// A new secret, in this answer only; the old one stops working at once. Audited as
/// `client_secret_rotated`.
#[utoipa::path(post, path = "/api/admin/clients/{client_id}/rotate-secret", tag = "admin",
    security(("operator_token" = []), ("bearer" = []), ("session_cookie" = [])),
    params(("client_id" = String, Path, description = "Client id")),
    responses((status = 200, description = "The client with its new secret", body = ClientView), AccessErrors,
        BodyErrors, NotFound))]
async fn rotate_secret(
    State(state): State<AppState>,
    AdminActor(by): AdminActor,
    PathParam(id): PathParam,
) -> Result<Response> {
    Ok(Json(state.service.core().rotate_client_secret(&id, &by).await?).into_response())
}
