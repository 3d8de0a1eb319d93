//! Prometheus metrics: the recorder, the request-tracking middleware and `GET /metrics`.
//!
//! Counters elsewhere use the `metrics` macros directly (`gatepass_logins_total`,
//! `gatepass_tokens_issued_total`, `gatepass_tokens_verified_total`,
//! `gatepass_tokens_rejected_total{reason}`, `gatepass_rate_limited_total`, and the outbox's
//! `gatepass_mail_{queued,sent,retried,failed}_total{kind}`); gauges that
//! are cheap to compute on demand (hash queue, live sessions) are set at scrape time.

use axum::extract::{MatchedPath, State};
use axum::http::{HeaderMap, HeaderValue, Method, Request, header};
use axum::response::{IntoResponse, Response};
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;
use subtle::ConstantTimeEq;
use tower::{Layer, Service};

use crate::auth::ratelimit::Backend;
use crate::error::Error;
use crate::http::{AppState, MetricsAccess};

/// The process-wide recorder (installed once, shared by every server in the process).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        const BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
        let builder = PrometheusBuilder::new().set_buckets(BUCKETS).unwrap_or_else(|_| PrometheusBuilder::new());
        match builder.install_recorder() {
            Ok(h) => h,
            // Another recorder is already installed (an embedding application's): keep a
            // private one so /metrics still answers.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        }
    })
}

/// Counts requests by route template, method and status, with a latency histogram
/// (`gatepass_http_requests_total`, `gatepass_http_request_duration_seconds`).
///
/// A tower layer rather than a `from_fn` middleware, and with the metric handles kept per
/// label set: on the hot path this costs a map lookup under a read lock, where building
/// the labels and looking them up in the recorder cost allocations on every request.
#[derive(Clone, Default)]
pub struct TrackLayer {
    handles: Arc<Handles>,
}

impl<S> Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Track { inner, handles: self.handles.clone() }
    }
}

/// The service [`TrackLayer`] wraps a route in.
#[derive(Clone)]
pub struct Track<S> {
    inner: S,
    handles: Arc<Handles>,
}

impl<S, B> Service<Request<B>> for Track<S>
where
    S: Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = TrackFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let route = req.extensions().get::<MatchedPath>().cloned();
        let method = method_label(req.method());
        TrackFuture {
            inner: self.inner.call(req),
            route,
            method,
            handles: self.handles.clone(),
            started: Instant::now(),
        }
    }
}

pin_project_lite::pin_project! {
    /// A tracked request's response future.
    pub struct TrackFuture<F> {
        #[pin]
        inner: F,
        route: Option<MatchedPath>,
        method: &'static str,
        handles: Arc<Handles>,
        started: Instant,
    }
}

impl<F, E> Future for TrackFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        if let Ok(response) = &result {
            let route = this.route.as_ref().map_or("unmatched", MatchedPath::as_str);
            let (count, latency) = this.handles.get(route, this.method, response.status().as_u16());
            count.increment(1);
            latency.record(this.started.elapsed().as_secs_f64());
        }
        Poll::Ready(result)
    }
}

/// The method as a label: the standard ones by name, anything else as `other`, so that a
/// client cannot grow the label set.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// One route's handles, by method and status.
type RouteHandles = Vec<(&'static str, u16, Counter, Histogram)>;

/// Metric handles by route, then by method and status.
#[derive(Default)]
struct Handles {
    by_route: RwLock<HashMap<Box<str>, RouteHandles>>,
}

impl Handles {
    fn get(&self, route: &str, method: &'static str, status: u16) -> (Counter, Histogram) {
        let find = |map: &HashMap<Box<str>, RouteHandles>| {
            map.get(route)?
                .iter()
                .find(|(m, s, ..)| *m == method && *s == status)
                .map(|(.., c, h)| (c.clone(), h.clone()))
        };
        if let Some(found) = find(&self.by_route.read().unwrap_or_else(PoisonError::into_inner)) {
            return found;
        }
        let mut map = self.by_route.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = find(&map) {
            return found;
        }
        let labels = [("route", route.to_owned()), ("method", method.to_owned()), ("status", status.to_string())];
        let count = metrics::counter!("gatepass_http_requests_total", &labels);
        let latency = metrics::histogram!("gatepass_http_request_duration_seconds", &labels);
        map.entry(route.into()).or_default().push((method, status, count.clone(), latency.clone()));
        (count, latency)
    }
}

/// Prometheus metrics
///
/// Text exposition format. When `GATEPASS_METRICS_TOKEN` is set, it must be presented as
/// `Authorization: Bearer <token>`. Without a token, metrics are served only when the
/// server listens on loopback; otherwise this answers 404.
#[utoipa::path(get, path = "/metrics", tag = "ops", security((), ("metrics_token" = [])),
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", body = String,
            content_type = "text/plain; version=0.0.4; charset=utf-8"),
        crate::http::openapi::Unauthorized, crate::http::openapi::NotFound))]
pub async fn render(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, Error> {
    let expected = match &state.metrics {
        MetricsAccess::Open => None,
        MetricsAccess::Token(expected) => Some(expected),
        // Not 401: no credential would help, and the start-up warning says why.
        MetricsAccess::Refused => return Err(Error::NotFound),
    };
    if let Some(expected) = expected {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
            return Err(if presented.is_empty() {
                Error::TokenMissing
            } else {
                Error::Token(gatepass_verify::VerifyError::Invalid("wrong metrics token"))
            });
        }
    }
    let service = &state.service;
    let core = service.core();
    metrics::gauge!("gatepass_password_hash_queue").set(core.hasher().queue_len() as f64);
    metrics::gauge!("gatepass_revoked_sessions_in_memory").set(core.revocations().len() as f64);
    if let Ok(n) = core.count_live_sessions().await {
        metrics::gauge!("gatepass_live_sessions").set(n as f64);
    }
    if let Ok(n) = core.outbox_depth().await {
        metrics::gauge!("gatepass_mail_outbox_depth").set(n as f64);
    }
    let backend = service.limiter().backend();
    for b in [Backend::Local, Backend::Redis] {
        metrics::gauge!("gatepass_rate_limit_backend", "backend" => b.as_str()).set(f64::from(u8::from(b == backend)));
    }
    if let Some(up) = service.limiter().shared_store_up() {
        metrics::gauge!("gatepass_redis_up").set(f64::from(u8::from(up)));
    }
    let handle = handle();
    handle.run_upkeep();
    let mut response = handle.render().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    Ok(response)
}
