//! Token introspection (RFC 7662) for resource servers that need revocation-aware checks,
//! and token revocation (RFC 7009).
//!
//! Introspection callers authenticate with HTTP Basic credentials configured in
//! `GATEPASS_INTROSPECTION_CLIENTS`; secrets are compared in constant time. Revocation
//! needs no client credential: presenting a token proves possession of it, and revoking
//! it only ends the holder's own session.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{Error, Result};
use crate::http::AppState;
use crate::http::extract::{Client, JsonOrForm};
use crate::http::openapi::{BodyErrors, ServiceUnavailable, Unauthorized};

/// Introspection and revocation routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(introspect)).routes(routes!(revoke))
}

/// The HTTP Basic `(id, secret)` of a service credential, if the request carries exactly one.
pub(crate) fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next()?.to_str().ok()?;
    if values.next().is_some() {
        return None;
    }
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    // RFC 6749 §2.3.1: client id and secret are form-urlencoded before Basic encoding.
    let unescape =
        |s: &str| serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={s}")).ok()?.pop().map(|(_, v)| v);
    Some((unescape(id)?, unescape(secret)?))
}

/// Body of introspection and revocation (JSON or form, as RFC 7662/7009 clients send).
#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenRequest {
    /// The token.
    #[schema(value_type = String, required = true, min_length = 1)]
    token: Option<String>,
    /// `access_token` or `refresh_token`; optional and not needed.
    #[serde(default)]
    #[allow(dead_code)]
    token_type_hint: Option<String>,
}

impl TokenRequest {
    /// The `token` parameter, which both endpoints require.
    fn required_token(self) -> Result<String> {
        self.token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::BadRequest("the `token` parameter is required".into()))
    }
}

/// An introspection answer (RFC 7662 §2.2): only `active` when it is false.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Introspection {
    /// Whether the token is a valid, unrevoked access token right now.
    active: bool,
    /// Always `Bearer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
    /// Issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    /// User id.
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    /// Username.
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    /// Roles.
    #[serde(skip_serializing_if = "Option::is_none")]
    roles: Option<Vec<String>>,
    /// Issued at (epoch seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    /// Not before (epoch seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
    /// Expires (epoch seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    /// Token id.
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    /// Session id.
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    /// How the user authenticated (RFC 8176), e.g. `["pwd"]` or `["pwd", "otp", "mfa"]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    amr: Option<Vec<String>>,
    /// Audience, if the token has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<String>,
    /// The introspecting client; for a token issued to an OAuth client, that client.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    /// For a token issued to an OAuth client: its scopes, space-separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

/// Introspect a token (RFC 7662)
///
/// `{"active": true, …claims}` for a valid, unrevoked access token right now;
/// `{"active": false}` for anything else. Needs an introspection client's Basic credentials.
#[utoipa::path(post, path = "/api/introspect", tag = "tokens", security(("introspection_client" = [])),
    request_body(content((TokenRequest = "application/x-www-form-urlencoded"), (TokenRequest = "application/json"))),
    responses((status = 200, description = "The verdict", body = Introspection), BodyErrors, Unauthorized))]
async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: JsonOrForm<TokenRequest>,
) -> Result<Response> {
    let (id, secret) = basic_credentials(&headers).ok_or(Error::InvalidClient)?;
    if !state.introspection.check(&id, &secret) {
        return Err(Error::InvalidClient);
    }
    let token = body.value.required_token()?;
    let response = match state.service.authenticate(&token) {
        Ok(c) => Introspection {
            active: true,
            token_type: Some("Bearer"),
            iss: Some(c.iss),
            sub: Some(c.sub),
            username: Some(c.username),
            roles: Some(c.roles),
            iat: Some(c.iat),
            nbf: Some(c.nbf),
            exp: Some(c.exp),
            jti: Some(c.jti),
            sid: Some(c.sid),
            amr: Some(if c.amr.is_empty() { vec!["pwd".to_owned()] } else { c.amr }),
            aud: c.aud,
            client_id: Some(id),
            scope: None,
        },
        // An access token of an OAuth client (RFC 9068), verified with the provider's key and
        // refused once its grant is revoked.
        Err(_) => match state.service.verify_client_token(&token) {
            Some(c) => Introspection {
                active: true,
                token_type: Some("Bearer"),
                iss: Some(c.iss),
                sub: Some(c.sub),
                roles: c.roles,
                iat: Some(c.iat),
                nbf: Some(c.nbf),
                exp: Some(c.exp),
                jti: Some(c.jti),
                sid: c.sid,
                aud: Some(c.aud),
                client_id: Some(c.client_id),
                scope: Some(c.scope),
                ..Introspection::default()
            },
            None => Introspection::default(),
        },
    };
    Ok(Json(response).into_response())
}

/// The empty object revocation answers with.
#[derive(Debug, Serialize, ToSchema)]
pub struct Empty {}

/// Revoke a token (RFC 7009)
///
/// Ends the session of a gatepass refresh token (or access token). Answers 200 whether or
/// not the token was known (RFC 7009 §2.2). An OAuth client's token is refused
/// (`invalid_request`): the client revokes it at `/oauth/revoke`, authenticated.
#[utoipa::path(post, path = "/api/revoke", tag = "tokens",
    request_body(content((TokenRequest = "application/x-www-form-urlencoded"), (TokenRequest = "application/json"))),
    responses((status = 200, description = "Done (or nothing to do)", body = Empty), BodyErrors, ServiceUnavailable))]
async fn revoke(
    State(state): State<AppState>,
    Client(client): Client,
    body: JsonOrForm<TokenRequest>,
) -> Result<Response> {
    let token = body.value.required_token()?;
    state.service.revoke_token(&token, &client).await?;
    Ok(Json(Empty {}).into_response())
}
