//! Issue: sessions. Rotating refresh tokens, reuse detection and its grace window,
//! logout scopes, session listing, password change, revocation across restarts.

use crate::common::{TestApp, expect_error, s};
use serde_json::{Value, json};
use std::time::Duration;

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.post("/api/refresh", json!({ "refresh_token": token })).await
}

#[tokio::test]
async fn login_returns_an_opaque_refresh_token_and_rotation_replaces_it() {
    let app = TestApp::spawn().await;
    let reg = app.register("rita", "password-1").await;
    let r1 = s(&reg, "refresh_token").to_owned();
    assert!(r1.starts_with("gpr_") && r1.len() >= 4 + 43, "{r1}");
    // Stored only as a hash (checked on the SQLite file; PostgreSQL runs the same code).
    if app.db.is_none() {
        let db = std::fs::read(app.data_dir().join("gatepass.db")).unwrap();
        let wal = std::fs::read(app.data_dir().join("gatepass.db-wal")).unwrap_or_default();
        for bytes in [&db, &wal] {
            assert!(!bytes.windows(r1.len()).any(|w| w == r1.as_bytes()), "refresh token stored in clear");
        }
    }

    let r = refresh(&app, &r1).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    let r2 = s(&body, "refresh_token").to_owned();
    assert_ne!(r1, r2);
    assert_eq!(body["token"], body["access_token"]);
    assert_eq!(body["token_type"], "Bearer");
    let access = s(&body, "access_token");
    assert_eq!(app.get_auth("/api/profile", access).await.status(), 200);

    // Same session: the sid is kept across rotation.
    let sid_of = |t: &str| app.state.service.authenticate(t).unwrap().sid;
    assert_eq!(sid_of(access), sid_of(s(&reg, "access_token")));
    let r = refresh(&app, &r2).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn access_token_cannot_refresh_itself() {
    let app = TestApp::spawn().await;
    let reg = app.register("sam", "password-1").await;
    // Seed 003 style: only the access token in the header, no body.
    let r = app.client.post(app.url("/api/refresh")).bearer_auth(s(&reg, "token")).send().await.unwrap();
    let err = expect_error(r, 400, "refresh_token_required").await;
    assert!(s(&err, "error").contains("refresh_token"));
    // The access token in the body's field is not a refresh token either.
    expect_error(refresh(&app, s(&reg, "token")).await, 401, "refresh_token_invalid").await;
    expect_error(refresh(&app, "gpr_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await, 401, "refresh_token_invalid")
        .await;
}

#[tokio::test]
async fn reuse_outside_the_grace_window_revokes_the_session() {
    let app = TestApp::spawn_with(&["--refresh-reuse-grace", "0s"]).await;
    let reg = app.register("tina", "password-1").await;
    let r1 = s(&reg, "refresh_token").to_owned();
    let body: Value = refresh(&app, &r1).await.json().await.unwrap();
    let r2 = s(&body, "refresh_token").to_owned();
    let access2 = s(&body, "access_token").to_owned();
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // Whoever holds the old token (thief or victim) presents it again.
    expect_error(refresh(&app, &r1).await, 401, "refresh_token_reused").await;
    // The whole session is gone: the current refresh token and every access token.
    expect_error(refresh(&app, &r2).await, 401, "refresh_token_invalid").await;
    expect_error(app.get_auth("/api/profile", &access2).await, 401, "token_revoked").await;
    expect_error(app.get_auth("/api/profile", s(&reg, "access_token")).await, 401, "token_revoked").await;
    // Other sessions of the user are untouched.
    let other = app.login("tina", "password-1").await;
    assert_eq!(app.get_auth("/api/profile", s(&other, "token")).await.status(), 200);
}

#[tokio::test]
async fn a_retry_within_the_grace_window_gets_the_same_successor() {
    let app = TestApp::spawn().await; // default grace 10 s
    let reg = app.register("uma", "password-1").await;
    let r1 = s(&reg, "refresh_token").to_owned();
    let first: Value = refresh(&app, &r1).await.json().await.unwrap();
    // The response was "lost": the client retries with the same token.
    let retry = refresh(&app, &r1).await;
    assert_eq!(retry.status(), 200);
    let second: Value = retry.json().await.unwrap();
    assert_eq!(first["refresh_token"], second["refresh_token"]);
    // The session lives on and the successor works.
    let r3: Value = refresh(&app, s(&second, "refresh_token")).await.json().await.unwrap();
    assert!(r3["refresh_token"].is_string());
    assert_eq!(app.get_auth("/api/profile", s(&second, "access_token")).await.status(), 200);
}

#[tokio::test]
async fn concurrent_refreshes_never_fork_the_session() {
    let app = TestApp::spawn().await;
    let reg = app.register("vera", "password-1").await;
    let r1 = s(&reg, "refresh_token").to_owned();
    let mut tasks = vec![];
    for _ in 0..8 {
        let client = app.client.clone();
        let url = app.url("/api/refresh");
        let token = r1.clone();
        tasks.push(tokio::spawn(async move {
            let r = client.post(url).json(&json!({ "refresh_token": token })).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }));
    }
    let mut successors = std::collections::HashSet::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 200, "{body}");
        successors.insert(body["refresh_token"].as_str().unwrap().to_owned());
    }
    assert_eq!(successors.len(), 1, "one successor chain");
    let user = app.storage.user_by_username("vera").await.unwrap().unwrap();
    let live = app.storage.live_sessions(user.id.as_str(), gatepass::domain::clock::now()).await.unwrap();
    assert_eq!(live.len(), 1);
}

#[tokio::test]
async fn logout_ends_access_and_refresh_at_once() {
    let app = TestApp::spawn().await;
    let reg = app.register("walt", "password-1").await;
    let token = s(&reg, "access_token");
    let r = app.post_auth("/api/logout", token, json!({})).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["sessions_ended"], 1);
    for path in ["/api/profile", "/api/protected", "/protected", "/auth", "/api/sessions"] {
        let r = app.get_auth(path, token).await;
        assert!(r.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
        expect_error(r, 401, "token_revoked").await;
    }
    expect_error(refresh(&app, s(&reg, "refresh_token")).await, 401, "refresh_token_invalid").await;
    // Logging out twice is refused as revoked, not an error 500.
    expect_error(app.post_auth("/api/logout", token, json!({})).await, 401, "token_revoked").await;
}

#[tokio::test]
async fn logout_scopes_global_and_others() {
    let app = TestApp::spawn().await;
    app.register("xena", "password-1").await;
    let a = app.login("xena", "password-1").await;
    let b = app.login("xena", "password-1").await;
    let c = app.login("xena", "password-1").await;
    let r = app.client.post(app.url("/api/logout?scope=others")).bearer_auth(s(&a, "token")).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["sessions_ended"], 3);
    assert_eq!(app.get_auth("/api/profile", s(&a, "token")).await.status(), 200);
    expect_error(app.get_auth("/api/profile", s(&b, "token")).await, 401, "token_revoked").await;
    expect_error(refresh(&app, s(&c, "refresh_token")).await, 401, "refresh_token_invalid").await;

    let d = app.login("xena", "password-1").await;
    let r = app.client.post(app.url("/api/logout?scope=global")).bearer_auth(s(&d, "token")).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["sessions_ended"], 2);
    expect_error(app.get_auth("/api/profile", s(&a, "token")).await, 401, "token_revoked").await;
    expect_error(app.get_auth("/api/profile", s(&d, "token")).await, 401, "token_revoked").await;

    let e = app.login("xena", "password-1").await;
    let r = app.client.post(app.url("/api/logout?scope=everything")).bearer_auth(s(&e, "token")).send().await.unwrap();
    expect_error(r, 400, "invalid_request").await;
    assert_eq!(app.get_auth("/api/profile", s(&e, "token")).await.status(), 200);
}

#[tokio::test]
async fn sessions_are_listed_and_ended_only_by_their_owner() {
    let app = TestApp::spawn().await;
    app.register("yuri", "password-1").await;
    let a = app.login("yuri", "password-1").await;
    let b = app
        .client
        .post(app.url("/api/login"))
        .header("user-agent", "phone/1.0")
        .json(&json!({"username": "yuri", "password": "password-1"}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let list: Value = app.get_auth("/api/sessions", s(&a, "token")).await.json().await.unwrap();
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3);
    assert_eq!(sessions.iter().filter(|x| x["current"] == true).count(), 1);
    assert!(sessions.iter().any(|x| x["user_agent"] == "phone/1.0"));
    assert!(sessions.iter().all(|x| x["ip"] == "127.0.0.1"));
    let b_sid = app.state.service.authenticate(s(&b, "token")).unwrap().sid;

    // Another user cannot see or end it.
    let z = app.register("zoe", "password-1").await;
    let r =
        app.client.delete(app.url(&format!("/api/sessions/{b_sid}"))).bearer_auth(s(&z, "token")).send().await.unwrap();
    expect_error(r, 404, "not_found").await;
    assert_eq!(app.get_auth("/api/profile", s(&b, "token")).await.status(), 200);

    let r =
        app.client.delete(app.url(&format!("/api/sessions/{b_sid}"))).bearer_auth(s(&a, "token")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    expect_error(app.get_auth("/api/profile", s(&b, "token")).await, 401, "token_revoked").await;
    let list: Value = app.get_auth("/api/sessions", s(&a, "token")).await.json().await.unwrap();
    assert_eq!(list["sessions"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn password_change_ends_every_other_session() {
    let app = TestApp::spawn().await;
    let reg = app.register("abby", "old-password").await;
    let other = app.login("abby", "old-password").await;
    let token = s(&reg, "token");

    let r = app
        .post_auth("/api/password", token, json!({"current_password": "wrong-one", "new_password": "new-password"}))
        .await;
    expect_error(r, 401, "invalid_credentials").await;
    let r = app
        .post_auth("/api/password", token, json!({"current_password": "old-password", "new_password": "short"}))
        .await;
    expect_error(r, 400, "validation_failed").await;
    assert_eq!(app.get_auth("/api/profile", s(&other, "token")).await.status(), 200);

    let r = app
        .post_auth("/api/password", token, json!({"current_password": "old-password", "new_password": "new-password"}))
        .await;
    assert_eq!(r.status(), 200);
    let fresh: Value = r.json().await.unwrap();
    assert_eq!(app.get_auth("/api/profile", s(&fresh, "token")).await.status(), 200);
    expect_error(app.get_auth("/api/profile", s(&other, "token")).await, 401, "token_revoked").await;
    expect_error(refresh(&app, s(&other, "refresh_token")).await, 401, "refresh_token_invalid").await;
    assert_eq!(refresh(&app, s(&fresh, "refresh_token")).await.status(), 200);
    expect_error(
        app.post("/api/login", json!({"username": "abby", "password": "old-password"})).await,
        401,
        "invalid_credentials",
    )
    .await;
    app.login("abby", "new-password").await;
}

#[tokio::test]
async fn revocations_survive_a_restart() {
    let app = TestApp::spawn().await;
    let reg = app.register("bert", "password-1").await;
    let token = s(&reg, "token").to_owned();
    app.post_auth("/api/logout", &token, json!({})).await;
    let app = app.restart().await;
    expect_error(app.get_auth("/api/profile", &token).await, 401, "token_revoked").await;
    expect_error(refresh(&app, s(&reg, "refresh_token")).await, 401, "refresh_token_invalid").await;
}

#[tokio::test]
async fn sweeping_drops_only_expired_revocations() {
    let app = TestApp::spawn_with(&["--access-token-ttl", "1s"]).await;
    let reg = app.register("cleo", "password-1").await;
    app.post_auth("/api/logout", s(&reg, "token"), json!({})).await;
    assert_eq!(app.state.service.core().revocations().len(), 1);
    app.state.service.sweep().await.unwrap();
    // Still inside exp + margin: kept.
    assert_eq!(app.state.service.core().revocations().len(), 1);
    let far_future = gatepass::domain::clock::now() + 3600;
    assert_eq!(app.state.service.core().revocations().sweep(far_future), 1);
    assert!(app.state.service.core().revocations().is_empty());
}
