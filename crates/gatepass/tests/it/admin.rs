//! Issue: roles and administration. The role guard, the admin API, `/info` settings and
//! `/run`, and CLI changes reaching a running server, all over HTTP.

use crate::common::{self, TestApp, expect_error, s};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::Digest as _;

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("json")
}

/// Every admin route, as (method, path, body).
fn admin_routes(id: &str) -> Vec<(reqwest::Method, String, Option<Value>)> {
    use reqwest::Method;
    vec![
        (Method::GET, "/api/admin/users".into(), None),
        (Method::POST, "/api/admin/users".into(), Some(json!({"username": "zed", "password": "a-long-password"}))),
        (Method::GET, format!("/api/admin/users/{id}"), None),
        (Method::PATCH, format!("/api/admin/users/{id}"), Some(json!({"disabled": true}))),
        (Method::DELETE, format!("/api/admin/users/{id}"), None),
        (Method::POST, format!("/api/admin/users/{id}/logout"), Some(json!({}))),
        (Method::GET, "/api/admin/audit".into(), None),
        (Method::GET, "/api/info".into(), None),
        (Method::PATCH, "/api/info".into(), Some(json!({"registration_open": false}))),
        (Method::GET, "/info".into(), None),
        (Method::PATCH, "/info".into(), Some(json!({"registration_open": false}))),
    ]
}

#[tokio::test]
async fn role_guard_answers_401_without_token_and_403_without_role_on_every_admin_route() {
    let app = TestApp::spawn().await;
    let user = app.register("plainuser", "a-long-password").await;
    let token = s(&user, "access_token");
    let id = s(&user["user"], "id");
    for (method, path, body) in admin_routes(id) {
        let mut anon = app.client.request(method.clone(), app.url(&path));
        let mut authed = app.client.request(method.clone(), app.url(&path)).bearer_auth(token);
        if let Some(b) = &body {
            anon = anon.json(b);
            authed = authed.json(b);
        }
        let r = anon.send().await.unwrap();
        assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"gatepass\"", "{method} {path}");
        expect_error(r, 401, "token_missing").await;

        let r = authed.send().await.unwrap();
        let www = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(www.contains("error=\"insufficient_scope\""), "{method} {path}: {www}");
        expect_error(r, 403, "insufficient_role").await;
    }
    // The 403s changed nothing: the user still works and registration is still open.
    assert_eq!(app.get_auth("/api/profile", token).await.status(), 200);
    app.register("stillopen", "a-long-password").await;

    let r = app.get_auth("/api/admin/users", "not.a.jwt").await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn first_admin_is_created_with_the_operator_token_and_then_administers() {
    let app = TestApp::spawn().await;
    let op = app.operator().to_owned();
    let r = app
        .post_auth(
            "/api/admin/users",
            &op,
            json!({"username": "root", "password": "amber-falcon-82", "email": "root@example.com", "roles": ["admin"]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["user"]["roles"], json!(["admin", "user"]));
    assert!(created["user"].get("password_hash").is_none());

    let login = app.login("root", "amber-falcon-82").await;
    let token = s(&login, "access_token");
    assert_eq!(claims(token)["roles"], json!(["admin", "user"]));
    let r = app.get_auth("/api/admin/users", token).await;
    assert_eq!(r.status(), 200);
    let list: Value = r.json().await.unwrap();
    assert_eq!(list["users"][0]["username"], "root");

    // The operator token is not an access token: ordinary protected routes refuse it.
    expect_error(app.get_auth("/api/profile", &op).await, 401, "token_invalid").await;
    // Nor is an admin's access token accepted where a refresh token is expected, etc.:
    // an admin access token is just an access token with the role.
    assert_eq!(app.get_auth("/api/profile", token).await.status(), 200);

    // Creation validates like registration and refuses unknown fields.
    let bad = [
        json!({"username": "x", "password": "a-long-password"}),
        json!({"username": "okname", "password": "short"}),
        json!({"username": "okname", "password": "a-long-password", "roles": ["Admin!"]}),
    ];
    for body in bad {
        expect_error(app.post_auth("/api/admin/users", token, body).await, 400, "validation_failed").await;
    }
    let r = app
        .post_auth(
            "/api/admin/users",
            token,
            json!({"username": "okname", "password": "a-long-password", "disabled": false}),
        )
        .await;
    expect_error(r, 400, "invalid_json").await;
    let r = app.post_auth("/api/admin/users", token, json!({"username": "ROOT", "password": "a-long-password"})).await;
    expect_error(r, 409, "username_taken").await;
}

#[tokio::test]
async fn listing_paginates_and_filters_by_prefix() {
    let app = TestApp::spawn().await;
    let admin = app.create_and_login("boss", "quiet-harbor-47", &["admin"]).await;
    let token = s(&admin, "access_token");
    for name in ["alpha1", "alpha2", "alpha3", "beta1", "al_pha"] {
        app.register(name, "a-long-password").await;
    }
    let page: Value = app.get_auth("/api/admin/users?limit=2", token).await.json().await.unwrap();
    let names: Vec<&str> = page["users"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["al_pha", "alpha1"]);
    assert_eq!(page["next_offset"], 2);
    assert_eq!(page["total_users"], 6);
    let page: Value = app.get_auth("/api/admin/users?limit=2&offset=4", token).await.json().await.unwrap();
    let names: Vec<&str> = page["users"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["beta1", "boss"]);

    let page: Value = app.get_auth("/api/admin/users?prefix=ALPHA", token).await.json().await.unwrap();
    assert_eq!(page["users"].as_array().unwrap().len(), 3);
    assert_eq!(page["next_offset"], Value::Null);
    // `_` is a literal character in the prefix, not a wildcard.
    let page: Value = app.get_auth("/api/admin/users?prefix=al_", token).await.json().await.unwrap();
    assert_eq!(page["users"].as_array().unwrap().len(), 1);

    for bad in ["?limit=0", "?limit=201", "?limit=abc", "?offset=-1", "?sort=name"] {
        expect_error(app.get_auth(&format!("/api/admin/users{bad}"), token).await, 400, "invalid_request").await;
    }
    // The largest offset is an empty page, not an overflow.
    let r = app.get_auth(&format!("/api/admin/users?limit=200&offset={}", i64::MAX), token).await;
    assert_eq!(r.status(), 200);
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["users"].as_array().unwrap().len(), 0);
    assert_eq!(page["next_offset"], Value::Null);
}

#[tokio::test]
async fn patch_disable_enable_roles_logout_and_delete_take_effect_at_once() {
    let app = TestApp::spawn().await;
    let op = app.operator().to_owned();
    let victim = app.register("victim", "silver-otter-19").await;
    let vid = s(&victim["user"], "id").to_owned();
    let vtoken = s(&victim, "access_token").to_owned();
    let path = format!("/api/admin/users/{vid}");

    let shown: Value = app.get_auth(&path, &op).await.json().await.unwrap();
    assert_eq!(shown["user"]["username"], "victim");
    assert_eq!(shown["user"]["disabled"], false);
    assert_eq!(shown["user"]["live_sessions"], 1);

    // Invalid patches are refused and change nothing.
    for body in [
        json!({}),
        json!({"disabled": "yes"}),
        json!({"roles": "admin"}),
        json!({"roles": [1]}),
        json!({"email": 5}),
        json!({"email": "not-an-email"}),
        json!({"username": "renamed"}),
        json!({"disabled": true, "password_hash": "x"}),
    ] {
        expect_error(app.patch_auth(&path, &op, body).await, 400, "validation_failed").await;
    }
    assert_eq!(app.get_auth("/api/profile", &vtoken).await.status(), 200);
    let shown: Value = app.get_auth(&path, &op).await.json().await.unwrap();
    assert_eq!(shown["user"]["disabled"], false);

    // E-mail change keeps sessions.
    let r: Value = app.patch_auth(&path, &op, json!({"email": "v@example.com"})).await.json().await.unwrap();
    assert_eq!(r["user"]["email"], "v@example.com");
    assert_eq!(r["sessions_ended"], 0);
    let r: Value = app.patch_auth(&path, &op, json!({"email": null})).await.json().await.unwrap();
    assert_eq!(r["user"]["email"], Value::Null);
    assert_eq!(app.get_auth("/api/profile", &vtoken).await.status(), 200);

    // Disable: every session ends at once and login is refused like a wrong password.
    let refresh = s(&app.login("victim", "silver-otter-19").await, "refresh_token").to_owned();
    let r: Value = app.patch_auth(&path, &op, json!({"disabled": true})).await.json().await.unwrap();
    assert_eq!(r["user"]["disabled"], true);
    assert_eq!(r["sessions_ended"], 2);
    expect_error(app.get_auth("/api/profile", &vtoken).await, 401, "token_revoked").await;
    expect_error(app.post("/api/refresh", json!({"refresh_token": refresh})).await, 401, "refresh_token_invalid").await;
    let r = app.post("/api/login", json!({"username": "victim", "password": "silver-otter-19"})).await;
    expect_error(r, 401, "invalid_credentials").await;

    // Enable: login works again.
    app.patch_auth(&path, &op, json!({"disabled": false})).await;
    let vtoken = s(&app.login("victim", "silver-otter-19").await, "access_token").to_owned();

    // Granting a role ends sessions too; the new token carries it.
    let r: Value = app.patch_auth(&path, &op, json!({"roles": ["admin"]})).await.json().await.unwrap();
    assert_eq!(r["sessions_ended"], 1);
    expect_error(app.get_auth("/api/profile", &vtoken).await, 401, "token_revoked").await;
    let admin_token = s(&app.login("victim", "silver-otter-19").await, "access_token").to_owned();
    assert_eq!(app.get_auth("/api/admin/users", &admin_token).await.status(), 200);

    // Removing the admin role: the old admin token loses its power immediately.
    let r: Value = app.patch_auth(&path, &op, json!({"roles": []})).await.json().await.unwrap();
    assert_eq!(r["user"]["roles"], json!(["user"]));
    expect_error(app.get_auth("/api/admin/users", &admin_token).await, 401, "token_revoked").await;
    let user_token = s(&app.login("victim", "silver-otter-19").await, "access_token").to_owned();
    expect_error(app.get_auth("/api/admin/users", &user_token).await, 403, "insufficient_role").await;

    // Admin logout of all sessions.
    let r: Value = app.post_auth(&format!("{path}/logout"), &op, json!({})).await.json().await.unwrap();
    assert_eq!(r["sessions_ended"], 1);
    expect_error(app.get_auth("/api/profile", &user_token).await, 401, "token_revoked").await;

    // Delete: tokens die, the account is gone, and a second delete is 404.
    let last = s(&app.login("victim", "silver-otter-19").await, "access_token").to_owned();
    let r: Value = app.delete_auth(&path, &op).await.json().await.unwrap();
    // Deletion re-marks every session whose access tokens may still be unexpired (all six
    // so far) as belonging to a deleted user.
    assert_eq!(r["sessions_ended"], 6);
    expect_error(app.get_auth("/api/profile", &last).await, 401, "token_invalid").await;
    expect_error(app.get_auth(&path, &op).await, 404, "not_found").await;
    expect_error(app.delete_auth(&path, &op).await, 404, "not_found").await;
    let r = app.post("/api/login", json!({"username": "victim", "password": "silver-otter-19"})).await;
    expect_error(r, 401, "invalid_credentials").await;

    for bad in ["/api/admin/users/not-a-uuid", "/api/admin/users/00000000-0000-7000-8000-000000000000"] {
        expect_error(app.get_auth(bad, &op).await, 404, "not_found").await;
        expect_error(app.patch_auth(bad, &op, json!({"disabled": true})).await, 404, "not_found").await;
    }
}

#[tokio::test]
async fn info_reports_the_server_and_settings_changes_apply_persist_and_validate() {
    let app = TestApp::spawn().await;
    let admin = app.create_and_login("boss", "quiet-harbor-47", &["admin"]).await;
    let token = s(&admin, "access_token").to_owned();
    app.register("someone", "a-long-password").await;

    let info: Value = app.get_auth("/api/info", &token).await.json().await.unwrap();
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["storage_backend"], app.storage.backend());
    assert_eq!(info["signing_algorithm"], "HS256");
    assert!(info["uptime_secs"].is_u64());
    assert_eq!(
        info["settings"],
        json!({
            "access_token_ttl": 900, "refresh_token_ttl": 2592000, "registration_open": true,
            "password_min_length": 8,
            "rate_limit": {
                "enabled": true, "ip_per_minute": 30, "ip_burst": 20, "user_per_minute": 10, "user_burst": 10,
                "lockout_threshold": 5, "lockout_max_secs": 900, "max_failures_per_hour": 100
            },
            "require_verified_email": false,
            "mfa_required_roles": []
        })
    );
    assert_eq!(info["counts"], json!({"users": 2, "live_sessions": 2, "outbox": 0}));
    let alias: Value = app.get_auth("/info", &token).await.json().await.unwrap();
    assert_eq!(alias["settings"], info["settings"]);

    // Invalid patches: 400 and nothing changes, even when some keys in them are valid.
    for body in [
        json!({"access_token_ttl": 0}),
        json!({"access_token_ttl": 86401}),
        json!({"access_token_ttl": "120"}),
        json!({"access_token_ttl": 120.5}),
        json!({"refresh_token_ttl": -5}),
        json!({"registration_open": "false"}),
        json!({"rate_limit": {"max_failures_per_hour": 101}}),
        json!({"rate_limit": {"ip_burst": 0}}),
        json!({"rate_limit": {"nonsense": 1}}),
        json!({"rate_limit": 5}),
        json!({"password_min_length": 0}),
        json!({"registration_open": 0}),
        json!({"access_token_ttl": 120, "no_such_setting": 1}),
        json!({"access_token_ttl": 120, "registration_open": null}),
        json!({}),
    ] {
        expect_error(app.patch_auth("/api/info", &token, body.clone()).await, 400, "validation_failed").await;
    }
    let r = app.client.patch(app.url("/api/info")).bearer_auth(&token).json(&json!([1])).send().await.unwrap();
    expect_error(r, 400, "invalid_json").await;
    let after: Value = app.get_auth("/api/info", &token).await.json().await.unwrap();
    assert_eq!(after["settings"], info["settings"]);

    // A valid change applies to the next token without a restart.
    let r = app.patch_auth("/info", &token, json!({"access_token_ttl": 120, "registration_open": false})).await;
    assert_eq!(r.status(), 200);
    let changed: Value = r.json().await.unwrap();
    assert_eq!(changed["settings"]["access_token_ttl"], 120);
    assert_eq!(changed["settings"]["registration_open"], false);
    let login = app.login("someone", "a-long-password").await;
    assert_eq!(login["expires_in"], 120);
    let c = claims(s(&login, "access_token"));
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 120);
    let r = app.post("/api/register", json!({"username": "latecomer", "password": "a-long-password"})).await;
    expect_error(r, 403, "registration_closed").await;

    // And survives a restart.
    let app = app.restart().await;
    let token = s(&app.login("boss", "quiet-harbor-47").await, "access_token").to_owned();
    let info: Value = app.get_auth("/api/info", &token).await.json().await.unwrap();
    assert_eq!(info["settings"]["access_token_ttl"], 120);
    assert_eq!(info["settings"]["registration_open"], false);
    assert_eq!(app.login("someone", "a-long-password").await["expires_in"], 120);
    let r = app.post("/api/register", json!({"username": "latecomer", "password": "a-long-password"})).await;
    expect_error(r, 403, "registration_closed").await;

    // Rate-limit values change at run time too: a per-IP burst of 1 refuses the second
    // login attempt from this address at once, and the value survives a restart.
    let r = app.patch_auth("/api/info", &token, json!({"rate_limit": {"ip_burst": 1, "ip_per_minute": 1}})).await;
    assert_eq!(r.status(), 200);
    app.post("/api/login", json!({"username": "nobody-here", "password": "wrong-guess-1"})).await;
    let r = app.post("/api/login", json!({"username": "nobody-else", "password": "wrong-guess-2"})).await;
    expect_error(r, 429, "rate_limited").await;
    let app = app.restart().await;
    let token = s(&app.login("boss", "quiet-harbor-47").await, "access_token").to_owned();
    let info: Value = app.get_auth("/api/info", &token).await.json().await.unwrap();
    assert_eq!(info["settings"]["rate_limit"]["ip_burst"], 1);
}

#[tokio::test]
async fn run_analyses_text_for_any_authenticated_caller() {
    let app = TestApp::spawn().await;
    let user = app.register("runner", "a-long-password").await;
    let token = s(&user, "access_token");
    let text = "héllo wörld\nsecond  line\n";
    let r = app.post_auth("/api/run", token, json!({"text": text})).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["characters"], 25);
    assert_eq!(body["bytes"], 27);
    assert_eq!(body["words"], 4);
    assert_eq!(body["lines"], 2);
    let expected: String = sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(body["sha256"], expected);
    assert_eq!(body["ran_by"]["username"], "runner");
    assert_eq!(body["ran_by"]["id"], user["user"]["id"]);
    assert!(body["ran_at"].as_str().unwrap().ends_with('Z'));

    let alias: Value = app.post_auth("/run", app.operator(), json!({"text": ""})).await.json().await.unwrap();
    assert_eq!(alias["ran_by"]["username"], "operator");
    assert_eq!(alias["words"], 0);
    assert_eq!(alias["sha256"], "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

    expect_error(app.post("/api/run", json!({"text": "x"})).await, 401, "token_missing").await;
    expect_error(app.post_auth("/api/run", token, json!({})).await, 400, "validation_failed").await;
    expect_error(app.post_auth("/api/run", token, json!({"text": 5})).await, 400, "invalid_json").await;
    expect_error(app.post_auth("/api/run", token, json!({"text": "x", "cmd": "ls"})).await, 400, "invalid_json").await;
}

#[tokio::test]
async fn operator_token_expires_after_its_ttl_and_can_be_switched_off() {
    let app = TestApp::spawn_with(&["--operator-token-ttl", "1s", "--token-leeway", "0s"]).await;
    let op = app.operator().to_owned();
    assert_eq!(claims(&op)["exp"].as_i64().unwrap() - claims(&op)["iat"].as_i64().unwrap(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    expect_error(app.get_auth("/api/info", &op).await, 401, "token_expired").await;

    let off = TestApp::spawn_with(&["--operator-token", "off"]).await;
    assert!(off.operator_token.is_none());
    // A token minted by another process (with the same signing key) is refused.
    expect_error(off.get_auth("/api/info", &op).await, 401, "token_invalid").await;
}

/// Runs the real binary on `app`'s data directory (and database, on PostgreSQL).
fn cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gatepass"));
    cmd.args(args).args(["--data-dir", app.data_dir().to_str().unwrap()]);
    if let Some(db) = &app.db {
        cmd.args(["--database-url", &db.url, "--master-key", common::MASTER_KEY]);
    }
    cmd.env_remove("GATEPASS_DATABASE_URL").env("GATEPASS_LOG", "warn").output().expect("gatepass runs")
}

/// Polls `f` until it returns true (the server polls storage once a second).
async fn eventually(mut f: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..50 {
        if f().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn cli_changes_reach_the_running_server() {
    let app = TestApp::spawn().await;
    let user = app.register("cliuser", "a-long-password").await;
    let token = s(&user, "access_token").to_owned();

    let out = cli(&app, &["user", "disable", "cliuser"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("cliuser disabled; 1 session(s) ended"));
    let refused = eventually(async || app.get_auth("/api/profile", &token).await.status() == 401).await;
    assert!(refused, "the server did not pick up the CLI's revocation");
    expect_error(app.get_auth("/api/profile", &token).await, 401, "token_revoked").await;
    let r = app.post("/api/login", json!({"username": "cliuser", "password": "a-long-password"})).await;
    expect_error(r, 401, "invalid_credentials").await;

    let out = cli(&app, &["user", "enable", "cliuser"]);
    assert!(out.status.success());
    let token = s(&app.login("cliuser", "a-long-password").await, "access_token").to_owned();

    let out = cli(&app, &["user", "set-roles", "cliuser", "--role", "admin"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(eventually(async || app.get_auth("/api/profile", &token).await.status() == 401).await);
    let admin = s(&app.login("cliuser", "a-long-password").await, "access_token").to_owned();
    assert_eq!(app.get_auth("/api/admin/users", &admin).await.status(), 200);

    let list = cli(&app, &["user", "list"]);
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(listed.contains("cliuser") && listed.contains("admin,user"), "{listed}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatepass"))
        .args([
            "user",
            "passwd",
            "cliuser",
            "--password-stdin",
            "--argon2-memory-kib",
            "1024",
            "--argon2-iterations",
            "1",
        ])
        .args(["--data-dir", app.data_dir().to_str().unwrap(), "--jwt-secret", common::SECRET])
        .args(
            app.db
                .as_ref()
                .map(|db| ["--database-url", &db.url, "--master-key", common::MASTER_KEY])
                .into_iter()
                .flatten(),
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"brand-new-password\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(eventually(async || app.get_auth("/api/profile", &admin).await.status() == 401).await);
    app.login("cliuser", "brand-new-password").await;

    let out = cli(&app, &["user", "delete", "cliuser", "--yes"]);
    assert!(out.status.success());
    let r = app.post("/api/login", json!({"username": "cliuser", "password": "brand-new-password"})).await;
    expect_error(r, 401, "invalid_credentials").await;

    // The first admin from the shell: the generated password is printed once.
    let out = cli(&app, &["user", "add", "shelladmin", "--role", "admin"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains("with roles admin,user"), "{stdout}");
    let password = stdout.lines().find_map(|l| l.strip_prefix("password: ")).expect("generated password").to_owned();
    let token = s(&app.login("shelladmin", &password).await, "access_token").to_owned();
    assert_eq!(app.get_auth("/api/admin/users", &token).await.status(), 200);
    let audit: Value = app.get_auth("/api/admin/audit?event=user_created", &token).await.json().await.unwrap();
    assert_eq!(audit["entries"][0]["actor"], "cli");
    assert_eq!(audit["entries"][0]["detail"]["username"], "shelladmin");

    // Clear errors for unknown users and bad roles.
    let out = cli(&app, &["user", "disable", "nobody"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such user"));
    let out = cli(&app, &["user", "add", "newbie", "--role", "Bad Role"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("roles"));
}

#[tokio::test]
async fn cookie_borne_admin_requests_need_the_csrf_token_and_operator_tokens_need_the_header() {
    let app = TestApp::spawn().await;
    app.create_and_login("cookieboss", "cookie-boss-pass", &["admin"]).await;
    let r = app.post("/api/login?cookie=true", json!({"username": "cookieboss", "password": "cookie-boss-pass"})).await;
    let cookies: Vec<String> =
        r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    let value = |name: &str| {
        let c = cookies.iter().find(|c| c.starts_with(&format!("{name}="))).expect("cookie");
        c[name.len() + 1..].split(';').next().unwrap().to_owned()
    };
    let (session, csrf) = (value("session"), value("csrf_token"));
    let cookie = format!("session={session}");

    // Reading is fine; changing settings without the CSRF token is refused and changes nothing.
    let r = app.client.get(app.url("/api/info")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .client
        .patch(app.url("/api/info"))
        .header("cookie", &cookie)
        .json(&json!({"registration_open": false}))
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "csrf_failed").await;
    app.register("stillopen", "a-long-password").await;
    let r = app
        .client
        .patch(app.url("/api/info"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .json(&json!({"registration_open": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The operator token is a header credential only.
    let cookie = format!("session={}", app.operator());
    let r = app.client.get(app.url("/api/info")).header("cookie", cookie).send().await.unwrap();
    expect_error(r, 401, "token_invalid").await;
}

#[tokio::test]
async fn settings_changed_on_one_instance_reach_another() {
    // The probe below logs in until B has reloaded: more than one account's burst.
    let a = TestApp::spawn_with(&["--rate-limit-user-burst", "1000"]).await;
    let b = a.spawn_peer().await;
    a.register("shared", "a-long-password").await;
    assert_eq!(b.login("shared", "a-long-password").await["expires_in"], 900);
    let r = a.patch_auth("/api/info", a.operator(), json!({"access_token_ttl": 300})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(a.login("shared", "a-long-password").await["expires_in"], 300);
    let picked_up = eventually(async || b.login("shared", "a-long-password").await["expires_in"] == 300).await;
    assert!(picked_up, "the other instance did not reload the stored settings");
    // The operator token is per process: A's is refused by B.
    expect_error(b.get_auth("/api/info", a.operator()).await, 401, "token_invalid").await;
}

/// Runs `gatepass user passwd NAME --password-stdin` (or `user add`) with `password` on stdin.
fn cli_with_password(app: &TestApp, args: &[&str], password: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_gatepass"))
        .args(args)
        .args(["--password-stdin", "--argon2-memory-kib", "1024", "--argon2-iterations", "1"])
        .args(["--data-dir", app.data_dir().to_str().unwrap(), "--jwt-secret", common::SECRET])
        .args(
            app.db
                .as_ref()
                .map(|db| ["--database-url", &db.url, "--master-key", common::MASTER_KEY])
                .into_iter()
                .flatten(),
        )
        .env_remove("GATEPASS_DATABASE_URL")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes())?;
            c.wait_with_output()
        })
        .unwrap()
}

#[tokio::test]
async fn cli_passwords_follow_the_registration_policy() {
    let app = TestApp::spawn().await;
    let body = app.register("polly", "a-long-password").await;
    let token = s(&body, "access_token").to_owned();
    // What registration refuses...
    for (weak, why) in [("password1", "common"), ("short", "at least"), ("polly-secret-9", "username")] {
        let r = app.post("/api/register", json!({"username": "polly", "password": weak})).await;
        assert_eq!(r.status(), 400, "registration accepted {weak:?}");
        // ...the command line refuses too, and changes nothing.
        let out = cli_with_password(&app, &["user", "passwd", "polly"], weak);
        assert!(!out.status.success(), "passwd accepted {weak:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "{weak:?}: {stderr}");
        let out = cli_with_password(&app, &["user", "add", "polly"], weak);
        assert!(!out.status.success(), "user add accepted {weak:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "user add {weak:?}: {stderr}");
    }
    assert_eq!(app.get_auth("/api/profile", &token).await.status(), 200, "a refused passwd ends no session");
    app.login("polly", "a-long-password").await;
    let audit: Value =
        app.get_auth("/api/admin/audit?event=password_reset", app.operator()).await.json().await.unwrap();
    assert_eq!(audit["entries"].as_array().unwrap().len(), 0);
    // A password the policy accepts works, and is audited.
    let out = cli_with_password(&app, &["user", "passwd", "polly"], "a-brand-new-phrase");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    app.login("polly", "a-brand-new-phrase").await;
    let audit: Value =
        app.get_auth("/api/admin/audit?event=password_reset", app.operator()).await.json().await.unwrap();
    assert_eq!(audit["entries"][0]["actor"], "cli");
    assert_eq!(audit["entries"][0]["detail"]["sessions_ended"], 2, "the registration and the later login");
}

#[tokio::test]
async fn token_verify_tells_a_valid_token_from_a_revoked_one() {
    let app = TestApp::spawn().await;
    let body = app.register("checked", "a-long-password").await;
    let token = s(&body, "access_token").to_owned();
    let out = cli(&app, &["token", "verify", &token, "--jwt-secret", common::SECRET]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("valid: user checked"));
    assert_eq!(app.post_auth("/api/logout", &token, json!({})).await.status(), 200);
    let out = cli(&app, &["token", "verify", &token, "--jwt-secret", common::SECRET]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("session was revoked"));
}

/// `token verify` reads the configuration as `serve` does (here: `.env` in the working
/// directory), prints the times for people, and never calls an expired token valid.
#[tokio::test]
async fn token_verify_reads_the_servers_configuration_and_refuses_expired_tokens() {
    let app = TestApp::spawn().await;
    let short = TestApp::spawn_with(&["--access-token-ttl", "1s"]).await;
    let token = s(&app.register("timed", "a-long-password").await, "access_token").to_owned();
    let brief = s(&short.register("brief", "a-long-password").await, "access_token").to_owned();
    let cwd = tempfile::tempdir().unwrap();
    let verify = |app: &TestApp, token: &str, dotenv: &str, extra: &[&str]| {
        std::fs::write(cwd.path().join(".env"), dotenv).unwrap();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gatepass"));
        cmd.current_dir(cwd.path()).args(["token", "verify", token]).args(extra);
        cmd.args(["--data-dir", app.data_dir().to_str().unwrap()]);
        if let Some(db) = &app.db {
            cmd.args(["--database-url", &db.url, "--master-key", common::MASTER_KEY]);
        }
        for var in ["GATEPASS_DATABASE_URL", "GATEPASS_JWT_SECRET", "JWT_SECRET_KEY", "GATEPASS_TOKEN_LEEWAY"] {
            cmd.env_remove(var);
        }
        let out = cmd.env("GATEPASS_LOG", "warn").output().expect("gatepass runs");
        (out.status.success(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
    };
    let right = format!("GATEPASS_JWT_SECRET={}\n", common::SECRET);

    let (ok, out, err) = verify(&app, &token, &right, &[]);
    assert!(ok, "{err}");
    assert!(out.starts_with("valid: user timed"), "{out}");
    let expires = out.lines().find(|l| l.trim_start().starts_with("expires")).expect("expiry line");
    assert!(expires.contains("(expires in 15m)") || expires.contains("(expires in 14m)"), "{out}");
    let stamp = expires.split_whitespace().nth(1).unwrap();
    assert!(stamp.len() == 10 && stamp.as_bytes()[4] == b'-', "human date: {out}");
    assert!(expires.split_whitespace().nth(2).unwrap().ends_with('Z'), "UTC time: {out}");
    assert!(out.contains("  issued ") && out.contains("  signed in "), "{out}");

    // The wrong secret, from `.env` too.
    let wrong = "GATEPASS_JWT_SECRET=Zq8vN3xK0pLm5Tr2Wy7Ub4Hc9Ge1Df6Sa0Jk3\n";
    let (ok, out, err) = verify(&app, &token, wrong, &[]);
    assert!(!ok && !out.contains("valid"), "{out}");
    assert!(err.contains("error: invalid (token_invalid)"), "{err}");

    // Past its expiry but inside the default 30 s leeway: still refused, saying why.
    let exp = claims(&brief)["exp"].as_i64().unwrap();
    while unix_now() <= exp {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (ok, out, err) = verify(&short, &brief, &right, &[]);
    assert!(!ok && out.is_empty(), "an expired token is never valid: {out}");
    assert!(err.contains("invalid (token_expired): the token expired ") && err.contains(" ago (at "), "{err}");
    assert!(err.contains("--token-leeway 30s still accept it until"), "{err}");
    // And past the leeway (none here), the verifier itself refuses it.
    let (ok, _, err) = verify(&short, &brief, &right, &["--token-leeway", "0s"]);
    assert!(!ok);
    assert!(err.contains("invalid (token_expired): the token expired ") && err.contains(" ago (at "), "{err}");
    assert!(!err.contains("still accept"), "{err}");
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A command run from the wrong place must not quietly work on a new, empty database: it
/// names the database it opened, and refuses to create one unless asked (`--init`).
#[tokio::test]
async fn cli_commands_name_their_database_and_create_none_unless_asked() {
    let app = TestApp::spawn().await;
    app.register("named", "a-long-password").await;
    let out = cli(&app, &["user", "list"]);
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    if app.db.is_none() {
        let db = std::path::absolute(app.data_dir().join("gatepass.db")).unwrap();
        assert!(said.contains(&format!("database: SQLite {}", db.display())), "{said}");
    } else {
        assert!(said.contains("database: PostgreSQL ") && !said.contains("postgres://"), "{said}");
    }

    let elsewhere = tempfile::tempdir().unwrap();
    let empty = elsewhere.path().join("data");
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_gatepass"))
            .args(["user", "list", "--data-dir", empty.to_str().unwrap()])
            .args(extra)
            .env_remove("GATEPASS_DATABASE_URL")
            .env("GATEPASS_LOG", "warn")
            .output()
            .expect("gatepass runs")
    };
    let out = run(&[]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("there is no database at") && said.contains("--init"), "{said}");
    assert!(!empty.exists(), "a refused command created the data directory");
    let out = run(&["--init"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(empty.join("gatepass.db").exists());
}

/// `user list` pages and lines its columns up whatever the names' lengths; `user delete`
/// refuses without `--yes` when it cannot ask.
#[tokio::test]
async fn cli_user_list_pages_aligned_columns_and_delete_wants_confirmation() {
    let app = TestApp::spawn().await;
    for name in ["al", "bartholomew.longname", "cy"] {
        let name = if name.len() < 3 { format!("{name}x") } else { name.to_owned() };
        app.register(&name, "a-long-password").await;
    }
    let out = cli(&app, &["user", "list", "--limit", "2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "header, two rows, footer: {text}");
    let status = lines[0].find("status");
    assert!(status.is_some() && lines[1].find("active") == status && lines[2].find("active") == status, "{text}");
    assert!(lines[3].contains("2 of 3 shown; next page: --offset 2"), "{text}");
    let next = cli(&app, &["user", "list", "--limit", "2", "--offset", "2"]);
    assert!(String::from_utf8_lossy(&next.stdout).contains("cyx"));

    let out = cli(&app, &["user", "delete", "cyx"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass --yes"));
    assert_eq!(app.post("/api/login", json!({"username": "cyx", "password": "a-long-password"})).await.status(), 200);
}
