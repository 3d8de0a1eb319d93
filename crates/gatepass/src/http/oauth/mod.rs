//! The OAuth 2.1 / OpenID Connect provider's endpoints: [`authorize`] (the authorization
//! request, its sign-in and consent pages), [`device`] (the device authorization grant and
//! its verification page), [`token`], [`revoke`] (RFC 7009), [`userinfo`], [`logout`]
//! (RP-initiated logout), [`registration`] (RFC 7591) and the RFC 8414 metadata. While the provider is off (`GATEPASS_ISSUER` not a URL) the metadata answers
//! 404, the authorization endpoint an error page and the token endpoint `invalid_request`.

pub mod authorize;
pub mod device;
pub mod logout;
pub mod registration;
pub mod revoke;
pub mod token;
pub mod userinfo;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{Error, Result};
use crate::http::AppState;
use crate::http::keys::{Discovery, discovery_document};
use crate::http::openapi::NotFound;

/// The provider's routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(authorization_server_metadata))
        .merge(authorize::router())
        .merge(device::router())
        .merge(logout::router())
        .merge(registration::router())
        .merge(revoke::router())
        .merge(token::router())
        .merge(userinfo::router())
}

/// Authorization server metadata (RFC 8414)
///
/// The same document as `/.well-known/openid-configuration`; 404 while the OAuth provider
/// is off.
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "oauth",
    responses((status = 200, description = "The metadata", body = Discovery), NotFound))]
async fn authorization_server_metadata(State(state): State<AppState>) -> Result<Response> {
    let Some(issuer) = state.service.oauth().issuer() else { return Err(Error::NotFound) };
    let body = discovery_document(&state, issuer.to_owned(), issuer);
    let mut response = Json(body).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    Ok(response)
}
