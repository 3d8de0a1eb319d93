//! Issue 20, the admin console over HTTP: who gets in (anonymous, non-admin, admin without
//! the second factor the policy requires), CSRF refusals, bad input shown again with the
//! message and nothing changed, and the console's actions having the admin API's effects.

use crate::browser_csrf::{Browser, location};
use crate::common::{TestApp, expect_error, s};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";
/// What Chrome sends on its own form posts.
const OWN_PAGE: &[(&str, &str)] = &[("origin", "null"), ("sec-fetch-site", "same-origin"), ("accept", "text/html")];

/// Creates `name` with `roles` through the admin API; returns its id.
pub(crate) async fn create(app: &TestApp, name: &str, roles: &[&str]) -> String {
    let body =
        json!({ "username": name, "password": PASSWORD, "roles": roles, "email": format!("{name}@example.com") });
    let r = app.post_auth("/api/admin/users", app.operator(), body).await;
    assert_eq!(r.status(), 201, "create {name}");
    let v: Value = r.json().await.unwrap();
    v["user"]["id"].as_str().unwrap().to_owned()
}

/// A browser signed in as `name` through the login form.
pub(crate) async fn signed_in<'a>(app: &'a TestApp, name: &str) -> Browser<'a> {
    let mut b = Browser::new(app);
    let r = b.post_form("/ui/login", &[("username", name), ("password", PASSWORD)]).await;
    assert_eq!(r.status(), 303, "login {name}");
    b
}

async fn user(app: &TestApp, id: &str) -> Value {
    let r = app.get_auth(&format!("/api/admin/users/{id}"), app.operator()).await;
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["user"].clone()
}

#[tokio::test]
async fn only_admins_get_in() {
    let app = TestApp::spawn().await;
    create(&app, "root", &["admin"]).await;
    let victim = create(&app, "plain", &[]).await;

    // Anonymous: to `/`, which signs in.
    let r = app.get("/admin").await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/");
    let r = app.get("/admin/users").await;
    assert_eq!(r.status(), 303);
    // A bearer token is not a browser session.
    let token = app.login("root", PASSWORD).await;
    let r = app.get_auth("/admin", s(&token, "access_token")).await;
    assert_eq!(r.status(), 303);

    // Signed in without the role: the 403 page, and posts are refused the same way.
    let mut plain = signed_in(&app, "plain").await;
    let r = plain.get("/admin/users").await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(r.text().await.unwrap().contains("for administrators only"));
    let token = plain.csrf();
    let r = plain.post_with(&format!("/admin/users/{victim}/disable"), &[("csrf_token", &token)], OWN_PAGE).await;
    assert_eq!(r.status(), 403);
    assert_eq!(user(&app, &victim).await["disabled"], false);

    // An admin gets every page, unframeable and never cached.
    let mut root = signed_in(&app, "root").await;
    for path in ["/admin", "/admin/users", "/admin/keys", "/admin/audit", "/admin/settings", "/admin/apps"] {
        let r = root.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["cache-control"], "no-store");
        assert_eq!(r.headers()["x-frame-options"], "DENY");
        assert!(r.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
        let html = r.text().await.unwrap();
        assert!(html.contains("aria-label=\"Console\""), "{path}: {html}");
    }

    // The operator requires a second factor for admins: a session without one is refused.
    let r = app.patch_auth("/api/info", app.operator(), json!({ "mfa_required_roles": ["admin"] })).await;
    assert_eq!(r.status(), 200);
    let r = root.get("/admin").await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("second factor"));
    let token = root.csrf();
    let r = root.post_with(&format!("/admin/users/{victim}/disable"), &[("csrf_token", &token)], OWN_PAGE).await;
    assert_eq!(r.status(), 403);
    assert_eq!(user(&app, &victim).await["disabled"], false);
}

#[tokio::test]
async fn forged_and_stale_posts_change_nothing() {
    let app = TestApp::spawn().await;
    create(&app, "root", &["admin"]).await;
    let victim = create(&app, "target", &[]).await;
    let mut b = signed_in(&app, "root").await;
    let path = format!("/admin/users/{victim}/disable");

    // No token, a wrong token: the JSON error for non-browsers, a page for browsers.
    let r = b.post_form(&path, &[]).await;
    expect_error(r, 403, "csrf_failed").await;
    let r = b.post_form(&path, &[("csrf_token", "forged")]).await;
    expect_error(r, 403, "csrf_failed").await;
    let r = b.post_with(&path, &[("csrf_token", "forged")], OWN_PAGE).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("This page had expired"));
    // The right token from another site.
    let token = b.csrf();
    let cross = [("origin", "http://evil.example"), ("sec-fetch-site", "cross-site")];
    let r = b.post_with(&path, &[("csrf_token", &token)], &cross).await;
    expect_error(r, 403, "csrf_failed").await;
    // Neither Origin nor Sec-Fetch-Site: not a browser's own form.
    let r = b.post_with(&path, &[("csrf_token", &token)], &[]).await;
    expect_error(r, 403, "csrf_failed").await;
    assert_eq!(user(&app, &victim).await["disabled"], false, "nothing changed");

    // The real form works, and the audit trail names the acting admin.
    let r = b.post_form(&path, &[("csrf_token", &token)]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), format!("/admin/users/{victim}?notice=disabled"));
    assert_eq!(user(&app, &victim).await["disabled"], true);
    let r = app.get_auth(&format!("/api/admin/audit?event=user_disabled&user={victim}"), app.operator()).await;
    let trail: Value = r.json().await.unwrap();
    let root_id = app.get_auth("/api/admin/users?prefix=root", app.operator()).await.json::<Value>().await.unwrap()
        ["users"][0]["id"]
        .clone();
    assert_eq!(trail["entries"][0]["actor"], root_id);
}

#[tokio::test]
async fn bad_input_shows_the_form_again_and_changes_nothing() {
    let app = TestApp::spawn_provider(&[]).await;
    create(&app, "root", &["admin"]).await;
    let victim = create(&app, "target", &["ops"]).await;
    let mut b = signed_in(&app, "root").await;
    let token = b.csrf();

    let path = format!("/admin/users/{victim}/roles");
    let r = b.post_with(&path, &[("csrf_token", &token), ("roles", "ops, Not A Role!")], OWN_PAGE).await;
    assert_eq!(r.status(), 400);
    let html = r.text().await.unwrap();
    assert!(html.contains("role=\"alert\"") && html.contains("autofocus"), "{html}");
    assert!(html.contains("each role is 1 to 32"), "{html}");
    assert!(html.contains("value=\"ops, Not A Role!\""), "what was typed is kept");
    assert_eq!(user(&app, &victim).await["roles"], json!(["ops", "user"]));

    let before: Value = app.get_auth("/api/info", app.operator()).await.json().await.unwrap();
    let form = [("csrf_token", token.as_str()), ("access_token_ttl", "0"), ("password_min_length", "12")];
    let r = b.post_with("/admin/settings", &form, OWN_PAGE).await;
    assert_eq!(r.status(), 400);
    let html = r.text().await.unwrap();
    assert!(html.contains("role=\"alert\"") && html.contains("Nothing was changed"), "{html}");
    assert!(html.contains("access_token_ttl"), "{html}");
    let after: Value = app.get_auth("/api/info", app.operator()).await.json().await.unwrap();
    assert_eq!(before["settings"], after["settings"], "all-or-nothing");

    let form = [("csrf_token", token.as_str()), ("client_name", "Shop"), ("redirect_uris", "ftp://nope")];
    let r = b.post_with("/admin/apps", &form, OWN_PAGE).await;
    assert_eq!(r.status(), 400);
    let html = r.text().await.unwrap();
    assert!(html.contains("role=\"alert\"") && html.contains("ftp://nope"), "{html}");
    let clients: Value = app.get_auth("/api/admin/clients", app.operator()).await.json().await.unwrap();
    assert_eq!(clients["clients"], json!([]));

    // An action the account cannot take is announced on its page.
    let body = json!({ "username": "noaddr", "password": PASSWORD });
    let created: Value = app.post_auth("/api/admin/users", app.operator(), body).await.json().await.unwrap();
    let noaddr = created["user"]["id"].as_str().unwrap().to_owned();
    let r = b.post_with(&format!("/admin/users/{noaddr}/password-reset"), &[("csrf_token", &token)], OWN_PAGE).await;
    assert_eq!(r.status(), 400);
    let html = r.text().await.unwrap();
    assert!(html.contains("role=\"alert\"") && html.contains("no e-mail address"), "{html}");

    let r = b.get("/admin/audit?from=yesterday").await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("epoch seconds or an RFC 3339 time"));
}

#[tokio::test]
async fn console_actions_take_effect_at_once() {
    let app = TestApp::spawn_provider(&["--fresh-auth-max-age", "1s"]).await;
    create(&app, "root", &["admin"]).await;
    let victim = create(&app, "mallory", &[]).await;
    let grant = app.login("mallory", PASSWORD).await;
    let access = s(&grant, "access_token").to_owned();
    assert_eq!(app.get_auth("/api/profile", &access).await.status(), 200);
    let mut b = signed_in(&app, "root").await;
    let token = b.csrf();

    // Search finds by name and by address prefix, with filters.
    let html = b.page("/admin/users?q=mall").await;
    assert!(html.contains(&format!("/admin/users/{victim}")));
    let html = b.page("/admin/users?q=mallory%40exa").await;
    assert!(html.contains(&format!("/admin/users/{victim}")));
    let html = b.page("/admin/users?role=admin").await;
    assert!(!html.contains(&format!("/admin/users/{victim}")) && html.contains("1–1 of 1"), "{html}");
    let html = b.page("/admin/users?unverified=1").await;
    assert!(html.contains(&format!("/admin/users/{victim}")));
    let html = b.page("/admin/users?status=disabled").await;
    assert!(html.contains("No accounts match"));

    // Disable: the token is refused at once.
    let r = b.post_form(&format!("/admin/users/{victim}/disable"), &[("csrf_token", &token)]).await;
    assert_eq!(r.status(), 303);
    expect_error(app.get_auth("/api/profile", &access).await, 401, "token_revoked").await;
    let html = b.page(&format!("/admin/users/{victim}?notice=disabled")).await;
    assert!(html.contains("The account is disabled"));
    assert!(html.contains("user_disabled"), "the account's audit trail is on its page");

    // Mark verified and roles go through the admin API's use cases.
    let r = b.post_form(&format!("/admin/users/{victim}/verify-email"), &[("csrf_token", &token)]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(user(&app, &victim).await["email_verified"], true);
    let r = b.post_form(&format!("/admin/users/{victim}/roles"), &[("csrf_token", &token), ("roles", "ops")]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(user(&app, &victim).await["roles"], json!(["ops", "user"]));

    // Delete is destructive: after the fresh window it goes to the confirmation page,
    // which asks for the password; nothing is deleted until then.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let confirm = format!("/admin/users/{victim}/delete");
    let html = b.page(&confirm).await;
    assert!(html.contains("action=\"/admin/reauth\"") && !html.contains("id=\"confirm\""), "{html}");
    let r = b.post_form(&confirm, &[("csrf_token", &token)]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), confirm);
    assert_eq!(user(&app, &victim).await["username"], "mallory");
    let r = b
        .post_form("/admin/reauth", &[("csrf_token", &token), ("password", "wrong one"), ("return_to", &confirm)])
        .await;
    assert_eq!(location(&r), format!("{confirm}?notice=reauth_failed"));
    let r = b
        .post_form("/admin/reauth", &[("csrf_token", &token), ("password", PASSWORD), ("return_to", "//evil.example/")])
        .await;
    assert_eq!(location(&r), "/admin?notice=reauthed", "never an open redirect");
    let r = b
        .post_form("/admin/reauth", &[("csrf_token", &b.csrf()), ("password", PASSWORD), ("return_to", &confirm)])
        .await;
    assert_eq!(location(&r), format!("{confirm}?notice=reauthed"));
    let html = b.page(&confirm).await;
    assert!(html.contains("id=\"confirm\""), "{html}");
    let r = b.post_form(&confirm, &[("csrf_token", &b.csrf())]).await;
    assert_eq!(location(&r), "/admin/users?notice=deleted");
    let r = app.get_auth(&format!("/api/admin/users/{victim}"), app.operator()).await;
    assert_eq!(r.status(), 404);

    // Audit: export as CSV and JSON lines, newest first, and the chain verdict.
    let html = b.page("/admin/audit?event=user_deleted").await;
    assert!(html.contains("The chain is intact"), "{html}");
    let r = b.get("/admin/audit/export?format=csv&event=user_deleted").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let csv = r.text().await.unwrap();
    assert!(csv.starts_with("id,at,event,") && csv.lines().count() == 2, "{csv}");
    let r = b.get("/admin/audit/export?format=jsonl").await;
    let lines: Vec<Value> = r.text().await.unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.len() > 5);
    assert!(lines.windows(2).all(|w| w[0]["id"].as_i64() > w[1]["id"].as_i64()), "newest first");
    expect_error(b.get("/admin/audit/export?format=xml").await, 400, "invalid_request").await;

    // Settings: a change takes effect.
    let r = b.post_form("/admin/settings", &[("csrf_token", &b.csrf()), ("registration_open", "false")]).await;
    assert_eq!(location(&r), "/admin/settings?notice=saved");
    let r = app.post("/api/register", json!({ "username": "late", "password": PASSWORD })).await;
    assert_eq!(r.status(), 403);

    // Apps: created with its secret shown once.
    let form = [
        ("csrf_token", b.csrf()),
        ("client_name", "Shop".to_owned()),
        ("redirect_uris", "https://shop.example/cb".to_owned()),
        ("scope", "openid profile".to_owned()),
        ("grant_types", "authorization_code refresh_token".to_owned()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = b.post_form("/admin/apps", &form).await;
    assert_eq!(r.status(), 201);
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"client-secret\""));
    let clients: Value = app.get_auth("/api/admin/clients", app.operator()).await.json().await.unwrap();
    assert_eq!(clients["clients"][0]["client_name"], "Shop");
    assert!(!b.page("/admin/apps").await.contains("client-secret"), "shown once");

    // Overview counts.
    let html = b.page("/admin").await;
    assert!(html.contains("<svg") && html.contains("id=\"stat-users\">1<"), "{html}");
}

const ROUNDS: usize = 200;

/// Two admins at once: one deletes an account while the other disables it, and two set
/// different roles on one account. Whatever the order, the account ends up in one of the
/// states a serial order gives (deleted; one of the two role sets), and a token it held
/// before never works afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_admins_leave_a_consistent_state() {
    let app = TestApp::spawn_with(&["--rate-limit", "false"]).await;
    create(&app, "alice", &["admin"]).await;
    create(&app, "bob", &["admin"]).await;
    let mut a = signed_in(&app, "alice").await;
    let mut b = signed_in(&app, "bob").await;
    let (ta, tb) = (a.csrf(), b.csrf());
    for round in 0..ROUNDS {
        let id = create(&app, &format!("racer{round}"), &[]).await;
        let access = app.login(&format!("racer{round}"), PASSWORD).await["access_token"].as_str().unwrap().to_owned();
        let (del_path, dis_path) = (format!("/admin/users/{id}/delete"), format!("/admin/users/{id}/disable"));
        let (fa, fb) = ([("csrf_token", ta.as_str())], [("csrf_token", tb.as_str())]);
        let (deleted, disabled) = tokio::join!(a.post_form(&del_path, &fa), b.post_form(&dis_path, &fb));
        assert_eq!(deleted.status(), 303, "round {round}");
        assert!(matches!(disabled.status().as_u16(), 303 | 404), "round {round}: {}", disabled.status());
        let r = app.get_auth(&format!("/api/admin/users/{id}"), app.operator()).await;
        assert_eq!(r.status(), 404, "round {round}: the account is gone");
        assert_eq!(app.get_auth("/api/profile", &access).await.status(), 401, "round {round}");
        assert!(app.storage.live_sessions(&id, i64::MAX / 2).await.unwrap().is_empty());
    }

    let id = create(&app, "shared", &[]).await;
    // Every change of roles is audited from the state it replaced: the round's entries
    // chain from the roles before the round to the roles after it.
    let mut before = json!(["user"]);
    let mut seen = 0;
    for round in 0..ROUNDS {
        let access = app.login("shared", PASSWORD).await["access_token"].as_str().unwrap().to_owned();
        let path = format!("/admin/users/{id}/roles");
        let fa = [("csrf_token", ta.as_str()), ("roles", "ops")];
        let fb = [("csrf_token", tb.as_str()), ("roles", "audit, billing")];
        let (ra, rb) = tokio::join!(a.post_form(&path, &fa), b.post_form(&path, &fb));
        assert_eq!((ra.status(), rb.status()), (reqwest::StatusCode::SEE_OTHER, reqwest::StatusCode::SEE_OTHER));
        let roles = user(&app, &id).await["roles"].clone();
        assert!(
            roles == json!(["ops", "user"]) || roles == json!(["audit", "billing", "user"]),
            "round {round}: {roles}"
        );
        assert_eq!(app.get_auth("/api/profile", &access).await.status(), 401, "round {round}: roles changed");
        let audit: Value = app
            .get_auth(&format!("/api/admin/audit?event=roles_changed&user={id}&limit=5"), app.operator())
            .await
            .json()
            .await
            .unwrap();
        let mut fresh: Vec<(i64, Value, Value)> = audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["id"].as_i64().unwrap() > seen)
            .map(|e| (e["id"].as_i64().unwrap(), e["detail"]["from"].clone(), e["detail"]["to"].clone()))
            .collect();
        assert!(!fresh.is_empty() && fresh.len() <= 2, "round {round}: {audit}");
        seen = fresh.iter().map(|e| e.0).max().unwrap();
        // The entries may be appended in either order; as transitions they must chain.
        if fresh.len() == 2 && fresh[0].1 != before {
            fresh.swap(0, 1);
        }
        let mut at = before.clone();
        for (_, from, to) in &fresh {
            assert_eq!(from, &at, "round {round}: a change audited from a state it did not replace: {audit}");
            assert_ne!(from, to, "round {round}");
            at = to.clone();
        }
        assert_eq!(at, roles, "round {round}: the last audited state is the stored one: {audit}");
        before = roles;
    }
}

#[tokio::test]
async fn apps_page_names_the_registration_mode_and_lifts_a_self_registered_apps_limits() {
    let app = TestApp::spawn_provider(&["--oauth-registration", "open"]).await;
    create(&app, "root", &["admin"]).await;
    let meta = json!({
        "client_name": "Agent",
        "redirect_uris": ["http://127.0.0.1/callback"],
        "token_endpoint_auth_method": "none",
    });
    let r = app.client.post(app.url("/oauth/register")).json(&meta).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let id = s(&r.json::<Value>().await.unwrap(), "client_id").to_owned();
    let mut b = signed_in(&app, "root").await;
    let token = b.csrf();

    let html = b.page("/admin/apps").await;
    assert!(html.contains("open: anyone may register an app"), "{html}");
    assert!(html.contains("limited (registered itself)"), "{html}");
    let html = b.page(&format!("/admin/apps/{id}")).await;
    assert!(html.contains("Lift the limits"), "{html}");

    // A forged post changes nothing; the admin's post lifts the limits, audited.
    let r = b.post_form(&format!("/admin/apps/{id}/promote"), &[("csrf_token", "forged")]).await;
    assert_eq!(r.status(), 403);
    let shown: Value = app.get_auth(&format!("/api/admin/clients/{id}"), app.operator()).await.json().await.unwrap();
    assert_eq!(shown["limited"], true, "{shown}");
    let r = b.post_form(&format!("/admin/apps/{id}/promote"), &[("csrf_token", &token)]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), format!("/admin/apps/{id}?notice=app_promoted"));
    let shown: Value = app.get_auth(&format!("/api/admin/clients/{id}"), app.operator()).await.json().await.unwrap();
    assert_eq!(shown["limited"], false, "{shown}");
    let html = b.page(&format!("/admin/apps/{id}?notice=app_promoted")).await;
    assert!(html.contains("limits were lifted") && !html.contains("Lift the limits"), "{html}");

    let off = TestApp::spawn_provider(&[]).await;
    create(&off, "root", &["admin"]).await;
    let mut b = signed_in(&off, "root").await;
    assert!(b.page("/admin/apps").await.contains("off: only administrators add apps"));
}

#[tokio::test]
async fn new_accounts_follow_the_sign_up_rules_and_refusals_change_nothing() {
    let app = TestApp::spawn().await;
    create(&app, "root", &["admin"]).await;
    create(&app, "taken", &[]).await;
    let mut b = signed_in(&app, "root").await;
    let token = b.csrf();
    let count = async || {
        let v: Value = app.get_auth("/api/admin/users?limit=200", app.operator()).await.json().await.unwrap();
        v["users"].as_array().map(Vec::len).unwrap_or(0)
    };
    let before = count().await;
    assert!(b.page("/admin/users").await.contains("/admin/users/new"));
    assert!(b.page("/admin/users/new").await.contains("Create account"));

    let refused = [
        (vec![("username", "carol"), ("password", "")], 400, "password"),
        (vec![("username", ""), ("password", PASSWORD)], 400, "username"),
        (vec![("username", "carol"), ("password", "short")], 400, "password"),
        (vec![("username", "carol"), ("password", PASSWORD), ("roles", "Not A Role")], 400, "role"),
        (vec![("username", "carol"), ("password", PASSWORD), ("email", "not-an-address")], 400, "email"),
        (vec![("username", "taken"), ("password", PASSWORD)], 409, "taken"),
    ];
    for (fields, status, says) in refused {
        let mut form = vec![("csrf_token", token.as_str())];
        form.extend(fields.iter().copied());
        let r = b.post_form("/admin/users/new", &form).await;
        assert_eq!(r.status(), status, "{fields:?}");
        let html = r.text().await.unwrap();
        assert!(html.contains("error-summary") && html.to_lowercase().contains(says), "{fields:?}: {html}");
        assert!(!html.contains(PASSWORD), "the password is never shown again");
    }
    let r = b
        .post_form("/admin/users/new", &[("csrf_token", "forged"), ("username", "carol"), ("password", PASSWORD)])
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(count().await, before, "nothing was created");

    let form = [
        ("csrf_token", token.as_str()),
        ("username", "carol"),
        ("password", PASSWORD),
        ("email", "carol@example.com"),
        ("roles", "ops"),
    ];
    let r = b.post_form("/admin/users/new", &form).await;
    assert_eq!(r.status(), 303);
    assert!(location(&r).ends_with("?notice=created"), "{}", location(&r));
    assert_eq!(count().await, before + 1);
    let body = app.login("carol", PASSWORD).await;
    assert!(body["access_token"].is_string(), "the new account signs in: {body}");
    let audit: Value = app.get_auth("/api/admin/audit?event=user_created", app.operator()).await.json().await.unwrap();
    assert!(audit.to_string().contains("carol"), "audited: {audit}");
}

#[tokio::test]
async fn overview_lists_the_instances_sharing_the_database() {
    let a = TestApp::spawn().await;
    let b = a.spawn_peer().await;
    create(&a, "root", &["admin"]).await;
    let mut browser = signed_in(&a, "root").await;
    let (a_addr, b_addr) =
        (a.base.trim_start_matches("http://").to_owned(), b.base.trim_start_matches("http://").to_owned());
    let mut html = String::new();
    for _ in 0..50 {
        html = browser.page("/admin").await;
        if html.contains(&b_addr) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(html.contains(&format!("<code>{a_addr}</code> (this one)")), "{html}");
    assert!(
        html.contains(&format!("<code>{b_addr}</code></td>")) || html.contains(&format!("<code>{b_addr}</code><br>")),
        "{html}"
    );
    assert_eq!(html.matches(">up</td>").count(), 2, "both are up: {html}");
}

#[tokio::test]
async fn app_form_sets_logout_return_addresses_and_resources() {
    let app = TestApp::spawn_provider(&[]).await;
    create(&app, "root", &["admin"]).await;
    let meta = json!({"client_name": "Shop", "redirect_uris": ["https://shop.example/cb"]});
    let r = app.post_auth("/api/admin/clients", app.operator(), meta).await;
    assert_eq!(r.status(), 201);
    let id = s(&r.json::<Value>().await.unwrap(), "client_id").to_owned();
    let mut b = signed_in(&app, "root").await;
    let token = b.csrf();
    let shown = async || -> Value {
        app.get_auth(&format!("/api/admin/clients/{id}"), app.operator()).await.json().await.unwrap()
    };
    let form = |logout: &'static str, resources: &'static str| {
        vec![
            ("csrf_token", token.clone()),
            ("client_name", "Shop".to_owned()),
            ("redirect_uris", "https://shop.example/cb".to_owned()),
            ("post_logout_redirect_uris", logout.to_owned()),
            ("scope", "openid profile".to_owned()),
            ("grant_types", "authorization_code".to_owned()),
            ("resources", resources.to_owned()),
        ]
    };
    let mut post = async |fields: Vec<(&str, String)>| {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        b.post_form(&format!("/admin/apps/{id}"), &fields).await
    };
    let r = post(form("https://shop.example/bye", "https://api.shop.example\nurn:shop:reports")).await;
    assert_eq!(r.status(), 303);
    let v = shown().await;
    assert_eq!(v["post_logout_redirect_uris"], json!(["https://shop.example/bye"]), "{v}");
    assert_eq!(v["resources"], json!(["https://api.shop.example", "urn:shop:reports"]), "{v}");
    // A resource with a fragment is refused on the page, and nothing changes.
    let r = post(form("", "https://api.shop.example/#x")).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("error-summary"));
    assert_eq!(shown().await, v);
    // Empty fields clear the lists.
    let r = post(form("", "")).await;
    assert_eq!(r.status(), 303);
    let v = shown().await;
    assert_eq!(v["post_logout_redirect_uris"], json!([]), "{v}");
    assert!(v.get("resources").is_none(), "{v}");
}

#[tokio::test]
async fn an_accounts_address_is_changed_or_removed_and_bad_ones_change_nothing() {
    let app = TestApp::spawn().await;
    create(&app, "root", &["admin"]).await;
    let id = create(&app, "dora", &[]).await;
    create(&app, "eve", &[]).await;
    let mut b = signed_in(&app, "root").await;
    let token = b.csrf();
    let url = format!("/admin/users/{id}/email");
    for (typed, status) in [("not-an-address", 400), ("eve@example.com", 409)] {
        let r = b.post_form(&url, &[("csrf_token", &token), ("email", typed)]).await;
        assert_eq!(r.status(), status, "{typed}");
        assert!(r.text().await.unwrap().contains("error-summary"), "{typed}");
        assert_eq!(user(&app, &id).await["email"], "dora@example.com", "{typed} changed nothing");
    }
    let r = b.post_form(&url, &[("csrf_token", &token), ("email", "dora@new.example")]).await;
    assert_eq!(r.status(), 303);
    let v = user(&app, &id).await;
    assert_eq!((v["email"].as_str(), v["email_verified"].as_bool()), (Some("dora@new.example"), Some(false)), "{v}");
    let r = b.post_form(&url, &[("csrf_token", &token), ("email", "")]).await;
    assert_eq!(r.status(), 303);
    assert!(user(&app, &id).await["email"].is_null());
}
