//! Rotating the OpenID provider's keys over HTTP and the command line: the new keys are
//! published at once and sign after the activation delay; tokens signed by the keys they
//! replace keep verifying (userinfo, introspection, an `id_token_hint`); another instance
//! takes a rotation up at its next key reload. A client may ask for ES256 ID tokens.

use base64::Engine as _;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

use crate::common::{TestApp, s};
use crate::oidc::{code, exchange, register, signed_in, token, userinfo_status, web_client};

fn kid(token: &str) -> String {
    let part = token.split('.').next().unwrap();
    let header: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap();
    s(&header, "kid").to_owned()
}

async fn published(app: &TestApp) -> Vec<String> {
    let jwks: Value = app.get("/.well-known/jwks.json").await.json().await.unwrap();
    jwks["keys"].as_array().unwrap().iter().map(|k| s(k, "kid").to_owned()).collect()
}

/// The provider's keys as the admin API lists them: `(kid, alg, state)`.
async fn provider_keys(app: &TestApp) -> Vec<(String, String, String)> {
    let r = app.get_auth("/api/admin/oauth/keys", app.operator()).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (s(k, "kid").to_owned(), s(k, "alg").to_owned(), s(k, "state").to_owned()))
        .collect()
}

/// A code-flow grant of client `id` for the signed-in `session`: the token response.
async fn grant(app: &TestApp, session: &str, id: &str, secret: &str) -> Value {
    let c = code(app, session, id, "openid offline_access").await;
    exchange(app, id, secret, &c).await.json::<Value>().await.unwrap()
}

/// A `client_credentials` access token of client `id`.
async fn machine_token(app: &TestApp, id: &str, secret: &str) -> String {
    let r = token(app, id, secret, &[("grant_type", "client_credentials")]).await;
    s(&r.json::<Value>().await.unwrap(), "access_token").to_owned()
}

async fn rotate(app: &TestApp) -> Vec<Value> {
    let r = app.post_auth("/api/admin/oauth/keys/rotate", app.operator(), json!({})).await;
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    body["keys"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_rotation_signs_with_new_keys_and_tokens_of_the_old_ones_keep_working() {
    let app = TestApp::spawn_provider(&["--key-activation-delay", "0s", "--key-reload-interval", "200ms"]).await;
    let (id, secret) = web_client(&app).await;
    let user = signed_in(&app, "kim").await;
    let before = grant(&app, &user, &id, &secret).await;
    let (old_id_kid, old_access_kid) = (kid(s(&before, "id_token")), kid(s(&before, "access_token")));
    let keys = provider_keys(&app).await;
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().all(|(_, _, state)| state == "active"), "{keys:?}");

    let new = rotate(&app).await;
    assert_eq!(new.len(), 2);
    let new_kid = |alg: &str| s(new.iter().find(|k| k["alg"] == alg).unwrap(), "kid").to_owned();
    let (new_id_kid, new_access_kid) = (new_kid("RS256"), new_kid("ES256"));
    // No activation delay: active at once, or in the next second when the current keys
    // activated in this one (a new key always activates after the key it replaces).
    let deadline = Instant::now() + Duration::from_secs(5);
    let keys = loop {
        let keys = provider_keys(&app).await;
        if keys.iter().filter(|(_, _, state)| state == "active").count() == 2
            && keys.iter().any(|(k, _, state)| *k == new_id_kid && state == "active")
            && keys.iter().any(|(k, _, state)| *k == new_access_kid && state == "active")
        {
            break keys;
        }
        assert!(Instant::now() < deadline, "the new keys did not activate: {keys:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(keys.len(), 4);
    for (kid, _, state) in &keys {
        let expected = if [&old_id_kid, &old_access_kid].contains(&kid) { "retired" } else { "active" };
        assert_eq!(state, expected, "{kid}: {keys:?}");
    }
    // All four are published: the old ones until every token they signed has expired.
    let jwks = published(&app).await;
    for k in [&old_id_kid, &old_access_kid, &new_id_kid, &new_access_kid] {
        assert!(jwks.contains(k), "{k} in {jwks:?}");
    }

    // New tokens carry the new keys; the old grant's tokens keep working.
    // (The server switches at its next key reload after the activation.)
    let after = loop {
        let after = grant(&app, &user, &id, &secret).await;
        // (Each key activates in the first second no other key of its algorithm does.)
        if kid(s(&after, "id_token")) == new_id_kid && kid(s(&after, "access_token")) == new_access_kid {
            break after;
        }
        assert!(Instant::now() < deadline, "still signing with {}", kid(s(&after, "id_token")));
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(userinfo_status(&app, s(&after, "access_token")).await, 200);
    assert_eq!(userinfo_status(&app, s(&before, "access_token")).await, 200);
    let r =
        token(&app, &id, &secret, &[("grant_type", "refresh_token"), ("refresh_token", s(&before, "refresh_token"))])
            .await;
    assert_eq!(r.status(), 200);
    // An ID token of the old key is still a valid `id_token_hint` for signing out.
    let mut url = reqwest::Url::parse(&app.url("/oauth/logout")).unwrap();
    url.query_pairs_mut().append_pair("id_token_hint", s(&before, "id_token"));
    let r = app.client.get(url).header("Cookie", format!("session={user}")).send().await.unwrap();
    let page = r.text().await.unwrap();
    assert!(!page.contains("did not issue"), "{page}");

    // Audited, with the new keys.
    let audit: Value =
        app.get_auth("/api/admin/audit?event=oauth_keys_rotated", app.operator()).await.json().await.unwrap();
    assert_eq!(audit["entries"][0]["detail"]["keys"].as_array().map(Vec::len), Some(2), "{audit}");
}

#[tokio::test]
async fn new_keys_are_published_before_they_sign_and_the_cli_rotates_them_too() {
    // The default activation delay (10 minutes): JWKS caches fetch the keys first.
    let app = TestApp::spawn_provider(&["--key-reload-interval", "200ms"]).await;
    let machine = register(
        &app,
        json!({ "client_name": "Backend", "grant_types": ["client_credentials"], "scope": "reports:read" }),
    )
    .await;
    let (mid, msecret) = (s(&machine, "client_id").to_owned(), s(&machine, "client_secret").to_owned());
    let current = kid(&machine_token(&app, &mid, &msecret).await);
    let new = rotate(&app).await;
    assert!(new.iter().all(|k| k["state"] == "pending"), "{new:?}");
    let jwks = published(&app).await;
    assert!(new.iter().all(|k| jwks.contains(&s(k, "kid").to_owned())), "published at once");
    assert_eq!(kid(&machine_token(&app, &mid, &msecret).await), current, "still signed by the current key");

    // From the command line, against the running server's data: another pair, which the
    // server publishes at its next key reload.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gatepass"));
    cmd.args(["keys", "rotate-provider", "--data-dir", app.data_dir().to_str().unwrap()]);
    if let Some(db) = &app.db {
        cmd.args(["--database-url", &db.url, "--master-key", crate::common::MASTER_KEY]);
    }
    let out = cmd.env_remove("GATEPASS_DATABASE_URL").env("GATEPASS_LOG", "warn").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("OpenID provider keys:"), "{stdout}");
    let added: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("added OpenID provider "))
        .filter_map(|l| l.split_whitespace().nth(2))
        .map(|k| k.trim_end_matches(':'))
        .collect();
    assert_eq!(added.len(), 2, "{stdout}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let jwks = published(&app).await;
        if added.iter().all(|k| jwks.contains(&(*k).to_owned())) {
            break;
        }
        assert!(Instant::now() < deadline, "the server did not publish {added:?}: {jwks:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(provider_keys(&app).await.len(), 6);
}

#[tokio::test]
async fn another_instance_takes_a_rotation_up_at_its_next_key_reload() {
    let clients = "svc:introspection-secret-0123456789abcdef";
    let a = TestApp::spawn_with(&[
        "--issuer",
        "https://id.example.test",
        "--key-activation-delay",
        "0s",
        "--key-reload-interval",
        "200ms",
        "--introspection-clients",
        clients,
    ])
    .await;
    let b = a.spawn_peer().await;
    let machine = register(
        &a,
        json!({ "client_name": "Backend", "grant_types": ["client_credentials"], "scope": "reports:read" }),
    )
    .await;
    let (mid, msecret) = (s(&machine, "client_id").to_owned(), s(&machine, "client_secret").to_owned());
    let old = machine_token(&b, &mid, &msecret).await;
    let new = rotate(&a).await;
    let new_access = s(new.iter().find(|k| k["alg"] == "ES256").unwrap(), "kid").to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    let from_b = loop {
        let t = machine_token(&b, &mid, &msecret).await;
        if kid(&t) == new_access {
            break t;
        }
        assert!(Instant::now() < deadline, "instance B still signs with {}", kid(&t));
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(published(&b).await.contains(&new_access));
    // Each instance verifies the other's tokens, old key and new.
    for (app, t) in [(&a, &old), (&a, &from_b), (&b, &old), (&b, &from_b)] {
        let r = app
            .client
            .post(app.url("/api/introspect"))
            .basic_auth("svc", Some("introspection-secret-0123456789abcdef"));
        let body: Value = r.form(&[("token", t.as_str())]).send().await.unwrap().json().await.unwrap();
        assert_eq!(body["active"], true, "{body}");
    }
}

#[tokio::test]
async fn a_client_may_ask_for_es256_id_tokens() {
    let app = TestApp::spawn_provider(&[]).await;
    let meta = |alg: Value| {
        json!({
            "client_name": "EC app",
            "redirect_uris": [crate::oidc::REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid offline_access",
            "first_party": true,
            "id_token_signed_response_alg": alg,
        })
    };
    for bad in [json!("HS256"), json!("none"), json!("es256"), json!("PS256"), json!(256)] {
        let r = app.post_auth("/api/admin/clients", app.operator(), meta(bad.clone())).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    let (rs_id, _) = web_client(&app).await;
    let rs: Value = app.get_auth(&format!("/api/admin/clients/{rs_id}"), app.operator()).await.json().await.unwrap();
    assert_eq!(rs["id_token_signed_response_alg"], "RS256", "the default");
    let ec = register(&app, meta(json!("ES256"))).await;
    assert_eq!(ec["id_token_signed_response_alg"], "ES256");
    let (id, secret) = (s(&ec, "client_id"), s(&ec, "client_secret"));
    let user = signed_in(&app, "eve").await;
    let g = grant(&app, &user, id, secret).await;
    let id_token = s(&g, "id_token");

    // Signed with the provider's published ES256 key, and verifiable with it.
    let part = id_token.split('.').next().unwrap();
    let header: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap();
    assert_eq!((&header["alg"], &header["typ"]), (&json!("ES256"), &json!("JWT")));
    let jwks: Value = app.get("/.well-known/jwks.json").await.json().await.unwrap();
    let jwk = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == header["kid"]).expect("published").clone();
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&[id]);
    validation.set_issuer(&[app.base.as_str()]);
    let claims =
        jsonwebtoken::decode::<Value>(id_token, &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(), &validation)
            .expect("the ID token verifies with the published key")
            .claims;
    assert!(claims["at_hash"].is_string());
    // An ES256 ID token is no access token, though the key also signs access tokens.
    assert_eq!(userinfo_status(&app, id_token).await, 401);
    assert_eq!(userinfo_status(&app, s(&g, "access_token")).await, 200);
    // It is a valid `id_token_hint` for signing out.
    let mut url = reqwest::Url::parse(&app.url("/oauth/logout")).unwrap();
    url.query_pairs_mut().append_pair("id_token_hint", id_token);
    let page = app.client.get(url).header("Cookie", format!("session={user}")).send().await.unwrap();
    let page = page.text().await.unwrap();
    assert!(!page.contains("did not issue"), "{page}");
    // Discovery says both are supported.
    let d: Value = app.get("/.well-known/openid-configuration").await.json().await.unwrap();
    assert_eq!(d["id_token_signing_alg_values_supported"], json!(["RS256", "ES256"]));
}
