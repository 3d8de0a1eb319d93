//! A separate service that protects its routes with gatepass access tokens, verified with
//! the public keys gatepass publishes (no shared secret).
//!
//! ```text
//! gatepass serve                      # with GATEPASS_JWT_ALGORITHM=EdDSA (or ES256/RS256)
//! cargo run -p gatepass-verify --example resource_server -- \
//!     --jwks http://127.0.0.1:8080/.well-known/jwks.json [--listen 127.0.0.1:8081] \
//!     [--issuer gatepass] [--audience my-api]
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8081/me
//! ```
//!
//! The key set is fetched at start, cached, refreshed every five minutes and refetched
//! when a token names an unknown `kid` (at most every 30 s), so key rotation in gatepass
//! needs no restart here.

use axum::extract::FromRef;
use axum::routing::get;
use axum::{Json, Router};
use gatepass_verify::extract::{Admin, Authenticated, RequireRole};
use gatepass_verify::{RemoteJwksOptions, Verifier, VerifierConfig};
use serde_json::{Value, json};
use std::sync::Arc;

#[derive(Clone, FromRef)]
struct AppState {
    verifier: Arc<Verifier>,
}

async fn index() -> Json<Value> {
    Json(json!({ "service": "resource_server", "routes": ["/me", "/admin"] }))
}

async fn me(Authenticated(claims): Authenticated) -> Json<Value> {
    Json(json!({ "sub": claims.sub, "username": claims.username, "roles": claims.roles }))
}

async fn admin(guard: RequireRole<Admin>) -> Json<Value> {
    Json(json!({ "message": format!("hello, admin {}", guard.claims().username) }))
}

struct Options {
    jwks: String,
    listen: String,
    issuer: String,
    audience: Option<String>,
}

fn parse_args() -> Result<Options, String> {
    let mut options =
        Options { jwks: String::new(), listen: "127.0.0.1:8081".into(), issuer: "gatepass".into(), audience: None };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--jwks" => options.jwks = value()?,
            "--listen" => options.listen = value()?,
            "--issuer" => options.issuer = value()?,
            "--audience" => options.audience = Some(value()?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if options.jwks.is_empty() {
        return Err("--jwks URL is required".into());
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}\nusage: resource_server --jwks URL [--listen ADDR] [--issuer ISS] [--audience AUD]");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut config = VerifierConfig::new(options.issuer);
    config.audience = options.audience;
    let verifier = match Verifier::from_jwks_url(&options.jwks, config, RemoteJwksOptions::default()).await {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let app = Router::new()
        .route("/", get(index))
        .route("/me", get(me))
        .route("/admin", get(admin))
        .with_state(AppState { verifier: Arc::new(verifier) });
    let listener = match tokio::net::TcpListener::bind(&options.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", options.listen);
            return std::process::ExitCode::FAILURE;
        }
    };
    eprintln!("resource_server listening on http://{}", options.listen);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
