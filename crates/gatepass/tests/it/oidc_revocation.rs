//! Token revocation for OAuth clients (RFC 7009, `POST /oauth/revoke`) over HTTP: a
//! client ends its grant with its refresh or access token; every bad request, another
//! client's token and a gatepass session's token are refused and change nothing; a
//! public client revokes with its `client_id`; and a revocation racing the refresh of the
//! same token leaves no live successor, hundreds of times over.

use serde_json::{Value, json};

use crate::common::{TestApp, s};
use crate::oidc::{
    REDIRECT, VERIFIER, code, exchange, oauth_error, register, signed_in, token, userinfo_status, web_client,
};

/// `POST /oauth/revoke` as the client `id` with HTTP Basic.
async fn revoke(app: &TestApp, id: &str, secret: &str, form: &[(&str, &str)]) -> reqwest::Response {
    app.client.post(app.url("/oauth/revoke")).basic_auth(id, Some(secret)).form(form).send().await.unwrap()
}

async fn ok(r: reqwest::Response) {
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.json::<Value>().await.unwrap(), json!({}));
}

/// A grant of client `id` for the signed-in `session`: the token response.
async fn grant(app: &TestApp, session: &str, id: &str, secret: &str) -> Value {
    let c = code(app, session, id, "openid offline_access").await;
    let r = exchange(app, id, secret, &c).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn refresh(app: &TestApp, id: &str, secret: &str, refresh_token: &str) -> reqwest::Response {
    token(app, id, secret, &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]).await
}

#[tokio::test]
async fn a_client_revokes_its_refresh_or_access_token_and_the_grant_ends() {
    let app = TestApp::spawn_provider(&[]).await;
    let (id, secret) = web_client(&app).await;
    let user = signed_in(&app, "rita").await;

    // The refresh token, with HTTP Basic.
    let first = grant(&app, &user, &id, &secret).await;
    assert_eq!(userinfo_status(&app, s(&first, "access_token")).await, 200);
    ok(revoke(&app, &id, &secret, &[("token", s(&first, "refresh_token")), ("token_type_hint", "refresh_token")])
        .await)
    .await;
    assert_eq!(userinfo_status(&app, s(&first, "access_token")).await, 401);
    oauth_error(refresh(&app, &id, &secret, s(&first, "refresh_token")).await, 400, "invalid_grant").await;

    // The access token, with the secret in the body (a wrong hint is only a hint).
    let second = grant(&app, &user, &id, &secret).await;
    let form = [
        ("token", s(&second, "access_token")),
        ("token_type_hint", "refresh_token"),
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
    ];
    ok(app.client.post(app.url("/oauth/revoke")).form(&form).send().await.unwrap()).await;
    assert_eq!(userinfo_status(&app, s(&second, "access_token")).await, 401);
    oauth_error(refresh(&app, &id, &secret, s(&second, "refresh_token")).await, 400, "invalid_grant").await;

    // Revoked already, unknown or malformed: 200, as RFC 7009 §2.2 asks.
    for t in [s(&first, "refresh_token"), s(&second, "access_token"), "gpo_unknown", "gpr_unknown", "junk", "a.b.c"] {
        ok(revoke(&app, &id, &secret, &[("token", t)]).await).await;
    }
    // Each revocation is in the audit log, once (the repeats ended nothing).
    let audit: Value =
        app.get_auth("/api/admin/audit?event=oauth_token_revoked", app.operator()).await.json().await.unwrap();
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{audit}");
    assert_eq!(entries[0]["detail"]["client_id"], id.as_str());
    // The user's own sign-in lives on.
    assert_eq!(app.get_auth("/api/profile", &user).await.status(), 200);
}

#[tokio::test]
async fn bad_requests_other_clients_tokens_and_gatepass_sessions_are_refused_and_change_nothing() {
    let app = TestApp::spawn_provider(&[]).await;
    let (id, secret) = web_client(&app).await;
    let (other, other_secret) = web_client(&app).await;
    signed_in(&app, "sam").await;
    let own = app.login("sam", crate::oidc::PASSWORD).await;
    let session = s(&own, "access_token");
    let g = grant(&app, session, &id, &secret).await;
    let (access, refresh_token) = (s(&g, "access_token"), s(&g, "refresh_token"));
    let url = app.url("/oauth/revoke");
    let form = [("token", refresh_token)];

    // Client authentication, as at the token endpoint.
    for r in [
        app.client.post(&url).form(&form).send().await.unwrap(),
        revoke(&app, &id, "gpcs_wrong", &form).await,
        revoke(&app, "no-such-client", &secret, &form).await,
        app.client.post(&url).form(&[("token", refresh_token), ("client_id", id.as_str())]).send().await.unwrap(),
        app.client.post(&url).header("authorization", "Basic !!!").form(&form).send().await.unwrap(),
    ] {
        assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"gatepass\"");
        oauth_error(r, 401, "invalid_client").await;
    }
    let both = [("token", refresh_token), ("client_id", id.as_str()), ("client_secret", secret.as_str())];
    let malformed = [
        app.client.post(&url).basic_auth(&id, Some(&secret)).form(&both).send().await.unwrap(),
        revoke(&app, &id, &secret, &[]).await,
        revoke(&app, &id, &secret, &[("token", "")]).await,
        app.client
            .post(&url)
            .basic_auth(&id, Some(&secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={refresh_token}&token={access}"))
            .send()
            .await
            .unwrap(),
        app.client
            .post(&url)
            .basic_auth(&id, Some(&secret))
            .json(&json!({ "token": refresh_token }))
            .send()
            .await
            .unwrap(),
    ];
    for r in malformed {
        oauth_error(r, 400, "invalid_request").await;
    }

    // Another client's tokens, and a sign-in to gatepass itself, are not this client's.
    for t in [refresh_token, access] {
        oauth_error(revoke(&app, &other, &other_secret, &[("token", t)]).await, 400, "unauthorized_client").await;
    }
    for t in [s(&own, "refresh_token"), session] {
        oauth_error(revoke(&app, &id, &secret, &[("token", t)]).await, 400, "unauthorized_client").await;
    }
    // gatepass's own endpoint does not take a client's token without its client.
    for t in [refresh_token, access] {
        let r = app.client.post(app.url("/api/revoke")).form(&[("token", t)]).send().await.unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(r.json::<Value>().await.unwrap()["code"], "invalid_request");
    }

    // Nothing changed: the grant and the sign-in both live.
    assert_eq!(userinfo_status(&app, access).await, 200);
    assert_eq!(app.get_auth("/api/profile", session).await.status(), 200);
    assert_eq!(refresh(&app, &id, &secret, refresh_token).await.status(), 200);
    let r = app.post("/api/refresh", json!({ "refresh_token": s(&own, "refresh_token") })).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_public_client_revokes_with_its_client_id_and_machine_tokens_are_unsupported() {
    let app = TestApp::spawn_provider(&[]).await;
    let public = register(
        &app,
        json!({
            "client_name": "CLI",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid offline_access",
            "token_endpoint_auth_method": "none",
            "first_party": true,
        }),
    )
    .await;
    let id = s(&public, "client_id");
    let user = signed_in(&app, "pia").await;
    let c = code(&app, &user, id, "openid offline_access").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", &c),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("client_id", id),
    ];
    let r = app.client.post(app.url("/oauth/token")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let g: Value = r.json().await.unwrap();
    let form = [("token", s(&g, "refresh_token")), ("client_id", id)];
    ok(app.client.post(app.url("/oauth/revoke")).form(&form).send().await.unwrap()).await;
    assert_eq!(userinfo_status(&app, s(&g, "access_token")).await, 401);

    // A client_credentials token belongs to no grant: it cannot be revoked, and says so
    // to its own client only.
    let machine =
        |name: &str| json!({ "client_name": name, "grant_types": ["client_credentials"], "scope": "reports:read" });
    let backend = register(&app, machine("Backend")).await;
    let other = register(&app, machine("Other")).await;
    let (bid, bsecret) = (s(&backend, "client_id"), s(&backend, "client_secret"));
    let t: Value = token(&app, bid, bsecret, &[("grant_type", "client_credentials")]).await.json().await.unwrap();
    let form = [("token", s(&t, "access_token"))];
    oauth_error(revoke(&app, bid, bsecret, &form).await, 400, "unsupported_token_type").await;
    let (oid, osecret) = (s(&other, "client_id"), s(&other, "client_secret"));
    oauth_error(revoke(&app, oid, osecret, &form).await, 400, "unauthorized_client").await;
}

#[tokio::test]
async fn discovery_names_the_revocation_endpoint_and_how_clients_authenticate_there() {
    let app = TestApp::spawn_provider(&[]).await;
    let d: Value = app.get("/.well-known/openid-configuration").await.json().await.unwrap();
    assert_eq!(d["revocation_endpoint"], format!("{}/oauth/revoke", app.base));
    assert_eq!(
        d["revocation_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post", "none"])
    );
    // Without the provider, the endpoint for gatepass's own tokens, which needs no client.
    let plain = TestApp::spawn().await;
    let d: Value = plain.get("/.well-known/openid-configuration").await.json().await.unwrap();
    assert_eq!(d["revocation_endpoint"], format!("{}/api/revoke", plain.base));
    assert_eq!(d["revocation_endpoint_auth_methods_supported"], json!(["none"]));
    let r = plain.client.post(plain.url("/oauth/revoke")).basic_auth("x", Some("y")).form(&[("token", "t")]).send();
    oauth_error(r.await.unwrap(), 400, "invalid_request").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn race_revoking_a_refresh_token_while_it_is_refreshed_leaves_no_live_successor() {
    let app = TestApp::spawn_provider(&["--rate-limit", "false"]).await;
    let (id, secret) = web_client(&app).await;
    let user = signed_in(&app, "rex").await;
    let (mut refreshed, mut revoked_first) = (0, 0);
    for round in 0..200 {
        let g = grant(&app, &user, &id, &secret).await;
        let rt = s(&g, "refresh_token").to_owned();
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
        let (a, b) = (barrier.clone(), barrier);
        let (r1, r2) = tokio::join!(
            async {
                a.wait().await;
                refresh(&app, &id, &secret, &rt).await
            },
            async {
                b.wait().await;
                revoke(&app, &id, &secret, &[("token", &rt)]).await
            }
        );
        assert_eq!(r2.status(), 200, "round {round}: the revocation answers 200 either way");
        if r1.status() == 200 {
            // The refresh won: its successor belongs to the same grant, which the
            // revocation then ended.
            refreshed += 1;
            let next: Value = r1.json().await.unwrap();
            assert_eq!(userinfo_status(&app, s(&next, "access_token")).await, 401, "round {round}");
            let r = refresh(&app, &id, &secret, s(&next, "refresh_token")).await;
            oauth_error(r, 400, "invalid_grant").await;
        } else {
            revoked_first += 1;
            oauth_error(r1, 400, "invalid_grant").await;
        }
        assert_eq!(userinfo_status(&app, s(&g, "access_token")).await, 401, "round {round}");
    }
    eprintln!("refresh first {refreshed}, revocation first {revoked_first}");
}
