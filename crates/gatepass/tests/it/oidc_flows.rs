//! The provider's further flows over HTTP: RP-initiated logout (`/oauth/logout`), each bad
//! request refused without a redirect and changing nothing.

use reqwest::header::LOCATION;
use serde_json::{Value, json};

use crate::common::{TestApp, s};
use crate::oidc::{PASSWORD, REDIRECT, cli_json, code, exchange, register, signed_in, token, userinfo_status};

const BYE: &str = "https://app.example.com/bye";

/// A first-party client for the code flow with refresh, which may be sent back to [`BYE`].
async fn logout_client(app: &TestApp) -> (String, String) {
    let c = register(
        app,
        json!({
            "client_name": "Web app",
            "redirect_uris": [REDIRECT],
            "post_logout_redirect_uris": [BYE],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid profile offline_access",
            "first_party": true,
        }),
    )
    .await;
    assert_eq!(c["post_logout_redirect_uris"], json!([BYE]));
    (s(&c, "client_id").to_owned(), s(&c, "client_secret").to_owned())
}

/// The grant's tokens for `session`: (ID token, access token, refresh token).
async fn grant(app: &TestApp, session: &str, id: &str, secret: &str) -> (String, String, String) {
    let c = code(app, session, id, "openid offline_access").await;
    let r = exchange(app, id, secret, &c).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    (s(&body, "id_token").to_owned(), s(&body, "access_token").to_owned(), s(&body, "refresh_token").to_owned())
}

/// `GET /oauth/logout` with `params`, as the browser holding `session`.
async fn logout(app: &TestApp, session: Option<&str>, params: &[(&str, &str)]) -> reqwest::Response {
    let mut url = reqwest::Url::parse(&app.url("/oauth/logout")).unwrap();
    url.query_pairs_mut().extend_pairs(params.iter());
    let mut req = app.client.get(url);
    if let Some(token) = session {
        req = req.header("Cookie", format!("session={token}"));
    }
    req.send().await.unwrap()
}

async fn profile_status(app: &TestApp, session: &str) -> u16 {
    app.client
        .get(app.url("/api/profile"))
        .header("Cookie", format!("session={session}"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The hidden fields of a page's form.
fn hidden_fields(html: &str) -> Vec<(String, String)> {
    html.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .filter_map(|rest| {
            let (name, rest) = rest.split_once("\" value=\"")?;
            let (value, _) = rest.split_once('"')?;
            Some((name.to_owned(), value.replace("&#38;", "&").replace("&amp;", "&").replace("&#x2f;", "/")))
        })
        .collect()
}

async fn confirm(app: &TestApp, session: &str, origin: &str, fields: &[(String, String)]) -> reqwest::Response {
    app.client
        .post(app.url("/oauth/logout/confirm"))
        .header("Cookie", format!("session={session}"))
        .header("Origin", origin)
        .form(fields)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn rp_logout_with_the_users_hint_ends_the_browser_session_and_the_grant_and_bad_requests_change_nothing() {
    let app = TestApp::spawn_provider(&[]).await;
    let meta: Value = app.get("/.well-known/openid-configuration").await.json().await.unwrap();
    assert_eq!(meta["end_session_endpoint"], format!("{}/oauth/logout", app.base));
    let (id, secret) = logout_client(&app).await;
    let other = register(
        &app,
        json!({ "client_name": "Other", "redirect_uris": [REDIRECT], "post_logout_redirect_uris": [BYE] }),
    )
    .await;
    let session = signed_in(&app, "alice").await;
    let (id_token, access, refresh) = grant(&app, &session, &id, &secret).await;
    let mut tampered = id_token.clone();
    tampered.pop();
    tampered.push(if id_token.ends_with('A') { 'B' } else { 'A' });

    let bad: Vec<Vec<(&str, &str)>> = vec![
        // An address the client did not register for signing out (its redirect URI included).
        vec![("id_token_hint", id_token.as_str()), ("post_logout_redirect_uri", "https://evil.example.com/")],
        vec![("id_token_hint", id_token.as_str()), ("post_logout_redirect_uri", REDIRECT)],
        vec![("id_token_hint", id_token.as_str()), ("post_logout_redirect_uri", "https://app.example.com/bye/")],
        // An address without saying whose it is.
        vec![("post_logout_redirect_uri", BYE)],
        // A hint gatepass did not sign, or not an ID token of the provider.
        vec![("id_token_hint", tampered.as_str()), ("post_logout_redirect_uri", BYE)],
        vec![("id_token_hint", session.as_str()), ("post_logout_redirect_uri", BYE)],
        vec![("id_token_hint", "not-a-token")],
        // A client that is not the hint's audience, or not registered.
        vec![("id_token_hint", id_token.as_str()), ("client_id", s(&other, "client_id"))],
        vec![("client_id", "no-such-client"), ("post_logout_redirect_uri", BYE)],
    ];
    for params in &bad {
        let r = logout(&app, Some(&session), params).await;
        assert_eq!(r.status(), 400, "{params:?}");
        assert!(r.headers().get(LOCATION).is_none(), "{params:?}");
        assert!(r.headers().get("set-cookie").is_none(), "{params:?}");
        assert_eq!(r.headers()["x-frame-options"], "DENY");
        assert!(r.text().await.unwrap().contains("Sign-out stopped"));
    }
    // None of that ended anything.
    assert_eq!(profile_status(&app, &session).await, 200);
    assert_eq!(userinfo_status(&app, &access).await, 200);

    // The hint for the signed-in user: both end at once, and back to the client with state.
    let r = logout(
        &app,
        Some(&session),
        &[("id_token_hint", id_token.as_str()), ("post_logout_redirect_uri", BYE), ("state", "s-1")],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[LOCATION], format!("{BYE}?state=s-1"));
    let cleared: Vec<&str> = r.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).collect();
    assert!(cleared.iter().any(|c| c.starts_with("session=;") && c.contains("Max-Age=0")), "{cleared:?}");
    assert_eq!(profile_status(&app, &session).await, 401);
    assert_eq!(userinfo_status(&app, &access).await, 401);
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())];
    assert_eq!(token(&app, &id, &secret, &form).await.status(), 400);

    // Signed out already, the same request just goes back to the client.
    let r = logout(&app, None, &[("id_token_hint", id_token.as_str()), ("post_logout_redirect_uri", BYE)]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[LOCATION], BYE);
    // Without a redirect URI: gatepass's own signed-out page.
    let r = logout(&app, None, &[("client_id", id.as_str())]).await;
    assert_eq!(r.headers()[LOCATION], "/?notice=logged_out");

    // The form-post binding behaves the same.
    let session = app.login("alice", PASSWORD).await;
    let session = s(&session, "access_token").to_owned();
    let (id_token, _, _) = grant(&app, &session, &id, &secret).await;
    let r = app
        .client
        .post(app.url("/oauth/logout"))
        .header("Cookie", format!("session={session}"))
        .header("Origin", "https://app.example.com")
        .form(&[("id_token_hint", id_token.as_str()), ("post_logout_redirect_uri", BYE)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(profile_status(&app, &session).await, 401);

    // With the provider off there is nothing to sign out of here.
    let off = TestApp::spawn().await;
    assert_eq!(off.get("/oauth/logout").await.status(), 400);
}

#[tokio::test]
async fn rp_logout_without_a_matching_hint_asks_and_the_confirmation_is_csrf_protected() {
    let app = TestApp::spawn_provider(&[]).await;
    let (id, secret) = logout_client(&app).await;
    let alice = signed_in(&app, "alice").await;
    let (alice_hint, _, _) = grant(&app, &alice, &id, &secret).await;
    let bob = signed_in(&app, "bob").await;
    let (_, bob_access, _) = grant(&app, &bob, &id, &secret).await;

    // Alice's hint in Bob's browser, and no hint at all: the page asks, nothing ends.
    for params in [
        vec![("id_token_hint", alice_hint.as_str()), ("post_logout_redirect_uri", BYE), ("state", "s-2")],
        vec![("client_id", id.as_str()), ("post_logout_redirect_uri", BYE), ("state", "s-2")],
    ] {
        let r = logout(&app, Some(&bob), &params).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-frame-options"], "DENY");
        assert_eq!(r.headers()["cache-control"], "no-store");
        let html = r.text().await.unwrap();
        assert!(html.contains("Web app asks to sign you out"), "{html}");
        assert!(!html.contains(&alice_hint), "the hint is not echoed");
    }
    assert_eq!(profile_status(&app, &alice).await, 200);
    assert_eq!(profile_status(&app, &bob).await, 200);
    let page =
        logout(&app, Some(&bob), &[("client_id", id.as_str()), ("post_logout_redirect_uri", BYE), ("state", "s-2")])
            .await
            .text()
            .await
            .unwrap();
    let fields = hidden_fields(&page);
    assert!(fields.iter().any(|(k, v)| k == "post_logout_redirect_uri" && v == BYE), "{fields:?}");

    // A forged confirmation (wrong token, or another site) ends nothing.
    let forged: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| if k == "csrf_token" { (k.clone(), "forged".into()) } else { (k.clone(), v.clone()) })
        .collect();
    assert_eq!(confirm(&app, &bob, &app.base, &forged).await.status(), 403);
    assert_eq!(confirm(&app, &bob, "https://evil.example.com", &fields).await.status(), 403);
    // A confirmation that swaps in an unregistered address is refused and ends nothing.
    let swapped: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| {
            if k == "post_logout_redirect_uri" {
                (k.clone(), "https://evil.example.com/".into())
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect();
    let r = confirm(&app, &bob, &app.base, &swapped).await;
    assert_eq!(r.status(), 400);
    assert!(r.headers().get(LOCATION).is_none());
    assert_eq!(profile_status(&app, &bob).await, 200);

    // Confirmed: Bob's browser session ends and he goes back to the client with the state;
    // his grant (no hint named it) and Alice's session live on.
    let r = confirm(&app, &bob, &app.base, &fields).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[LOCATION], format!("{BYE}?state=s-2"));
    assert_eq!(profile_status(&app, &bob).await, 401);
    assert_eq!(userinfo_status(&app, &bob_access).await, 200);
    assert_eq!(profile_status(&app, &alice).await, 200);
    // The page asks nothing of a browser that is not signed in.
    let r = logout(&app, None, &[("client_id", id.as_str()), ("post_logout_redirect_uri", BYE)]).await;
    assert_eq!(r.status(), 303);
}

#[tokio::test]
async fn post_logout_redirect_uris_are_client_metadata_in_the_admin_api_and_the_cli() {
    let app = TestApp::spawn_provider(&[]).await;
    let c = register(&app, json!({ "client_name": "App", "redirect_uris": [REDIRECT] })).await;
    let id = s(&c, "client_id").to_owned();
    assert_eq!(c["post_logout_redirect_uris"], json!([]));
    let path = format!("/api/admin/clients/{id}");
    for bad in [
        json!({ "post_logout_redirect_uris": ["http://app.example.com/bye"] }),
        json!({ "post_logout_redirect_uris": ["https://app.example.com/bye#x"] }),
        json!({ "post_logout_redirect_uris": "https://app.example.com/bye" }),
    ] {
        assert_eq!(app.patch_auth(&path, app.operator(), bad.clone()).await.status(), 400, "{bad}");
    }
    let shown: Value = app.get_auth(&path, app.operator()).await.json().await.unwrap();
    assert_eq!(shown["post_logout_redirect_uris"], json!([]));
    let r = app.patch_auth(&path, app.operator(), json!({ "post_logout_redirect_uris": [BYE] })).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["post_logout_redirect_uris"], json!([BYE]));
    let updated = cli_json(
        &app,
        &[
            "clients",
            "update",
            &id,
            "--post-logout-redirect-uri",
            "http://127.0.0.1/bye",
            "--post-logout-redirect-uri",
            BYE,
        ],
    );
    assert_eq!(updated["post_logout_redirect_uris"], json!(["http://127.0.0.1/bye", BYE]));
    // And the logout endpoint honours what was stored.
    let r =
        logout(&app, None, &[("client_id", id.as_str()), ("post_logout_redirect_uri", "http://127.0.0.1/bye")]).await;
    assert_eq!(r.status(), 303);
}

/// A third-party client (consent asked) for the code flow with refresh.
async fn third_party(app: &TestApp) -> (String, String) {
    let c = register(
        app,
        json!({
            "client_name": "Third party",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid email offline_access",
        }),
    )
    .await;
    (s(&c, "client_id").to_owned(), s(&c, "client_secret").to_owned())
}

/// Remembers `user`'s consent to `client_id`, as the consent page does.
async fn allow(app: &TestApp, user: &str, client_id: &str) {
    let u = app.storage.user_by_username(user).await.unwrap().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    app.storage.grant_consent(u.id.as_str(), client_id, "email offline_access openid", now).await.unwrap();
}

/// The account page as `session` sees it, and its CSRF token.
async fn account_page(app: &TestApp, session: &str) -> (String, String) {
    let r = app.client.get(app.url("/")).header("Cookie", format!("session={session}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    let csrf = html
        .split("name=\"csrf_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a CSRF field")
        .to_owned();
    (html, csrf)
}

fn remove_access(app: &TestApp, session: &str, client_id: &str, csrf: &str, origin: &str) -> reqwest::RequestBuilder {
    app.client
        .post(app.url(&format!("/ui/apps/{client_id}/revoke")))
        .header("Cookie", format!("session={session}"))
        .header("Origin", origin)
        .form(&[("csrf_token", csrf)])
}

#[tokio::test]
async fn the_account_page_lists_allowed_apps_and_removing_one_ends_its_tokens_at_once() {
    let app = TestApp::spawn_provider(&[]).await;
    let (id, secret) = third_party(&app).await;
    let (own, own_secret) = logout_client(&app).await;
    let alice = signed_in(&app, "alice").await;
    allow(&app, "alice", &id).await;
    let (_, access, refresh) = grant(&app, &alice, &id, &secret).await;
    let (_, own_access, _) = grant(&app, &alice, &own, &own_secret).await;
    let bob = signed_in(&app, "bob").await;

    let (html, csrf) = account_page(&app, &alice).await;
    assert!(html.contains("Applications you have allowed"), "{html}");
    assert!(html.contains("Third party") && html.contains("Web app"), "{html}");
    assert!(html.contains("See your e-mail address"), "{html}");
    assert!(html.contains(&format!("/ui/apps/{id}/revoke")));
    let (bob_html, bob_csrf) = account_page(&app, &bob).await;
    assert!(!bob_html.contains("Applications you have allowed"));

    // Refused, changing nothing: a forged token, another site, an unknown client, and Bob
    // removing an application only Alice allowed.
    let user = app.storage.user_by_username("alice").await.unwrap().unwrap();
    assert_eq!(remove_access(&app, &alice, &id, "forged", &app.base).send().await.unwrap().status(), 403);
    assert_eq!(remove_access(&app, &alice, &id, &csrf, "https://evil.example.com").send().await.unwrap().status(), 403);
    for (session, client, token) in [(&alice, "no-such-client", &csrf), (&bob, id.as_str(), &bob_csrf)] {
        let r = remove_access(&app, session, client, token, &app.base).send().await.unwrap();
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()[LOCATION], "/?notice=app_gone");
    }
    assert_eq!(userinfo_status(&app, &access).await, 200);
    assert_eq!(app.storage.consents(user.id.as_str(), &id).await.unwrap().len(), 1);

    // Removed: the consent is forgotten, the grant revoked (access and refresh token), the
    // other application and the browser session untouched.
    let r = remove_access(&app, &alice, &id, &csrf, &app.base).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[LOCATION], "/?notice=app_revoked");
    assert_eq!(userinfo_status(&app, &access).await, 401);
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())];
    assert_eq!(token(&app, &id, &secret, &form).await.status(), 400);
    assert!(app.storage.consents(user.id.as_str(), &id).await.unwrap().is_empty());
    assert_eq!(userinfo_status(&app, &own_access).await, 200);
    assert_eq!(profile_status(&app, &alice).await, 200);
    let (html, _) = account_page(&app, &alice).await;
    assert!(!html.contains("Third party") && html.contains("Web app"), "{html}");
    // The client must ask again.
    let r = crate::oidc::authorize(&app, Some(&alice), &crate::oidc::code_params(&id, "openid email")).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Allow Third party?"));
    // Removing it again: nothing left to remove.
    let r = remove_access(&app, &alice, &id, &csrf, &app.base).send().await.unwrap();
    assert_eq!(r.headers()[LOCATION], "/?notice=app_gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn race_removing_an_app_while_it_refreshes_leaves_no_working_token() {
    let app = TestApp::spawn_provider(&[]).await;
    let (id, secret) = third_party(&app).await;
    let alice = signed_in(&app, "alice").await;
    let (_, csrf) = account_page(&app, &alice).await;
    let mut refreshed = 0;
    for round in 0..200 {
        allow(&app, "alice", &id).await;
        let (_, access, refresh) = grant(&app, &alice, &id, &secret).await;
        let form = [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())];
        let refresh_req = app.client.post(app.url("/oauth/token")).basic_auth(&id, Some(&secret)).form(&form).send();
        let remove_req = remove_access(&app, &alice, &id, &csrf, &app.base).send();
        let (refreshed_r, removed_r) = tokio::join!(refresh_req, remove_req);
        let removed_r = removed_r.unwrap();
        assert_eq!(removed_r.headers()[LOCATION], "/?notice=app_revoked", "round {round}");
        let refreshed_r = refreshed_r.unwrap();
        assert_eq!(userinfo_status(&app, &access).await, 401, "round {round}");
        match refreshed_r.status().as_u16() {
            200 => {
                refreshed += 1;
                let body: Value = refreshed_r.json().await.unwrap();
                assert_eq!(userinfo_status(&app, s(&body, "access_token")).await, 401, "round {round}");
                let again = [("grant_type", "refresh_token"), ("refresh_token", s(&body, "refresh_token"))];
                assert_eq!(token(&app, &id, &secret, &again).await.status(), 400, "round {round}");
            }
            400 => {}
            other => panic!("round {round}: refresh answered {other}"),
        }
    }
    eprintln!("refresh won the race in {refreshed} of 200 rounds");
}

async fn register_dynamic(app: &TestApp, bearer: Option<&str>, meta: Value) -> reqwest::Response {
    let mut req = app.client.post(app.url("/oauth/register")).json(&meta);
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap()
}

async fn client_count(app: &TestApp) -> usize {
    app.storage.list_clients().await.unwrap().len()
}

fn agent_metadata() -> Value {
    json!({
        "client_name": "Agent",
        "redirect_uris": ["http://127.0.0.1/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "scope": "openid offline_access",
        "token_endpoint_auth_method": "none",
        "logo_uri": "https://agent.example.com/logo.png",
        "software_id": "agent-cli",
    })
}

#[tokio::test]
async fn dynamic_registration_is_off_by_default_and_registers_limited_public_clients_when_open() {
    let off = TestApp::spawn_provider(&[]).await;
    assert_eq!(register_dynamic(&off, None, agent_metadata()).await.status(), 404);
    let meta: Value = off.get("/.well-known/openid-configuration").await.json().await.unwrap();
    assert!(meta.get("registration_endpoint").is_none());
    assert_eq!(client_count(&off).await, 0);

    let app = TestApp::spawn_provider(&["--oauth-registration", "open"]).await;
    let meta: Value = app.get("/.well-known/openid-configuration").await.json().await.unwrap();
    assert_eq!(meta["registration_endpoint"], format!("{}/oauth/register", app.base));
    let mut bad = Vec::new();
    let with = |field: &str, value: Value| {
        let mut m = agent_metadata();
        m[field] = value;
        m
    };
    let without = |field: &str| {
        let mut m = agent_metadata();
        m.as_object_mut().unwrap().remove(field);
        m
    };
    bad.push((without("redirect_uris"), "invalid_redirect_uri"));
    bad.push((with("redirect_uris", json!(["http://evil.example.com/cb"])), "invalid_redirect_uri"));
    bad.push((with("post_logout_redirect_uris", json!(["https://x.example.com/#f"])), "invalid_redirect_uri"));
    bad.push((with("grant_types", json!(["client_credentials"])), "invalid_client_metadata"));
    bad.push((with("token_endpoint_auth_method", json!("client_secret_basic")), "invalid_client_metadata"));
    bad.push((with("first_party", json!(true)), "invalid_client_metadata"));
    bad.push((with("limited", json!(false)), "invalid_client_metadata"));
    bad.push((with("roles", json!(["admin"])), "invalid_client_metadata"));
    bad.push((without("client_name"), "invalid_client_metadata"));
    bad.push((with("id_token_signed_response_alg", json!("none")), "invalid_client_metadata"));
    bad.push((with("id_token_signed_response_alg", json!("HS256")), "invalid_client_metadata"));
    for (meta, error) in bad {
        let r = register_dynamic(&app, None, meta.clone()).await;
        assert_eq!(r.status(), 400, "{meta}");
        assert_eq!(r.json::<Value>().await.unwrap()["error"], error, "{meta}");
    }
    // A body that is not JSON, or JSON sent as something else, gets the RFC 7591 error.
    let url = app.url("/oauth/register");
    for (content_type, body) in [("application/json", "\u{0}"), ("application/json", "[1"), ("text/plain", "{}")] {
        let r = app.client.post(&url).header("content-type", content_type).body(body).send().await.unwrap();
        assert_eq!(r.status(), 400, "{content_type} {body:?}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "invalid_client_metadata", "{v}");
        assert!(v["error_description"].is_string(), "{v}");
    }
    let r = app.client.post(&url).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 400, "no content type");
    assert_eq!(client_count(&app).await, 0, "a refused registration stores nothing");

    // A client may ask for ES256 ID tokens when it registers itself.
    let mut ec = agent_metadata();
    ec["id_token_signed_response_alg"] = json!("ES256");
    let r = register_dynamic(&app, None, ec).await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().await.unwrap()["id_token_signed_response_alg"], "ES256");

    let r = register_dynamic(&app, None, agent_metadata()).await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let c: Value = r.json().await.unwrap();
    assert_eq!(c["token_endpoint_auth_method"], "none");
    assert_eq!(c["id_token_signed_response_alg"], "RS256");
    assert_eq!((c["limited"].as_bool(), c["first_party"].as_bool()), (Some(true), Some(false)));
    assert!(c.get("client_secret").is_none());
    let id = s(&c, "client_id").to_owned();

    // It signs a user in as a public client: consent, code with PKCE, no secret.
    let session = signed_in(&app, "alice").await;
    let mut params = crate::oidc::code_params(&id, "openid offline_access");
    params[2] = ("redirect_uri", "http://127.0.0.1:43210/callback");
    let r = crate::oidc::authorize(&app, Some(&session), &params).await;
    assert_eq!(r.status(), 200, "a registered client is never first-party: the consent page");
    allow(&app, "alice", &id).await;
    let r = crate::oidc::authorize(&app, Some(&session), &params).await;
    let q = crate::oidc::query(r.headers()[LOCATION].to_str().unwrap());
    let form = [
        ("grant_type", "authorization_code"),
        ("code", q["code"].as_str()),
        ("redirect_uri", "http://127.0.0.1:43210/callback"),
        ("code_verifier", crate::oidc::VERIFIER),
        ("client_id", id.as_str()),
    ];
    let r = app.client.post(app.url("/oauth/token")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // Limited until promoted: first-party is refused, then allowed together with the promotion.
    let path = format!("/api/admin/clients/{id}");
    assert_eq!(app.patch_auth(&path, app.operator(), json!({ "first_party": true })).await.status(), 400);
    assert_eq!(
        app.patch_auth(&path, app.operator(), json!({ "grant_types": ["client_credentials"] })).await.status(),
        400
    );
    let r = app.patch_auth(&path, app.operator(), json!({ "limited": false, "first_party": true })).await;
    assert_eq!(r.status(), 200);
    let promoted: Value = r.json().await.unwrap();
    assert_eq!((promoted["limited"].as_bool(), promoted["first_party"].as_bool()), (Some(false), Some(true)));
}

#[tokio::test]
async fn dynamic_registration_behind_an_initial_access_token_compares_it_and_is_rate_limited() {
    const INITIAL: &str = "initial-access-token-0123456789-abcdefghij";
    let app = TestApp::spawn_provider(&["--oauth-registration", "token", "--oauth-registration-token", INITIAL]).await;
    for bearer in [None, Some("wrong"), Some("initial-access-token-0123456789-abcdefghiJ")] {
        let r = register_dynamic(&app, bearer, agent_metadata()).await;
        assert_eq!(r.status(), 401, "{bearer:?}");
        assert!(r.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_token");
    }
    assert_eq!(client_count(&app).await, 0);
    assert_eq!(register_dynamic(&app, Some(INITIAL), agent_metadata()).await.status(), 201);
    // Like the other anonymous endpoints, one address gets a burst, then 429 with Retry-After.
    let mut limited = None;
    for _ in 0..40 {
        let r = register_dynamic(&app, Some(INITIAL), agent_metadata()).await;
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status(), 201);
    }
    let r = limited.expect("registration is rate-limited");
    assert!(r.headers().contains_key("retry-after"));
    assert!(client_count(&app).await <= 21);
    // Guessing the token is throttled as well: the bucket is empty for wrong tokens too.
    assert_eq!(register_dynamic(&app, Some("guess"), agent_metadata()).await.status(), 429);
}
