//! Seed 000's endpoints made real: `/api/info` (server facts and runtime settings, admin
//! only) and `/api/run` (a small deterministic text analysis for any authenticated
//! caller), each with its root alias.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::admin::actor;
use super::rfc3339;
use crate::domain::ValidationError;
use crate::error::Result;
use crate::http::AppState;
use crate::http::extract::{Client, JsonBody};
use crate::http::guard::{AdminCaller, Caller};
use crate::http::openapi::{AccessErrors, BodyErrors, Forbidden, Unauthorized, with_alias};
use crate::service::now;
use crate::storage::audit::hex;

/// Info and run routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(with_alias(
            routes!(info, patch_info),
            "/info",
            &[("info", "Server facts"), ("patch_info", "Change runtime settings")],
        ))
        .routes(with_alias(routes!(run), "/run", &[("run", "Analyse a text")]))
}

/// A settings change: any of these keys, all-or-nothing. Checked by
/// [`crate::settings::apply_patch`]; unknown keys, wrong types and out-of-range values are
/// a 400 and change nothing.
#[derive(Debug, ToSchema)]
#[schema(min_properties = 1)]
#[allow(dead_code)]
pub struct SettingsPatch {
    /// Access-token lifetime, seconds.
    #[schema(minimum = 1, maximum = 86400)]
    access_token_ttl: Option<i64>,
    /// Refresh-token lifetime, seconds.
    #[schema(minimum = 60, maximum = 31536000)]
    refresh_token_ttl: Option<i64>,
    /// Whether `/api/register` is open.
    registration_open: Option<bool>,
    /// Shortest password accepted.
    #[schema(minimum = 1, maximum = 1024)]
    password_min_length: Option<i64>,
    /// Rate-limit settings to change.
    #[schema(inline)]
    rate_limit: Option<RateLimitPatch>,
}

/// Rate-limit settings to change.
#[derive(Debug, ToSchema)]
#[schema(min_properties = 1)]
#[allow(dead_code)]
pub struct RateLimitPatch {
    /// Rate limiting on or off.
    enabled: Option<bool>,
    /// Per-IP refill.
    #[schema(minimum = 1, maximum = 1000000)]
    ip_per_minute: Option<u64>,
    /// Per-IP burst.
    #[schema(minimum = 1, maximum = 1000000)]
    ip_burst: Option<u64>,
    /// Per-username refill.
    #[schema(minimum = 1, maximum = 1000000)]
    user_per_minute: Option<u64>,
    /// Per-username burst.
    #[schema(minimum = 1, maximum = 1000000)]
    user_burst: Option<u64>,
    /// Failed logins before back-off.
    #[schema(minimum = 1, maximum = 1000)]
    lockout_threshold: Option<u64>,
    /// Longest single back-off, seconds.
    #[schema(minimum = 1, maximum = 86400)]
    lockout_max_secs: Option<u64>,
    /// Failed logins per account per hour.
    #[schema(minimum = 1, maximum = 100)]
    max_failures_per_hour: Option<u64>,
}

/// Account and session counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct Counts {
    /// Accounts.
    users: i64,
    /// Sessions not ended or expired.
    live_sessions: i64,
}

/// Server facts and the runtime settings.
#[derive(Debug, Serialize, ToSchema)]
pub struct Info {
    /// Always `gatepass`.
    name: &'static str,
    /// Server version.
    version: &'static str,
    /// Seconds since start.
    uptime_secs: u64,
    /// `sqlite` or `postgres`.
    storage_backend: &'static str,
    /// Algorithm of the first verification key.
    signing_algorithm: Option<String>,
    /// The `iss` of issued tokens.
    issuer: String,
    /// Longest session lifetime, seconds.
    session_max_age: i64,
    /// Runtime settings (`access_token_ttl`, `refresh_token_ttl`, `registration_open`,
    /// `password_min_length`, `rate_limit`); `PATCH` takes the same keys.
    #[schema(value_type = Object)]
    settings: Map<String, Value>,
    /// Whether the operator token is on.
    operator_token_enabled: bool,
    /// `local` or `redis`.
    rate_limit_backend: &'static str,
    /// Whether Redis answers (`null` without Redis).
    redis_up: Option<bool>,
    /// Counts.
    counts: Counts,
}

async fn info_body(state: &AppState) -> Result<Info> {
    let service = &state.service;
    let storage = service.storage();
    let settings = service.settings();
    let algorithm = service.verifier().keys().first().map(|k| format!("{:?}", k.alg));
    Ok(Info {
        name: "gatepass",
        version: env!("CARGO_PKG_VERSION"),
        uptime_secs: state.started_at.elapsed().as_secs(),
        storage_backend: storage.backend(),
        signing_algorithm: algorithm,
        issuer: service.verifier().config().issuer.clone(),
        session_max_age: service.policy().session_max_age,
        settings: crate::settings::to_json(&settings),
        operator_token_enabled: state.operator.is_some(),
        rate_limit_backend: service.limiter().backend().as_str(),
        redis_up: service.limiter().shared_store_up(),
        counts: Counts {
            users: storage.count_users().await?,
            live_sessions: storage.count_live_sessions(now()).await?,
        },
    })
}

/// Server facts and runtime settings (admin)
#[utoipa::path(
    get,
    path = "/api/info",
    operation_id = "info",
    tag = "admin",
    security(("operator_token" = []), ("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "Server facts and settings", body = Info),
        AccessErrors,
    )
)]
async fn info(State(state): State<AppState>, _: AdminCaller) -> Result<Response> {
    Ok(Json(info_body(&state).await?).into_response())
}

/// Change runtime settings (admin)
///
/// Takes the keys of `settings` as `GET` shows them; all-or-nothing.
#[utoipa::path(
    patch,
    path = "/api/info",
    operation_id = "patch_info",
    tag = "admin",
    security(("operator_token" = []), ("bearer" = []), ("session_cookie" = [])),
    request_body = SettingsPatch,
    responses(
        (status = 200, description = "Changed; the new facts and settings", body = Info),
        AccessErrors, BodyErrors,
    )
)]
async fn patch_info(
    State(state): State<AppState>,
    Client(client): Client,
    AdminCaller(caller): AdminCaller,
    JsonBody(patch): JsonBody<Map<String, Value>>,
) -> Result<Response> {
    // One change at a time: each starts from the settings the previous one left, so the
    // settings in memory always equal what is stored.
    let _one_at_a_time = crate::settings::UPDATES.lock().await;
    let service = &state.service;
    let by = actor(&caller, client);
    let next = crate::admin::update_settings(service.storage().as_ref(), &by, &service.settings(), &patch).await?;
    service.set_settings(next);
    Ok(Json(info_body(&state).await?).into_response())
}

/// Body of `run`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// The text to analyse.
    #[schema(value_type = String, required = true)]
    text: Option<String>,
}

/// Who ran an analysis.
#[derive(Debug, Serialize, ToSchema)]
pub struct RanBy<'a> {
    /// User id; `null` for the operator.
    id: Option<&'a str>,
    /// Username, or `operator`.
    username: &'a str,
}

/// The analysis.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunResult<'a> {
    /// Unicode scalar values.
    characters: usize,
    /// UTF-8 bytes.
    bytes: usize,
    /// Whitespace-separated words.
    words: usize,
    /// Lines.
    lines: usize,
    /// SHA-256 of the text, hex.
    sha256: String,
    /// The caller.
    ran_by: RanBy<'a>,
    /// RFC 3339.
    ran_at: String,
}

/// Analyse a text
///
/// Counts characters, bytes, words and lines and hashes the text; any authenticated
/// caller.
#[utoipa::path(
    post,
    path = "/api/run",
    operation_id = "run",
    tag = "accounts",
    security(("operator_token" = []), ("bearer" = []), ("session_cookie" = [])),
    request_body = RunRequest,
    responses(
        (status = 200, description = "The analysis", body = RunResult),
        BodyErrors, Unauthorized, Forbidden,
    )
)]
async fn run(caller: Caller, JsonBody(req): JsonBody<RunRequest>) -> Result<Response> {
    let text = req.text.ok_or_else(|| ValidationError::new("text", "is required"))?;
    let (id, name) = match &caller {
        Caller::User(a) => (Some(a.claims.sub.as_str()), a.claims.username.as_str()),
        Caller::Operator => (None, caller.name()),
    };
    Ok(Json(RunResult {
        characters: text.chars().count(),
        bytes: text.len(),
        words: text.split_whitespace().count(),
        lines: text.lines().count(),
        sha256: hex(&Sha256::digest(text.as_bytes())),
        ran_by: RanBy { id, username: name },
        ran_at: rfc3339(now()),
    })
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::PartialSchema;

    #[test]
    fn documented_ttl_bounds_are_the_enforced_ones() {
        let schema = serde_json::to_value(SettingsPatch::schema()).unwrap();
        for (key, (lo, hi)) in [
            ("access_token_ttl", crate::settings::ACCESS_TTL_RANGE),
            ("refresh_token_ttl", crate::settings::REFRESH_TTL_RANGE),
        ] {
            assert_eq!(schema["properties"][key]["minimum"], lo, "{key}");
            assert_eq!(schema["properties"][key]["maximum"], hi, "{key}");
        }
    }
}
