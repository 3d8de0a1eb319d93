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

use super::rfc3339;
use crate::domain::ValidationError;
use crate::domain::clock::now;
use crate::error::Result;
use crate::http::AppState;
use crate::http::extract::JsonBody;
use crate::http::guard::{AdminActor, AdminCaller, Caller};
use crate::http::openapi::{AccessErrors, BodyErrors, Forbidden, Unauthorized, with_alias};
use crate::service::settings::{RuntimeSettings, SettingsPatch};
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

/// Account and session counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct Counts {
    /// Accounts.
    users: i64,
    /// Sessions not ended or expired.
    live_sessions: i64,
    /// Mails waiting in the outbox to be delivered (failed ones not counted).
    outbox: i64,
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
    /// Runtime settings; `PATCH` takes the same keys.
    settings: RuntimeSettings,
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
    let algorithm = service.verifier().keys().first().map(|k| format!("{:?}", k.alg));
    Ok(Info {
        name: "gatepass",
        version: env!("CARGO_PKG_VERSION"),
        uptime_secs: state.started_at.elapsed().as_secs(),
        storage_backend: service.core().backend(),
        signing_algorithm: algorithm,
        issuer: service.verifier().config().issuer.clone(),
        session_max_age: service.policy().session_max_age,
        settings: service.settings(),
        operator_token_enabled: state.operator.is_some(),
        rate_limit_backend: service.limiter().backend().as_str(),
        redis_up: service.limiter().shared_store_up(),
        counts: Counts {
            users: service.core().count_users().await?,
            live_sessions: service.core().count_live_sessions().await?,
            outbox: service.core().outbox_depth().await?,
        },
    })
}

/// Server facts and runtime settings (admin)
#[utoipa::path(get, path = "/api/info", operation_id = "info", tag = "admin",
    security(("operator_token" = []), ("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, description = "Server facts and settings", body = Info), AccessErrors))]
async fn info(State(state): State<AppState>, _: AdminCaller) -> Result<Response> {
    Ok(Json(info_body(&state).await?).into_response())
}

/// Change runtime settings (admin)
///
/// Takes the keys of `settings` as `GET` shows them; all-or-nothing.
#[utoipa::path(patch, path = "/api/info", operation_id = "patch_info", tag = "admin",
    security(("operator_token" = []), ("bearer" = []), ("session_cookie" = [])), request_body = SettingsPatch,
    responses((status = 200, description = "Changed; the new facts and settings", body = Info), AccessErrors,
        BodyErrors))]
async fn patch_info(
    State(state): State<AppState>,
    AdminActor(by): AdminActor,
    JsonBody(patch): JsonBody<Map<String, Value>>,
) -> Result<Response> {
    state.service.core().update_settings(&by, patch).await?;
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
#[utoipa::path(post, path = "/api/run", operation_id = "run", tag = "accounts",
    security(("operator_token" = []), ("bearer" = []), ("session_cookie" = [])), request_body = RunRequest,
    responses((status = 200, description = "The analysis", body = RunResult), BodyErrors, Unauthorized, Forbidden))]
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
            ("access_token_ttl", crate::service::settings::ACCESS_TTL_RANGE),
            ("refresh_token_ttl", crate::service::settings::REFRESH_TTL_RANGE),
            ("password_min_length", crate::service::settings::PASSWORD_MIN_LENGTH_RANGE),
        ] {
            assert_eq!(schema["properties"][key]["minimum"], lo, "{key}");
            assert_eq!(schema["properties"][key]["maximum"], hi, "{key}");
        }
    }
}
