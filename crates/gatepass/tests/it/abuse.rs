//! Abuse resistance over HTTP: rate limits, account back-off, enumeration safety,
//! password policy, CORS, connection limits and graceful shutdown.

use crate::common::{TestApp, expect_error, s};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn login_raw(app: &TestApp, username: &str, password: &str, xff: Option<&str>) -> reqwest::Response {
    let mut req = app.client.post(app.url("/api/login")).json(&json!({"username": username, "password": password}));
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    req.send().await.expect("request")
}

async fn expect_429(r: reqwest::Response) {
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    expect_error(r, 429, "rate_limited").await;
}

async fn user_count(app: &TestApp) -> i64 {
    app.storage.count_users().await.unwrap()
}

#[tokio::test]
async fn per_ip_limit_is_not_bypassed_by_forwarding_headers_or_route_or_encoding() {
    let app = TestApp::spawn_with(&[
        "--rate-limit-ip-burst",
        "3",
        "--rate-limit-ip-per-minute",
        "1",
        "--rate-limit-user-burst",
        "100",
    ])
    .await;
    let token = s(&app.register("alice", "correct horse staple").await, "access_token").to_owned();
    for i in 0..3 {
        expect_error(login_raw(&app, &format!("nobody{i}"), "wrong password", None).await, 401, "invalid_credentials")
            .await;
    }
    expect_429(login_raw(&app, "nobody9", "wrong password", None).await).await;
    // Spoofed client addresses from an untrusted peer change nothing.
    for (name, value) in
        [("x-forwarded-for", "203.0.113.77"), ("x-real-ip", "203.0.113.78"), ("forwarded", "for=203.0.113.79")]
    {
        let r = app
            .client
            .post(app.url("/api/login"))
            .header(name, value)
            .json(&json!({"username": "other", "password": "wrong password"}))
            .send()
            .await
            .unwrap();
        expect_429(r).await;
    }
    // Same bucket through the seed route and a form body.
    let r = app.client.post(app.url("/login")).form(&[("username", "x1"), ("password", "y")]).send().await.unwrap();
    expect_429(r).await;
    // Even the right password is refused while the client is throttled.
    expect_429(login_raw(&app, "alice", "correct horse staple", None).await).await;
    // Protected routes are never slowed.
    for _ in 0..10 {
        assert_eq!(app.get_auth("/api/protected", &token).await.status(), 200);
    }
}

#[tokio::test]
async fn per_username_limit_folds_case_and_whitespace() {
    let app = TestApp::spawn_with(&[
        "--rate-limit-user-burst",
        "3",
        "--rate-limit-user-per-minute",
        "1",
        "--trusted-proxies",
        "127.0.0.1",
    ])
    .await;
    app.register("victim", "correct horse staple").await;
    // Three different client addresses (via the trusted proxy), three spellings.
    for (i, name) in ["victim", "VICTIM", " Victim "].iter().enumerate() {
        let r = login_raw(&app, name, "wrong password", Some(&format!("198.51.100.{i}"))).await;
        expect_error(r, 401, "invalid_credentials").await;
    }
    let r = app
        .client
        .post(app.url("/login"))
        .header("x-forwarded-for", "198.51.100.50")
        .form(&[("username", "ViCtIm"), ("password", "wrong password")])
        .send()
        .await
        .unwrap();
    expect_429(r).await;
}

#[tokio::test]
async fn backoff_from_fifth_failure_refuses_even_the_right_password() {
    let app = TestApp::spawn_with(&["--rate-limit-user-burst", "100", "--rate-limit-ip-burst", "100"]).await;
    app.register("bob", "correct horse staple").await;
    for _ in 0..5 {
        expect_error(login_raw(&app, "bob", "wrong password", None).await, 401, "invalid_credentials").await;
    }
    expect_429(login_raw(&app, "bob", "correct horse staple", None).await).await;
    expect_429(login_raw(&app, "BOB", "wrong password", None).await).await;
    // The back-off ends: after the wait the right password works again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.login("bob", "correct horse staple").await;
    // A success clears the counter: four more failures are not throttled.
    for _ in 0..4 {
        expect_error(login_raw(&app, "bob", "wrong password", None).await, 401, "invalid_credentials").await;
    }
}

#[tokio::test]
async fn a_stranger_cannot_lock_the_owner_out_of_a_recognised_browser_on_a_new_network() {
    let app = TestApp::spawn_with(&[
        "--trusted-proxies",
        "127.0.0.0/8",
        "--rate-limit-user-burst",
        "100",
        "--rate-limit-ip-burst",
        "100",
    ])
    .await;
    app.register("carol", "correct horse staple").await;
    // Carol signs in at home; her browser keeps the device cookie.
    let r = app
        .client
        .post(app.url("/api/login?cookie=true"))
        .header("x-forwarded-for", "198.51.100.10")
        .json(&json!({"username": "carol", "password": "correct horse staple"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let device = crate::backoff::device_cookie(&r);
    let attacker = Some("203.0.113.66");
    for _ in 0..8 {
        let r = login_raw(&app, "carol", "wrong password", attacker).await;
        assert!([401, 429].contains(&r.status().as_u16()));
    }
    expect_429(login_raw(&app, "carol", "correct horse staple", attacker).await).await;
    // Whatever address a client claims, without the cookie it is a stranger.
    expect_429(login_raw(&app, "carol", "correct horse staple", Some("198.51.100.10")).await).await;
    // Carol, travelling: a network never seen before, the same browser.
    let mut req = app
        .client
        .post(app.url("/api/login"))
        .header("x-forwarded-for", "192.0.2.200")
        .json(&json!({"username": "carol", "password": "correct horse staple"}));
    if let Some(device) = &device {
        req = req.header("cookie", format!("device={device}"));
    }
    assert_eq!(req.send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn register_refresh_and_password_change_are_throttled() {
    let app = TestApp::spawn_with(&["--rate-limit-ip-burst", "2", "--rate-limit-ip-per-minute", "1"]).await;
    let body = app.register("dave", "correct horse staple").await;
    app.register("erin", "correct horse staple").await;
    let before = user_count(&app).await;
    let r = app.post("/api/register", json!({"username": "frank", "password": "correct horse staple"})).await;
    expect_429(r).await;
    assert_eq!(user_count(&app).await, before, "nothing was created");

    let refresh = s(&body, "refresh_token").to_owned();
    let first = app.post("/api/refresh", json!({"refresh_token": refresh})).await;
    assert_eq!(first.status(), 200);
    let next = s(&first.json::<Value>().await.unwrap(), "refresh_token").to_owned();
    assert_eq!(app.post("/api/refresh", json!({"refresh_token": next})).await.status(), 200);
    expect_429(app.post("/api/refresh", json!({"refresh_token": "x"})).await).await;

    let token = s(&body, "access_token");
    for _ in 0..2 {
        let r = app
            .post_auth("/api/password", token, json!({"current_password": "wrong one", "new_password": "x y z w v u"}))
            .await;
        expect_error(r, 401, "invalid_credentials").await;
    }
    let r = app
        .post_auth(
            "/api/password",
            token,
            json!({"current_password": "correct horse staple", "new_password": "another fine phrase"}),
        )
        .await;
    expect_429(r).await;
}

#[tokio::test]
async fn limits_change_at_run_time() {
    let app = TestApp::spawn().await;
    for i in 0..3 {
        expect_error(login_raw(&app, &format!("u{i}"), "wrong password", None).await, 401, "invalid_credentials").await;
    }
    let patch = json!({"rate_limit": {"ip_burst": 1, "ip_per_minute": 1}});
    let patch = patch.as_object().cloned().unwrap();
    app.state.service.core().update_settings(&gatepass::service::Actor::cli(), patch).await.unwrap();
    expect_error(login_raw(&app, "u9", "wrong password", None).await, 401, "invalid_credentials").await;
    expect_429(login_raw(&app, "u9", "wrong password", None).await).await;
    // The stored-settings overlay understands the same keys.
    let mut s2 = app.state.service.settings();
    gatepass::service::settings::apply_stored(
        &mut s2,
        &[("rate_limit.ip_burst".into(), "50".into()), ("rate_limit.max_failures_per_hour".into(), "500".into())],
    );
    assert_eq!(s2.rate_limit.ip_burst, 50);
    assert_eq!(s2.rate_limit.max_failures_per_hour, 100, "ASVS cap cannot be raised");
}

/// Status, body and headers of a failed login, minus the per-response ones.
async fn shape(r: reqwest::Response) -> (u16, Vec<(String, String)>, String) {
    let status = r.status().as_u16();
    let mut headers: Vec<(String, String)> = r
        .headers()
        .iter()
        .filter(|(k, _)| !["date", "x-request-id"].contains(&k.as_str()))
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    headers.sort();
    (status, headers, r.text().await.unwrap())
}

#[tokio::test]
async fn unknown_wrong_and_disabled_look_the_same() {
    let app = TestApp::spawn().await;
    let body = app.register("grace", "correct horse staple").await;
    app.register("heidi", "correct horse staple").await;
    let id = gatepass::domain::UserId::from_trusted(body["user"]["id"].as_str().unwrap().to_owned());
    let patch = gatepass::storage::UserPatch { disabled: Some(true), ..Default::default() };
    app.storage.update_user(&id, &patch, 0).await.unwrap();
    let unknown = shape(login_raw(&app, "nosuchuser", "correct horse staple", None).await).await;
    let wrong = shape(login_raw(&app, "heidi", "wrong password", None).await).await;
    let disabled = shape(login_raw(&app, "grace", "correct horse staple", None).await).await;
    assert_eq!(unknown.0, 401);
    assert_eq!(unknown, wrong);
    assert_eq!(unknown, disabled);
}

#[tokio::test]
async fn password_policy_blocklist_context_and_length() {
    let app = TestApp::spawn_with(&["--password-min-length", "10"]).await;
    for (pw, fragment) in [
        ("short pw", "at least 10"),
        ("password123", "common"),
        ("Qwertyuiop", "common"),
        ("ivan-rocks-hard", "username"),
        ("my gatepass login", "service name"),
    ] {
        let r = app.post("/api/register", json!({"username": "ivan", "password": pw})).await;
        let body = expect_error(r, 400, "validation_failed").await;
        let msg = body["error"].as_str().unwrap();
        assert!(msg.starts_with("password:") && msg.contains(fragment), "{pw}: {msg}");
    }
    let r = app.post("/api/register", json!({"username": "ivan", "password": "x".repeat(1025)})).await;
    expect_error(r, 400, "validation_failed").await;
    assert_eq!(user_count(&app).await, 0);
    // Long, any Unicode, no composition rules.
    let token = s(&app.register("ivan", "ça marche très bien 🙂").await, "access_token").to_owned();
    let r = app
        .post_auth(
            "/api/password",
            &token,
            json!({"current_password": "ça marche très bien 🙂", "new_password": "iloveyou"}),
        )
        .await;
    let body = expect_error(r, 400, "validation_failed").await;
    assert!(body["error"].as_str().unwrap().starts_with("new_password:"));
}

#[tokio::test]
async fn cors_allows_only_listed_origins() {
    let app = TestApp::spawn_with(&["--cors-origins", "https://app.example.com,https://admin.example.com"]).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/login"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let r = preflight("https://app.example.com").await.unwrap();
    assert!(r.status().is_success());
    assert_eq!(r.headers()["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    assert!(r.headers().get_all("vary").iter().any(|v| v.to_str().unwrap().to_lowercase().contains("origin")));
    for origin in ["https://evil.example.com", "null", "https://app.example.com.evil.com"] {
        let r = preflight(origin).await.unwrap();
        assert!(r.headers().get("access-control-allow-origin").is_none(), "{origin}");
        assert!(r.headers().get("access-control-allow-credentials").is_none(), "{origin}");
    }
    let r = app.client.get(app.url("/public")).header("origin", "https://admin.example.com").send().await.unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "https://admin.example.com");
    assert_ne!(r.headers()["access-control-allow-origin"], "*");

    let closed = TestApp::spawn().await;
    let r = closed.client.get(closed.url("/public")).header("origin", "https://app.example.com").send().await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let app = TestApp::spawn().await;
    let r = app.client.get(app.url("/public")).header("x-big", "a".repeat(40 * 1024)).send().await.unwrap();
    assert_eq!(r.status(), 431);
    assert_eq!(app.get("/public").await.status(), 200);
}

#[tokio::test]
async fn request_timeout_answers_408_and_changes_nothing() {
    // A client that announces a body and then stalls: the request cannot finish, so the
    // server answers 408 and never reaches the handler.
    let app = TestApp::spawn_with(&["--request-timeout", "1s"]).await;
    let body = json!({"username": "judy", "password": "correct horse staple"}).to_string();
    let mut tcp = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
    let head = format!(
        "POST /api/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&body.as_bytes()[..body.len() / 2]).await.unwrap();
    let mut response = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response);
    assert!(read.is_ok(), "the server must end a stalled request by itself");
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    assert_eq!(user_count(&app).await, 0);
}

#[tokio::test]
async fn slow_header_senders_are_cut_off() {
    let app = TestApp::spawn_with(&["--header-read-timeout", "500ms"]).await;
    let mut tcp = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
    tcp.write_all(b"GET /public HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
    let mut buf = Vec::new();
    // The server closes the connection; the 10 s guard only keeps a broken build from hanging.
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "server kept a slow client's connection open");
}

#[tokio::test]
async fn connection_cap_queues_extra_clients() {
    let app = TestApp::spawn_with(&["--max-connections", "1", "--header-read-timeout", "30s"]).await;
    let holder = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let quick = reqwest::Client::builder().timeout(Duration::from_millis(500)).build().unwrap();
    assert!(quick.get(app.url("/public")).send().await.is_err(), "second connection was served");
    drop(holder);
    let r = reqwest::Client::new().get(app.url("/public")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests() {
    let mut app = TestApp::spawn().await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let body = br#"{"username":"kate","password":"correct horse staple"}"#;
    let client = tokio::spawn(async move {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST /api/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        tcp.write_all(&body[..10]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        tcp.write_all(&body[10..]).await.unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut buf)).await;
        String::from_utf8_lossy(&buf).into_owned()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.stop().await;
    let response = client.await.unwrap();
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    let app = app.restart().await;
    app.login("kate", "correct horse staple").await;
}

#[tokio::test]
async fn step_up_passes_the_login_gate_and_its_failures_count() {
    let app = TestApp::spawn().await;
    app.register("stepper", "a-long-password").await;
    let (cookie, csrf) = crate::races::cookie_login(&app, "stepper", "a-long-password").await;
    let mut statuses = Vec::new();
    for _ in 0..15 {
        statuses.push(crate::races::reauth(&app, &cookie, &csrf, "wrong password!").await.status().as_u16());
    }
    assert_eq!(statuses[0], 401, "{statuses:?}");
    let guesses = statuses.iter().filter(|s| **s == 401).count();
    assert!(guesses <= 10, "{guesses} guesses before the back-off: {statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    // The failures are this browser's (the session's login set its device cookie): its
    // login is held back as well.
    let r = app
        .client
        .post(app.url("/api/login"))
        .header("cookie", &cookie)
        .json(&json!({"username": "stepper", "password": "a-long-password"}))
        .send()
        .await
        .unwrap();
    expect_429(r).await;
    let audit: Value =
        app.get_auth("/api/admin/audit?event=reauth_failed", app.operator()).await.json().await.expect("json");
    assert_eq!(audit["entries"].as_array().expect("entries").len(), guesses);
    assert_eq!(audit["entries"][0]["detail"]["reason"], "wrong_password");
}
