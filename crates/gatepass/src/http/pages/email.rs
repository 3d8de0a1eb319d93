//! The e-mail pages: "Forgot your password?", the reset page a mailed link opens, the
//! landing page of verification links, and the account page's forms to resend a
//! verification and change the address. GET pages never use a token (mail scanners fetch
//! links); the forms post it. Every page sends `Referrer-Policy: no-referrer` (set for
//! all responses), so a token in the address bar never leaks to another site.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::actions::{SameOriginForm, SignedInForm, see_other};
use super::views::{ForgotPage, HomeErrors, ResetPage, VerifyPage};
use super::{css_href, home_page, render};
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::http::extract::Client;
use crate::http::openapi::{FormErrors, FormRedirect, FormTooManyRequests};

/// The routes of this file.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(forgot_page))
        .routes(routes!(forgot))
        .routes(routes!(reset_page))
        .routes(routes!(reset))
        .routes(routes!(verify_page))
        .routes(routes!(verify))
        .routes(routes!(resend))
        .routes(routes!(change))
}

/// The `token` query parameter (bounded; anything else is ignored).
fn token_of(uri: &Uri) -> String {
    #[derive(Deserialize)]
    struct Q {
        token: Option<String>,
    }
    serde_urlencoded::from_str::<Q>(uri.query().unwrap_or(""))
        .ok()
        .and_then(|q| q.token)
        .map(|t| t.chars().take(64).collect())
        .unwrap_or_default()
}

fn forgot_form(status: StatusCode, sent: bool, login: &str, error: Option<String>) -> Response {
    render(status, &ForgotPage { css_href: css_href(), sent, login: super::clip(login), error })
}

/// "Forgot your password?"
#[utoipa::path(get, path = "/forgot", tag = "pages",
    params(("sent" = Option<String>, Query, description = "Show the link-sent notice")),
    responses((status = 200, description = "The form", body = String, content_type = "text/html")))]
async fn forgot_page(uri: Uri) -> Response {
    let sent = uri.query().is_some_and(|q| q.split('&').any(|p| p == "sent=1"));
    forgot_form(StatusCode::OK, sent, "", None)
}

#[derive(Deserialize, ToSchema)]
struct ForgotForm {
    login: Option<String>,
}

/// Form post of `/forgot` → 303 `/forgot?sent=1`, whatever the account.
#[utoipa::path(post, path = "/ui/forgot", tag = "pages",
    request_body(content = ForgotForm, content_type = "application/x-www-form-urlencoded"),
    responses(FormRedirect, FormErrors, FormTooManyRequests))]
async fn forgot(
    State(state): State<AppState>,
    Client(client): Client,
    SameOriginForm(f): SameOriginForm<ForgotForm>,
) -> Result<Response> {
    let login = f.login.unwrap_or_default();
    if login.trim().is_empty() {
        return Ok(forgot_form(
            StatusCode::BAD_REQUEST,
            false,
            "",
            Some("Enter your username or e-mail address.".into()),
        ));
    }
    match state.service.forgot_password(&login, &client).await {
        Ok(()) => Ok(see_other("/forgot?sent=1")),
        Err(e) if e.status().is_client_error() => Ok(forgot_form(e.status(), false, &login, Some(e.message()))),
        Err(e) => Err(e),
    }
}

/// The reset page a mailed link opens.
#[utoipa::path(get, path = "/reset", tag = "pages",
    params(("token" = String, Query, description = "The token from the mailed link")),
    responses((status = 200, description = "The new-password form", body = String, content_type = "text/html")))]
async fn reset_page(State(state): State<AppState>, uri: Uri) -> Response {
    let password_min_length = state.service.settings().password_min_length;
    render(StatusCode::OK, &ResetPage { css_href: css_href(), token: token_of(&uri), error: None, password_min_length })
}

#[derive(Deserialize, ToSchema)]
struct ResetForm {
    token: Option<String>,
    new_password: Option<String>,
}

/// Form post of `/reset` → 303 to the login page.
#[utoipa::path(post, path = "/ui/reset", tag = "pages",
    request_body(content = ResetForm, content_type = "application/x-www-form-urlencoded"),
    responses(FormRedirect, FormErrors, FormTooManyRequests))]
async fn reset(
    State(state): State<AppState>,
    Client(client): Client,
    SameOriginForm(f): SameOriginForm<ResetForm>,
) -> Result<Response> {
    let token: String = f.token.unwrap_or_default().chars().take(64).collect();
    let password_min_length = state.service.settings().password_min_length;
    let page = |status, error: String| {
        let page = ResetPage { css_href: css_href(), token: token.clone(), error: Some(error), password_min_length };
        render(status, &page)
    };
    let new = f.new_password.unwrap_or_default();
    if new.is_empty() {
        return Ok(page(StatusCode::BAD_REQUEST, "Choose a new password.".into()));
    }
    match state.service.reset_password(&token, &new, &client).await {
        Ok(()) => Ok(see_other("/?notice=password_reset")),
        Err(Error::Validation(v)) => Ok(page(StatusCode::BAD_REQUEST, format!("New password {}.", v.message))),
        Err(e) if e.status().is_client_error() => Ok(page(e.status(), e.message())),
        Err(e) => Err(e),
    }
}

/// The landing page of a verification or address-change link.
#[utoipa::path(get, path = "/verify", tag = "pages",
    params(("token" = String, Query, description = "The token from the mailed link")),
    responses((status = 200, description = "A button that confirms the address", body = String,
        content_type = "text/html")))]
async fn verify_page(uri: Uri) -> Response {
    render(StatusCode::OK, &VerifyPage { css_href: css_href(), token: token_of(&uri), error: None })
}

#[derive(Deserialize, ToSchema)]
struct TokenForm {
    token: Option<String>,
}

/// Form post of `/verify` → 303 `/` with a notice.
#[utoipa::path(post, path = "/ui/verify", tag = "pages",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(FormRedirect, FormErrors, FormTooManyRequests))]
async fn verify(
    State(state): State<AppState>,
    Client(client): Client,
    SameOriginForm(f): SameOriginForm<TokenForm>,
) -> Result<Response> {
    let token: String = f.token.unwrap_or_default().chars().take(64).collect();
    let outcome = async {
        state.service.throttle(crate::auth::ratelimit::Action::Mail, &client, None).await?;
        state.service.core().confirm_email(&token, &client).await
    };
    match outcome.await {
        Ok(_) => Ok(see_other("/?notice=email_verified")),
        Err(e) if e.status().is_client_error() => {
            Ok(render(e.status(), &VerifyPage { css_href: css_href(), token, error: Some(e.message()) }))
        }
        Err(e) => Err(e),
    }
}

#[derive(Deserialize, ToSchema)]
struct CsrfOnly {
    // Checked by `SignedInForm` before the form is parsed; listed for the description.
    #[serde(default)]
    #[allow(dead_code)]
    csrf_token: String,
}

/// Account page: send the verification link again.
#[utoipa::path(post, path = "/ui/email/resend", tag = "pages",
    request_body(content = CsrfOnly, content_type = "application/x-www-form-urlencoded"),
    responses(FormRedirect, FormErrors, FormTooManyRequests))]
async fn resend(
    State(state): State<AppState>,
    Client(client): Client,
    SignedInForm { claims, .. }: SignedInForm<CsrfOnly>,
) -> Result<Response> {
    match state.service.resend_own_verification(&claims, &client).await {
        Ok(()) => Ok(see_other("/?notice=verification_sent")),
        Err(e) if e.status().is_client_error() => {
            let errors = HomeErrors { email_form: Some(e.message()), ..HomeErrors::default() };
            Ok(home_page(&state, &claims, e.status(), None, errors).await)
        }
        Err(e) => Err(e),
    }
}

#[derive(Deserialize, ToSchema)]
struct ChangeForm {
    // Checked by `SignedInForm` before the form is parsed; listed for the description.
    #[serde(default)]
    #[allow(dead_code)]
    csrf_token: String,
    email: Option<String>,
}

/// Account page: change the address (a confirmation link goes to the new one).
#[utoipa::path(post, path = "/ui/email/change", tag = "pages",
    request_body(content = ChangeForm, content_type = "application/x-www-form-urlencoded"),
    responses(FormRedirect, FormErrors, FormTooManyRequests))]
async fn change(
    State(state): State<AppState>,
    Client(client): Client,
    SignedInForm { claims, form }: SignedInForm<ChangeForm>,
) -> Result<Response> {
    let email = form.email.unwrap_or_default();
    let refused = |msg: String| HomeErrors { email_form: Some(msg), new_email: email.clone(), ..HomeErrors::default() };
    match state.service.change_email(&claims, &email, &client).await {
        Ok(()) => Ok(see_other("/?notice=email_change_sent")),
        Err(Error::FreshLoginRequired) => {
            let errors = refused("For your safety, log out and in again before changing your address.".into());
            Ok(home_page(&state, &claims, StatusCode::UNAUTHORIZED, None, errors).await)
        }
        Err(Error::Validation(v)) => {
            Ok(home_page(&state, &claims, StatusCode::BAD_REQUEST, None, refused(format!("E-mail {}.", v.message)))
                .await)
        }
        Err(e) if e.status().is_client_error() => {
            Ok(home_page(&state, &claims, e.status(), None, refused(e.message())).await)
        }
        Err(e) => Err(e),
    }
}
