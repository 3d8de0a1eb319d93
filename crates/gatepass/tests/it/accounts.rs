//! Issue: foundation. Every route and error code of accounts, tokens and the seed routes,
//! driven over HTTP against a real server.

use crate::common::{TestApp, expect_error, s};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

#[tokio::test]
async fn seed_003_walkthrough_register_login_profile_protected() {
    let app = TestApp::spawn().await;
    // The tutorial's own password is on the common-password list: refused (GP-21).
    let r = app.post("/api/register", json!({"username": "testuser", "password": "mypassword"})).await;
    expect_error(r, 400, "validation_failed").await;
    let r = app
        .post(
            "/api/register",
            json!({"username": "testuser", "password": "my seed passphrase", "email": "test@example.com"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["message"], "User created successfully");
    assert_eq!(body["token"], body["access_token"]);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["user"]["username"], "testuser");
    assert_eq!(body["user"]["email"], "test@example.com");
    assert_eq!(body["user"]["roles"], json!(["user"]));
    assert!(body["user"].get("password_hash").is_none());
    let id = s(&body["user"], "id");
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);

    let login = app.login("testuser", "my seed passphrase").await;
    assert_eq!(login["message"], "Login successful");
    let token = s(&login, "token");

    let profile: Value = app.get_auth("/api/profile", token).await.json().await.unwrap();
    assert_eq!(profile["user"]["id"], id);
    assert_eq!(profile["user"]["username"], "testuser");
    assert!(profile["user"]["created_at"].as_str().unwrap().ends_with('Z'));

    let protected: Value = app.get_auth("/api/protected", token).await.json().await.unwrap();
    assert_eq!(protected["message"], "Hello testuser! This is a protected route.");
    assert_eq!(protected["user_id"], id);

    let missing = app.get("/api/profile").await;
    assert_eq!(missing.headers()["www-authenticate"], "Bearer realm=\"gatepass\"");
    expect_error(missing, 401, "token_missing").await;
}

#[tokio::test]
async fn seed_002_root_routes() {
    let app = TestApp::spawn().await;
    let r = app.post("/register", json!({"username": "admin", "password": "root seed passphrase"})).await;
    assert_eq!(r.status(), 201);
    let body: Value = app
        .post("/login", json!({"username": "admin", "password": "root seed passphrase"}))
        .await
        .json()
        .await
        .unwrap();
    let token = s(&body, "access_token");
    let r: Value = app.get_auth("/protected", token).await.json().await.unwrap();
    assert_eq!(r, json!({"logged_in_as": "admin"}));
    let r = app.get("/public").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "Public Content");
    let r = app.get_auth("/auth", token).await;
    assert_eq!(r.text().await.unwrap(), "JWT Authorized");
}

#[tokio::test]
async fn seed_001_form_login_sets_an_http_only_session_cookie() {
    let app = TestApp::spawn().await;
    app.register("formuser", "form seed passphrase").await;
    let r = app
        .client
        .post(app.url("/login"))
        .form(&[("username", "formuser"), ("password", "form seed passphrase")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookies: Vec<String> =
        r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    let session = cookies.iter().find(|c| c.starts_with("session=")).expect("session cookie");
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Lax") && session.contains("Path=/"));
    let body: Value = r.json().await.unwrap();
    assert!(body.get("access_token").is_none(), "cookie mode must not put tokens in the body");
    let token = session.trim_start_matches("session=").split(';').next().unwrap();
    let r = app.client.get(app.url("/auth")).header("cookie", format!("session={token}")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "JWT Authorized");
}

#[tokio::test]
async fn registration_validation_and_conflicts() {
    let app = TestApp::spawn().await;
    app.register("Alice", "password-1").await;
    expect_error(
        app.post("/api/register", json!({"username": "alice", "password": "password-2"})).await,
        409,
        "username_taken",
    )
    .await;
    for (body, field) in [
        (json!({"username": "ab", "password": "password-1"}), "username"),
        (json!({"username": "bad name", "password": "password-1"}), "username"),
        (json!({"username": "x".repeat(65), "password": "password-1"}), "username"),
        (json!({"username": "bob", "password": "short"}), "password"),
        (json!({"username": "bob", "password": "p".repeat(1025)}), "password"),
        (json!({"username": "bob", "password": "password-1", "email": "not-an-email"}), "email"),
        (json!({"password": "password-1"}), "username"),
        (json!({"username": "bob"}), "password"),
    ] {
        let err = expect_error(app.post("/api/register", body.clone()).await, 400, "validation_failed").await;
        assert!(s(&err, "error").starts_with(field), "{body} -> {err}");
    }
    // Privileged fields are refused, never silently honoured.
    let r =
        app.post("/api/register", json!({"username": "mallory", "password": "password-1", "roles": ["admin"]})).await;
    expect_error(r, 400, "invalid_json").await;
    let r = app.get("/api/profile").await;
    assert_eq!(r.status(), 401);
    assert_eq!(app.storage.count_users().await.unwrap(), 1);
}

#[tokio::test]
async fn login_failures_are_indistinguishable() {
    let app = TestApp::spawn().await;
    app.register("carol", "password-1").await;
    let wrong_pw = app.post("/api/login", json!({"username": "carol", "password": "password-2"})).await;
    let no_user = app.post("/api/login", json!({"username": "nobody", "password": "password-2"})).await;
    let bad_name = app.post("/api/login", json!({"username": "no body!", "password": "password-2"})).await;
    let mut bodies = vec![];
    for r in [wrong_pw, no_user, bad_name] {
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"gatepass\"");
        bodies.push(r.text().await.unwrap());
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    // Case-insensitive name, exact password.
    app.login("CAROL", "password-1").await;
    expect_error(
        app.post("/api/login", json!({"username": "carol", "password": "Password-1"})).await,
        401,
        "invalid_credentials",
    )
    .await;
}

#[tokio::test]
async fn bad_bodies_get_json_errors_and_change_nothing() {
    let app = TestApp::spawn().await;
    let c = &app.client;
    let r = c
        .post(app.url("/api/register"))
        .header("content-type", "application/json")
        .body("{\"username\": ")
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "invalid_json").await;
    let r = c.post(app.url("/api/register")).header("content-type", "text/plain").body("hi").send().await.unwrap();
    expect_error(r, 415, "unsupported_media_type").await;
    let r = c.post(app.url("/api/register")).body("{}").send().await.unwrap();
    expect_error(r, 415, "unsupported_media_type").await;
    let big = format!("{{\"username\":\"{}\"}}", "a".repeat(70 * 1024));
    let r = c.post(app.url("/api/register")).header("content-type", "application/json").body(big).send().await.unwrap();
    expect_error(r, 413, "payload_too_large").await;
    let r =
        c.post(app.url("/api/register")).json(&json!({"username": 5, "password": "password-1"})).send().await.unwrap();
    let err = expect_error(r, 400, "invalid_json").await;
    assert!(s(&err, "error").contains("username"), "{err}");
    expect_error(app.get("/nope").await, 404, "not_found").await;
    expect_error(c.delete(app.url("/api/login")).send().await.unwrap(), 405, "method_not_allowed").await;
    assert_eq!(app.storage.count_users().await.unwrap(), 0);
}

fn tamper(token: &str, f: impl FnOnce(&mut Value, &mut Value)) -> String {
    let mut parts = token.split('.');
    let mut h: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap();
    let mut p: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap();
    let sig = parts.next().unwrap();
    f(&mut h, &mut p);
    format!(
        "{}.{}.{sig}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&h).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&p).unwrap())
    )
}

#[tokio::test]
async fn token_errors_over_http() {
    let app = TestApp::spawn().await;
    let body = app.register("dave", "password-1").await;
    let token = s(&body, "access_token").to_owned();

    let header = token.split('.').next().unwrap();
    let h: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    assert_eq!(h["typ"], "at+jwt");
    assert_eq!(h["alg"], "HS256");

    for bad in ["Bearer", "Basic abc", "Bearer a b", "bearer"] {
        let r = app.client.get(app.url("/api/profile")).header("authorization", bad).send().await.unwrap();
        expect_error(r, 401, "token_malformed").await;
    }
    let invalid = [
        "garbage".to_owned(),
        tamper(&token, |_, p| p["username"] = json!("root")),
        tamper(&token, |h, _| h["alg"] = json!("none")),
        tamper(&token, |h, _| h["alg"] = json!("HS512")),
        format!("{}.", token.rsplit_once('.').unwrap().0),
    ];
    for t in &invalid {
        let r = app.get_auth("/api/profile", t).await;
        let www = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(www.contains("error=\"invalid_token\""), "{www}");
        let code = r.json::<Value>().await.unwrap()["code"].as_str().unwrap().to_owned();
        assert!(code == "token_invalid" || code == "token_malformed", "{t}: {code}");
    }
    // Never from the query string.
    let r = app.client.get(app.url(&format!("/api/profile?access_token={token}"))).send().await.unwrap();
    expect_error(r, 401, "token_missing").await;
    // Header is case-insensitive in its scheme.
    let r = app
        .client
        .get(app.url("/api/profile"))
        .header("authorization", format!("bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn expired_tokens_say_so() {
    let app = TestApp::spawn_with(&["--access-token-ttl", "1s", "--token-leeway", "0s"]).await;
    let body = app.register("erin", "password-1").await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = app.get_auth("/api/profile", s(&body, "access_token")).await;
    assert!(r.headers()["www-authenticate"].to_str().unwrap().contains("token expired"));
    expect_error(r, 401, "token_expired").await;
}

#[tokio::test]
async fn tokens_survive_a_restart_and_health_reports_ok() {
    let app = TestApp::spawn().await;
    let body = app.register("frank", "password-1").await;
    let app = app.restart().await;
    assert_eq!(app.get_auth("/api/profile", s(&body, "token")).await.status(), 200);
    let r = app.get("/healthz").await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn bcrypt_hashes_verify_and_are_upgraded() {
    let app = TestApp::spawn().await;
    app.register("gina", "password-1").await;
    let storage = &app.storage;
    let user = storage.user_by_username("gina").await.unwrap().unwrap();
    let legacy = bcrypt::hash("legacy-password", 4).unwrap();
    storage.set_password_hash(&user.id, &legacy, 0).await.unwrap();
    app.login("gina", "legacy-password").await;
    let user = storage.user_by_username("gina").await.unwrap().unwrap();
    assert!(user.password_hash.starts_with("$argon2id$"), "{}", &user.password_hash[..10]);
    app.login("gina", "legacy-password").await;
}

#[tokio::test]
async fn deleted_user_token_is_invalid() {
    let app = TestApp::spawn().await;
    let body = app.register("henry", "password-1").await;
    let storage = &app.storage;
    let user = storage.user_by_username("henry").await.unwrap().unwrap();
    app.state.service.core().delete_user(&gatepass::service::Actor::cli(), &user).await.unwrap();
    expect_error(app.get_auth("/api/profile", s(&body, "token")).await, 401, "token_invalid").await;
}

/// Sign-up and password forms commonly send the password twice: `confirm_password` is
/// accepted and must match; any other unknown field is refused on every route alike.
#[tokio::test]
async fn confirm_password_must_match_and_unknown_fields_are_refused_everywhere() {
    let app = TestApp::spawn().await;
    let body = json!({"username": "twice", "password": "a-long-password", "confirm_password": "a-long-passw0rd"});
    let err = expect_error(app.post("/api/register", body).await, 400, "validation_failed").await;
    assert!(err["error"].as_str().unwrap().contains("confirm_password"), "{err}");
    expect_error(
        app.post("/api/login", json!({"username": "twice", "password": "a-long-password"})).await,
        401,
        "invalid_credentials",
    )
    .await;
    let body = json!({"username": "twice", "password": "a-long-password", "confirm_password": "a-long-password"});
    let reg: Value = app.post("/api/register", body).await.json().await.unwrap();
    let token = s(&reg, "access_token").to_owned();

    let change = json!({"current_password": "a-long-password", "new_password": "another-password", "confirm_password": "another-passw0rd"});
    expect_error(app.post_auth("/api/password", &token, change).await, 400, "validation_failed").await;
    assert_eq!(
        app.post("/api/login", json!({"username": "twice", "password": "a-long-password"})).await.status(),
        200,
        "unchanged"
    );
    let change = json!({"current_password": "a-long-password", "new_password": "another-password", "confirm_password": "another-password"});
    assert_eq!(app.post_auth("/api/password", &token, change).await.status(), 200);

    for (path, body) in [
        ("/api/login", json!({"username": "twice", "password": "another-password", "remember_me": true})),
        ("/api/register", json!({"username": "other", "password": "a-long-password", "roles": ["admin"]})),
        ("/api/refresh", json!({"refresh_token": "x", "scope": "all"})),
    ] {
        let err = expect_error(app.post(path, body).await, 400, "invalid_json").await;
        assert!(err["error"].as_str().unwrap().contains("unknown field"), "{path}: {err}");
    }
}

/// `/api/login` answers a form post like JSON (tokens in the body) unless cookies are
/// asked for; the seed path `/login` keeps seed 001's cookie answer.
#[tokio::test]
async fn form_encoded_api_login_returns_tokens_unless_cookies_are_asked_for() {
    let app = TestApp::spawn().await;
    app.register("former", "a-long-password").await;
    let form = [("username", "former"), ("password", "a-long-password")];
    for (query, cookies) in [("", false), ("?cookie=false", false), ("?cookie=true", true)] {
        let r = app.client.post(app.url(&format!("/api/login{query}"))).form(&form).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let set = r.headers().get_all("set-cookie").iter().count();
        let body: Value = r.json().await.unwrap();
        assert_eq!(body.get("access_token").is_some(), !cookies, "{query}: {body}");
        assert_eq!(set > 0, cookies, "{query}");
    }
    let r = app.client.post(app.url("/login?cookie=false")).form(&form).send().await.unwrap();
    let body: Value = r.json().await.unwrap();
    assert!(body.get("access_token").is_some(), "an explicit ?cookie=false wins on the seed path too");
}
