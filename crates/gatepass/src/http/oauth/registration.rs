//! `POST /oauth/register`: dynamic client registration (RFC 7591). JSON metadata in, the
//! registered (limited, public) client out with 201; RFC 7591 errors. 404 while
//! `GATEPASS_OAUTH_REGISTRATION` is off.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::token::OAuthErrorBody;
use crate::error::{Error, OAuthCode, OAuthError, Result};
use crate::http::extract::Client;
use crate::http::openapi::{NotFound, TooManyRequests};
use crate::http::{AppState, no_store};
use crate::service::oauth::Registration;
use crate::service::oauth::clients::{ClientMetadata, ClientView};

/// RFC 7591 metadata that only describes the client, accepted and not kept.
const IGNORED: &[&str] =
    &["client_uri", "logo_uri", "tos_uri", "policy_uri", "contacts", "software_id", "software_version"];

/// The registration route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(register))
}

/// Dynamic client registration (RFC 7591)
///
/// Registers a public client (PKCE, `authorization_code` and `refresh_token` only, not
/// first-party) that stays limited until an administrator promotes it. Open, or behind an
/// initial access token (`Authorization: Bearer`), as `GATEPASS_OAUTH_REGISTRATION` says;
/// 404 while it is off. Rate-limited per client address like registration of accounts.
/// Descriptive fields (`client_uri`, `logo_uri`, `tos_uri`, `policy_uri`, `contacts`,
/// `software_id`, `software_version`) are ignored; other unknown fields are refused.
#[utoipa::path(post, path = "/oauth/register", tag = "oauth", security((), ("bearer" = [])),
    request_body(content = ClientMetadata, content_type = "application/json"),
    responses((status = 201, description = "The registered client (RFC 7591 §3.2.1)", body = ClientView),
        (status = 400, description = "`invalid_redirect_uri`, `invalid_client_metadata`", body = OAuthErrorBody),
        (status = 401, description = "`invalid_token`: the initial access token is missing or wrong",
            body = OAuthErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"gatepass\", error=\"invalid_token\"`"))),
        NotFound, TooManyRequests))]
async fn register(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    if matches!(state.service.oauth().registration(), Registration::Off) {
        return Err(Error::NotFound);
    }
    // A body that is not JSON gets the RFC 7591 error too, not gatepass's own shape.
    let json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    let parsed = if json { serde_json::from_slice::<serde_json::Value>(&body).ok() } else { None };
    let Some(mut body) = parsed else {
        let msg = "the body must be client metadata as a JSON object (Content-Type: application/json)";
        return Ok(OAuthError::new(OAuthCode::InvalidClientMetadata, msg).into_response());
    };
    // Descriptive RFC 7591 fields gatepass does not keep are ignored, as §2 allows, so that
    // off-the-shelf clients register; anything else unknown is refused.
    if let Some(fields) = body.as_object_mut() {
        for name in IGNORED {
            fields.remove(*name);
        }
    }
    let meta: ClientMetadata = match serde_json::from_value(body) {
        Ok(m) => m,
        Err(e) => {
            let e = OAuthError::new(OAuthCode::InvalidClientMetadata, format!("invalid client metadata: {e}"));
            return Ok(e.into_response());
        }
    };
    let bearer = gatepass_verify::token_from_headers(&headers).ok().flatten().map(|(token, _)| token);
    Ok(match state.service.register_dynamic_client(meta, bearer.as_deref(), &client).await? {
        Ok(view) => no_store((StatusCode::CREATED, Json(view)).into_response()),
        Err(e) => e.into_response(),
    })
}
