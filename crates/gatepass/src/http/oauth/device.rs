//! The device authorization grant (RFC 8628): `POST /oauth/device_authorization` (a
//! client's form post, answered in JSON like the token endpoint) and the verification page
//! `/oauth/device`, where a signed-in user enters the user code and approves or denies.
//! The page is gatepass's own (usual CSP, not framable, never cached); its form posts are
//! same-origin only and carry the browser session's CSRF token.

use askama::Template;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::token::{OAuthErrorBody, client_form};
use crate::error::OAuthError;
use crate::http::extract::{Client, Cookies, QueryParams, RawBody};
use crate::http::openapi::{FormErrors, FormRedirect, FormTooManyRequests, ServiceUnavailable};
use crate::http::pages::actions::SignedInForm;
use crate::http::pages::{PageSession, css_href, login_page_returning, page_session, render};
use crate::http::{AppState, no_store};
use crate::service::oauth::authorize::ScopeLine;
use crate::service::oauth::device::{DeviceAuthorizationRequest, DeviceAuthorizationResponse, DevicePage};

/// The device routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(device_authorization)).routes(routes!(device_page, device_form))
}

/// Device authorization request (RFC 8628)
///
/// A device asks for a device code (to poll `/oauth/token` with, grant type
/// `urn:ietf:params:oauth:grant-type:device_code`) and a user code (which the user enters
/// at `verification_uri`). Client authentication as at the token endpoint; the client
/// needs the device grant. Errors are RFC 6749 JSON; a failed client authentication is 401
/// with `WWW-Authenticate: Basic`.
#[utoipa::path(post, path = "/oauth/device_authorization", tag = "oauth", security((), ("oauth_client" = [])),
    request_body(content = DeviceAuthorizationRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The codes", body = DeviceAuthorizationResponse),
        (status = 400, description = "RFC 6749 error", body = OAuthErrorBody),
        (status = 401, description = "Client authentication failed (`invalid_client`)", body = OAuthErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Basic realm=\"gatepass\"`"))),
        (status = 500, description = "`server_error`", body = OAuthErrorBody),
        (status = 503, description = "`temporarily_unavailable`", body = OAuthErrorBody)))]
async fn device_authorization(
    headers: HeaderMap,
    State(state): State<AppState>,
    RawBody(body): RawBody,
) -> Result<Response, OAuthError> {
    let (req, creds) = client_form::<DeviceAuthorizationRequest>(&headers, &body)?;
    let codes = state.service.device_authorization(req, creds).await?;
    Ok(no_store(Json(codes).into_response()))
}

/// The code entry form.
#[derive(Template)]
#[template(path = "device.html")]
struct EntryPage {
    css_href: &'static str,
    username: String,
    user_code: String,
    error: Option<String>,
    csrf_token: String,
}

/// The confirmation: the client and the scopes.
#[derive(Template)]
#[template(path = "device_confirm.html")]
struct ConfirmPage {
    css_href: &'static str,
    username: String,
    client_name: String,
    scopes: Vec<ScopeLine>,
    user_code: String,
    csrf_token: String,
}

/// The decision recorded.
#[derive(Template)]
#[template(path = "device_done.html")]
struct DonePage {
    css_href: &'static str,
    approved: bool,
    client_name: String,
}

/// The error page of the authorization endpoint, for a provider that is off.
#[derive(Template)]
#[template(path = "oauth_error.html")]
struct ErrorPage {
    css_href: &'static str,
    message: String,
}

fn unavailable_page(message: String) -> Response {
    render(StatusCode::NOT_FOUND, &ErrorPage { css_href: css_href(), message })
}

fn respond(state: &AppState, claims: &gatepass_verify::AccessClaims, page: DevicePage) -> Response {
    let csrf_token = state.csrf.token(&claims.sid);
    let username = claims.username.clone();
    match page {
        DevicePage::Form { user_code, error, throttled } => {
            let status = match (&error, throttled) {
                (_, true) => StatusCode::TOO_MANY_REQUESTS,
                (Some(_), false) => StatusCode::BAD_REQUEST,
                (None, false) => StatusCode::OK,
            };
            render(status, &EntryPage { css_href: css_href(), username, user_code, error, csrf_token })
        }
        DevicePage::Confirm { client_name, scopes, user_code } => render(
            StatusCode::OK,
            &ConfirmPage { css_href: css_href(), username, client_name, scopes, user_code, csrf_token },
        ),
        DevicePage::Unavailable(message) => unavailable_page(message),
        DevicePage::Done { approved, client_name } => {
            render(StatusCode::OK, &DonePage { css_href: css_href(), approved, client_name })
        }
    }
}

/// The verification page's query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeviceQuery {
    /// Prefills the code (`verification_uri_complete`).
    user_code: Option<String>,
}

/// Device verification page (RFC 8628)
///
/// Without a browser session: the sign-in page (second factor included), which comes back
/// here. Signed in: the form for the user code, prefilled from `user_code`.
#[utoipa::path(get, path = "/oauth/device", tag = "oauth", params(DeviceQuery),
    responses((status = 200, description = "The sign-in page or the code form (HTML)", content_type = "text/html"),
        (status = 404, description = "The OAuth provider is off (HTML error page)", content_type = "text/html"),
        FormErrors, ServiceUnavailable))]
async fn device_page(
    State(state): State<AppState>,
    Cookies(cookies): Cookies,
    headers: HeaderMap,
    QueryParams(q): QueryParams<DeviceQuery>,
) -> Response {
    let page = state.service.device_form(q.user_code.as_deref());
    if let DevicePage::Unavailable(message) = page {
        return unavailable_page(message);
    }
    match page_session(&state, cookies, &headers) {
        PageSession::Active(claims) => respond(&state, &claims, page),
        // An expired sign-in counts as none: the sign-in page comes back here afterwards.
        _ => {
            let DevicePage::Form { user_code, .. } = &page else { return respond_login("/oauth/device") };
            if user_code.is_empty() {
                return respond_login("/oauth/device");
            }
            let query = serde_urlencoded::to_string([("user_code", user_code.as_str())]).unwrap_or_default();
            respond_login(&format!("/oauth/device?{query}"))
        }
    }
}

fn respond_login(return_to: &str) -> Response {
    login_page_returning(StatusCode::OK, None, None, "", Some(return_to))
}

/// The verification page's form: the code, and on the confirmation the decision.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DeviceForm {
    /// The session's CSRF token.
    #[allow(dead_code)]
    csrf_token: Option<String>,
    /// The user code as typed (`XXXX-XXXX`; case and dash do not matter).
    user_code: Option<String>,
    /// Absent: look the code up and ask for confirmation; `allow` or `deny`: decide.
    decision: Option<String>,
}

/// Device verification form post
///
/// Same-origin, signed in, with the session's CSRF token; throttled. Without `decision`,
/// a valid code shows the client and its scopes to confirm; with `decision=allow` or
/// `deny`, the code is decided (once). A wrong, expired or used code shows the form again
/// (400) and changes nothing.
#[utoipa::path(post, path = "/oauth/device", tag = "oauth",
    request_body(content = DeviceForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The confirmation or the result (HTML)", content_type = "text/html"),
        (status = 404, description = "The OAuth provider is off (HTML error page)", content_type = "text/html"),
        FormRedirect, FormErrors, FormTooManyRequests))]
async fn device_form(
    State(state): State<AppState>,
    Client(client): Client,
    form: SignedInForm<DeviceForm>,
) -> Response {
    let SignedInForm { claims, form } = form;
    let code = form.user_code.unwrap_or_default();
    let outcome = match form.decision.as_deref() {
        None => state.service.device_lookup(&claims, &code, &client).await,
        Some(d) => state.service.device_decide(&claims, &code, d == "allow", &client).await,
    };
    match outcome {
        Ok(page) => respond(&state, &claims, page),
        Err(e) => e.into_response(),
    }
}
