//! Public key discovery (`/.well-known/jwks.json`, `/.well-known/openid-configuration`)
//! and the admin routes that list, rotate and revoke signing keys.
//!
//! The discovery documents are public and cacheable, so they set their own
//! `Cache-Control` (the global default is `no-store`). They never contain private keys or
//! the HS256 secret: in HS256 mode the key set is empty.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::keys::KeyStatus;
use crate::domain::clock::rfc3339;
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::http::extract::PathParam;
use crate::http::guard::{AdminActor, AdminCaller};
use crate::http::openapi::{AccessErrors, BadRequest, NotFound};

/// How long clients may cache the JWKS. Rotation publishes new keys well before they sign
/// (GATEPASS_KEY_ACTIVATION_DELAY, default 10 min > 5 min).
const JWKS_CACHE: &str = "public, max-age=300";

/// Discovery and key-management routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(jwks))
        .routes(routes!(discovery))
        .routes(routes!(list))
        .routes(routes!(rotate))
        .routes(routes!(revoke))
        .routes(routes!(list_provider))
        .routes(routes!(rotate_provider))
}

/// A JSON Web Key Set (RFC 7517) of public keys only.
#[derive(Debug, ToSchema)]
pub struct JwkSet {
    /// Public JWKs (`kty`, `kid`, `alg`, `use` and the key's public parameters); empty in
    /// HS256 mode.
    #[allow(dead_code)]
    keys: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// Public signing keys (JWKS)
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "tokens",
    responses((status = 200, description = "The key set; cacheable for 5 minutes", body = JwkSet)))]
async fn jwks(State(state): State<AppState>) -> Response {
    let mut response = Json(state.service.jwks()).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(JWKS_CACHE));
    response
}

/// The discovery document: the keys and introspection for verifiers always; with the
/// OAuth provider on, every field OpenID Connect Discovery 1.0 and RFC 8414 require.
#[derive(Debug, Serialize, ToSchema)]
pub struct Discovery {
    /// The `iss` of issued tokens.
    issuer: String,
    /// Where the JWKS is.
    jwks_uri: String,
    /// Provider on: `["RS256", "ES256"]` (ID tokens: RS256 unless the client asked for
    /// ES256); off: the algorithms gatepass's tokens may be signed with.
    id_token_signing_alg_values_supported: Vec<&'static str>,
    /// The RFC 7662 endpoint.
    introspection_endpoint: String,
    /// Always `client_secret_basic`.
    introspection_endpoint_auth_methods_supported: [&'static str; 1],
    /// The RFC 7009 endpoint: provider on, `/oauth/revoke` (for clients' tokens); off,
    /// `/api/revoke` (for gatepass's own).
    revocation_endpoint: String,
    /// Provider on: `client_secret_basic`, `client_secret_post`, `none`; off: `none`.
    revocation_endpoint_auth_methods_supported: Vec<&'static str>,
    /// `/oauth/authorize`.
    #[serde(skip_serializing_if = "Option::is_none")]
    authorization_endpoint: Option<String>,
    /// `/oauth/token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    token_endpoint: Option<String>,
    /// `/oauth/userinfo`.
    #[serde(skip_serializing_if = "Option::is_none")]
    userinfo_endpoint: Option<String>,
    /// `/oauth/device_authorization` (RFC 8628).
    #[serde(skip_serializing_if = "Option::is_none")]
    device_authorization_endpoint: Option<String>,
    /// `/oauth/register` (RFC 7591), only while dynamic registration is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    registration_endpoint: Option<String>,
    /// `/oauth/logout` (RP-Initiated Logout 1.0).
    #[serde(skip_serializing_if = "Option::is_none")]
    end_session_endpoint: Option<String>,
    /// `["code"]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    response_types_supported: Option<Vec<&'static str>>,
    /// `["query"]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    response_modes_supported: Option<Vec<&'static str>>,
    /// `authorization_code`, `refresh_token`, `client_credentials`,
    /// `urn:ietf:params:oauth:grant-type:device_code`.
    #[serde(skip_serializing_if = "Option::is_none")]
    grant_types_supported: Option<Vec<&'static str>>,
    /// `["public"]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    subject_types_supported: Option<Vec<&'static str>>,
    /// `openid`, `profile`, `email`, `roles`, `offline_access`.
    #[serde(skip_serializing_if = "Option::is_none")]
    scopes_supported: Option<Vec<&'static str>>,
    /// Claims of ID tokens and userinfo.
    #[serde(skip_serializing_if = "Option::is_none")]
    claims_supported: Option<Vec<&'static str>>,
    /// `client_secret_basic`, `client_secret_post`, `none`.
    #[serde(skip_serializing_if = "Option::is_none")]
    token_endpoint_auth_methods_supported: Option<Vec<&'static str>>,
    /// `["S256"]`: PKCE is required of every client.
    #[serde(skip_serializing_if = "Option::is_none")]
    code_challenge_methods_supported: Option<Vec<&'static str>>,
    /// `none`, `login`, `consent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_values_supported: Option<Vec<&'static str>>,
    /// `true`: authorization responses carry `iss` (RFC 9207).
    #[serde(skip_serializing_if = "Option::is_none")]
    authorization_response_iss_parameter_supported: Option<bool>,
    /// `false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    claims_parameter_supported: Option<bool>,
    /// `false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    request_parameter_supported: Option<bool>,
    /// `false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    request_uri_parameter_supported: Option<bool>,
}

/// How clients authenticate at the token and revocation endpoints.
const CLIENT_AUTH_METHODS: [&str; 3] = ["client_secret_basic", "client_secret_post", "none"];

/// The document for `issuer` with URLs under `base`.
pub(crate) fn discovery_document(state: &AppState, issuer: String, base: &str) -> Discovery {
    let provider = state.service.oauth().issuer().is_some();
    let algorithms: Vec<&str> = if provider {
        vec!["RS256", "ES256"]
    } else {
        let mut algs = vec![state.service.key_management().algorithm.name()];
        for key in state.service.verifier().keys().iter() {
            let name = key_alg_name(key.alg);
            if !algs.contains(&name) {
                algs.push(name);
            }
        }
        algs
    };
    let on = |v: Vec<&'static str>| provider.then_some(v);
    let url = |path: &str| provider.then(|| format!("{base}{path}"));
    use crate::service::oauth::{CLAIMS, GRANT_TYPES, KNOWN_SCOPES};
    Discovery {
        issuer,
        jwks_uri: format!("{base}/.well-known/jwks.json"),
        id_token_signing_alg_values_supported: algorithms,
        introspection_endpoint: format!("{base}/api/introspect"),
        introspection_endpoint_auth_methods_supported: ["client_secret_basic"],
        revocation_endpoint: format!("{base}{}", if provider { "/oauth/revoke" } else { "/api/revoke" }),
        revocation_endpoint_auth_methods_supported: on(CLIENT_AUTH_METHODS.to_vec()).unwrap_or_else(|| vec!["none"]),
        authorization_endpoint: url("/oauth/authorize"),
        token_endpoint: url("/oauth/token"),
        userinfo_endpoint: url("/oauth/userinfo"),
        device_authorization_endpoint: url("/oauth/device_authorization"),
        end_session_endpoint: url("/oauth/logout"),
        registration_endpoint: url("/oauth/register")
            .filter(|_| !matches!(state.service.oauth().registration(), crate::service::oauth::Registration::Off)),
        response_types_supported: on(vec!["code"]),
        response_modes_supported: on(vec!["query"]),
        grant_types_supported: on(GRANT_TYPES.to_vec()),
        subject_types_supported: on(vec!["public"]),
        scopes_supported: on(KNOWN_SCOPES.to_vec()),
        claims_supported: on(CLAIMS.to_vec()),
        token_endpoint_auth_methods_supported: on(CLIENT_AUTH_METHODS.to_vec()),
        code_challenge_methods_supported: on(vec!["S256"]),
        prompt_values_supported: on(vec!["none", "login", "consent"]),
        authorization_response_iss_parameter_supported: provider.then_some(true),
        claims_parameter_supported: provider.then_some(false),
        request_parameter_supported: provider.then_some(false),
        request_uri_parameter_supported: provider.then_some(false),
    }
}

/// Discovery metadata
///
/// Keys and introspection for JWT middleware; with the OAuth provider on (an issuer URL),
/// the full OpenID Provider metadata. URLs are based on the issuer when it is an `http(s)`
/// URL; otherwise on the request's `Host`, in which case the document is not cacheable by
/// shared caches (a forged `Host` must not poison one).
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "tokens",
    responses((status = 200, description = "The metadata", body = Discovery), BadRequest))]
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
    // With the provider on, `issuer` must be exactly the provider's (no trailing `/`), as
    // clients compare it with the ID token's `iss`.
    let issuer = state.service.oauth().issuer().map(str::to_owned).unwrap_or(issuer);
    let body = discovery_document(&state, issuer, &base);
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

/// A signing key's public facts and state.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    /// Key id.
    kid: String,
    /// Algorithm.
    alg: String,
    /// `pending`, `active`, `retired`, `expired` or `revoked`.
    state: &'static str,
    /// RFC 3339.
    created_at: String,
    /// When it signs from (RFC 3339).
    activates_at: String,
    /// When it stops signing, if a successor exists.
    retires_at: Option<String>,
    /// When it leaves (or left) the JWKS, if retiring or revoked.
    unpublish_at: Option<String>,
    /// When it was revoked, if it was: it then neither signs nor verifies.
    revoked_at: Option<String>,
}

fn view(s: &KeyStatus) -> KeyView {
    KeyView {
        kid: s.kid.clone(),
        alg: s.alg.clone(),
        state: s.state.name(),
        created_at: rfc3339(s.created_at),
        activates_at: rfc3339(s.activates_at),
        retires_at: s.retires_at.map(rfc3339),
        unpublish_at: s.unpublish_at.map(rfc3339),
        revoked_at: s.revoked_at.map(rfc3339),
    }
}

/// Body of the key listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    /// Every stored key.
    keys: Vec<KeyView>,
}

/// Body of a rotation.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedKey {
    /// The new key.
    key: KeyView,
}

/// List signing keys
///
/// Every stored key with its state (admin only).
#[utoipa::path(get, path = "/api/admin/keys", tag = "admin",
    security(("operator_token" = []), ("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, description = "The keys", body = KeyList), AccessErrors))]
async fn list(State(state): State<AppState>, _admin: AdminCaller) -> Result<Response> {
    let keys = state.service.key_statuses().await?;
    Ok(Json(KeyList { keys: keys.iter().map(view).collect() }).into_response())
}

/// Rotate the signing key
///
/// Adds a key that signs after the activation delay (audited as `signing_key_rotated`).
#[utoipa::path(post, path = "/api/admin/keys/rotate", tag = "admin",
    security(("operator_token" = []), ("bearer" = []), ("session_cookie" = [])),
    responses((status = 201, description = "The new key", body = RotatedKey), AccessErrors, BadRequest))]
async fn rotate(State(state): State<AppState>, AdminActor(by): AdminActor) -> Result<Response> {
    let key = state.service.rotate_keys(&by).await?;
    Ok((axum::http::StatusCode::CREATED, Json(RotatedKey { key: view(&key) })).into_response())
}

/// List the OpenID provider's keys
///
/// The RS256 keys that sign ID tokens and the ES256 keys that sign client access tokens,
/// with their states (admin only); 404 while the provider is off.
#[utoipa::path(get, path = "/api/admin/oauth/keys", tag = "admin",
    security(("operator_token" = []), ("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, description = "The keys", body = KeyList), AccessErrors, NotFound))]
async fn list_provider(State(state): State<AppState>, _admin: AdminCaller) -> Result<Response> {
    let keys = state.service.provider_key_statuses().await?;
    Ok(Json(KeyList { keys: keys.iter().map(view).collect() }).into_response())
}

/// Rotate the OpenID provider's keys
///
/// Adds an RS256 and an ES256 key, published at once and signing after the activation
/// delay; the keys they replace stay published until every token they signed has expired
/// (admin only, audited as `oauth_keys_rotated`). 404 while the provider is off.
#[utoipa::path(post, path = "/api/admin/oauth/keys/rotate", tag = "admin",
    security(("operator_token" = []), ("bearer" = []), ("session_cookie" = [])),
    responses((status = 201, description = "The new keys", body = KeyList), AccessErrors, NotFound))]
async fn rotate_provider(State(state): State<AppState>, AdminActor(by): AdminActor) -> Result<Response> {
    let keys = state.service.rotate_provider_keys(&by).await?;
    Ok((axum::http::StatusCode::CREATED, Json(KeyList { keys: keys.iter().map(view).collect() })).into_response())
}

/// Body of a revocation.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevokedKey {
    /// The revoked key (state `revoked`).
    key: KeyView,
    /// The key that signs from now on, when the revoked key was the signing key.
    replacement: Option<KeyView>,
    /// Whether the key had already been revoked: then nothing changed.
    already_revoked: bool,
}

/// Revoke a signing key
///
/// Emergency stop for a leaked key (admin only, audited as `signing_key_revoked`): it leaves
/// the JWKS and every token it signed is refused at once on this instance, and on the
/// others within a second. Revoking the key that signs adds a replacement that signs at
/// once, in the same transaction. Revoking a revoked key changes nothing (200,
/// `already_revoked`). Refresh tokens keep working and mint tokens with the current key.
/// In HS256 mode the shared secret cannot be revoked (400): change `GATEPASS_JWT_SECRET`.
#[utoipa::path(post, path = "/api/admin/keys/{kid}/revoke", tag = "admin",
    security(("operator_token" = []), ("bearer" = []), ("session_cookie" = [])),
    params(("kid" = String, Path, description = "Key id")),
    responses((status = 200, description = "The key is revoked", body = RevokedKey), AccessErrors, BadRequest,
        NotFound))]
async fn revoke(
    State(state): State<AppState>,
    AdminActor(by): AdminActor,
    PathParam(kid): PathParam,
) -> Result<Response> {
    let revoked = state.service.revoke_key(&by, &kid).await?;
    let body = RevokedKey {
        key: view(&revoked.key),
        replacement: revoked.replacement.as_ref().map(view),
        already_revoked: revoked.already,
    };
    Ok(Json(body).into_response())
}
