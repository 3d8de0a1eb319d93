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

type LogLines = tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>;

/// `gatepass serve` on loopback; returns the child, its base URL, the stderr reader
/// positioned after "listening on", and the log lines before it.
async fn serve_logging(dir: &std::path::Path) -> (tokio::process::Child, String, LogLines, Vec<String>) {
    use tokio::io::AsyncBufReadExt;
    let mut child = common::serve(dir, &[]).stdout(std::process::Stdio::null()).spawn().expect("starts");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut seen = Vec::new();
    let base = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(addr) = line.split("listening on ").nth(1) {
                return addr.split_whitespace().next().expect("address").to_owned();
            }
            seen.push(line);
        }
        panic!("no address in the log: {seen:?}");
    })
    .await
    .expect("listens promptly");
    (child, base, lines, seen)
}

/// Every request gets one `info` line with method, path (no query string), status,
/// latency and request id; start-up names the database and its number of accounts.
#[tokio::test]
async fn each_request_is_logged_once_without_its_query_string() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base, mut lines, startup) = serve_logging(dir.path()).await;
    let db = dir.path().join("data").join("gatepass.db");
    assert!(
        startup.iter().any(|l| l.contains("database opened")
            && l.contains(&format!("SQLite {}", db.display()))
            && l.contains("accounts=0")),
        "start-up names the database: {startup:?}"
    );
    let r = reqwest::Client::new()
        .get(format!("{base}/healthz?token=do-not-log-me"))
        .header("x-request-id", "req-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let line = tokio::time::timeout(std::time::Duration::from_secs(10), lines.next_line())
        .await
        .expect("a request line")
        .expect("read")
        .expect("a line");
    for part in ["INFO", "method=GET", "path=/healthz", "request_id=req-123", "status=200", "latency="] {
        assert!(line.contains(part), "{part} missing: {line}");
    }
    assert!(!line.contains("do-not-log-me") && !line.contains('\u{1b}'), "query string or colour: {line}");
    let _ = child.kill().await;
}

/// A log reader that goes away (a broken stderr pipe) does not break request handling.
#[tokio::test]
async fn a_broken_log_pipe_does_not_break_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base, lines, _) = serve_logging(dir.path()).await;
    drop(lines);
    for _ in 0..3 {
        assert_eq!(reqwest::get(format!("{base}/healthz")).await.expect("answered").status(), 200);
    }
    let _ = child.kill().await;
}

/// `/docs` is an API explorer over `/openapi.json` served from the binary: its page and
/// scripts come from this server (nothing from a CDN) under a policy that allows only them.
#[tokio::test]
async fn the_api_explorer_is_served_offline() {
    let app = TestApp::spawn().await;
    let r = app.get("/docs/").await;
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"), "{csp}");
    assert!(!csp.contains("http"), "no other origin allowed: {csp}");
    let page = r.text().await.unwrap();
    assert!(page.contains("swagger-ui"), "{page}");
    for asset in ["swagger-ui-bundle.js", "swagger-ui.css", "swagger-initializer.js"] {
        let r = app.get(&format!("/docs/{asset}")).await;
        assert_eq!(r.status(), 200, "{asset}");
        let text = r.text().await.unwrap();
        assert!(!text.contains("cdn.") && !text.contains("unpkg.com"), "{asset} loads from a CDN");
        if asset == "swagger-initializer.js" {
            assert!(text.contains("/openapi.json"), "the explorer reads this server's description: {text}");
        }
    }
    // Other pages keep their strict policy.
    let csp = app.get("/healthz").await.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.starts_with("default-src 'none'") && !csp.contains("unsafe-inline"), "{csp}");
}
