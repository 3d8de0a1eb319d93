//! The account page's "Applications you have allowed": withdrawing an application's
//! access (`POST /ui/apps/{client_id}/revoke`, same-origin with the session's CSRF token).
//! The list itself is part of the signed-in page ([`super::home_page`]).

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::actions::{SignedInForm, see_other};
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::http::extract::{Client, PathParam};
use crate::http::openapi::{FormErrors, FormRedirect};

/// The applications routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(revoke_app))
}

/// The withdraw form: only the CSRF token.
#[derive(Deserialize, ToSchema)]
struct RevokeForm {
    // Checked by `SignedInForm` before the form is parsed; listed for the description.
    #[serde(default)]
    #[allow(dead_code)]
    csrf_token: String,
}

/// Remove an application's access (form post)
///
/// Forgets the consent given to the client and ends every grant it holds for the user, in
/// one transaction: its access and refresh tokens stop working at once. 303 to `/`.
#[utoipa::path(post, path = "/ui/apps/{client_id}/revoke", operation_id = "ui_apps_client_id_revoke", tag = "pages",
    params(("client_id" = String, Path, description = "The client id")),
    request_body(content = RevokeForm, content_type = "application/x-www-form-urlencoded"),
    responses(FormRedirect, FormErrors))]
async fn revoke_app(
    State(state): State<AppState>,
    Client(client): Client,
    PathParam(client_id): PathParam,
    SignedInForm { claims, .. }: SignedInForm<RevokeForm>,
) -> Result<Response> {
    match state.service.revoke_app(&claims, &client_id, &client).await {
        Ok(_) => Ok(see_other("/?notice=app_revoked")),
        Err(Error::NotFound) => Ok(see_other("/?notice=app_gone")),
        Err(e) => Err(e),
    }
}
