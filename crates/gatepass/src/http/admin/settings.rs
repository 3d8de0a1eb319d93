//! `/admin/settings`: the runtime settings as a form, changed through the one use case
//! `PATCH /api/info` calls (same checks, all-or-nothing, audited), and the static
//! configuration read-only (never a secret).

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::views::{SettingField, SettingsPage, notice};
use super::{ConsoleAction, ConsoleAdmin, ConsoleForm, ConsolePage};
use crate::http::AppState;
use crate::http::pages::actions::see_other;
use crate::http::pages::{clip, css_href, render};
use crate::service::RuntimeSettings;

/// Settings routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show, save))
}

/// How a field's text becomes a JSON value of the patch.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Number,
    Flag,
    List,
}

/// Every runtime setting: form name, label, help, kind.
const FIELDS: [(&str, &str, &str, Kind); 14] = [
    (
        "access_token_ttl",
        "Access-token lifetime (seconds)",
        "1 to 86400. Shorter limits how long a stolen token works.",
        Kind::Number,
    ),
    (
        "refresh_token_ttl",
        "Refresh-token lifetime (seconds)",
        "60 to 31536000: how long a sign-in lasts without use.",
        Kind::Number,
    ),
    ("registration_open", "Registration is open", "Whether anyone may create an account.", Kind::Flag),
    ("password_min_length", "Shortest password (bytes)", "1 to 1024; 15 is recommended.", Kind::Number),
    (
        "require_verified_email",
        "Require a verified address to sign in",
        "Accounts with an unverified address cannot sign in.",
        Kind::Flag,
    ),
    (
        "mfa_required_roles",
        "Roles that must use a second factor",
        "Role names separated by commas; empty for none.",
        Kind::List,
    ),
    ("rate_limit.enabled", "Rate limiting", "Throttle credential endpoints per address and per account.", Kind::Flag),
    ("rate_limit.ip_per_minute", "Attempts per address per minute", "1 to 1000000.", Kind::Number),
    ("rate_limit.ip_burst", "Burst per address", "1 to 1000000.", Kind::Number),
    ("rate_limit.user_per_minute", "Attempts per account per minute", "1 to 1000000.", Kind::Number),
    ("rate_limit.user_burst", "Burst per account", "1 to 1000000.", Kind::Number),
    (
        "rate_limit.lockout_threshold",
        "Failures before back-off",
        "Failed sign-ins before the account's back-off starts.",
        Kind::Number,
    ),
    ("rate_limit.lockout_max_secs", "Longest back-off (seconds)", "The back-off doubles up to this.", Kind::Number),
    ("rate_limit.max_failures_per_hour", "Failures per account per hour", "At most 100.", Kind::Number),
];

/// The current value of setting `name`, as the form shows it.
fn current(s: &RuntimeSettings, name: &str) -> String {
    let json = serde_json::to_value(s).unwrap_or(Value::Null);
    let value = match name.split_once('.') {
        Some((outer, inner)) => &json[outer][inner],
        None => &json[name],
    };
    match value {
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn page(
    state: &AppState,
    admin: &ConsoleAdmin,
    uri: Option<&Uri>,
    typed: Option<(&[(String, String)], String)>,
) -> SettingsPage {
    let settings = state.service.settings();
    let fields = FIELDS
        .iter()
        .map(|(name, label, help, kind)| {
            let value = match &typed {
                Some((pairs, _)) => last(pairs, name).map(clip).unwrap_or_else(|| current(&settings, name)),
                None => current(&settings, name),
            };
            let kind = match kind {
                Kind::Number => "number",
                Kind::Flag => "checkbox",
                Kind::List => "text",
            };
            SettingField { name, label, help, value, kind }
        })
        .collect();
    let service = &state.service;
    let config = vec![
        ("Issuer", service.verifier().config().issuer.clone()),
        ("Signing algorithm", service.verifier().keys().first().map(|k| format!("{:?}", k.alg)).unwrap_or_default()),
        ("Storage", service.core().backend().to_owned()),
        ("Longest session (seconds)", service.policy().session_max_age.to_string()),
        ("Fresh sign-in window (seconds)", service.policy().fresh_auth_max_age.to_string()),
        ("Rate-limit backend", service.limiter().backend().as_str().to_owned()),
        ("Operator token", if state.operator.is_some() { "on" } else { "off" }.to_owned()),
        ("Version", env!("CARGO_PKG_VERSION").to_owned()),
    ];
    SettingsPage {
        css_href: css_href(),
        nav: admin.nav(state, "settings"),
        notice: uri.and_then(|u| notice(u.query())),
        error: typed.map(|(_, e)| e),
        fields,
        config,
    }
}

/// The last value of form field `name` (a checked box comes after its hidden `false`).
fn last<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The settings
#[utoipa::path(get, path = "/admin/settings", tag = "admin console", responses(ConsolePage))]
async fn show(State(state): State<AppState>, admin: ConsoleAdmin, uri: Uri) -> Response {
    render(StatusCode::OK, &page(&state, &admin, Some(&uri), None))
}

/// The `PATCH /api/info` body for the fields that differ from the settings in force.
fn patch_of(pairs: &[(String, String)], settings: &RuntimeSettings) -> Map<String, Value> {
    let mut body = Map::new();
    let mut rate = Map::new();
    for (name, _, _, kind) in FIELDS {
        let Some(raw) = last(pairs, name) else { continue };
        let raw = raw.trim();
        if raw == current(settings, name) {
            continue;
        }
        // What does not parse goes as typed: the patch's own checks then name the problem.
        let value = match kind {
            Kind::Number => raw.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::from(raw)),
            Kind::Flag => Value::Bool(raw == "true"),
            Kind::List => {
                Value::Array(raw.split([',', ' ']).map(str::trim).filter(|r| !r.is_empty()).map(Value::from).collect())
            }
        };
        match name.split_once('.') {
            Some((_, inner)) => rate.insert(inner.to_owned(), value),
            None => body.insert(name.to_owned(), value),
        };
    }
    if !rate.is_empty() {
        body.insert("rate_limit".into(), Value::Object(rate));
    }
    body
}

/// Save the settings (form post)
///
/// The changed fields go through `PATCH /api/info`'s checks, all-or-nothing; a bad value
/// shows the form again with the message and changes nothing.
#[utoipa::path(post, path = "/admin/settings", tag = "admin console",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "The form's fields, named as the keys of `PATCH /api/info` (`rate_limit.*` dotted)"),
    responses(ConsoleAction))]
async fn save(
    State(state): State<AppState>,
    ConsoleForm { claims, actor, form }: ConsoleForm<Vec<(String, String)>>,
) -> Response {
    let body = patch_of(&form, &state.service.settings());
    if body.is_empty() {
        return see_other("/admin/settings?notice=saved");
    }
    match state.service.core().update_settings(&actor, body).await {
        Ok(_) => see_other("/admin/settings?notice=saved"),
        Err(e) if e.status().is_client_error() => {
            let admin = ConsoleAdmin { claims };
            let message = format!("Nothing was changed: {}", e.message());
            render(e.status(), &page(&state, &admin, None, Some((&form, message))))
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changed_fields_are_sent() {
        let s = RuntimeSettings::default();
        let pairs: Vec<(String, String)> = [
            ("access_token_ttl", "900"),
            ("password_min_length", "12"),
            ("registration_open", "false"),
            ("registration_open", "true"),
            ("rate_limit.ip_burst", "many"),
            ("mfa_required_roles", "admin, ops"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let body = Value::Object(patch_of(&pairs, &s));
        assert_eq!(
            body,
            serde_json::json!({ "password_min_length": 12, "mfa_required_roles": ["admin", "ops"],
                "rate_limit": { "ip_burst": "many" } })
        );
    }
}
