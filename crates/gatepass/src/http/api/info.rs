//! Seed 000's endpoints made real: `/api/info` (server facts and runtime settings, admin
//! only) and `/api/run` (a small deterministic text analysis for any authenticated
//! caller), each with its root alias.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::admin::actor;
use super::rfc3339;
use crate::domain::ValidationError;
use crate::error::Result;
use crate::http::AppState;
use crate::http::extract::{Client, JsonBody};
use crate::http::guard::{AdminCaller, Caller};
use crate::service::now;
use crate::storage::audit::hex;

/// Info and run routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/info", get(info).patch(patch_info))
        .route("/info", get(info).patch(patch_info))
        .route("/api/run", post(run))
        .route("/run", post(run))
}

async fn info_body(state: &AppState) -> Result<Value> {
    let service = &state.service;
    let storage = service.storage();
    let settings = service.settings();
    let algorithm = service.verifier().keys().first().map(|k| format!("{:?}", k.alg));
    Ok(json!({
        "name": "gatepass",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": state.started_at.elapsed().as_secs(),
        "storage_backend": storage.backend(),
        "signing_algorithm": algorithm,
        "issuer": service.verifier().config().issuer,
        "session_max_age": service.policy().session_max_age,
        "settings": crate::settings::to_json(&settings),
        "operator_token_enabled": state.operator.is_some(),
        "rate_limit_backend": service.limiter().backend().as_str(),
        "redis_up": service.limiter().shared_store_up(),
        "counts": {
            "users": storage.count_users().await?,
            "live_sessions": storage.count_live_sessions(now()).await?,
        },
    }))
}

async fn info(State(state): State<AppState>, _: AdminCaller) -> Result<Response> {
    Ok(Json(info_body(&state).await?).into_response())
}

/// Takes the keys of `settings` as `GET` shows them; all-or-nothing.
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunRequest {
    text: Option<String>,
}

async fn run(caller: Caller, JsonBody(req): JsonBody<RunRequest>) -> Result<Response> {
    let text = req.text.ok_or_else(|| ValidationError::new("text", "is required"))?;
    let (id, name) = match &caller {
        Caller::User(a) => (Some(a.claims.sub.as_str()), a.claims.username.as_str()),
        Caller::Operator => (None, caller.name()),
    };
    Ok(Json(json!({
        "characters": text.chars().count(),
        "bytes": text.len(),
        "words": text.split_whitespace().count(),
        "lines": text.lines().count(),
        "sha256": hex(&Sha256::digest(text.as_bytes())),
        "ran_by": { "id": id, "username": name },
        "ran_at": rfc3339(now()),
    }))
    .into_response())
}
