//! Layers at the outer edge that depend on abuse-resistance settings: CORS for listed
//! origins only, the request timeout, and the trusted-proxy list the `Client` extractor
//! reads. Kept apart from [`super::router`] so the router stays configuration-free.

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;
use tower_http::cors::{AllowCredentials, AllowOrigin, CorsLayer};

use crate::error::Error;
use crate::limits::{AbuseArgs, TrustedProxies};

/// Wraps `router` with the CORS layer (only when origins are configured), the request
/// timeout and the trusted-proxy list.
pub fn apply(router: Router, args: &AbuseArgs) -> Router {
    let timeout = args.request_timeout;
    let router = router
        .layer(middleware::from_fn(move |req: Request, next: Next| request_timeout(timeout, req, next)))
        .layer(axum::Extension(Arc::new(TrustedProxies(args.trusted_proxies.clone()))));
    match cors(&args.cors_origins) {
        Some(layer) => router.layer(layer),
        None => router,
    }
}

async fn request_timeout(limit: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => Error::RequestTimeout.into_response(),
    }
}

/// The CORS policy: exact origins from the allow-list are echoed with `Vary: Origin` and
/// may send credentials; any other origin (including `null`) gets no CORS headers, so the
/// browser withholds the response. Never `*`.
pub fn cors(origins: &[String]) -> Option<CorsLayer> {
    let listed: Vec<HeaderValue> =
        origins.iter().filter(|o| o.as_str() != "null").filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    if listed.is_empty() {
        return None;
    }
    let allowed: Arc<[HeaderValue]> = listed.clone().into();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(listed))
            .allow_credentials(AllowCredentials::predicate(move |origin, _| allowed.contains(origin)))
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, HeaderName::from_static("x-csrf-token")])
            .max_age(Duration::from_secs(600)),
    )
}
