//! The reference gatepass's request path is measured against: a bare axum route, and the
//! same route verifying an HS256 token with `jsonwebtoken` and nothing else (no
//! middleware, no revocation check, no metrics, no request log).
//!
//! `scripts/bench` starts it beside gatepass so every run reports both and their ratio:
//! `GET /bare` answers what gatepass's `GET /public` answers, `GET /verify` what its
//! `GET /api/protected` answers.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::get;
use jsonwebtoken::{DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What the verify route needs.
struct Keys {
    key: DecodingKey,
    validation: Validation,
}

/// The claims the verify route reads.
#[derive(Deserialize)]
struct Claims {
    sub: String,
    username: String,
}

/// The verify route's answer, shaped like gatepass's `/api/protected`.
#[derive(Serialize)]
struct Greeting {
    message: String,
    user_id: String,
}

/// Serves the reference routes on `listen` until the process is stopped.
pub async fn serve(listen: &str, secret: &str, issuer: &str) -> anyhow::Result<()> {
    let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_issuer(&[issuer]);
    validation.validate_aud = false;
    let keys = Arc::new(Keys { key: DecodingKey::from_secret(secret.as_bytes()), validation });
    let app = Router::new().route("/bare", get(bare)).route("/verify", get(verify)).with_state(keys);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn bare() -> &'static str {
    "Public Content"
}

async fn verify(State(keys): State<Arc<Keys>>, headers: HeaderMap) -> Result<Json<Greeting>, StatusCode> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(StatusCode::UNAUTHORIZED)?;
    let claims = jsonwebtoken::decode::<Claims>(token, &keys.key, &keys.validation)
        .map_err(|_| StatusCode::UNAUTHORIZED)?
        .claims;
    Ok(Json(Greeting {
        message: format!("Hello {}! This is a protected route.", claims.username),
        user_id: claims.sub,
    }))
}
