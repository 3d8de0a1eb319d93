//! gatepass as an OAuth 2.1 / OpenID Connect provider, over HTTP: the full code flow with
//! authlib (an independent client, `interop/check_oidc_authlib.py`, run by the Python in
//! `GATEPASS_TEST_PYTHON` or `GATEPASS_TEST_SMTP_PYTHON` with authlib==1.9.6), the client
//! admin API, every bad input of the authorization and token endpoints (each refused and
//! changing nothing), and concurrent redemptions of one code and one refresh token.

use base64::Engine as _;
use reqwest::header::LOCATION;
use serde_json::{Value, json};
use sha2::Digest as _;
use std::collections::HashMap;

use crate::common::{TestApp, s};

pub(crate) const PASSWORD: &str = "a-long-password";
pub(crate) const REDIRECT: &str = "https://app.example.com/cb";
pub(crate) const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub(crate) const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn python() -> Option<String> {
    ["GATEPASS_TEST_PYTHON", "GATEPASS_TEST_SMTP_PYTHON"].iter().find_map(|v| std::env::var(v).ok())
}

/// Registers a client through the admin API; returns the RFC 7591 answer.
pub(crate) async fn register(app: &TestApp, meta: Value) -> Value {
    let r = app.post_auth("/api/admin/clients", app.operator(), meta).await;
    assert_eq!(r.status(), 201, "register client");
    r.json().await.unwrap()
}

/// A first-party confidential client for the code flow with refresh.
pub(crate) async fn web_client(app: &TestApp) -> (String, String) {
    let c = register(
        app,
        json!({
            "client_name": "Web app",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid profile email offline_access",
            "first_party": true,
        }),
    )
    .await;
    (s(&c, "client_id").to_owned(), s(&c, "client_secret").to_owned())
}

/// A user signed in through `/api/login`: the access token, sent as the session cookie.
pub(crate) async fn signed_in(app: &TestApp, name: &str) -> String {
    let r = app
        .post_auth(
            "/api/admin/users",
            app.operator(),
            json!({ "username": name, "password": PASSWORD, "email": format!("{name}@example.com") }),
        )
        .await;
    assert_eq!(r.status(), 201);
    s(&app.login(name, PASSWORD).await, "access_token").to_owned()
}

pub(crate) fn query(location: &str) -> HashMap<String, String> {
    let url = reqwest::Url::parse(location).expect("absolute redirect");
    url.query_pairs().into_owned().collect()
}

/// `GET /oauth/authorize` with `params`, as the browser holding `session`.
pub(crate) async fn authorize(app: &TestApp, session: Option<&str>, params: &[(&str, &str)]) -> reqwest::Response {
    let mut url = reqwest::Url::parse(&app.url("/oauth/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs(params.iter());
    let mut req = app.client.get(url);
    if let Some(token) = session {
        req = req.header("Cookie", format!("session={token}"));
    }
    req.send().await.unwrap()
}

pub(crate) fn code_params<'a>(client_id: &'a str, scope: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("scope", scope),
        ("state", "xyz"),
        ("nonce", "n-0S6"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ]
}

/// A code for `client_id` (first-party, so no consent page).
pub(crate) async fn code(app: &TestApp, session: &str, client_id: &str, scope: &str) -> String {
    let r = authorize(app, Some(session), &code_params(client_id, scope)).await;
    assert_eq!(r.status(), 303, "authorize: {:?}", r.text().await);
    let q = query(r.headers()[LOCATION].to_str().unwrap());
    assert_eq!(q["state"], "xyz");
    assert_eq!(q["iss"], app.base);
    q["code"].clone()
}

pub(crate) async fn token(app: &TestApp, id: &str, secret: &str, form: &[(&str, &str)]) -> reqwest::Response {
    app.client.post(app.url("/oauth/token")).basic_auth(id, Some(secret)).form(form).send().await.unwrap()
}

pub(crate) async fn exchange(app: &TestApp, id: &str, secret: &str, code: &str) -> reqwest::Response {
    let form =
        [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", REDIRECT), ("code_verifier", VERIFIER)];
    token(app, id, secret, &form).await
}

pub(crate) async fn oauth_error(r: reqwest::Response, status: u16, error: &str) -> Value {
    assert_eq!(r.status(), status, "expected {error}");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string());
    body
}

pub(crate) async fn userinfo_status(app: &TestApp, access: &str) -> u16 {
    app.get_auth("/oauth/userinfo", access).await.status().as_u16()
}

#[tokio::test]
async fn authlib_completes_the_code_flow_refreshes_revokes_and_gets_client_credentials() {
    let Some(py) = python() else {
        eprintln!("SKIPPED oidc::authlib: set GATEPASS_TEST_PYTHON (a Python with authlib==1.9.6) to run it");
        return;
    };
    let app = TestApp::spawn_provider(&[]).await;
    let web = register(
        &app,
        json!({
            "client_name": "Python web app",
            "redirect_uris": ["http://127.0.0.1:9/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid profile email offline_access",
        }),
    )
    .await;
    let machine = register(
        &app,
        json!({ "client_name": "Backend", "grant_types": ["client_credentials"], "scope": "reports:read" }),
    )
    .await;
    signed_in(&app, "alice").await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../interop/check_oidc_authlib.py");
    let out = tokio::process::Command::new(&py)
        .arg(script)
        .args([&app.base, s(&web, "client_id"), s(&web, "client_secret"), s(&machine, "client_id")])
        .args([s(&machine, "client_secret"), "alice", PASSWORD, "alice@example.com"])
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {py}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "authlib check failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    let user = app.storage.user_by_username("alice").await.unwrap().unwrap();
    assert_eq!(seen["sub"], user.id.as_str());
    assert_eq!(seen["revoked"], true);
    // The consent given in the pages is remembered for this client and scope set.
    assert_eq!(app.storage.consents(user.id.as_str(), s(&web, "client_id")).await.unwrap().len(), 1);
}

#[tokio::test]
async fn discovery_publishes_the_provider_and_its_key() {
    let app = TestApp::spawn_provider(&[]).await;
    let meta: Value = app.get("/.well-known/openid-configuration").await.json().await.unwrap();
    assert_eq!(meta["issuer"], app.base);
    assert_eq!(meta["authorization_endpoint"], format!("{}/oauth/authorize", app.base));
    assert_eq!(meta["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(meta["id_token_signing_alg_values_supported"], json!(["RS256", "ES256"]));
    assert_eq!(meta["authorization_response_iss_parameter_supported"], true);
    let as_meta: Value = app.get("/.well-known/oauth-authorization-server").await.json().await.unwrap();
    assert_eq!(as_meta, meta);
    let jwks: Value = app.get("/.well-known/jwks.json").await.json().await.unwrap();
    // One RS256 key (ID tokens) and one ES256 key (client access tokens), public parts only.
    for alg in ["RS256", "ES256"] {
        let found: Vec<&Value> = jwks["keys"].as_array().unwrap().iter().filter(|k| k["alg"] == alg).collect();
        assert_eq!(found.len(), 1, "{alg}: {jwks}");
        assert!(found[0].get("d").is_none(), "{alg} private part published");
    }
    // Without an issuer URL the provider is off.
    let off = TestApp::spawn().await;
    assert_eq!(off.get("/.well-known/oauth-authorization-server").await.status(), 404);
    let meta: Value = off.get("/.well-known/openid-configuration").await.json().await.unwrap();
    assert!(meta.get("authorization_endpoint").is_none());
}

/// The JOSE header of a compact JWS.
fn jose_header(token: &str) -> Value {
    let part = token.split('.').next().unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn access_tokens_are_es256_and_id_tokens_rs256_each_with_its_published_key() {
    let app = TestApp::spawn_provider(&[]).await;
    let jwks: Value = app.get("/.well-known/jwks.json").await.json().await.unwrap();
    let kid_of = |alg: &str| {
        jwks["keys"].as_array().unwrap().iter().find(|k| k["alg"] == alg).map(|k| k["kid"].clone()).unwrap()
    };
    let (id, secret) = web_client(&app).await;
    let session = signed_in(&app, "alice").await;
    let code = code(&app, &session, &id, "openid offline_access").await;
    let t: Value = exchange(&app, &id, &secret, &code).await.json().await.unwrap();
    let (access, id_token) = (jose_header(s(&t, "access_token")), jose_header(s(&t, "id_token")));
    assert_eq!((&access["alg"], &access["typ"], &access["kid"]), (&json!("ES256"), &json!("at+jwt"), &kid_of("ES256")));
    assert_eq!((&id_token["alg"], &id_token["kid"]), (&json!("RS256"), &kid_of("RS256")));
    // The ES256 access token opens userinfo; the RS256 ID token, a different type, does not.
    assert_eq!(userinfo_status(&app, s(&t, "access_token")).await, 200);
    assert_eq!(userinfo_status(&app, s(&t, "id_token")).await, 401);

    let backend = register(
        &app,
        json!({ "client_name": "Backend", "grant_types": ["client_credentials"], "scope": "reports:read" }),
    )
    .await;
    let r =
        token(&app, s(&backend, "client_id"), s(&backend, "client_secret"), &[("grant_type", "client_credentials")])
            .await;
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    assert_eq!(jose_header(s(&t, "access_token"))["alg"], "ES256");
}

#[tokio::test]
async fn migration_0017_keeps_the_id_token_key_on_both_backends() {
    const OLD_KEY: &str = "INSERT INTO oauth_id_key (id, kid, alg, public_jwk, private_key, created_at) \
        VALUES (1, 'rs256-old', 'RS256', '{\"kty\":\"RSA\"}', 'sealed', 7)";
    const CHECK: &str = "SELECT alg, kid, public_jwk, private_key, created_at FROM oauth_keys";
    type Row = (String, String, String, String, i64);
    let expected: Vec<Row> = vec![("RS256".into(), "rs256-old".into(), r#"{"kty":"RSA"}"#.into(), "sealed".into(), 7)];

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let (before, this) = crate::email_migration::scripts_until("sqlite", "0017");
    for sql in before {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&pool).await.unwrap();
    }
    sqlx::raw_sql(OLD_KEY).execute(&pool).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(this)).execute(&pool).await.unwrap();
    let rows: Vec<Row> = sqlx::query_as(CHECK).fetch_all(&pool).await.unwrap();
    assert_eq!(rows, expected);

    let Some(admin) = crate::common::pg::admin_url() else {
        eprintln!("SKIPPED migration_0017 postgres: GATEPASS_TEST_POSTGRES_URL is unset");
        return;
    };
    let db = crate::common::pg::TestDb::create(&admin).await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let (before, this) = crate::email_migration::scripts_until("postgres", "0017");
    for sql in before {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&pool).await.unwrap();
    }
    sqlx::raw_sql(OLD_KEY).execute(&pool).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(this)).execute(&pool).await.unwrap();
    let rows: Vec<Row> = sqlx::query_as(CHECK).fetch_all(&pool).await.unwrap();
    assert_eq!(rows, expected);
    pool.close().await;
}

#[tokio::test]
async fn client_admin_api_shows_the_secret_once_and_rotates_it() {
    let app = TestApp::spawn_provider(&[]).await;
    let (id, secret) = web_client(&app).await;
    let shown: Value = app.get_auth(&format!("/api/admin/clients/{id}"), app.operator()).await.json().await.unwrap();
    assert!(shown.get("client_secret").is_none());
    assert_eq!(shown["token_endpoint_auth_method"], "client_secret_basic");
    let list: Value = app.get_auth("/api/admin/clients", app.operator()).await.json().await.unwrap();
    assert_eq!(list["clients"].as_array().unwrap().len(), 1);
    assert!(list["clients"][0].get("client_secret").is_none());
    let r =
        app.patch_auth(&format!("/api/admin/clients/{id}"), app.operator(), json!({ "client_name": "Renamed" })).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["client_name"], "Renamed");
    // Bad metadata changes nothing.
    for bad in [
        json!({ "redirect_uris": ["http://app.example.com/cb"] }),
        json!({ "redirect_uris": ["https://app.example.com/cb#x"] }),
        json!({ "grant_types": ["password"] }),
        json!({ "token_endpoint_auth_method": "none" }),
        json!({ "unknown_field": 1 }),
    ] {
        let r = app.patch_auth(&format!("/api/admin/clients/{id}"), app.operator(), bad.clone()).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    let after: Value = app.get_auth(&format!("/api/admin/clients/{id}"), app.operator()).await.json().await.unwrap();
    assert_eq!(after["redirect_uris"], json!([REDIRECT]));
    // A user without the admin role cannot register clients.
    let user = signed_in(&app, "bob").await;
    let r =
        app.post_auth("/api/admin/clients", &user, json!({ "client_name": "x", "redirect_uris": [REDIRECT] })).await;
    assert_eq!(r.status(), 403);
    // Rotation: the new secret works, the old one no longer does.
    let r = app.post_auth(&format!("/api/admin/clients/{id}/rotate-secret"), app.operator(), json!({})).await;
    assert_eq!(r.status(), 200);
    let new_secret = s(&r.json::<Value>().await.unwrap(), "client_secret").to_owned();
    assert_ne!(new_secret, secret);
    let c = code(&app, &user, &id, "openid").await;
    oauth_error(exchange(&app, &id, &secret, &c).await, 401, "invalid_client").await;
    assert_eq!(exchange(&app, &id, &new_secret, &c).await.status(), 200);
}

#[tokio::test]
async fn unregistered_redirect_uri_gets_an_error_page_not_a_redirect() {
    let app = TestApp::spawn_provider(&[]).await;
    let (id, _) = web_client(&app).await;
    let user = signed_in(&app, "carol").await;
    for uri in ["https://evil.example.com/cb", "https://app.example.com/cb/x", "https://app.example.com/cb?a=1"] {
        let mut params = code_params(&id, "openid");
        params[2] = ("redirect_uri", uri);
        let r = authorize(&app, Some(&user), &params).await;
        assert_eq!(r.status(), 400, "{uri}");
        assert!(r.headers().get(LOCATION).is_none());
        assert_eq!(r.headers()["x-frame-options"], "DENY");
        assert!(r.text().await.unwrap().contains("not registered"));
    }
    // An unknown client, likewise.
    let r = authorize(&app, Some(&user), &code_params("no-such-client", "openid")).await;
    assert_eq!(r.status(), 400);
    assert!(r.headers().get(LOCATION).is_none());
}

/// The authorization error a request gets back at the client, with its state.
pub(crate) async fn redirected_error(
    app: &TestApp,
    session: Option<&str>,
    params: &[(&str, &str)],
) -> HashMap<String, String> {
    let r = authorize(app, session, params).await;
    assert_eq!(r.status(), 303);
    let location = r.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(location.starts_with(REDIRECT), "{location}");
    let q = query(&location);
    assert_eq!(q["state"], "xyz");
    assert_eq!(q["iss"], app.base);
    assert!(!q.contains_key("code"));
    q
}

#[tokio::test]
async fn missing_or_plain_pkce_is_refused() {
    let app = TestApp::spawn_provider(&[]).await;
    let (id, _) = web_client(&app).await;
    let user = signed_in(&app, "dave").await;
    let mut params = code_params(&id, "openid");
    params.retain(|(k, _)| !k.starts_with("code_challenge"));
    assert_eq!(redirected_error(&app, Some(&user), &params).await["error"], "invalid_request");
    let mut plain = code_params(&id, "openid");
    plain[7] = ("code_challenge_method", "plain");
    assert_eq!(redirected_error(&app, Some(&user), &plain).await["error"], "invalid_request");
    let mut unset = code_params(&id, "openid");
    unset.pop();
    assert_eq!(redirected_error(&app, Some(&user), &unset).await["error"], "invalid_request");
}

#[tokio::test]
async fn unknown_scope_goes_back_as_invalid_scope_with_state() {
    let app = TestApp::spawn_provider(&[]).await;
    let (id, _) = web_client(&app).await;
    let user = signed_in(&app, "erin").await;
    assert_eq!(redirected_error(&app, Some(&user), &code_params(&id, "openid admin")).await["error"], "invalid_scope");
    // `roles` is a scope gatepass knows, but not one this client was given.
    assert_eq!(redirected_error(&app, Some(&user), &code_params(&id, "openid roles")).await["error"], "invalid_scope");
}

#[tokio::test]
async fn prompt_none_without_a_session_is_login_required() {
    let app = TestApp::spawn_provider(&[]).await;
    let (id, _) = web_client(&app).await;
    let mut params = code_params(&id, "openid");
    params.push(("prompt", "none"));
    assert_eq!(redirected_error(&app, None, &params).await["error"], "login_required");
    // Without prompt=none: the login page, which comes back to the request.
    let r = authorize(&app, None, &code_params(&id, "openid")).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains(r#"name="return_to" value="/oauth/authorize?"#));
}

#[tokio::test]
async fn a_wrong_verifier_client_or_redirect_changes_nothing() {
    let app = TestApp::spawn_provider(&[]).await;
    let (id, secret) = web_client(&app).await;
    let (other, other_secret) = web_client(&app).await;
    let user = signed_in(&app, "frank").await;
    let c = code(&app, &user, &id, "openid").await;
    let wrong_verifier = [
        ("grant_type", "authorization_code"),
        ("code", c.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", "wrong-verifier-wrong-verifier-wrong-verifier-0"),
    ];
    oauth_error(token(&app, &id, &secret, &wrong_verifier).await, 400, "invalid_grant").await;
    let no_verifier = [("grant_type", "authorization_code"), ("code", c.as_str()), ("redirect_uri", REDIRECT)];
    oauth_error(token(&app, &id, &secret, &no_verifier).await, 400, "invalid_request").await;
    let other_redirect = [
        ("grant_type", "authorization_code"),
        ("code", c.as_str()),
        ("redirect_uri", "https://app.example.com/other"),
        ("code_verifier", VERIFIER),
    ];
    oauth_error(token(&app, &id, &secret, &other_redirect).await, 400, "invalid_grant").await;
    oauth_error(exchange(&app, &other, &other_secret, &c).await, 400, "invalid_grant").await;
    oauth_error(exchange(&app, &id, "gpcs_wrong", &c).await, 401, "invalid_client").await;
    // None of that used the code: its own client still redeems it.
    let r = exchange(&app, &id, &secret, &c).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(userinfo_status(&app, s(&body, "access_token")).await, 200);
}

#[tokio::test]
async fn wrong_client_secret_is_401_with_basic_challenge() {
    let app = TestApp::spawn_provider(&[]).await;
    let (id, _) = web_client(&app).await;
    let r = token(&app, &id, "gpcs_not-the-secret", &[("grant_type", "refresh_token"), ("refresh_token", "x")]).await;
    assert_eq!(r.headers()["www-authenticate"], r#"Basic realm="gatepass""#);
    oauth_error(r, 401, "invalid_client").await;
    let r = token(&app, "unknown-client", "gpcs_x", &[("grant_type", "client_credentials")]).await;
    oauth_error(r, 401, "invalid_client").await;
    // client_secret_post with a wrong secret, likewise.
    let form = [("grant_type", "client_credentials"), ("client_id", id.as_str()), ("client_secret", "nope")];
    let r = app.client.post(app.url("/oauth/token")).form(&form).send().await.unwrap();
    oauth_error(r, 401, "invalid_client").await;
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let app = TestApp::spawn_provider(&[]).await;
    let (id, secret) = web_client(&app).await;
    let user_token = signed_in(&app, "gina").await;
    let user = app.storage.user_by_username("gina").await.unwrap().unwrap();
    let claims = app.state.service.authenticate(&user_token).unwrap();
    // A code stored as the authorization endpoint stores one, a minute and more ago.
    let raw = format!("gpc_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 32]));
    let hash: String = sha2::Sha256::digest(raw.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let stored = gatepass::storage::AuthCode {
        code_hash: hash.clone(),
        client_id: id.clone(),
        user_id: user.id.as_str().to_owned(),
        browser_sid: claims.sid.clone(),
        redirect_uri: REDIRECT.into(),
        code_challenge: CHALLENGE.into(),
        scope: "openid".into(),
        nonce: None,
        auth_time: now - 70,
        amr: "pwd".into(),
        created_at: now - 70,
        expires_at: now - 10,
        used_at: None,
        issued_sid: None,
        resource: None,
    };
    app.storage.insert_code(&stored).await.unwrap();
    oauth_error(exchange(&app, &id, &secret, &raw).await, 400, "invalid_grant").await;
    assert_eq!(app.storage.code(&hash).await.unwrap().unwrap().used_at, None);
}

#[tokio::test]
async fn a_reused_code_is_refused_and_revokes_what_it_issued() {
    let app = TestApp::spawn_provider(&[]).await;
    let (id, secret) = web_client(&app).await;
    let user = signed_in(&app, "hank").await;
    let c = code(&app, &user, &id, "openid offline_access").await;
    let first: Value = exchange(&app, &id, &secret, &c).await.json().await.unwrap();
    let access = s(&first, "access_token");
    assert_eq!(userinfo_status(&app, access).await, 200);
    oauth_error(exchange(&app, &id, &secret, &c).await, 400, "invalid_grant").await;
    assert_eq!(userinfo_status(&app, access).await, 401);
    let refresh = [("grant_type", "refresh_token"), ("refresh_token", s(&first, "refresh_token"))];
    oauth_error(token(&app, &id, &secret, &refresh).await, 400, "invalid_grant").await;
    // Introspection-style revocation check through the endpoint the feed serves: the grant is
    // in the revocation set like a logged-out session.
    let claims: Value = {
        let payload = access.split('.').nth(1).unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    };
    assert!(app.state.service.core().revocations().check(s(&claims, "sid")).is_some());
    // The browser session that approved the code lives on.
    assert_eq!(app.get_auth("/api/profile", &user).await.status(), 200);
}

#[tokio::test]
async fn client_tokens_do_not_open_gatepass_own_api_and_refresh_tokens_stay_apart() {
    let app = TestApp::spawn_provider(&[]).await;
    let (id, secret) = web_client(&app).await;
    let user_login = {
        signed_in(&app, "ivy").await;
        app.login("ivy", PASSWORD).await
    };
    let c = code(&app, s(&user_login, "access_token"), &id, "openid offline_access").await;
    let grant: Value = exchange(&app, &id, &secret, &c).await.json().await.unwrap();
    assert_eq!(app.get_auth("/api/profile", s(&grant, "access_token")).await.status(), 401);
    // A client's refresh token is refused by /api/refresh, and gatepass's own by the token endpoint.
    let r = app.post("/api/refresh", json!({ "refresh_token": s(&grant, "refresh_token") })).await;
    assert_eq!(r.status(), 401);
    let own = [("grant_type", "refresh_token"), ("refresh_token", s(&user_login, "refresh_token"))];
    oauth_error(token(&app, &id, &secret, &own).await, 400, "invalid_grant").await;
    // Deleting the client ends its grants at once.
    assert_eq!(userinfo_status(&app, s(&grant, "access_token")).await, 200);
    let r = app.delete_auth(&format!("/api/admin/clients/{id}"), app.operator()).await;
    assert_eq!(r.json::<Value>().await.unwrap()["grants_revoked"], 1);
    assert_eq!(userinfo_status(&app, s(&grant, "access_token")).await, 401);
}

/// Fires `n` requests at once; returns the statuses.
pub(crate) async fn concurrently(
    app: &TestApp,
    n: usize,
    id: &str,
    secret: &str,
    form: Vec<(String, String)>,
) -> Vec<u16> {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (client, url, form, barrier) = (app.client.clone(), app.url("/oauth/token"), form.clone(), barrier.clone());
        let (id, secret) = (id.to_owned(), secret.to_owned());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            client.post(url).basic_auth(id, Some(secret)).form(&form).send().await.unwrap().status().as_u16()
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn race_one_code_and_one_refresh_token_redeemed_hundreds_of_times_at_once() {
    let app = TestApp::spawn_provider(&[]).await;
    let (id, secret) = web_client(&app).await;
    let user = signed_in(&app, "jack").await;
    for round in 0..2 {
        let c = code(&app, &user, &id, "openid offline_access").await;
        let form: Vec<(String, String)> = [
            ("grant_type", "authorization_code"),
            ("code", c.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let statuses = concurrently(&app, 200, &id, &secret, form).await;
        let ok = statuses.iter().filter(|s| **s == 200).count();
        assert_eq!(ok, 1, "round {round}: {statuses:?}");
        assert!(statuses.iter().all(|s| *s == 200 || *s == 400), "round {round}: {statuses:?}");
    }
    let c = code(&app, &user, &id, "openid offline_access").await;
    let grant: Value = exchange(&app, &id, &secret, &c).await.json().await.unwrap();
    let form: Vec<(String, String)> = vec![
        ("grant_type".into(), "refresh_token".into()),
        ("refresh_token".into(), s(&grant, "refresh_token").into()),
    ];
    let statuses = concurrently(&app, 200, &id, &secret, form).await;
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 400), "{statuses:?}");
}

/// The `openidconnect` crate (an independent client) over this harness's HTTP client.
pub(crate) mod openidconnect_crate {
    use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims};
    use openidconnect::{
        AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
        PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
    };

    use super::*;

    /// Sends `openidconnect`'s requests with reqwest.
    pub(crate) async fn send(
        client: reqwest::Client,
        req: openidconnect::HttpRequest,
    ) -> Result<openidconnect::HttpResponse, reqwest::Error> {
        let mut rb = client.request(req.method().clone(), req.uri().to_string());
        for (name, value) in req.headers() {
            rb = rb.header(name, value);
        }
        let resp = rb.body(req.body().clone()).send().await?;
        let mut out = openidconnect::http::Response::builder().status(resp.status());
        for (name, value) in resp.headers() {
            out = out.header(name, value);
        }
        Ok(out.body(resp.bytes().await?.to_vec()).expect("response"))
    }

    #[tokio::test]
    async fn openidconnect_discovers_exchanges_with_pkce_and_verifies_the_id_token() {
        let app = TestApp::spawn_provider(&[]).await;
        let (id, secret) = web_client(&app).await;
        let session = signed_in(&app, "kate").await;
        let http_client = app.client.clone();
        let http = move |req: openidconnect::HttpRequest| send(http_client.clone(), req);

        let metadata = CoreProviderMetadata::discover_async(IssuerUrl::new(app.base.clone()).unwrap(), &http)
            .await
            .expect("discovery");
        let client = CoreClient::from_provider_metadata(metadata, ClientId::new(id), Some(ClientSecret::new(secret)))
            .set_redirect_uri(RedirectUrl::new(REDIRECT.to_owned()).unwrap());
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
            .add_scope(Scope::new("profile".into()))
            .add_scope(Scope::new("email".into()))
            .set_pkce_challenge(challenge)
            .url();
        // The browser: a signed-in session and a first-party client, so no page in between.
        let r = app.client.get(url).header("Cookie", format!("session={session}")).send().await.unwrap();
        assert_eq!(r.status(), 303);
        let q = query(r.headers()[LOCATION].to_str().unwrap());
        assert_eq!(&q["state"], state.secret());

        let tokens = client
            .exchange_code(AuthorizationCode::new(q["code"].clone()))
            .expect("token endpoint discovered")
            .set_pkce_verifier(verifier)
            .request_async(&http)
            .await
            .expect("code exchange");
        let id_token = tokens.id_token().expect("an ID token");
        let id_verifier = client.id_token_verifier();
        let claims = id_token.claims(&id_verifier, &nonce).expect("ID token verifies");
        assert_eq!(claims.issuer().as_str(), app.base);
        let expected = claims.access_token_hash().expect("at_hash");
        let actual = AccessTokenHash::from_token(
            tokens.access_token(),
            id_token.signing_alg().unwrap(),
            id_token.signing_key(&id_verifier).unwrap(),
        )
        .unwrap();
        assert_eq!(&actual, expected);
        // A tampered nonce is refused by the client library: the check is real.
        assert!(id_token.claims(&id_verifier, &Nonce::new("other".into())).is_err());

        let info: CoreUserInfoClaims = client
            .user_info(tokens.access_token().clone(), None)
            .expect("userinfo endpoint discovered")
            .request_async(&http)
            .await
            .expect("userinfo");
        assert_eq!(info.subject(), claims.subject());
        assert_eq!(info.preferred_username().map(|u| u.as_str()), Some("kate"));
        assert_eq!(info.email().map(|e| e.as_str()), Some("kate@example.com"));
    }
}

/// Runs the real binary on `app`'s data directory (and database, on PostgreSQL).
pub(crate) fn cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gatepass"));
    cmd.args(args).args(["--data-dir", app.data_dir().to_str().unwrap()]);
    if let Some(db) = &app.db {
        cmd.args(["--database-url", &db.url, "--master-key", crate::common::MASTER_KEY]);
    }
    cmd.env_remove("GATEPASS_DATABASE_URL").env("GATEPASS_LOG", "warn").output().expect("gatepass runs")
}

pub(crate) fn cli_json(app: &TestApp, args: &[&str]) -> Value {
    let out = cli(app, args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

#[tokio::test]
async fn cli_manages_clients_of_the_running_server() {
    let app = TestApp::spawn_provider(&[]).await;
    let added = cli_json(
        &app,
        &["clients", "add", "--name", "CLI app", "--redirect-uri", REDIRECT, "--scope", "openid", "--first-party"],
    );
    let id = s(&added, "client_id").to_owned();
    let secret = s(&added, "client_secret").to_owned();
    assert_eq!(added["token_endpoint_auth_method"], "client_secret_basic");
    let session = signed_in(&app, "lena").await;
    let c = code(&app, &session, &id, "openid").await;
    let grant: Value = exchange(&app, &id, &secret, &c).await.json().await.unwrap();
    let access = s(&grant, "access_token").to_owned();
    assert_eq!(userinfo_status(&app, &access).await, 200);

    let listed = cli_json(&app, &["clients", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(listed[0].get("client_secret").is_none());
    let renamed = cli_json(&app, &["clients", "update", &id, "--name", "Renamed"]);
    assert_eq!(renamed["client_name"], "Renamed");
    assert_eq!(renamed["redirect_uris"], json!([REDIRECT]));
    let rotated = cli_json(&app, &["clients", "rotate-secret", &id]);
    let new_secret = s(&rotated, "client_secret");
    let c = code(&app, &session, &id, "openid").await;
    oauth_error(exchange(&app, &id, &secret, &c).await, 401, "invalid_client").await;
    assert_eq!(exchange(&app, &id, new_secret, &c).await.status(), 200);

    let deleted = cli_json(&app, &["clients", "delete", &id]);
    assert_eq!(deleted["grants_revoked"], 2);
    // The running server picks the revocation up from storage (once a second).
    let mut refused = false;
    for _ in 0..50 {
        if userinfo_status(&app, &access).await == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(refused, "a deleted client's token still works");
    assert!(!cli(&app, &["clients", "show", &id]).status.success());
}

#[tokio::test]
async fn consent_page_is_csrf_protected_unframeable_and_deny_goes_back_as_access_denied() {
    let app = TestApp::spawn_provider(&[]).await;
    let c =
        register(&app, json!({ "client_name": "Third party", "redirect_uris": [REDIRECT], "scope": "openid email" }))
            .await;
    let id = s(&c, "client_id").to_owned();
    let session = signed_in(&app, "mona").await;
    let page = authorize(&app, Some(&session), &code_params(&id, "openid email")).await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    let html = page.text().await.unwrap();
    assert!(html.contains("Third party") && html.contains("See your e-mail address"), "{html}");
    let fields: Vec<(String, String)> = html
        .split("<input type=\"hidden\" name=\"")
        .skip(1)
        .filter_map(|rest| {
            let (name, rest) = rest.split_once("\" value=\"")?;
            let (value, _) = rest.split_once('"')?;
            Some((name.to_owned(), value.replace("&#38;", "&").replace("&amp;", "&")))
        })
        .collect();
    let post = |fields: Vec<(String, String)>| {
        app.client
            .post(app.url("/oauth/consent"))
            .header("Cookie", format!("session={session}"))
            .header("Origin", app.base.clone())
            .form(&fields)
            .send()
    };
    // A forged post (wrong token) is refused and issues nothing.
    let mut forged: Vec<(String, String)> =
        fields.iter().filter(|(k, _)| k != "csrf_token").cloned().chain([("csrf_token".into(), "x".into())]).collect();
    forged.push(("decision".into(), "allow".into()));
    let r = post(forged).await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get(LOCATION).is_none());
    let user = app.storage.user_by_username("mona").await.unwrap().unwrap();
    assert!(app.storage.consents(user.id.as_str(), &id).await.unwrap().is_empty());
    // Deny: back to the client with access_denied and the state.
    let mut deny = fields.clone();
    deny.push(("decision".into(), "deny".into()));
    let r = post(deny).await.unwrap();
    assert_eq!(r.status(), 303);
    let q = query(r.headers()[LOCATION].to_str().unwrap());
    assert_eq!((q["error"].as_str(), q["state"].as_str()), ("access_denied", "xyz"));
    assert!(app.storage.consents(user.id.as_str(), &id).await.unwrap().is_empty());
    // prompt=none now: consent_required, since nothing was allowed.
    let mut none = code_params(&id, "openid email");
    none.push(("prompt", "none"));
    assert_eq!(redirected_error(&app, Some(&session), &none).await["error"], "consent_required");
    // Allow: a code, and the consent is remembered (no page the next time).
    let mut allow = fields;
    allow.push(("decision".into(), "allow".into()));
    let r = post(allow).await.unwrap();
    assert_eq!(r.status(), 303);
    assert!(query(r.headers()[LOCATION].to_str().unwrap()).contains_key("code"));
    assert_eq!(authorize(&app, Some(&session), &code_params(&id, "openid")).await.status(), 303);
    // prompt=login: the sign-in page even with a session, coming back without prompt=login.
    let mut login = code_params(&id, "openid");
    login.push(("prompt", "login"));
    let r = authorize(&app, Some(&session), &login).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("name=\"return_to\"") && html.contains("auth_after=") && !html.contains("prompt=login"));
}
