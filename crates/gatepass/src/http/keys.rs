//! Public key discovery (`/.well-known/jwks.json`, `/.well-known/openid-configuration`)
//! and the admin routes that list and rotate signing keys.
//!
//! The discovery documents are public and cacheable, so they set their own
//! `Cache-Control` (the global default is `no-store`). They never contain private keys or
//! the HS256 secret: in HS256 mode the key set is empty.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::auth::keys::KeyStatus;
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::http::api::rfc3339;
use crate::http::guard::AdminCaller;

/// How long clients may cache the JWKS. Rotation publishes new keys well before they sign
/// (GATEPASS_KEY_ACTIVATION_DELAY, default 10 min > 5 min).
const JWKS_CACHE: &str = "public, max-age=300";

/// Discovery and key-management routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/api/admin/keys", get(list))
        .route("/api/admin/keys/rotate", post(rotate))
}

async fn jwks(State(state): State<AppState>) -> Response {
    let mut response = Json(state.service.jwks()).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(JWKS_CACHE));
    response
}

/// The minimal OpenID-Provider-style metadata that JWT middleware reads. URLs are based on
/// the issuer when it is an `http(s)` URL; otherwise on the request's `Host`, in which case
/// the document is not cacheable by shared caches (a forged `Host` must not poison one).
async fn discovery(State(state): State<AppState>, headers: HeaderMap) -> Result<Response> {
    let issuer = state.service.verifier().config().issuer.clone();
    let (base, cache) = if issuer.starts_with("https://") || issuer.starts_with("http://") {
        (issuer.trim_end_matches('/').to_owned(), "public, max-age=300")
    } else {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| {
                !h.is_empty() && h.len() <= 255 && h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
            })
            .ok_or_else(|| Error::BadRequest("a valid Host header is required".into()))?;
        (format!("http://{host}"), "private, max-age=60")
    };
    let algorithms: Vec<&str> = {
        let mut algs = vec![state.service.key_management().algorithm.name()];
        for key in state.service.verifier().keys().iter() {
            let name = key_alg_name(key.alg);
            if !algs.contains(&name) {
                algs.push(name);
            }
        }
        algs
    };
    // Only what gatepass really offers: it is not an OAuth authorization server, so no
    // authorization/token endpoints or response types are advertised.
    let body = json!({
        "issuer": issuer,
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "id_token_signing_alg_values_supported": algorithms,
        "introspection_endpoint": format!("{base}/api/introspect"),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
        "revocation_endpoint": format!("{base}/api/revoke"),
        "revocation_endpoint_auth_methods_supported": ["none"],
    });
    let mut response = Json(body).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    Ok(response)
}

fn key_alg_name(alg: gatepass_verify::Algorithm) -> &'static str {
    use gatepass_verify::Algorithm as A;
    match alg {
        A::HS256 => "HS256",
        A::EdDSA => "EdDSA",
        A::ES256 => "ES256",
        A::RS256 => "RS256",
        _ => "other",
    }
}

fn view(s: &KeyStatus) -> serde_json::Value {
    json!({
        "kid": s.kid,
        "alg": s.alg,
        "state": s.state.name(),
        "created_at": rfc3339(s.created_at),
        "activates_at": rfc3339(s.activates_at),
        "retires_at": s.retires_at.map(rfc3339),
        "unpublish_at": s.unpublish_at.map(rfc3339),
    })
}

/// `GET /api/admin/keys`: every stored key with its state (admin only).
async fn list(State(state): State<AppState>, _admin: AdminCaller) -> Result<Response> {
    let keys = state.service.key_statuses().await?;
    Ok(Json(json!({ "keys": keys.iter().map(view).collect::<Vec<_>>() })).into_response())
}

/// `POST /api/admin/keys/rotate`: adds a key that signs after the activation delay.
async fn rotate(State(state): State<AppState>, AdminCaller(caller): AdminCaller) -> Result<Response> {
    let key = state.service.rotate_keys().await?;
    tracing::info!(kid = %key.kid, by = %caller.actor_id(), "signing key rotated");
    Ok((axum::http::StatusCode::CREATED, Json(json!({ "key": view(&key) }))).into_response())
}
