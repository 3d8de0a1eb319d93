//! `GET /oauth/authorize` and the consent form's `POST /oauth/consent`. The pages are
//! gatepass's own (served with the usual CSP and `X-Frame-Options: DENY`, so they cannot
//! be framed); the consent form is same-origin only and carries the browser session's
//! CSRF token.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::AppState;
use crate::http::extract::{Cookies, QueryParams};
use crate::http::openapi::{FormBadRequest, FormErrors, FormRedirect, ServiceUnavailable};
use crate::http::pages::actions::{SignedInForm, see_other_to};
use crate::http::pages::{PageSession, css_href, login_page_returning, page_session, render};
use crate::service::oauth::authorize::{AuthorizeOutcome, AuthorizeRequest, ScopeLine};

/// The authorization routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(authorize)).routes(routes!(consent))
}

/// The page shown instead of redirecting to an unknown client or unregistered URI.
#[derive(Template)]
#[template(path = "oauth_error.html")]
struct ErrorPage {
    css_href: &'static str,
    message: String,
}

/// The consent page.
#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage {
    css_href: &'static str,
    client_name: String,
    username: String,
    scopes: Vec<ScopeLine>,
    csrf_token: String,
    /// The authorization request, as hidden fields.
    fields: Vec<(String, String)>,
}

async fn respond(
    state: &AppState,
    outcome: AuthorizeOutcome,
    claims: Option<&gatepass_verify::AccessClaims>,
) -> Response {
    match outcome {
        AuthorizeOutcome::ErrorPage(message) => {
            render(StatusCode::BAD_REQUEST, &ErrorPage { css_href: css_href(), message })
        }
        AuthorizeOutcome::Redirect(url) => see_other_to(&url),
        AuthorizeOutcome::Login { return_to, login_hint } => {
            login_page_returning(StatusCode::OK, None, None, login_hint.as_deref().unwrap_or(""), Some(&return_to))
        }
        AuthorizeOutcome::Consent { client_name, scopes, request } => {
            let Some(claims) = claims else { return see_other_to("/") };
            let fields: Vec<(String, String)> =
                serde_urlencoded::from_str(&serde_urlencoded::to_string(&*request).unwrap_or_default())
                    .unwrap_or_default();
            let page = ConsentPage {
                css_href: css_href(),
                client_name,
                username: claims.username.clone(),
                scopes,
                csrf_token: state.csrf.token(&claims.sid),
                fields,
            };
            render(StatusCode::OK, &page)
        }
    }
}

/// Authorization request (OAuth 2.1, OpenID Connect)
///
/// The code flow with PKCE (S256). An unknown client or unregistered `redirect_uri` gets an
/// error page (400), never a redirect; other errors go back to the client (303 with
/// `error`, `state`, `iss`). Without a browser session: the sign-in page, which comes back
/// here; then the consent page unless the client is first-party or was allowed these
/// scopes before; then 303 to the client with `code`, `state` and `iss`.
#[utoipa::path(get, path = "/oauth/authorize", tag = "oauth", params(AuthorizeRequest),
    responses((status = 200, description = "The sign-in or consent page (HTML)", content_type = "text/html"),
        (status = 303, description = "Back to the client with a code or an OAuth error"),
        FormBadRequest, ServiceUnavailable))]
async fn authorize(
    State(state): State<AppState>,
    Cookies(cookies): Cookies,
    headers: HeaderMap,
    QueryParams(req): QueryParams<AuthorizeRequest>,
) -> Response {
    // An expired sign-in counts as none: the sign-in page comes back here afterwards.
    let claims = match page_session(&state, cookies, &headers) {
        PageSession::Active(claims) => Some(claims),
        _ => None,
    };
    match state.service.authorize(&req, claims.as_ref(), None).await {
        Ok(outcome) => respond(&state, outcome, claims.as_ref()).await,
        Err(e) => e.into_response(),
    }
}

/// The consent form: the authorization request's parameters, the CSRF token, and the
/// user's decision.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ConsentForm {
    /// The session's CSRF token.
    #[allow(dead_code)]
    csrf_token: Option<String>,
    /// `allow` or `deny`.
    decision: Option<String>,
    /// The authorization request.
    #[serde(flatten)]
    request: AuthorizeRequest,
}

/// Consent form post
///
/// Same-origin, signed in, with the session's CSRF token. `decision=allow` remembers the
/// consent for this client and scope set and goes on with the request; anything else sends
/// `access_denied` back to the client.
#[utoipa::path(post, path = "/oauth/consent", tag = "oauth",
    request_body(content = ConsentForm, content_type = "application/x-www-form-urlencoded"),
    responses(FormRedirect, FormErrors))]
async fn consent(State(state): State<AppState>, form: SignedInForm<ConsentForm>) -> Response {
    let SignedInForm { claims, form } = form;
    let allow = form.decision.as_deref() == Some("allow");
    match state.service.authorize(&form.request, Some(&claims), Some(allow)).await {
        Ok(outcome) => respond(&state, outcome, Some(&claims)).await,
        Err(e) => e.into_response(),
    }
}
