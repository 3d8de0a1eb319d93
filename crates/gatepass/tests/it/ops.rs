//! Operational endpoints: /metrics (open and token-protected), /healthz, request ids and
//! security headers.

use crate::common::{self, TestApp, expect_error};
use serde_json::json;

#[tokio::test]
async fn metrics_count_requests_logins_and_rejections() {
    let _metrics = common::METRICS.lock().await;
    let app = TestApp::spawn().await;
    app.register("metro", "password-1").await;
    app.login("metro", "password-1").await;
    app.post("/api/login", json!({"username": "metro", "password": "wrong-password"})).await;
    app.get_auth("/api/profile", "not.a.token").await;
    let r = app.get("/metrics").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = r.text().await.unwrap();
    for needle in [
        "gatepass_http_requests_total{route=\"/api/login\",method=\"POST\",status=\"200\"}",
        "gatepass_http_request_duration_seconds_bucket",
        "gatepass_logins_total{outcome=\"ok\"}",
        "gatepass_logins_total{outcome=\"failed\"}",
        "gatepass_tokens_issued_total",
        "gatepass_tokens_rejected_total{reason=\"token_malformed\"}",
        "gatepass_password_hash_queue",
        "gatepass_live_sessions",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    assert!(!text.contains("metro"), "metrics must not carry user names");
}

#[tokio::test]
async fn metrics_can_require_a_bearer_secret() {
    let _metrics = common::METRICS.lock().await;
    let app = TestApp::spawn_with(&["--metrics-token", "scrape-secret-123"]).await;
    expect_error(app.get("/metrics").await, 401, "token_missing").await;
    expect_error(app.get_auth("/metrics", "wrong").await, 401, "token_invalid").await;
    assert_eq!(app.get_auth("/metrics", "scrape-secret-123").await.status(), 200);
}

#[tokio::test]
async fn every_response_has_a_request_id_and_security_headers() {
    let app = TestApp::spawn().await;
    for r in [app.get("/healthz").await, app.get("/nope").await, app.get("/").await] {
        let h = r.headers();
        assert_eq!(h["x-request-id"].len(), 36, "uuid request id");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert!(h["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
        assert!(h.get("server").is_none(), "no version banner");
    }
    let r = app.client.get(app.url("/healthz")).header("x-request-id", "trace-me-42").send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-me-42");
}
