//! `/admin/apps`: OAuth clients, through the use cases of `/api/admin/clients`: create
//! (the secret shown once, on the answer page, never in a URL), edit redirect URIs,
//! scopes and grants, rotate the secret, lift a self-registered app's limits, delete (after
//! a confirmation and a fresh sign-in); the list says who may register apps themselves.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::users::{TokenForm, confirm_page, destructive};
use super::views::{AppItem, AppPage, AppsPage, Nav, notice};
use super::{ConsoleAction, ConsoleAdmin, ConsoleForm, ConsolePage, with_notice};
use crate::http::AppState;
use crate::http::extract::PathParam;
use crate::http::pages::actions::see_other_to;
use crate::http::pages::{clip, css_href, render};
use crate::service::oauth::Registration;
use crate::service::oauth::clients::{ClientMetadata, ClientView};

/// App routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update))
        .routes(routes!(rotate_secret))
        .routes(routes!(promote))
        .routes(routes!(delete_confirm, delete))
}

fn app_item(c: &ClientView) -> AppItem {
    AppItem {
        client_id: c.client_id.clone(),
        name: c.client_name.clone(),
        redirect_uris: c.redirect_uris.join("\n"),
        post_logout_redirect_uris: c.post_logout_redirect_uris.join("\n"),
        resource: c.resource.clone().unwrap_or_default(),
        resources: c.resources.join("\n"),
        scope: c.scope.clone(),
        grant_types: c.grant_types.join(" "),
        public: c.token_endpoint_auth_method == "none",
        first_party: c.first_party,
        limited: c.limited,
    }
}

/// The app form, as typed.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
struct AppForm {
    client_name: Option<String>,
    /// One a line.
    redirect_uris: Option<String>,
    /// One a line; empty clears them.
    post_logout_redirect_uris: Option<String>,
    /// The default audience of its access tokens.
    resource: Option<String>,
    /// One a line; empty clears them.
    resources: Option<String>,
    /// Space-separated.
    scope: Option<String>,
    /// Space-separated.
    grant_types: Option<String>,
    /// `true` when checked.
    first_party: Option<String>,
    /// `true` for a public client (creation only).
    public: Option<String>,
}

impl AppForm {
    /// The client metadata the API would take; empty fields are left out.
    fn metadata(&self, creating: bool) -> ClientMetadata {
        let text = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
        let list = |v: &Option<String>| text(v).map(|s| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>());
        ClientMetadata {
            client_name: text(&self.client_name),
            redirect_uris: list(&self.redirect_uris),
            // The form always shows these lists: an empty field means none.
            post_logout_redirect_uris: Some(list(&self.post_logout_redirect_uris).unwrap_or_default()),
            resource: text(&self.resource),
            resources: Some(list(&self.resources).unwrap_or_default()),
            grant_types: list(&self.grant_types),
            scope: text(&self.scope),
            first_party: Some(self.first_party.as_deref() == Some("true")),
            token_endpoint_auth_method: (creating && self.public.as_deref() == Some("true")).then(|| "none".into()),
            ..ClientMetadata::default()
        }
    }

    /// What was typed, to show the form again.
    fn draft(&self, client_id: &str) -> AppItem {
        let v = |o: &Option<String>| clip(o.as_deref().unwrap_or(""));
        AppItem {
            client_id: client_id.to_owned(),
            name: v(&self.client_name),
            redirect_uris: self.redirect_uris.as_deref().unwrap_or("").chars().take(4096).collect(),
            post_logout_redirect_uris: self
                .post_logout_redirect_uris
                .as_deref()
                .unwrap_or("")
                .chars()
                .take(4096)
                .collect(),
            resource: v(&self.resource),
            resources: self.resources.as_deref().unwrap_or("").chars().take(4096).collect(),
            scope: v(&self.scope),
            grant_types: v(&self.grant_types),
            public: self.public.as_deref() == Some("true"),
            first_party: self.first_party.as_deref() == Some("true"),
            limited: false,
        }
    }
}

async fn apps_page(
    state: &AppState,
    nav: Nav,
    uri: Option<&Uri>,
    status: StatusCode,
    draft: AppItem,
    error: Option<String>,
) -> Response {
    match state.service.core().clients().await {
        Ok(clients) => {
            let page = AppsPage {
                css_href: css_href(),
                nav,
                notice: uri.and_then(|u| notice(u.query())),
                error,
                apps: clients.iter().map(app_item).collect(),
                draft,
                provider_on: state.service.oauth().issuer().is_some(),
                registration: match state.service.oauth().registration() {
                    Registration::Off => "off: only administrators add apps",
                    Registration::Open => "open: anyone may register an app, which stays limited until promoted",
                    Registration::Token(_) => {
                        "with the initial access token: its holders may register apps, which stay limited until promoted"
                    }
                },
            };
            render(status, &page)
        }
        Err(e) => e.into_response(),
    }
}

fn app_page(
    nav: Nav,
    uri: Option<&Uri>,
    status: StatusCode,
    app: AppItem,
    secret: Option<String>,
    error: Option<String>,
) -> Response {
    let page = AppPage { css_href: css_href(), nav, notice: uri.and_then(|u| notice(u.query())), error, app, secret };
    render(status, &page)
}

/// Apps
#[utoipa::path(get, path = "/admin/apps", tag = "admin console", responses(ConsolePage))]
async fn list(State(state): State<AppState>, admin: ConsoleAdmin, uri: Uri) -> Response {
    let draft = AppItem {
        scope: "openid profile email".into(),
        grant_types: "authorization_code refresh_token".into(),
        ..AppItem::default()
    };
    apps_page(&state, admin.nav(&state, "apps"), Some(&uri), StatusCode::OK, draft, None).await
}

/// Create an app (form post)
///
/// As `POST /api/admin/clients`. The answer is the app's page with its secret, shown this
/// once; a refused registration shows the form again with the message.
#[utoipa::path(post, path = "/admin/apps", tag = "admin console",
    request_body(content = AppForm, content_type = "application/x-www-form-urlencoded"),
    responses(ConsoleAction, (status = 201, description = "The new app with its secret", body = String, content_type = "text/html")))]
async fn create(State(state): State<AppState>, ConsoleForm { claims, actor, form }: ConsoleForm<AppForm>) -> Response {
    let nav = ConsoleAdmin { claims }.nav(&state, "apps");
    match state.service.core().register_client(form.metadata(true), &actor).await {
        Ok(mut view) => {
            let secret = view.client_secret.take();
            app_page(nav, None, StatusCode::CREATED, app_item(&view), secret, None)
        }
        Err(e) if e.status().is_client_error() => {
            apps_page(&state, nav, None, e.status(), form.draft(""), Some(e.message())).await
        }
        Err(e) => e.into_response(),
    }
}

/// One app
#[utoipa::path(get, path = "/admin/apps/{client_id}", tag = "admin console",
    params(("client_id" = String, Path, description = "Client id")), responses(ConsolePage))]
async fn show(State(state): State<AppState>, admin: ConsoleAdmin, PathParam(id): PathParam, uri: Uri) -> Response {
    match state.service.core().client(&id).await {
        Ok(view) => app_page(admin.nav(&state, "apps"), Some(&uri), StatusCode::OK, app_item(&view), None, None),
        Err(e) => e.into_response(),
    }
}

/// Change an app (form post)
///
/// As `PATCH /api/admin/clients/{client_id}`; a refused change shows the form again with
/// the message and changes nothing.
#[utoipa::path(post, path = "/admin/apps/{client_id}", tag = "admin console",
    params(("client_id" = String, Path, description = "Client id")),
    request_body(content = AppForm, content_type = "application/x-www-form-urlencoded"),
    responses(ConsoleAction))]
async fn update(
    State(state): State<AppState>,
    PathParam(id): PathParam,
    ConsoleForm { claims, actor, form }: ConsoleForm<AppForm>,
) -> Response {
    match state.service.core().update_client(&id, form.metadata(false), &actor).await {
        Ok(_) => see_other_to(&with_notice(&format!("/admin/apps/{id}"), "app_saved")),
        Err(e) if e.status().is_client_error() && e.status() != StatusCode::NOT_FOUND => {
            let nav = ConsoleAdmin { claims }.nav(&state, "apps");
            let mut draft = form.draft(&id);
            // The client's type is not on the edit form: keep showing the stored one.
            draft.public = state.service.core().client(&id).await.is_ok_and(|c| c.token_endpoint_auth_method == "none");
            app_page(nav, None, e.status(), draft, None, Some(e.message()))
        }
        Err(e) => e.into_response(),
    }
}

/// Lift a self-registered app's limits (form post)
///
/// As `PATCH /api/admin/clients/{client_id}` with `"limited": false`: the app may then be
/// given what any other app may (a secret, further grants, first party).
#[utoipa::path(post, path = "/admin/apps/{client_id}/promote", tag = "admin console",
    params(("client_id" = String, Path, description = "Client id")),
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(ConsoleAction))]
async fn promote(
    State(state): State<AppState>,
    PathParam(id): PathParam,
    ConsoleForm { actor, .. }: ConsoleForm<TokenForm>,
) -> Response {
    let meta = ClientMetadata { limited: Some(false), ..ClientMetadata::default() };
    match state.service.core().update_client(&id, meta, &actor).await {
        Ok(_) => see_other_to(&with_notice(&format!("/admin/apps/{id}"), "app_promoted")),
        Err(e) => e.into_response(),
    }
}

/// Rotate an app's secret (form post)
///
/// As `POST /api/admin/clients/{client_id}/rotate-secret`: the old secret stops working;
/// the answer shows the new one, this once.
#[utoipa::path(post, path = "/admin/apps/{client_id}/rotate-secret", tag = "admin console",
    params(("client_id" = String, Path, description = "Client id")),
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(ConsoleAction))]
async fn rotate_secret(
    State(state): State<AppState>,
    PathParam(id): PathParam,
    ConsoleForm { claims, actor, .. }: ConsoleForm<TokenForm>,
) -> Response {
    match state.service.core().rotate_client_secret(&id, &actor).await {
        Ok(mut view) => {
            let secret = view.client_secret.take();
            app_page(ConsoleAdmin { claims }.nav(&state, "apps"), None, StatusCode::OK, app_item(&view), secret, None)
        }
        Err(e) => e.into_response(),
    }
}

/// Confirm deleting an app
#[utoipa::path(get, path = "/admin/apps/{client_id}/delete", tag = "admin console",
    params(("client_id" = String, Path, description = "Client id")), responses(ConsolePage))]
async fn delete_confirm(
    State(state): State<AppState>,
    admin: ConsoleAdmin,
    PathParam(id): PathParam,
    uri: Uri,
) -> Response {
    let view = match state.service.core().client(&id).await {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let text = (
        format!("Delete {}?", view.client_name),
        "The app is deleted and every sign-in it holds ends at once: its access and refresh tokens are refused."
            .to_owned(),
        "Delete the app",
    );
    confirm_page(&state, &admin, "apps", &uri, text, format!("/admin/apps/{id}")).await
}

/// Delete an app (form post)
///
/// As `DELETE /api/admin/clients/{client_id}`; needs a fresh sign-in.
#[utoipa::path(post, path = "/admin/apps/{client_id}/delete", tag = "admin console",
    params(("client_id" = String, Path, description = "Client id")),
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(ConsoleAction))]
async fn delete(
    State(state): State<AppState>,
    PathParam(id): PathParam,
    ConsoleForm { claims, actor, .. }: ConsoleForm<TokenForm>,
) -> Response {
    let core = state.service.core();
    destructive(&state, &claims, &format!("/admin/apps/{id}/delete"), async || {
        core.delete_client(&id, &actor).await?;
        Ok("/admin/apps?notice=app_deleted".to_owned())
    })
    .await
}
