//! The OAuth 2.0 Device Authorization Grant (RFC 8628) over HTTP: a device asks
//! `/oauth/device_authorization` for codes, a user signs in on `/oauth/device` with a
//! cookie jar, enters the code and decides, and the device polls `/oauth/token`. Every
//! bad input is refused and changes nothing; concurrent polls after approval issue tokens
//! once, and of an approval and a denial at the same moment exactly one is recorded.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::header::LOCATION;
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::browser_csrf::Browser;
use crate::common::{TestApp, s};
use crate::oidc::{PASSWORD, oauth_error, register};

const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A public client for the device grant (a TV or CLI), with refresh tokens.
async fn device_client(app: &TestApp) -> String {
    let c = register(
        app,
        json!({
            "client_name": "Living-room TV",
            "grant_types": [GRANT, "refresh_token"],
            "scope": "openid profile email offline_access",
            "token_endpoint_auth_method": "none",
        }),
    )
    .await;
    s(&c, "client_id").to_owned()
}

async fn create_user(app: &TestApp, name: &str) {
    let r = app
        .post_auth(
            "/api/admin/users",
            app.operator(),
            json!({ "username": name, "password": PASSWORD, "email": format!("{name}@example.com") }),
        )
        .await;
    assert_eq!(r.status(), 201);
}

/// `POST /oauth/device_authorization` as the public client `id`.
async fn authorize_device(app: &TestApp, id: &str, scope: &str) -> reqwest::Response {
    app.client
        .post(app.url("/oauth/device_authorization"))
        .form(&[("client_id", id), ("scope", scope)])
        .send()
        .await
        .unwrap()
}

/// The codes of a successful device authorization.
async fn device_codes(app: &TestApp, id: &str, scope: &str) -> Value {
    let r = authorize_device(app, id, scope).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    r.json().await.unwrap()
}

/// One poll of the token endpoint by the public client `id`.
async fn poll(app: &TestApp, id: &str, device_code: &str) -> reqwest::Response {
    app.client
        .post(app.url("/oauth/token"))
        .form(&[("grant_type", GRANT), ("device_code", device_code), ("client_id", id)])
        .send()
        .await
        .unwrap()
}

/// The value of the hidden `csrf_token` field of a page.
fn csrf_field(html: &str) -> String {
    let rest = html.split("name=\"csrf_token\" value=\"").nth(1).expect("a CSRF field");
    rest.split('"').next().unwrap().to_owned()
}

/// A browser signed in as `name` through the sign-in page that `/oauth/device?…` shows,
/// back on the code form (its HTML).
async fn signed_in_at<'a>(app: &'a TestApp, name: &str, path: &str) -> (Browser<'a>, String) {
    let mut b = Browser::new(app);
    let login = b.page(path).await;
    let return_to = login.split("name=\"return_to\" value=\"").nth(1).expect("returns after sign-in");
    let return_to = return_to.split('"').next().unwrap().replace("&#38;", "&").replace("&amp;", "&");
    assert_eq!(return_to, path);
    let r = b.post_form("/ui/login", &[("username", name), ("password", PASSWORD), ("return_to", &return_to)]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[LOCATION], path);
    let form = b.page(path).await;
    (b, form)
}

/// Enters `code` on the form; the response.
async fn enter(b: &mut Browser<'_>, csrf: &str, code: &str) -> reqwest::Response {
    b.post_form("/oauth/device", &[("csrf_token", csrf), ("user_code", code)]).await
}

/// Decides `code` (`allow` or `deny`); the response.
async fn decide(b: &mut Browser<'_>, csrf: &str, code: &str, decision: &str) -> reqwest::Response {
    b.post_form("/oauth/device", &[("csrf_token", csrf), ("user_code", code), ("decision", decision)]).await
}

/// The claims of a JWT, unverified (the ID token is verified by `openidconnect` below).
fn claims(jwt: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

#[tokio::test]
async fn full_flow_signs_in_on_the_page_approves_and_the_device_gets_verified_tokens() {
    use openidconnect::core::{CoreClient, CoreIdToken, CoreProviderMetadata};
    use openidconnect::{ClientId, IssuerUrl, Nonce};

    let app = TestApp::spawn_provider(&[]).await;
    let id = device_client(&app).await;
    create_user(&app, "tess").await;
    let codes = device_codes(&app, &id, "openid profile email offline_access").await;
    let user_code = s(&codes, "user_code").to_owned();
    assert_eq!(user_code.len(), 9);
    assert_eq!(&user_code[4..5], "-");
    assert!(user_code.bytes().filter(|b| *b != b'-').all(|b| b"BCDFGHJKLMNPQRSTVWXZ".contains(&b)), "{user_code}");
    assert_eq!(s(&codes, "verification_uri"), format!("{}/oauth/device", app.base));
    assert_eq!(s(&codes, "verification_uri_complete"), format!("{}/oauth/device?user_code={user_code}", app.base));
    assert_eq!((codes["expires_in"].as_i64(), codes["interval"].as_i64()), (Some(600), Some(5)));
    let device_code = s(&codes, "device_code").to_owned();
    // Stored as digests only.
    let stored = app.storage.device_code(&hex_sha256(&device_code)).await.unwrap().expect("stored by digest");
    // The user code's digest is keyed (a plain SHA-256 of so few values is quickly
    // inverted from a leaked database).
    let normalised = user_code.replace('-', "");
    assert_eq!(stored.user_code_hash, user_code_digest(&app, &normalised));
    assert_ne!(stored.user_code_hash, hex_sha256(&normalised));
    oauth_error(poll(&app, &id, &device_code).await, 400, "authorization_pending").await;

    // The user opens the complete URI, signs in, and comes back to the prefilled form.
    let path = format!("/oauth/device?user_code={user_code}");
    let (mut b, form) = signed_in_at(&app, "tess", &path).await;
    assert!(form.contains(&format!("value=\"{user_code}\"")), "{form}");
    let r = b.get(&path).await;
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert!(r.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    let csrf = csrf_field(&form);
    // Lower case and without the dash works the same.
    let r = enter(&mut b, &csrf, &user_code.replace('-', "").to_lowercase()).await;
    assert_eq!(r.status(), 200);
    let confirm = r.text().await.unwrap();
    assert!(confirm.contains("Living-room TV"), "{confirm}");
    assert!(confirm.contains("See your e-mail address") && confirm.contains("Stay signed in"), "{confirm}");
    let r = decide(&mut b, &csrf, &user_code, "allow").await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Device connected"));

    // The next poll (a decided code is answered at once) gets what a code exchange gives.
    let r = poll(&app, &id, &device_code).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let tokens: Value = r.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["refresh_token"].is_string());
    let id_token = s(&tokens, "id_token");
    let http_client = app.client.clone();
    let http = move |req: openidconnect::HttpRequest| crate::oidc::openidconnect_crate::send(http_client.clone(), req);
    let metadata = CoreProviderMetadata::discover_async(IssuerUrl::new(app.base.clone()).unwrap(), &http)
        .await
        .expect("discovery");
    let client = CoreClient::from_provider_metadata(metadata, ClientId::new(id.clone()), None);
    let parsed: CoreIdToken = id_token.parse().expect("an ID token");
    let verified = parsed
        .claims(&client.id_token_verifier(), |n: Option<&Nonce>| if n.is_none() { Ok(()) } else { Err("nonce".into()) })
        .expect("ID token verifies");
    let user = app.storage.user_by_username("tess").await.unwrap().unwrap();
    assert_eq!(verified.subject().as_str(), user.id.as_str());
    let id_claims = claims(id_token);
    let access_claims = claims(s(&tokens, "access_token"));
    assert!(id_claims.get("nonce").is_none());
    assert_eq!(id_claims["amr"], json!(["pwd"]));
    assert_eq!(id_claims["auth_time"], access_claims["auth_time"]);
    assert!(id_claims["auth_time"].as_i64().unwrap() >= stored.created_at);
    let info = app.get_auth("/oauth/userinfo", s(&tokens, "access_token")).await;
    assert_eq!(info.status(), 200);
    let info: Value = info.json().await.unwrap();
    assert_eq!((info["preferred_username"].as_str(), info["email"].as_str()), (Some("tess"), Some("tess@example.com")));
    // The refresh token works like any other grant's.
    let r = app
        .client
        .post(app.url("/oauth/token"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", s(&tokens, "refresh_token")), ("client_id", &id)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Used: refused, and what it issued stays valid (a repeated poll is no theft).
    oauth_error(poll(&app, &id, &device_code).await, 400, "invalid_grant").await;
    assert_eq!(app.get_auth("/oauth/userinfo", s(&tokens, "access_token")).await.status(), 200);
    // The account page lists the client among the allowed applications.
    assert_eq!(app.storage.user_consents(user.id.as_str()).await.unwrap()[0].client_name, "Living-room TV");
    // The decision is audited.
    let audit = app.get_auth("/api/admin/audit?event=oauth_device_approved", app.operator()).await;
    assert!(audit.text().await.unwrap().contains(&id));
}

fn hex_sha256(s: &str) -> String {
    sha2::Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// What the server stores of a normalised user code.
fn user_code_digest(app: &TestApp, code: &str) -> String {
    app.state.service.oauth().keys().expect("provider keys").user_code_digest(code)
}

#[tokio::test]
async fn polling_faster_than_the_interval_is_slow_down_and_the_interval_grows() {
    let app = TestApp::spawn_provider(&[]).await;
    let id = device_client(&app).await;
    let codes = device_codes(&app, &id, "openid").await;
    let device_code = s(&codes, "device_code");
    let hash = hex_sha256(device_code);
    oauth_error(poll(&app, &id, device_code).await, 400, "authorization_pending").await;
    oauth_error(poll(&app, &id, device_code).await, 400, "slow_down").await;
    assert_eq!(app.storage.device_code(&hash).await.unwrap().unwrap().interval_secs, 10);
    oauth_error(poll(&app, &id, device_code).await, 400, "slow_down").await;
    let stored = app.storage.device_code(&hash).await.unwrap().unwrap();
    assert_eq!((stored.interval_secs, stored.status.as_str()), (15, "pending"));
}

#[tokio::test]
async fn denied_is_access_denied_and_cannot_be_turned_into_an_approval() {
    let app = TestApp::spawn_provider(&[]).await;
    let id = device_client(&app).await;
    create_user(&app, "dana").await;
    let codes = device_codes(&app, &id, "openid").await;
    let (device_code, user_code) = (s(&codes, "device_code"), s(&codes, "user_code"));
    let (mut b, form) = signed_in_at(&app, "dana", "/oauth/device").await;
    let csrf = csrf_field(&form);
    assert!(form.contains("value=\"\""), "an empty form without a code in the link");
    let r = decide(&mut b, &csrf, user_code, "deny").await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Device not connected"));
    oauth_error(poll(&app, &id, device_code).await, 400, "access_denied").await;
    // Decided once: an approval afterwards shows the form again and changes nothing.
    let r = decide(&mut b, &csrf, user_code, "allow").await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("That code is not valid"));
    oauth_error(poll(&app, &id, device_code).await, 400, "access_denied").await;
    let user = app.storage.user_by_username("dana").await.unwrap().unwrap();
    assert!(app.storage.consents(user.id.as_str(), &id).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_expired_device_code_is_expired_token_and_its_user_code_is_refused() {
    let app = TestApp::spawn_provider(&[]).await;
    let id = device_client(&app).await;
    create_user(&app, "enzo").await;
    // A code stored as the endpoint stores one, eleven minutes ago.
    let raw = format!("gpd_{}", URL_SAFE_NO_PAD.encode([9u8; 32]));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let stored = gatepass::storage::DeviceCode {
        device_hash: hex_sha256(&raw),
        user_code_hash: user_code_digest(&app, "BCDFGHJK"),
        client_id: id.clone(),
        scope: "openid".into(),
        resource: None,
        created_at: now - 660,
        expires_at: now - 60,
        interval_secs: 5,
        last_poll_at: None,
        status: "pending".into(),
        user_id: None,
        browser_sid: None,
        auth_time: None,
        amr: None,
        decided_at: None,
        used_at: None,
        issued_sid: None,
    };
    app.storage.insert_device_code(&stored).await.unwrap();
    oauth_error(poll(&app, &id, &raw).await, 400, "expired_token").await;
    let (mut b, form) = signed_in_at(&app, "enzo", "/oauth/device?user_code=BCDF-GHJK").await;
    let csrf = csrf_field(&form);
    let r = enter(&mut b, &csrf, "BCDF-GHJK").await;
    assert_eq!(r.status(), 400);
    let r = decide(&mut b, &csrf, "BCDF-GHJK", "allow").await;
    assert_eq!(r.status(), 400);
    assert_eq!(app.storage.device_code(&stored.device_hash).await.unwrap(), Some(stored));
}

#[tokio::test]
async fn another_clients_device_code_is_invalid_grant_and_stays_pending() {
    let app = TestApp::spawn_provider(&[]).await;
    let id = device_client(&app).await;
    let other = device_client(&app).await;
    let codes = device_codes(&app, &id, "openid").await;
    let device_code = s(&codes, "device_code");
    oauth_error(poll(&app, &other, device_code).await, 400, "invalid_grant").await;
    oauth_error(poll(&app, &id, "gpd_not-a-code").await, 400, "invalid_grant").await;
    let garbage = format!("gpd_{}", URL_SAFE_NO_PAD.encode([1u8; 32]));
    oauth_error(poll(&app, &id, &garbage).await, 400, "invalid_grant").await;
    let r = app.client.post(app.url("/oauth/token")).form(&[("grant_type", GRANT), ("client_id", &id)]).send().await;
    oauth_error(r.unwrap(), 400, "invalid_request").await;
    // Nothing was recorded by the refused polls: the owner's first poll is not too fast.
    oauth_error(poll(&app, &id, device_code).await, 400, "authorization_pending").await;
}

#[tokio::test]
async fn a_wrong_or_used_user_code_shows_the_form_again_and_changes_nothing() {
    let app = TestApp::spawn_provider(&[]).await;
    let id = device_client(&app).await;
    create_user(&app, "fay").await;
    let codes = device_codes(&app, &id, "openid profile").await;
    let (device_code, user_code) = (s(&codes, "device_code"), s(&codes, "user_code"));
    let (mut b, form) = signed_in_at(&app, "fay", "/oauth/device").await;
    let csrf = csrf_field(&form);
    // (Every attempt costs one of the account's 10 tokens of the burst: a few here.)
    for wrong in ["BBBB-BBBB", "<script>", &"B".repeat(200)] {
        let r = enter(&mut b, &csrf, wrong).await;
        assert_eq!(r.status(), 400, "{wrong}");
        let html = r.text().await.unwrap();
        assert!(html.contains("That code is not valid") && !html.contains("<script>"), "{html}");
    }
    assert_eq!(decide(&mut b, &csrf, "AEIO-U123", "allow").await.status(), 400);
    let hash = hex_sha256(device_code);
    assert_eq!(app.storage.device_code(&hash).await.unwrap().unwrap().status, "pending");
    assert_eq!(decide(&mut b, &csrf, user_code, "allow").await.status(), 200);
    assert_eq!(poll(&app, &id, device_code).await.status(), 200);
    // Used: the form again, for the lookup and for a decision.
    assert_eq!(enter(&mut b, &csrf, user_code).await.status(), 400);
    assert_eq!(decide(&mut b, &csrf, user_code, "deny").await.status(), 400);
    assert_eq!(app.storage.device_code(&hash).await.unwrap().unwrap().status, "used");
}

#[tokio::test]
async fn guessing_user_codes_is_throttled_and_a_throttled_attempt_changes_nothing() {
    let app = TestApp::spawn_provider(&[]).await;
    let id = device_client(&app).await;
    create_user(&app, "hal").await;
    let codes = device_codes(&app, &id, "openid").await;
    let (device_code, user_code) = (s(&codes, "device_code"), s(&codes, "user_code"));
    let (mut b, form) = signed_in_at(&app, "hal", "/oauth/device").await;
    let csrf = csrf_field(&form);
    let mut statuses = Vec::new();
    for _ in 0..15 {
        statuses.push(enter(&mut b, &csrf, "BBBB-BBBB").await.status().as_u16());
    }
    assert!(statuses.iter().all(|s| *s == 400 || *s == 429), "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
    // Now even the right code is refused for a while, and nothing is decided.
    let r = decide(&mut b, &csrf, user_code, "allow").await;
    assert_eq!(r.status(), 429);
    assert!(r.text().await.unwrap().contains("Too many attempts"));
    oauth_error(poll(&app, &id, device_code).await, 400, "authorization_pending").await;
}

#[tokio::test]
async fn a_post_without_the_csrf_token_or_from_elsewhere_is_refused() {
    let app = TestApp::spawn_provider(&[]).await;
    let id = device_client(&app).await;
    create_user(&app, "gus").await;
    let codes = device_codes(&app, &id, "openid").await;
    let (device_code, user_code) = (s(&codes, "device_code"), s(&codes, "user_code"));
    let (mut b, form) = signed_in_at(&app, "gus", "/oauth/device").await;
    let r = b.post_form("/oauth/device", &[("user_code", user_code), ("decision", "allow")]).await;
    assert_eq!(r.status(), 403);
    let r = b
        .post_with(
            "/oauth/device",
            &[("csrf_token", &csrf_field(&form)), ("user_code", user_code), ("decision", "allow")],
            &[("origin", "https://evil.example"), ("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(r.status(), 403);
    // Signed out: back to the start, nothing decided.
    let r = app
        .client
        .post(app.url("/oauth/device"))
        .header("origin", app.base.clone())
        .form(&[("user_code", user_code), ("decision", "allow")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    oauth_error(poll(&app, &id, device_code).await, 400, "authorization_pending").await;
}

#[tokio::test]
async fn device_authorization_refuses_bad_clients_scopes_and_requests() {
    let app = TestApp::spawn_provider(&[]).await;
    // A confidential client with the code flow only: unauthorized_client, at both endpoints.
    let web = register(
        &app,
        json!({ "client_name": "Web", "redirect_uris": ["https://app.example.com/cb"], "scope": "openid" }),
    )
    .await;
    let (web_id, web_secret) = (s(&web, "client_id"), s(&web, "client_secret"));
    let form = [("scope", "openid")];
    let post = || app.client.post(app.url("/oauth/device_authorization"));
    let r = post().basic_auth(web_id, Some(web_secret)).form(&form).send().await.unwrap();
    oauth_error(r, 400, "unauthorized_client").await;
    let r = app
        .client
        .post(app.url("/oauth/token"))
        .basic_auth(web_id, Some(web_secret))
        .form(&[("grant_type", GRANT), ("device_code", "x")])
        .send()
        .await
        .unwrap();
    oauth_error(r, 400, "unauthorized_client").await;
    // A wrong secret with Basic: 401 with the challenge.
    let r = post().basic_auth(web_id, Some("wrong")).form(&form).send().await.unwrap();
    assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"gatepass\"");
    oauth_error(r, 401, "invalid_client").await;
    let r = post().form(&[("client_id", "nobody"), ("scope", "openid")]).send().await.unwrap();
    oauth_error(r, 401, "invalid_client").await;
    // A confidential client with the device grant authenticates like at the token endpoint.
    let conf = register(&app, json!({ "client_name": "Kiosk", "grant_types": [GRANT], "scope": "openid" })).await;
    let (conf_id, conf_secret) = (s(&conf, "client_id"), s(&conf, "client_secret"));
    let r = post().form(&[("client_id", conf_id), ("scope", "openid")]).send().await.unwrap();
    oauth_error(r, 401, "invalid_client").await;
    let r = post().basic_auth(conf_id, Some(conf_secret)).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = post().form(&[("client_id", conf_id), ("client_secret", conf_secret), ("scope", "openid")]).send().await;
    assert_eq!(r.unwrap().status(), 200);
    // Scopes: required, and only the client's.
    let id = device_client(&app).await;
    oauth_error(authorize_device(&app, &id, "").await, 400, "invalid_scope").await;
    oauth_error(authorize_device(&app, &id, "openid roles").await, 400, "invalid_scope").await;
    oauth_error(authorize_device(&app, &id, "openid admin:all").await, 400, "invalid_scope").await;
    // A resource the client may not use; an unknown parameter; not a form.
    let r = post().form(&[("client_id", id.as_str()), ("scope", "openid"), ("resource", "https://other.example")]);
    oauth_error(r.send().await.unwrap(), 400, "invalid_target").await;
    let r = post().form(&[("client_id", id.as_str()), ("scope", "openid"), ("nonce", "x")]).send().await.unwrap();
    oauth_error(r, 400, "invalid_request").await;
    let r = post().json(&json!({ "client_id": id, "scope": "openid" })).send().await.unwrap();
    oauth_error(r, 400, "invalid_request").await;
}

#[tokio::test]
async fn while_the_provider_is_off_the_endpoints_refuse_and_the_page_is_an_error() {
    let app = TestApp::spawn().await;
    let r = authorize_device(&app, "someone", "openid").await;
    oauth_error(r, 400, "invalid_request").await;
    let r = app.get("/oauth/device?user_code=WDJB-MJHT").await;
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("does not act as an OAuth provider"));
}

#[tokio::test]
async fn clients_get_the_grant_from_an_administrator_never_by_self_registration() {
    let app = TestApp::spawn_provider(&["--oauth-registration", "open"]).await;
    // An administrator: a device-only client needs no redirect URI.
    let id = device_client(&app).await;
    let view = app.get_auth(&format!("/api/admin/clients/{id}"), app.operator()).await;
    let view: Value = view.json().await.unwrap();
    assert_eq!(view["token_endpoint_auth_method"], "none");
    assert!(view["grant_types"].as_array().unwrap().contains(&json!(GRANT)));
    // Self-registration: refused, and a limited client cannot be given the grant until promoted.
    let meta =
        json!({ "client_name": "Sneaky", "redirect_uris": ["https://s.example.com/cb"], "grant_types": [GRANT] });
    let r = app.post("/oauth/register", meta).await;
    oauth_error(r, 400, "invalid_client_metadata").await;
    let r = app
        .post("/oauth/register", json!({ "client_name": "Fine", "redirect_uris": ["https://s.example.com/cb"] }))
        .await;
    assert_eq!(r.status(), 201);
    let fine: Value = r.json().await.unwrap();
    let path = format!("/api/admin/clients/{}", s(&fine, "client_id"));
    let r = app.patch_auth(&path, app.operator(), json!({ "grant_types": ["authorization_code", GRANT] })).await;
    assert_eq!(r.status(), 400);
    let r = app
        .patch_auth(&path, app.operator(), json!({ "grant_types": ["authorization_code", GRANT], "limited": false }))
        .await;
    assert_eq!(r.status(), 200);
    // Discovery, in both documents.
    for doc in ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"] {
        let d: Value = app.get(doc).await.json().await.unwrap();
        assert_eq!(d["device_authorization_endpoint"], format!("{}/oauth/device_authorization", app.base), "{doc}");
        assert!(d["grant_types_supported"].as_array().unwrap().contains(&json!(GRANT)), "{doc}");
    }
}

/// Approves `user_code` for `name`'s browser `b` (CSRF token `csrf`).
async fn approve(b: &mut Browser<'_>, csrf: &str, user_code: &str) {
    let r = decide(b, csrf, user_code, "allow").await;
    assert_eq!(r.status(), 200);
}

/// Rounds of each race (as in `races.rs`), with this many pollers or deciders at once.
const ROUNDS: usize = 200;
const RACERS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn race_concurrent_polls_after_approval_issue_tokens_once() {
    let app = TestApp::spawn_provider(&["--rate-limit", "false"]).await;
    let id = device_client(&app).await;
    create_user(&app, "rita").await;
    let (mut b, form) = signed_in_at(&app, "rita", "/oauth/device").await;
    let csrf = csrf_field(&form);
    for round in 0..ROUNDS / RACERS * 3 {
        let codes = device_codes(&app, &id, "openid offline_access").await;
        approve(&mut b, &csrf, s(&codes, "user_code")).await;
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(RACERS));
        let mut tasks = Vec::new();
        for _ in 0..RACERS {
            let (client, url, barrier) = (app.client.clone(), app.url("/oauth/token"), barrier.clone());
            let form = [
                ("grant_type", GRANT.to_owned()),
                ("device_code", s(&codes, "device_code").to_owned()),
                ("client_id", id.clone()),
            ];
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let r = client.post(url).form(&form).send().await.unwrap();
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap();
                (status, body)
            }));
        }
        let mut ok = 0;
        for t in tasks {
            let (status, body) = t.await.unwrap();
            match status {
                200 => ok += 1,
                400 => assert_eq!(body["error"], "invalid_grant", "round {round}: {body}"),
                other => panic!("round {round}: {other} {body}"),
            }
        }
        assert_eq!(ok, 1, "round {round}");
        let stored = app.storage.device_code(&hex_sha256(s(&codes, "device_code"))).await.unwrap().unwrap();
        let sid = stored.issued_sid.expect("the grant is recorded");
        assert!(app.storage.session(&sid).await.unwrap().unwrap().revoked_at.is_none(), "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn race_approve_and_deny_at_once_record_exactly_one_decision() {
    let app = TestApp::spawn_provider(&["--rate-limit", "false"]).await;
    let id = device_client(&app).await;
    create_user(&app, "rosa").await;
    let (b, form) = signed_in_at(&app, "rosa", "/oauth/device").await;
    let csrf = csrf_field(&form);
    let cookie = b.jar.header_for("/oauth/device");
    for round in 0..ROUNDS / RACERS * 3 {
        let codes = device_codes(&app, &id, "openid").await;
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(RACERS));
        let mut tasks = Vec::new();
        for i in 0..RACERS {
            let decision = if i % 2 == 0 { "allow" } else { "deny" };
            let (client, url, barrier) = (app.client.clone(), app.url("/oauth/device"), barrier.clone());
            let form = [
                ("csrf_token", csrf.clone()),
                ("user_code", s(&codes, "user_code").to_owned()),
                ("decision", decision.to_owned()),
            ];
            let cookie = cookie.clone();
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let r = client
                    .post(url)
                    .header("cookie", cookie)
                    .header("origin", "null")
                    .header("sec-fetch-site", "same-origin")
                    .form(&form)
                    .send()
                    .await
                    .unwrap();
                (decision, r.status().as_u16())
            }));
        }
        let mut won = Vec::new();
        for t in tasks {
            let (decision, status) = t.await.unwrap();
            match status {
                200 => won.push(decision),
                400 => {}
                other => panic!("round {round}: {other}"),
            }
        }
        assert_eq!(won.len(), 1, "round {round}: {won:?}");
        let r = poll(&app, &id, s(&codes, "device_code")).await;
        if won[0] == "allow" {
            assert_eq!(r.status(), 200, "round {round}");
        } else {
            oauth_error(r, 400, "access_denied").await;
        }
    }
}
