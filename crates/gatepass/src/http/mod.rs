//! The HTTP edge: the router and its layers in one place. Handlers live in `api/` (JSON
//! API, one file per resource), `pages/` (HTML and its form posts), `admin/` (the admin console), `compat.rs` (the seed
//! tutorials' routes), `keys.rs` (JWKS, discovery, key admin), `oauth/` (the OAuth / OpenID Connect provider),
//! `metrics.rs` and `ops.rs`.

pub mod admin;
pub mod api;
pub(crate) mod compat;
pub mod cookies;
pub(crate) mod csrf;
pub(crate) mod docs;
pub(crate) mod edge;
pub(crate) mod extract;
pub(crate) mod guard;
pub(crate) mod keys;
pub(crate) mod metrics;
pub mod oauth;
pub(crate) mod openapi;
pub(crate) mod ops;
pub mod pages;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Request, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Instant;
use tower_http::LatencyUnit;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::csrf::CsrfTokens;
use crate::auth::operator::OperatorTokens;
use crate::error::Error;
use crate::service::AuthService;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// Accounts, sessions, tokens.
    pub service: Arc<AuthService>,
    /// CSRF tokens for cookie-authenticated requests.
    pub csrf: Arc<CsrfTokens>,
    /// When cookies are `Secure` (resolved per request by the `Cookies` extractor).
    pub cookies: cookies::CookiePolicy,
    /// Other origins (the CORS allow-list) whose pages may use cookie mode of the JSON API.
    pub allowed_origins: Arc<[String]>,
    /// Process start, for uptime.
    pub started_at: Instant,
    /// Who may read `/metrics`.
    pub metrics: MetricsAccess,
    /// This process's operator tokens; `None` when disabled.
    pub operator: Option<Arc<OperatorTokens>>,
    /// Services allowed to introspect tokens.
    pub introspection: Arc<crate::auth::clients::IntrospectionClients>,
    /// Interval of the revocation feed's heartbeats.
    pub feed_heartbeat: std::time::Duration,
    /// This process among the instances sharing the database.
    pub instance: Arc<crate::service::instances::ThisInstance>,
}

/// Who may read `/metrics`: the counters reveal traffic, login failures and session
/// counts, so they are open only on a loopback listener.
#[derive(Clone)]
pub enum MetricsAccess {
    /// Callers presenting this bearer secret (`GATEPASS_METRICS_TOKEN`).
    Token(Arc<str>),
    /// Anyone who reaches the listener: it is on loopback and no token is configured.
    Open,
    /// Nobody: the listener is reachable from other machines and no token is configured.
    Refused,
}

impl MetricsAccess {
    /// The access rule for a server listening on `listen` with an optional token.
    pub fn new(token: Option<&str>, listen: std::net::SocketAddr) -> Self {
        match token {
            Some(t) => Self::Token(Arc::from(t)),
            None if listen.ip().is_loopback() => Self::Open,
            None => Self::Refused,
        }
    }
}

impl axum::extract::FromRef<AppState> for Arc<gatepass_verify::Verifier> {
    fn from_ref(state: &AppState) -> Self {
        state.service.verifier().clone()
    }
}

/// Every route, each registered with its OpenAPI description (see `http::openapi`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(api::router())
        .merge(compat::router())
        .merge(pages::router())
        .merge(admin::router())
        .merge(ops::router())
        .merge(keys::router())
        .merge(oauth::router())
        .routes(routes!(metrics::render))
        .routes(routes!(openapi::openapi_json))
}

/// Builds the complete router with all layers.
pub fn router(state: AppState) -> Router {
    let x_request_id = HeaderName::from_static("x-request-id");
    let (routes, _) = routes().split_for_parts();
    let routes = routes
        .merge(docs::router())
        .fallback(|| async { Error::NotFound })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .route_layer(metrics::TrackLayer::default())
        .with_state(state)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    with_security_headers(routes)
        .layer(CatchPanicLayer::custom(|_| Error::Internal("handler panicked".into()).into_response()))
        .layer(SetSensitiveHeadersLayer::new([header::AUTHORIZATION, header::COOKIE, header::SET_COOKIE]))
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        // One line per request at `info`: method, path (never the query string, which may
        // carry a token), status, latency and request id.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                })
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO).latency_unit(LatencyUnit::Millis)),
        )
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestId))
}

/// Request ids: random UUIDs (v4 layout) from the thread's generator, so that a request
/// costs no system call for its id (tower-http's `MakeRequestUuid` asks the kernel each
/// time).
#[derive(Clone, Copy, Default)]
pub struct MakeRequestId;

impl tower_http::request_id::MakeRequestId for MakeRequestId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let uuid = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let id = uuid.hyphenated().encode_lower(&mut buf);
        HeaderValue::from_str(id).ok().map(RequestId::new)
    }
}

/// Content-Security-Policy of every response. The one script allowed is the
/// session-resume auto-submit, by hash ([`pages::RESUME_SCRIPT`]).
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
                       script-src 'sha256-320um6M3pL9/ahVZkLPsYPkFoniSamBjygIOgV7jkYk='; form-action 'self'; \
                       frame-ancestors 'none'; base-uri 'none'";

/// Headers every response carries (`Cache-Control` only where a handler set none).
fn with_security_headers(router: Router) -> Router {
    router
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        // Routes with a policy of their own (the API explorer) keep it.
        .layer(SetResponseHeaderLayer::if_not_present(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)))
        .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::overriding(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
}

/// Adds `Cache-Control: no-store` explicitly (token responses).
pub fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
