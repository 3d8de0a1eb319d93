//! The JSON API under `/api`. One file per resource; response shapes shared here.

pub mod accounts;
pub mod admin;
pub mod clients;
pub mod email;
pub mod info;
pub mod introspect;
pub mod mfa;
pub mod mfa_enrolment;
pub mod passkeys;
pub mod revocation_feed;
pub mod sessions;

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;

use crate::domain::User;
use crate::http::cookies::CookieSettings;
use crate::http::{AppState, no_store};
use crate::service::TokenGrant;

/// Routes of the JSON API.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(accounts::router())
        .merge(sessions::router())
        .merge(admin::router())
        .merge(clients::router())
        .merge(email::router())
        .merge(info::router())
        .merge(introspect::router())
        .merge(mfa::router())
        .merge(mfa_enrolment::router())
        .merge(passkeys::router())
        .merge(revocation_feed::router())
}

/// An account as clients see it (no hash, ever).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// UUIDv7.
    pub id: String,
    /// Name.
    pub username: String,
    /// E-mail, if set.
    pub email: Option<String>,
    /// Whether the owner proved they receive mail at `email`.
    pub email_verified: bool,
    /// Roles.
    pub roles: Vec<String>,
    /// RFC 3339 creation time.
    pub created_at: String,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id.as_str().to_owned(),
            username: u.username.as_str().to_owned(),
            email: u.email.as_ref().map(|e| e.as_str().to_owned()),
            email_verified: u.email.is_some() && u.email_verified,
            roles: u.roles.names(),
            created_at: rfc3339(u.created_at),
        }
    }
}

/// Formats epoch seconds as RFC 3339 (UTC).
pub use crate::domain::clock::rfc3339;

/// `token_type` of a grant delivered in the body.
#[derive(Debug, Serialize, ToSchema)]
pub enum BearerType {
    /// The tokens are bearer tokens.
    Bearer,
}

/// `token_type` of a grant delivered in cookies.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CookieType {
    /// The tokens are in `Set-Cookie` headers only.
    Cookie,
}

/// Body of register, login, refresh and password-change responses when the tokens are in
/// the body.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenBody<'a> {
    /// What happened.
    message: &'a str,
    /// The account.
    user: UserView,
    /// The access token (a JWT).
    access_token: &'a str,
    /// Same as `access_token`: seed 003's clients read `token`.
    token: &'a str,
    /// The refresh token (opaque, one use).
    refresh_token: &'a str,
    /// Always `Bearer`.
    token_type: BearerType,
    /// Seconds until the access token expires.
    expires_in: i64,
}

/// The same responses when the tokens went into cookies (`?cookie=true`, forms, cookie
/// sessions): no token in the body.
#[derive(Debug, Serialize, ToSchema)]
pub struct CookieGrantBody<'a> {
    /// What happened.
    message: &'a str,
    /// The account.
    user: UserView,
    /// Always `cookie`.
    token_type: CookieType,
    /// Seconds until the access token expires.
    expires_in: i64,
}

/// A token grant in either delivery.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum GrantBody<'a> {
    /// Tokens in the body.
    Tokens(TokenBody<'a>),
    /// Tokens in cookies.
    Cookies(CookieGrantBody<'a>),
}

/// How a token grant reaches the client.
pub enum Delivery {
    /// Tokens in the JSON body.
    Body,
    /// Tokens only in cookies (browsers, `?cookie=true`), named and flagged for this
    /// request; the body carries none.
    Cookies(CookieSettings),
}

/// Shapes a token grant into a response with `Cache-Control: no-store`.
pub fn token_response(
    state: &AppState,
    status: axum::http::StatusCode,
    message: &str,
    grant: &TokenGrant,
    delivery: Delivery,
) -> Response {
    let (headers, body) = grant_parts(state, message, grant, delivery);
    no_store((status, headers, axum::Json(body)).into_response())
}

/// The cookies to set (none for body delivery) and the body of a token grant.
pub fn grant_parts<'a>(
    state: &AppState,
    message: &'a str,
    grant: &'a TokenGrant,
    delivery: Delivery,
) -> (HeaderMap, GrantBody<'a>) {
    let mut headers = HeaderMap::new();
    let body = match delivery {
        Delivery::Body => GrantBody::Tokens(TokenBody {
            message,
            user: UserView::from(&grant.user),
            access_token: &grant.access.token,
            token: &grant.access.token,
            refresh_token: &grant.refresh_token,
            token_type: BearerType::Bearer,
            expires_in: grant.expires_in,
        }),
        Delivery::Cookies(cookies) => {
            set_grant_cookies(state, cookies, &mut headers, grant);
            GrantBody::Cookies(CookieGrantBody {
                message,
                user: UserView::from(&grant.user),
                token_type: CookieType::Cookie,
                expires_in: grant.expires_in,
            })
        }
    };
    (headers, body)
}

/// Appends the session, refresh and CSRF cookies for `grant`, and the device cookie when
/// the grant follows a password sign-in.
pub fn set_grant_cookies(state: &AppState, cookies: CookieSettings, headers: &mut HeaderMap, grant: &TokenGrant) {
    let settings = state.service.settings();
    cookies.set_session(
        headers,
        &grant.access.token,
        grant.expires_in,
        &grant.refresh_token,
        settings.refresh_token_ttl,
        &state.csrf.token(&grant.access.claims.sid),
    );
    if let Some(device) = &grant.device {
        cookies.set_device(headers, device);
    }
}
