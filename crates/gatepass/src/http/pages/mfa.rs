//! Second factors in the pages: the second login step (`/ui/login/mfa`), enrolment during
//! sign-in when the operator's policy requires a factor (`/ui/login/enrol…`), and the
//! account page's self-service (`/ui/mfa/…`: set up an authenticator app, new recovery
//! codes, remove the app).
//!
//! The challenge of the password step travels in a hidden field of these forms (never in
//! the URL, never a cookie that could act as a token); it is bound to this browser and
//! purpose by the service, and the forms pass the same origin check as the login form.
//! Every refusal shows the form (or, once the challenge is used up, the login form) again
//! with the message, focused.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::actions::{PageForm, SignedInForm, redirect_with_grant, see_other};
use super::views::{EnrolRequiredPage, HomeErrors, LoginMfaPage, MfaSetupPage, Notice, RecoveryCodesPage};
use super::{clip, css_href, home_page, login_page, render};
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::http::api::set_grant_cookies;
use crate::http::extract::{Client, Cookies, HeldSession};
use crate::http::openapi::{FormErrors, FormPasswordErrors, FormRedirect};
use crate::service::mfa::SecondFactor;
use crate::service::sessions::BrowserLogin;
use gatepass_verify::AccessClaims;

/// The form routes of this file.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login_mfa))
        .routes(routes!(login_enrol))
        .routes(routes!(login_enrol_confirm))
        .routes(routes!(setup))
        .routes(routes!(setup_confirm))
        .routes(routes!(regenerate))
        .routes(routes!(remove))
}

/// The one message for every refusal at the second step once the challenge is spent.
const SIGN_IN_AGAIN: &str = "That code was not accepted. Enter your password again.";
/// The message for a refused enrolment code (the challenge stays for a retry).
const CODE_REFUSED: &str = "That code was not accepted. Enter the code the app shows now, or start over.";

/// A code typed into one field: six digits are an app code, anything else a recovery code.
pub fn factor_of(code: &str) -> SecondFactor<'_> {
    if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
        SecondFactor::Totp(code)
    } else {
        SecondFactor::RecoveryCode(code)
    }
}

/// The second-step page for a challenge just handed out, offering the `methods` the
/// account can use. `return_to` (already checked with [`super::valid_return_to`]) is where
/// the sign-in goes on to, an OAuth authorization request.
pub fn second_step_page(
    status: StatusCode,
    challenge: String,
    username: &str,
    methods: &[&str],
    return_to: Option<&str>,
) -> Response {
    let webauthn = methods.contains(&crate::service::mfa::WEBAUTHN);
    let page = LoginMfaPage {
        css_href: css_href(),
        challenge,
        username: clip(username),
        error: None,
        recovery: false,
        webauthn,
        return_to: return_to.map(str::to_owned),
    };
    let page = render(status, &page);
    if webauthn { super::passkeys::allow_script(page) } else { page }
}

/// The page that leads a member of a role that requires a second factor to set one up.
pub fn enrolment_required_page(challenge: String, username: &str) -> Response {
    let page = EnrolRequiredPage { css_href: css_href(), challenge, username: clip(username), error: None };
    render(StatusCode::OK, &page)
}

/// The login form again after a refusal that spent the challenge (or a failed enrolment).
fn sign_in_again(status: StatusCode, username: &str, message: String) -> Response {
    login_page(status, None, Some(message), username)
}

#[derive(Deserialize, ToSchema)]
struct LoginMfaForm {
    /// The challenge of the password step.
    challenge: Option<String>,
    /// The name typed at the password step (to fill the login form again).
    username: Option<String>,
    /// A code from the authenticator app.
    totp: Option<String>,
    /// A recovery code (when no `totp`).
    recovery_code: Option<String>,
    /// Present when the page offered a passkey (to offer it again on the same page).
    passkey: Option<String>,
    /// Where the sign-in goes on to (an OAuth authorization request), if not `/`.
    return_to: Option<String>,
}

/// Second login step (form post)
///
/// Same-origin only; the challenge of the password step with a code from the app or a
/// recovery code. Signs in and redirects to `/`; any refusal shows the login form again
/// (the challenge works once).
#[utoipa::path(post, path = "/ui/login/mfa", operation_id = "ui_login_mfa", tag = "pages",
    request_body(content = LoginMfaForm, content_type = "application/x-www-form-urlencoded"),
    responses(FormRedirect, FormPasswordErrors))]
async fn login_mfa(
    State(state): State<AppState>,
    Cookies(cookies): Cookies,
    Client(client): Client,
    HeldSession(held): HeldSession,
    PageForm { form: f, stale }: PageForm<LoginMfaForm>,
) -> Result<Response> {
    let username = f.username.unwrap_or_default();
    if stale {
        return Ok(login_page(StatusCode::FORBIDDEN, Notice::from_code("page_expired"), None, &username));
    }
    let challenge = f.challenge.unwrap_or_default();
    if challenge.is_empty() {
        return Ok(sign_in_again(StatusCode::BAD_REQUEST, &username, SIGN_IN_AGAIN.into()));
    }
    let return_to = f.return_to.as_deref().filter(|r| super::valid_return_to(r));
    let totp = f.totp.as_deref().map(str::trim).filter(|c| !c.is_empty());
    let recovery = f.recovery_code.as_deref().map(str::trim).filter(|c| !c.is_empty());
    let factor = match (totp, recovery) {
        (Some(code), _) => SecondFactor::Totp(code),
        (None, Some(code)) => SecondFactor::RecoveryCode(code),
        // Nothing typed: the same form again, the challenge untouched.
        (None, None) => {
            let page = LoginMfaPage {
                css_href: css_href(),
                challenge: clip(&challenge),
                username: clip(&username),
                error: Some("Enter the code from your app, or a recovery code.".into()),
                recovery: f.recovery_code.is_some(),
                webauthn: f.passkey.is_some(),
                return_to: return_to.map(str::to_owned),
            };
            let page = render(StatusCode::BAD_REQUEST, &page);
            return Ok(if f.passkey.is_some() { super::passkeys::allow_script(page) } else { page });
        }
    };
    let browser = Some(BrowserLogin { held: held.as_ref() });
    match state.service.login_mfa(&challenge, factor, &client, browser).await {
        Ok(grant) => Ok(redirect_with_grant(&state, cookies, return_to.unwrap_or("/"), &grant)),
        Err(Error::InvalidCredentials | Error::Validation(_)) => {
            Ok(sign_in_again(StatusCode::UNAUTHORIZED, &username, SIGN_IN_AGAIN.into()))
        }
        Err(e) if e.status().is_client_error() => Ok(sign_in_again(e.status(), &username, e.message())),
        Err(e) => Err(e),
    }
}

#[derive(Deserialize, ToSchema)]
struct EnrolForm {
    /// The enrolment challenge of the password step.
    challenge: Option<String>,
    /// The name typed at the password step.
    username: Option<String>,
    /// The code from the app (confirmation only).
    code: Option<String>,
}

/// Start the required authenticator app during sign-in (form post)
///
/// For an account whose role requires a second factor it lacks: a new key, shown once
/// with its QR code, and the form for the confirming code.
#[utoipa::path(post, path = "/ui/login/enrol", operation_id = "ui_login_enrol", tag = "pages",
    request_body(content = EnrolForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The key and the code form", body = String, content_type = "text/html"),
        FormPasswordErrors))]
async fn login_enrol(
    State(state): State<AppState>,
    Client(client): Client,
    PageForm { form: f, stale }: PageForm<EnrolForm>,
) -> Result<Response> {
    let username = f.username.unwrap_or_default();
    if stale {
        return Ok(login_page(StatusCode::FORBIDDEN, Notice::from_code("page_expired"), None, &username));
    }
    let challenge = f.challenge.unwrap_or_default();
    match state.service.enrolment_start(&challenge, &client).await {
        Ok(e) => Ok(render(
            StatusCode::OK,
            &MfaSetupPage {
                css_href: css_href(),
                secret: Some(e.secret),
                qr_svg: Some(e.qr_svg),
                confirm_action: "/ui/login/enrol/confirm",
                restart_action: "/ui/login/enrol",
                challenge: Some(clip(&challenge)),
                username: clip(&username),
                csrf_token: None,
                error: None,
            },
        )),
        Err(Error::InvalidCredentials | Error::Validation(_)) => {
            let msg = "That sign-in could not be finished. Enter your password again.".to_owned();
            Ok(sign_in_again(StatusCode::UNAUTHORIZED, &username, msg))
        }
        Err(e) if e.status().is_client_error() => Ok(sign_in_again(e.status(), &username, e.message())),
        Err(e) => Err(e),
    }
}

/// Confirm the required authenticator app and sign in (form post)
///
/// Activates the app with a code from it, signs in (the session cookies are set) and
/// shows the ten recovery codes once. A wrong code shows the code form again.
#[utoipa::path(post, path = "/ui/login/enrol/confirm", operation_id = "ui_login_enrol_confirm", tag = "pages",
    request_body(content = EnrolForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Signed in: the recovery codes", body = String, content_type = "text/html"),
        FormPasswordErrors))]
async fn login_enrol_confirm(
    State(state): State<AppState>,
    Cookies(cookies): Cookies,
    Client(client): Client,
    HeldSession(held): HeldSession,
    PageForm { form: f, stale }: PageForm<EnrolForm>,
) -> Result<Response> {
    let username = f.username.unwrap_or_default();
    if stale {
        return Ok(login_page(StatusCode::FORBIDDEN, Notice::from_code("page_expired"), None, &username));
    }
    let challenge = f.challenge.unwrap_or_default();
    let code = f.code.unwrap_or_default();
    let again = |status: StatusCode, error: String| {
        let page = MfaSetupPage {
            css_href: css_href(),
            secret: None,
            qr_svg: None,
            confirm_action: "/ui/login/enrol/confirm",
            restart_action: "/ui/login/enrol",
            challenge: Some(clip(&challenge)),
            username: clip(&username),
            csrf_token: None,
            error: Some(error),
        };
        render(status, &page)
    };
    if code.trim().is_empty() {
        return Ok(again(StatusCode::BAD_REQUEST, "Enter the code the app shows.".into()));
    }
    let browser = Some(BrowserLogin { held: held.as_ref() });
    match state.service.enrolment_finish(&challenge, &code, &client, browser).await {
        Ok(done) => {
            let mut headers = HeaderMap::new();
            set_grant_cookies(&state, cookies, &mut headers, &done.grant);
            let page = RecoveryCodesPage {
                css_href: css_href(),
                notice: Some(Notice {
                    kind: "info",
                    role: "status",
                    text: "Authenticator app turned on; you are signed in.",
                }),
                codes: done.recovery_codes,
            };
            Ok((headers, render(StatusCode::OK, &page)).into_response())
        }
        Err(Error::InvalidCredentials | Error::Validation(_)) => {
            Ok(again(StatusCode::UNAUTHORIZED, CODE_REFUSED.into()))
        }
        Err(e) if e.status().is_client_error() => Ok(again(e.status(), e.message())),
        Err(e) => Err(e),
    }
}

#[derive(Deserialize, ToSchema)]
struct MfaForm {
    // Checked by `SignedInForm` before the form is parsed; listed for the description.
    #[serde(default)]
    #[allow(dead_code)]
    csrf_token: String,
    /// The code from the app (confirmation only).
    code: Option<String>,
}

/// The account page again with an error in its second-factor section.
async fn home_with_mfa_error(state: &AppState, claims: &AccessClaims, status: StatusCode, msg: String) -> Response {
    home_page(state, claims, status, None, HomeErrors { mfa: Some(msg), ..HomeErrors::default() }).await
}

/// Set up an authenticator app (form post)
///
/// Signed in: a new key, shown once with its QR code, and the form for the confirming code.
#[utoipa::path(post, path = "/ui/mfa/totp", operation_id = "ui_mfa_totp", tag = "pages",
    request_body(content = MfaForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The key and the code form", body = String, content_type = "text/html"),
        FormErrors))]
async fn setup(
    State(state): State<AppState>,
    Client(client): Client,
    SignedInForm { claims, .. }: SignedInForm<MfaForm>,
) -> Result<Response> {
    match state.service.totp_enrol(&claims, &client).await {
        Ok(e) => Ok(render(
            StatusCode::OK,
            &MfaSetupPage {
                css_href: css_href(),
                secret: Some(e.secret),
                qr_svg: Some(e.qr_svg),
                confirm_action: "/ui/mfa/totp/confirm",
                restart_action: "/ui/mfa/totp",
                challenge: None,
                username: String::new(),
                csrf_token: Some(state.csrf.token(&claims.sid)),
                error: None,
            },
        )),
        Err(e) if e.status().is_client_error() => {
            Ok(home_with_mfa_error(&state, &claims, e.status(), e.message()).await)
        }
        Err(e) => Err(e),
    }
}

/// Confirm the authenticator app (form post)
///
/// Activates the app with a code from it and shows the ten recovery codes once; a wrong
/// code shows the code form again.
#[utoipa::path(post, path = "/ui/mfa/totp/confirm", operation_id = "ui_mfa_totp_confirm", tag = "pages",
    request_body(content = MfaForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The recovery codes", body = String, content_type = "text/html"),
        FormErrors))]
async fn setup_confirm(
    State(state): State<AppState>,
    Client(client): Client,
    SignedInForm { claims, form: f }: SignedInForm<MfaForm>,
) -> Result<Response> {
    let again = |status: StatusCode, error: &str| {
        let page = MfaSetupPage {
            css_href: css_href(),
            secret: None,
            qr_svg: None,
            confirm_action: "/ui/mfa/totp/confirm",
            restart_action: "/ui/mfa/totp",
            challenge: None,
            username: String::new(),
            csrf_token: Some(state.csrf.token(&claims.sid)),
            error: Some(error.to_owned()),
        };
        render(status, &page)
    };
    let code = f.code.unwrap_or_default();
    if code.trim().is_empty() {
        return Ok(again(StatusCode::BAD_REQUEST, "Enter the code the app shows."));
    }
    match state.service.totp_confirm(&claims, &code, &client).await {
        Ok(codes) => {
            let notice = Some(Notice { kind: "info", role: "status", text: "Authenticator app turned on." });
            Ok(render(StatusCode::OK, &RecoveryCodesPage { css_href: css_href(), notice, codes }))
        }
        Err(Error::Validation(_)) => Ok(again(StatusCode::BAD_REQUEST, CODE_REFUSED)),
        Err(e) if e.status().is_client_error() => {
            Ok(home_with_mfa_error(&state, &claims, e.status(), e.message()).await)
        }
        Err(e) => Err(e),
    }
}

/// The message for a change of factors that needs a fresh sign-in with the factor.
const STEP_UP: &str = "Confirm your password and a code from your app first.";

/// New recovery codes (form post)
///
/// Needs a fresh sign-in that included the second factor (the step-up form on the
/// account page); shows the new codes once.
#[utoipa::path(post, path = "/ui/mfa/recovery-codes", operation_id = "ui_mfa_recovery_codes", tag = "pages",
    request_body(content = MfaForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The new recovery codes", body = String, content_type = "text/html"),
        FormPasswordErrors))]
async fn regenerate(
    State(state): State<AppState>,
    Client(client): Client,
    SignedInForm { claims, .. }: SignedInForm<MfaForm>,
) -> Result<Response> {
    match state.service.regenerate_recovery_codes(&claims, &client).await {
        Ok(codes) => {
            let notice =
                Some(Notice { kind: "info", role: "status", text: "New recovery codes; the old ones no longer work." });
            Ok(render(StatusCode::OK, &RecoveryCodesPage { css_href: css_href(), notice, codes }))
        }
        Err(Error::FreshLoginRequired) => {
            Ok(home_with_mfa_error(&state, &claims, StatusCode::UNAUTHORIZED, STEP_UP.into()).await)
        }
        Err(Error::NotFound) => Ok(see_other("/")),
        Err(e) if e.status().is_client_error() => {
            Ok(home_with_mfa_error(&state, &claims, e.status(), e.message()).await)
        }
        Err(e) => Err(e),
    }
}

/// Remove the authenticator app (form post)
///
/// Needs a fresh sign-in that included the second factor; removes the app and the
/// recovery codes.
#[utoipa::path(post, path = "/ui/mfa/totp/remove", operation_id = "ui_mfa_totp_remove", tag = "pages",
    request_body(content = MfaForm, content_type = "application/x-www-form-urlencoded"),
    responses(FormRedirect, FormPasswordErrors))]
async fn remove(
    State(state): State<AppState>,
    Client(client): Client,
    SignedInForm { claims, .. }: SignedInForm<MfaForm>,
) -> Result<Response> {
    match state.service.totp_remove(&claims, &client).await {
        Ok(()) => Ok(see_other("/?notice=mfa_removed")),
        Err(Error::FreshLoginRequired) => {
            Ok(home_with_mfa_error(&state, &claims, StatusCode::UNAUTHORIZED, STEP_UP.into()).await)
        }
        Err(Error::NotFound) => Ok(see_other("/")),
        Err(e) if e.status().is_client_error() => {
            Ok(home_with_mfa_error(&state, &claims, e.status(), e.message()).await)
        }
        Err(e) => Err(e),
    }
}
