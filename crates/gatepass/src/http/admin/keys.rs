//! `/admin/keys`: signing keys with their states and dates, rotation, and the emergency
//! revocation (after a confirmation and a fresh sign-in).

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::overview::key_item;
use super::users::{TokenForm, confirm_page, destructive};
use super::views::{KeysPage, notice};
use super::{ConsoleAction, ConsoleAdmin, ConsoleForm, ConsolePage};
use crate::http::AppState;
use crate::http::extract::PathParam;
use crate::http::pages::actions::see_other;
use crate::http::pages::{css_href, render};

/// Key routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(rotate)).routes(routes!(revoke_confirm, revoke))
}

/// Signing keys
#[utoipa::path(get, path = "/admin/keys", tag = "admin console", responses(ConsolePage))]
async fn list(State(state): State<AppState>, admin: ConsoleAdmin, uri: Uri) -> Response {
    keys_page(&state, &admin, StatusCode::OK, uri.query(), None).await
}

async fn keys_page(
    state: &AppState,
    admin: &ConsoleAdmin,
    status: StatusCode,
    query: Option<&str>,
    error: Option<String>,
) -> Response {
    match state.service.key_statuses().await {
        Ok(keys) => {
            let page = KeysPage {
                css_href: css_href(),
                nav: admin.nav(state, "keys"),
                notice: notice(query),
                error,
                keys: keys.iter().map(key_item).collect(),
            };
            render(status, &page)
        }
        Err(e) => e.into_response(),
    }
}

/// Rotate the signing key (form post)
///
/// As `POST /api/admin/keys/rotate`: a new key that signs after the activation delay.
#[utoipa::path(post, path = "/admin/keys/rotate", tag = "admin console",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(ConsoleAction))]
async fn rotate(State(state): State<AppState>, ConsoleForm { claims, actor, .. }: ConsoleForm<TokenForm>) -> Response {
    match state.service.rotate_keys(&actor).await {
        Ok(_) => see_other("/admin/keys?notice=rotated"),
        Err(e) if e.status().is_client_error() => {
            keys_page(&state, &ConsoleAdmin { claims }, e.status(), None, Some(e.message())).await
        }
        Err(e) => e.into_response(),
    }
}

/// Confirm revoking a signing key
#[utoipa::path(get, path = "/admin/keys/{kid}/revoke", tag = "admin console",
    params(("kid" = String, Path, description = "Key id")), responses(ConsolePage))]
async fn revoke_confirm(
    State(state): State<AppState>,
    admin: ConsoleAdmin,
    PathParam(kid): PathParam,
    uri: Uri,
) -> Response {
    let kid = crate::http::pages::clip(&kid);
    let text = (
        format!("Revoke key {kid}?"),
        "Every token this key signed is refused at once, on every instance. If it is the key that signs, a \
         replacement signs from now on. Refresh tokens keep working."
            .to_owned(),
        "Revoke the key",
    );
    confirm_page(&state, &admin, "keys", &uri, text, "/admin/keys".to_owned()).await
}

/// Revoke a signing key (form post)
///
/// As `POST /api/admin/keys/{kid}/revoke`; needs a fresh sign-in.
#[utoipa::path(post, path = "/admin/keys/{kid}/revoke", tag = "admin console",
    params(("kid" = String, Path, description = "Key id")),
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(ConsoleAction))]
async fn revoke(
    State(state): State<AppState>,
    PathParam(kid): PathParam,
    ConsoleForm { claims, actor, .. }: ConsoleForm<TokenForm>,
) -> Response {
    let service = &state.service;
    let confirm = format!("/admin/keys/{}/revoke", urlencoding(&kid));
    destructive(&state, &claims, &confirm, async || {
        service.revoke_key(&actor, &kid).await?;
        Ok("/admin/keys?notice=revoked".to_owned())
    })
    .await
}

/// `s` as one URL path segment.
fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
