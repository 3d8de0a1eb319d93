//! Request extractors: strict JSON bodies, JSON-or-form credentials, the caller's identity
//! and network details. Every rejection is an [`Error`], so clients always get the JSON
//! error shape.

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::{Extensions, HeaderMap, header, request::Parts};
use gatepass_verify::{AccessClaims, TokenSource, token_from_headers};
use serde::de::DeserializeOwned;
use std::net::SocketAddr;

use crate::auth::device::PresentedDevice;
use crate::error::Error;
use crate::http::AppState;
use crate::http::cookies::CookieSettings;
use crate::limits::TrustedProxies;
use crate::service::ClientInfo;

/// A JSON body (`Content-Type: application/json`) mapped onto our error codes.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(Error))]
pub struct JsonBody<T>(pub T);

impl From<JsonRejection> for Error {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Error::UnsupportedMediaType("application/json"),
            JsonRejection::JsonDataError(e) => Error::InvalidJson(strip_prefix(e.body_text())),
            JsonRejection::JsonSyntaxError(e) => Error::InvalidJson(strip_prefix(e.body_text())),
            JsonRejection::BytesRejection(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                Error::PayloadTooLarge
            }
            other => Error::BadRequest(other.body_text()),
        }
    }
}

/// axum prefixes serde's message with a sentence of its own; keep only serde's part.
fn strip_prefix(text: String) -> String {
    match text.split_once(": ") {
        Some((_, rest)) => rest.to_owned(),
        None => text,
    }
}

/// The raw request body. Unlike `axum::body::Bytes`, an oversized body is the JSON
/// `payload_too_large` error rather than axum's plain-text one.
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        axum::body::Bytes::from_request(req, state).await.map(RawBody).map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                Error::PayloadTooLarge
            } else {
                Error::BadRequest("could not read the request body".into())
            }
        })
    }
}

/// Query parameters; a malformed query string is the JSON `invalid_request` error
/// rather than axum's plain-text rejection.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
            .map(QueryParams)
            .map_err(|e| Error::BadRequest(format!("invalid query string: {e}")))
    }
}

/// One path parameter; one that does not decode is a 404 (no such resource), in the
/// JSON error shape.
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        match axum::extract::Path::<String>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(PathParam(v)),
            Err(_) => Err(Error::NotFound),
        }
    }
}

/// A body that may be JSON or an HTML form (seed 001 posts forms to `/login`).
pub struct JsonOrForm<T> {
    /// The parsed body.
    pub value: T,
    /// True when it came from a form post (a browser), false for JSON.
    pub from_form: bool,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonOrForm<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let content_type =
            req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
        if content_type.starts_with("application/x-www-form-urlencoded") {
            let RawBody(bytes) = RawBody::from_request(req, state).await?;
            let value = serde_urlencoded::from_bytes(&bytes)
                .map_err(|e| Error::BadRequest(format!("invalid form body: {e}")))?;
            return Ok(JsonOrForm { value, from_form: true });
        }
        if content_type.starts_with("application/json") || content_type.contains("+json") {
            let JsonBody(value) = JsonBody::<T>::from_request(req, state).await?;
            return Ok(JsonOrForm { value, from_form: false });
        }
        Err(Error::UnsupportedMediaType("application/json or application/x-www-form-urlencoded"))
    }
}

/// A caller authenticated by a valid, unrevoked access token.
#[derive(Debug, Clone)]
pub struct Auth {
    /// The verified claims.
    pub claims: AccessClaims,
    /// Header or cookie.
    pub source: TokenSource,
    /// This request's cookie settings, for answers that set or clear cookies.
    pub cookies: CookieSettings,
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Error> {
        let cookies = cookie_settings(&parts.extensions, &parts.headers, app);
        // Only the configured cookie name counts: with `__Host-` names in force, a plain
        // `session` cookie may have been tossed in from a sibling domain.
        let (token, source) = if parts.headers.contains_key(header::AUTHORIZATION) {
            token_from_headers(&parts.headers)?.ok_or(Error::TokenMissing)?
        } else {
            let token = CookieSettings::get(&parts.headers, cookies.session_name()).ok_or(Error::TokenMissing)?;
            (token, TokenSource::Cookie)
        };
        let claims = app.service.authenticate(&token)?;
        if source == TokenSource::Cookie {
            crate::http::csrf::check(parts, app, cookies, &claims.sid)?;
        }
        Ok(Auth { claims, source, cookies })
    }
}

/// The session of the browser's access cookie, when it holds a valid one. A login ends
/// it (see [`crate::service::sessions::Renewing`]); no CSRF token is needed for that, since
/// the login itself passed the origin check and ending a session grants nothing.
pub struct HeldSession(pub Option<AccessClaims>);

impl FromRequestParts<AppState> for HeldSession {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Error> {
        let cookies = cookie_settings(&parts.extensions, &parts.headers, app);
        let held = CookieSettings::get(&parts.headers, cookies.session_name())
            .and_then(|token| app.service.authenticate(&token).ok());
        Ok(HeldSession(held))
    }
}

/// The cookie settings of this request (see [`crate::http::cookies::CookiePolicy`]).
pub struct Cookies(pub CookieSettings);

impl FromRequestParts<AppState> for Cookies {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Error> {
        Ok(Cookies(cookie_settings(&parts.extensions, &parts.headers, app)))
    }
}

/// Resolves the cookie settings of a request from its extensions and headers.
pub fn cookie_settings(extensions: &Extensions, headers: &HeaderMap, app: &AppState) -> CookieSettings {
    app.cookies.resolve(forwarded_https(extensions, headers))
}

/// True when the peer is a trusted proxy and says the browser used HTTPS. Only the last
/// `X-Forwarded-Proto` entry counts: it is the one the nearest (trusted) proxy wrote.
fn forwarded_https(extensions: &Extensions, headers: &HeaderMap) -> bool {
    let (Some(ConnectInfo(peer)), Some(trusted)) =
        (extensions.get::<ConnectInfo<SocketAddr>>(), extensions.get::<std::sync::Arc<TrustedProxies>>())
    else {
        return false;
    };
    if !trusted.trusts(peer.ip()) {
        return false;
    }
    let last = headers.get_all("x-forwarded-proto").iter().next_back().and_then(|v| v.to_str().ok());
    last.and_then(|v| v.rsplit(',').next()).is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

/// Client IP, user agent and device cookie of the request.
pub struct Client(pub ClientInfo);

impl FromRequestParts<AppState> for Client {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Error> {
        // Forwarding headers count only when the peer is a configured trusted proxy.
        let ip = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| {
            let xff = parts.headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
            match parts.extensions.get::<std::sync::Arc<TrustedProxies>>() {
                Some(trusted) => trusted.client_ip(peer.ip(), xff).to_string(),
                None => peer.ip().to_string(),
            }
        });
        let user_agent =
            parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|s| s.chars().take(256).collect());
        // Only the name in force counts, as for the session cookie: with `__Host-` names, a
        // plain `device` cookie may have been planted by a sibling domain.
        let device_name = cookie_settings(&parts.extensions, &parts.headers, app).device_name();
        let device = CookieSettings::get(&parts.headers, device_name).map(PresentedDevice);
        Ok(Client(ClientInfo { ip, user_agent, device }))
    }
}
