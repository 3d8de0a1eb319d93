//! Prometheus metrics: the recorder, the request-tracking middleware and `GET /metrics`.
//!
//! Counters elsewhere use the `metrics` macros directly (`gatepass_logins_total`,
//! `gatepass_tokens_issued_total`, `gatepass_tokens_verified_total`,
//! `gatepass_tokens_rejected_total{reason}`, `gatepass_rate_limited_total`, and the outbox's
//! `gatepass_mail_{queued,sent,retried,failed}_total{kind}`); gauges that
//! are cheap to compute on demand (hash queue, live sessions) are set at scrape time.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Instant;
use subtle::ConstantTimeEq;

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

/// Counts requests by route template and status, with a latency histogram.
pub async fn track(req: Request, next: Next) -> Response {
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let labels = [("route", route), ("method", method), ("status", status)];
    metrics::counter!("gatepass_http_requests_total", &labels).increment(1);
    metrics::histogram!("gatepass_http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    response
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
