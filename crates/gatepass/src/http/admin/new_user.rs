//! `/admin/users/new`: creating an account, through the use case of `POST /api/admin/users`
//! (the same password policy, address check, roles and audit entry). A refused creation
//! shows the form again with the message and what was typed, never the password.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::views::Nav;
use super::{ConsoleAction, ConsoleAdmin, ConsoleForm, ConsolePage, with_notice};
use crate::domain::{Roles, ValidationError};
use crate::http::AppState;
use crate::http::pages::actions::see_other_to;
use crate::http::pages::views::Notice;
use crate::http::pages::{clip, css_href, render};

/// New-account routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(form, create))
}

/// `/admin/users/new`.
#[derive(Template)]
#[template(path = "admin/user_new.html")]
pub struct NewUserPage {
    /// Stylesheet URL.
    pub css_href: &'static str,
    /// Navigation.
    pub nav: Nav,
    /// Never set on this page (the layout's slot).
    pub notice: Option<Notice>,
    /// Why the creation was refused.
    pub error: Option<String>,
    /// The username typed.
    pub username: String,
    /// The address typed.
    pub email: String,
    /// The roles typed.
    pub roles: String,
    /// The shortest password accepted now.
    pub password_min_length: usize,
}

/// The new-account form, as typed.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
struct NewUserForm {
    username: Option<String>,
    /// Optional.
    email: Option<String>,
    password: Option<String>,
    /// Role names separated by commas or spaces (`user` is always given).
    roles: Option<String>,
}

fn page(state: &AppState, nav: Nav, status: StatusCode, typed: &NewUserForm, error: Option<String>) -> Response {
    let v = |o: &Option<String>| clip(o.as_deref().unwrap_or(""));
    let page = NewUserPage {
        css_href: css_href(),
        nav,
        notice: None,
        error,
        username: v(&typed.username),
        email: v(&typed.email),
        roles: v(&typed.roles),
        password_min_length: state.service.settings().password_min_length,
    };
    render(status, &page)
}

/// New account
#[utoipa::path(get, path = "/admin/users/new", tag = "admin console", responses(ConsolePage))]
async fn form(State(state): State<AppState>, admin: ConsoleAdmin) -> Response {
    page(&state, admin.nav(&state, "users"), StatusCode::OK, &NewUserForm::default(), None)
}

/// Create an account (form post)
///
/// As `POST /api/admin/users`; the answer is a 303 to the new account's page, or the form
/// again with the message.
#[utoipa::path(post, path = "/admin/users/new", tag = "admin console",
    request_body(content = NewUserForm, content_type = "application/x-www-form-urlencoded"),
    responses(ConsoleAction))]
async fn create(
    State(state): State<AppState>,
    ConsoleForm { claims, actor, form }: ConsoleForm<NewUserForm>,
) -> Response {
    let text = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    let outcome = async {
        let username = text(&form.username).ok_or_else(|| ValidationError::new("username", "is required"))?;
        // The password exactly as typed: spaces are part of it.
        let password = form.password.as_deref().filter(|p| !p.is_empty());
        let password = password.ok_or_else(|| ValidationError::new("password", "is required"))?;
        let typed_roles = form.roles.clone().unwrap_or_default();
        let names: Vec<&str> = typed_roles.split([',', ' ']).map(str::trim).filter(|n| !n.is_empty()).collect();
        let roles = Roles::parse(&names)?;
        let email = text(&form.email);
        state.service.core().create_user(&actor, &username, password, email.as_deref(), roles).await
    }
    .await;
    match outcome {
        Ok(user) => see_other_to(&with_notice(&format!("/admin/users/{}", user.id.as_str()), "created")),
        Err(e) if e.status().is_client_error() => {
            let nav = ConsoleAdmin { claims }.nav(&state, "users");
            page(&state, nav, e.status(), &form, Some(e.message()))
        }
        Err(e) => e.into_response(),
    }
}
