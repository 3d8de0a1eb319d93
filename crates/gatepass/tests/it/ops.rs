//! Operational endpoints: /metrics (open on loopback, token-protected, refused beyond
//! loopback without a token), /healthz, request ids and security headers.

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

/// `gatepass serve` listening on every interface; returns the child, its local base URL
/// and the log lines up to "listening on".
async fn serve_on_all_interfaces(
    dir: &std::path::Path,
    extra: &[&str],
) -> (tokio::process::Child, String, Vec<String>) {
    use tokio::io::AsyncBufReadExt;
    let mut child = common::serve(dir, &[("GATEPASS_LISTEN", "0.0.0.0:0")])
        .args(extra)
        .env_remove("GATEPASS_METRICS_TOKEN")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("gatepass serve starts");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let port = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            seen.push(line.clone());
            if let Some(addr) = line.split("listening on http://").nth(1) {
                let addr = addr.split_whitespace().next().unwrap().to_owned();
                return addr.rsplit(':').next().unwrap().to_owned();
            }
        }
        panic!("no address in the log: {seen:?}");
    })
    .await
    .expect("listens promptly");
    (child, format!("http://127.0.0.1:{port}"), seen)
}

#[tokio::test]
async fn metrics_beyond_loopback_need_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base, _) = serve_on_all_interfaces(dir.path(), &[]).await;
    let r = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(r.status(), 404, "no token configured: nobody reads metrics off loopback");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "not_found");
    let r = reqwest::Client::new().get(format!("{base}/metrics")).bearer_auth("anything").send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(reqwest::get(format!("{base}/healthz")).await.unwrap().status(), 200);
    let _ = child.kill().await;

    let dir = tempfile::tempdir().unwrap();
    let (mut child, base, log) = serve_on_all_interfaces(dir.path(), &["--metrics-token", "scrape-secret-123"]).await;
    assert!(!log.iter().any(|l| l.contains("/metrics is disabled")), "{log:?}");
    let http = reqwest::Client::new();
    assert_eq!(http.get(format!("{base}/metrics")).send().await.unwrap().status(), 401);
    let r = http.get(format!("{base}/metrics")).bearer_auth("scrape-secret-123").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let _ = child.kill().await;
}

#[tokio::test]
async fn refused_metrics_are_announced_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, _, log) = serve_on_all_interfaces(dir.path(), &[]).await;
    let _ = child.kill().await;
    let warning = log.iter().find(|l| l.contains("/metrics is disabled")).unwrap_or_else(|| panic!("{log:?}"));
    assert!(warning.contains("WARN") && warning.contains("GATEPASS_METRICS_TOKEN"), "{warning}");
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
