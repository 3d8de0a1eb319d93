//! A separate service that protects its routes with gatepass access tokens, verified with
//! the public keys gatepass publishes (no shared secret).
//!
//! ```text
//! gatepass serve                      # with GATEPASS_JWT_ALGORITHM=EdDSA (or ES256/RS256)
//! cargo run -p gatepass-verify --example resource_server -- \
//!     --jwks http://127.0.0.1:8080/.well-known/jwks.json [--listen 127.0.0.1:8081] \
//!     [--issuer gatepass] [--audience my-api] \
//!     [--revocations http://127.0.0.1:8080/api/revocations/stream --credential ID:SECRET \
//!      [--max-staleness 60s] [--fail-open]]
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8081/me
//! curl http://127.0.0.1:8081/health
//! ```
//!
//! With `--revocations`, the service follows gatepass's revocation feed (with an
//! introspection client's credential): a logout is refused here within milliseconds while
//! every request is still verified locally, and `/health` shows the feed's state (503 while
//! the feed is stale and tokens are refused).
//!
//! The key set is fetched at start, cached, refreshed every five minutes and refetched
//! when a token names an unknown `kid` (at most every 30 s), so key rotation in gatepass
//! needs no restart here.

use axum::extract::FromRef;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use gatepass_verify::extract::{Admin, Authenticated, RequireRole};
use gatepass_verify::{RemoteJwksOptions, RevocationFeed, RevocationFeedOptions, Verifier, VerifierConfig};
use serde_json::{Value, json};
use std::sync::Arc;

#[derive(Clone, FromRef)]
struct AppState {
    verifier: Arc<Verifier>,
    feed: Option<RevocationFeed>,
}

async fn index() -> Json<Value> {
    Json(json!({ "service": "resource_server", "routes": ["/me", "/admin", "/health"] }))
}

async fn health(axum::extract::State(feed): axum::extract::State<Option<RevocationFeed>>) -> axum::response::Response {
    match feed {
        None => Json(json!({ "status": "ok", "revocation_feed": null })).into_response(),
        Some(feed) => {
            let health = feed.health();
            let status = if health.accepting_tokens { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            (status, Json(json!({ "status": if health.accepting_tokens { "ok" } else { "refusing_tokens" }, "revocation_feed": health })))
                .into_response()
        }
    }
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
    revocations: Option<String>,
    credential: Option<(String, String)>,
    max_staleness: std::time::Duration,
    fail_open: bool,
}

/// `60s`, `2m`, `500ms` or plain seconds.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("invalid duration {s:?} (e.g. 60s, 2m, 500ms)");
    let (n, unit) = s.find(|c: char| !c.is_ascii_digit()).map_or((s, ""), |i| s.split_at(i));
    let n: u64 = n.parse().map_err(|_| bad())?;
    match unit {
        "ms" => Ok(std::time::Duration::from_millis(n)),
        "" | "s" => Ok(std::time::Duration::from_secs(n)),
        "m" => Ok(std::time::Duration::from_secs(n * 60)),
        _ => Err(bad()),
    }
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        jwks: String::new(),
        listen: "127.0.0.1:8081".into(),
        issuer: "gatepass".into(),
        audience: None,
        revocations: None,
        credential: None,
        max_staleness: std::time::Duration::from_secs(60),
        fail_open: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--jwks" => options.jwks = value()?,
            "--listen" => options.listen = value()?,
            "--issuer" => options.issuer = value()?,
            "--audience" => options.audience = Some(value()?),
            "--revocations" => options.revocations = Some(value()?),
            "--credential" => {
                let v = value()?;
                let (id, secret) = v.split_once(':').ok_or("--credential takes ID:SECRET")?;
                options.credential = Some((id.to_owned(), secret.to_owned()));
            }
            "--max-staleness" => options.max_staleness = parse_duration(&value()?)?,
            "--fail-open" => options.fail_open = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if options.jwks.is_empty() {
        return Err("--jwks URL is required".into());
    }
    if options.revocations.is_some() != options.credential.is_some() {
        return Err("--revocations and --credential go together".into());
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!(
                "{e}\nusage: resource_server --jwks URL [--listen ADDR] [--issuer ISS] [--audience AUD] \
                 [--revocations URL --credential ID:SECRET [--max-staleness 60s] [--fail-open]]"
            );
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
    let feed = match (&options.revocations, options.credential) {
        (Some(url), Some((id, secret))) => {
            let mut feed_options = RevocationFeedOptions::new(url.clone(), id, secret);
            feed_options.max_staleness = options.max_staleness;
            feed_options.fail_open = options.fail_open;
            let feed = match RevocationFeed::start(feed_options) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("error: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            };
            if !feed.wait_current(std::time::Duration::from_secs(10)).await {
                eprintln!("warning: the revocation feed is not current yet; tokens are refused until it is");
            }
            Some(feed)
        }
        _ => None,
    };
    let verifier = match &feed {
        Some(feed) => verifier.with_revocation_feed(feed.clone()),
        None => verifier,
    };
    let app = Router::new()
        .route("/", get(index))
        .route("/me", get(me))
        .route("/admin", get(admin))
        .route("/health", get(health))
        .with_state(AppState { verifier: Arc::new(verifier), feed });
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
