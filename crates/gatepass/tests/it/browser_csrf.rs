//! Issue: browser sign-in. Cookie sessions, CSRF and origin checks, the HTML form routes,
//! fresh-login step-up and page-load renewal, driven over HTTP with a hand-kept cookie jar
//! (so each test sees exactly which cookies a browser would send where).

use crate::common::{TestApp, expect_error, s};
use reqwest::header::{HeaderMap, SET_COOKIE};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// A minimal browser cookie jar: name → (value, path).
#[derive(Default, Clone)]
pub(crate) struct Jar(BTreeMap<String, (String, String)>);

impl Jar {
    fn absorb(&mut self, headers: &HeaderMap) {
        for v in headers.get_all(SET_COOKIE) {
            let v = v.to_str().unwrap();
            let mut parts = v.split(';').map(str::trim);
            let (name, value) = parts.next().unwrap().split_once('=').unwrap();
            let mut path = "/".to_owned();
            let mut delete = value.is_empty();
            for attr in parts {
                if let Some(p) = attr.strip_prefix("Path=") {
                    path = p.to_owned();
                }
                if attr == "Max-Age=0" {
                    delete = true;
                }
            }
            if delete {
                self.0.remove(name);
            } else {
                self.0.insert(name.to_owned(), (value.to_owned(), path));
            }
        }
    }

    /// The `Cookie` header a browser sends to `path` (RFC 6265 path match).
    pub(crate) fn header_for(&self, path: &str) -> String {
        self.0
            .iter()
            .filter(|(_, (_, p))| p == "/" || path == p || path.starts_with(&format!("{p}/")))
            .map(|(k, (v, _))| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|(v, _)| v.as_str())
    }

    /// No session cookie is left. Only the device cookie may stay: it says the browser
    /// signed in here before, which a logout does not undo.
    fn signed_out(&self) -> bool {
        self.0.keys().all(|name| name == "device" || name == "__Host-device")
    }
}

/// A same-origin browser: sends cookies and the headers Chrome adds to its own form posts.
pub(crate) struct Browser<'a> {
    app: &'a TestApp,
    pub(crate) jar: Jar,
}

impl<'a> Browser<'a> {
    pub(crate) fn new(app: &'a TestApp) -> Self {
        Browser { app, jar: Jar::default() }
    }

    pub(crate) async fn get(&mut self, path: &str) -> reqwest::Response {
        let r = self.app.client.get(self.app.url(path)).header("cookie", self.jar.header_for(path)).send().await;
        let r = r.unwrap();
        self.jar.absorb(r.headers());
        r
    }

    /// A form post from our own page (`Referrer-Policy: no-referrer` makes the Origin `null`).
    pub(crate) async fn post_form(&mut self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.post_with(path, form, &[("origin", "null"), ("sec-fetch-site", "same-origin")]).await
    }

    /// A form post with exactly these extra headers.
    pub(crate) async fn post_with(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut rb = self.app.client.post(self.app.url(path)).header("cookie", self.jar.header_for(path)).form(form);
        for (name, value) in headers {
            rb = rb.header(*name, *value);
        }
        let r = rb.send().await.unwrap();
        self.jar.absorb(r.headers());
        r
    }

    pub(crate) fn csrf(&self) -> String {
        self.jar.get("csrf_token").expect("csrf cookie").to_owned()
    }

    pub(crate) async fn page(&mut self, path: &str) -> String {
        let r = self.get(path).await;
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    }
}

pub(crate) fn location(r: &reqwest::Response) -> &str {
    r.headers()["location"].to_str().unwrap()
}

fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers().get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect()
}

/// Logs in through `/api/login?cookie=true`; returns the jar.
async fn cookie_login(app: &TestApp, user: &str, password: &str) -> Jar {
    let r = app.post("/api/login?cookie=true", json!({"username": user, "password": password})).await;
    assert_eq!(r.status(), 200);
    let mut jar = Jar::default();
    jar.absorb(r.headers());
    jar
}

#[tokio::test]
async fn cookie_login_sets_three_cookies_and_no_token_in_the_body() {
    let app = TestApp::spawn().await;
    app.register("carol", "correct horse battery").await;
    let r = app.post("/api/login?cookie=true", json!({"username": "carol", "password": "correct horse battery"})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let cookies = set_cookies(&r);
    let find = |name: &str| cookies.iter().find(|c| c.starts_with(&format!("{name}="))).expect(name).clone();
    let session = find("session");
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Lax") && session.contains("Path=/;"));
    let refresh = find("refresh_token");
    assert!(refresh.contains("HttpOnly") && refresh.contains("Path=/api/refresh;"));
    let csrf = find("csrf_token");
    assert!(!csrf.contains("HttpOnly"), "the CSRF cookie is for scripts to read");
    assert!(cookies.iter().all(|c| !c.contains("Domain=") && !c.contains("Secure")), "loopback: no Secure");
    let body: Value = r.json().await.unwrap();
    for key in ["access_token", "token", "refresh_token"] {
        assert!(body.get(key).is_none(), "{key} must not be in a cookie-mode body: {body}");
    }
    assert_eq!(body["token_type"], "cookie");
}

#[tokio::test]
async fn secure_cookies_use_host_prefixed_names() {
    let app = TestApp::spawn_with(&["--cookie-secure", "true"]).await;
    app.register("dave", "correct horse battery").await;
    let r = app.post("/api/login?cookie=true", json!({"username": "dave", "password": "correct horse battery"})).await;
    let cookies = set_cookies(&r);
    for prefix in ["__Host-session=", "__Secure-refresh=", "__Host-csrf="] {
        let c = cookies.iter().find(|c| c.starts_with(prefix)).expect(prefix);
        assert!(c.contains("Secure"), "{c}");
    }
}

#[tokio::test]
async fn cookie_authenticated_posts_need_the_sessions_csrf_token() {
    let app = TestApp::spawn().await;
    app.register("erin", "correct horse battery").await;
    let jar = cookie_login(&app, "erin", "correct horse battery").await;
    let other = cookie_login(&app, "erin", "correct horse battery").await;
    let post = |token: Option<String>| {
        let mut rb =
            app.client.post(app.url("/api/logout")).header("cookie", jar.header_for("/api/logout")).json(&json!({}));
        if let Some(t) = token {
            rb = rb.header("x-csrf-token", t);
        }
        rb.send()
    };

    expect_error(post(None).await.unwrap(), 403, "csrf_failed").await;
    let theirs = other.get("csrf_token").unwrap().to_owned();
    expect_error(post(Some(theirs)).await.unwrap(), 403, "csrf_failed").await;
    expect_error(post(Some("x".repeat(43))).await.unwrap(), 403, "csrf_failed").await;
    // Refused requests changed nothing: a safe GET with the cookie still works.
    let r = app.client.get(app.url("/api/profile")).header("cookie", jar.header_for("/api/profile")).send().await;
    assert_eq!(r.unwrap().status(), 200);

    let mine = jar.get("csrf_token").unwrap().to_owned();
    let cross_site = app
        .client
        .post(app.url("/api/logout"))
        .header("cookie", jar.header_for("/api/logout"))
        .header("x-csrf-token", &mine)
        .header("origin", "http://evil.example")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    expect_error(cross_site, 403, "csrf_failed").await;
    let same_site_other_port = app
        .client
        .post(app.url("/api/logout"))
        .header("cookie", jar.header_for("/api/logout"))
        .header("x-csrf-token", &mine)
        .header("sec-fetch-site", "same-site")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    expect_error(same_site_other_port, 403, "csrf_failed").await;

    let r = post(Some(mine)).await.unwrap();
    assert_eq!(r.status(), 200);
    let cleared = set_cookies(&r);
    assert_eq!(cleared.iter().filter(|c| c.contains("Max-Age=0")).count(), 3, "{cleared:?}");
    let r = app.client.get(app.url("/api/profile")).header("cookie", jar.header_for("/api/profile")).send().await;
    expect_error(r.unwrap(), 401, "token_revoked").await;
}

#[tokio::test]
async fn bearer_requests_need_no_csrf_token() {
    let app = TestApp::spawn().await;
    let body = app.register("frank", "correct horse battery").await;
    let r = app.post_auth("/api/logout", s(&body, "access_token"), json!({})).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn seed_form_login_refuses_a_cross_site_post() {
    let app = TestApp::spawn().await;
    app.register("gina", "correct horse battery").await;
    let form = [("username", "gina"), ("password", "correct horse battery")];
    let r = app.client.post(app.url("/login")).header("origin", "http://evil.example").form(&form).send().await;
    let r = r.unwrap();
    assert!(set_cookies(&r).is_empty());
    expect_error(r, 403, "csrf_failed").await;
    // Seed 001's scripted client sends no Origin and keeps working.
    let r = app.client.post(app.url("/login")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn pages_register_show_the_profile_and_carry_security_headers() {
    let app = TestApp::spawn().await;
    let mut b = Browser::new(&app);
    let r = b.get("/").await;
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    let html = r.text().await.unwrap();
    assert!(html.contains("<label for=\"username\">") && html.contains("action=\"/ui/login\""));
    // Its one script is the same-origin passkey script; nothing inline.
    let scripts: Vec<&str> = html.split("<script").skip(1).collect();
    assert_eq!(scripts.len(), 1, "the login page loads only the passkey script");
    assert!(scripts[0].starts_with(" src=\"/static/passkeys.js?v="), "{}", scripts[0]);
    assert!(csp.contains("script-src 'self'"), "{csp}");

    let register = b.page("/register").await;
    assert!(register.contains("action=\"/ui/register\""));

    let r = b.post_form("/ui/register", &[("username", "hana"), ("password", "correct horse battery")]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/");
    assert!(b.jar.get("session").is_some() && b.jar.get("refresh_token").is_some());
    let r = b.get("/").await;
    assert_eq!(r.headers()["cache-control"], "no-store");
    let html = r.text().await.unwrap();
    assert!(html.contains("Logged in as hana"), "{html}");
    assert!(html.contains(&format!("name=\"csrf_token\" value=\"{}\"", b.csrf())));
    assert!(html.contains("This browser"));

    let css = app.get("/static/gatepass.css").await;
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert!(css.headers()["cache-control"].to_str().unwrap().contains("max-age=31536000"));
}

#[tokio::test]
async fn register_form_shows_errors_next_to_fields_and_keeps_the_username() {
    let app = TestApp::spawn().await;
    app.register("taken", "correct horse battery").await;
    let mut b = Browser::new(&app);
    let r = b.post_form("/ui/register", &[("username", "taken"), ("password", "correct horse battery")]).await;
    assert_eq!(r.status(), 409);
    assert!(set_cookies(&r).is_empty());
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"username-error\">This username is already taken."), "{html}");
    assert!(html.contains("value=\"taken\""));

    let r = b.post_form("/ui/register", &[("username", "<b>x</b>"), ("password", "correct horse battery")]).await;
    assert_eq!(r.status(), 400);
    let html = r.text().await.unwrap();
    assert!(html.contains("value=\"&#60;b&#62;x&#60;/b&#62;\"") || html.contains("value=\"&lt;b&gt;x&lt;/b&gt;\""));
    assert!(html.contains("id=\"username-error\">Username may contain only"));

    let r = b.post_form("/ui/register", &[("username", "newbie"), ("password", "short")]).await;
    assert_eq!(r.status(), 400);
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"password-error\">Password must be at least 8 bytes long."), "{html}");
    assert!(html.contains("value=\"newbie\""));
    // Nothing was created.
    let r = app.post("/api/login", json!({"username": "newbie", "password": "short"})).await;
    expect_error(r, 401, "invalid_credentials").await;
}

#[tokio::test]
async fn login_form_checks_origin_and_shows_failures() {
    let app = TestApp::spawn().await;
    app.register("ivan", "correct horse battery").await;
    let form = [("username", "ivan"), ("password", "correct horse battery")];
    // Login CSRF: another site, or a post with no origin information at all.
    let r = app.client.post(app.url("/ui/login")).header("origin", "http://evil.example").form(&form).send().await;
    expect_error(r.unwrap(), 403, "csrf_failed").await;
    let r = app.client.post(app.url("/ui/login")).header("sec-fetch-site", "cross-site").form(&form).send().await;
    expect_error(r.unwrap(), 403, "csrf_failed").await;
    let r = app.client.post(app.url("/ui/login")).form(&form).send().await;
    expect_error(r.unwrap(), 403, "csrf_failed").await;

    let mut b = Browser::new(&app);
    let r = b.post_form("/ui/login", &[("username", "ivan"), ("password", "wrong password!")]).await;
    assert_eq!(r.status(), 401);
    let html = r.text().await.unwrap();
    assert!(html.contains("Invalid username or password.") && html.contains("value=\"ivan\""));
    assert!(b.jar.get("session").is_none());

    let r = b.post_form("/ui/login", &form).await;
    assert_eq!(r.status(), 303);
    assert!(b.page("/").await.contains("Logged in as ivan"));
}

/// Signing in again over a live browser session renews it (ASVS 5 §7.2.4): the session
/// the cookies held ends, on the login form and on `/api/login?cookie=true` alike, while a
/// bearer login (which sets no cookies) leaves the browser's session alone.
#[tokio::test]
async fn logging_in_again_ends_the_session_the_browser_held() {
    let app = TestApp::spawn().await;
    app.register("rhea", "correct horse battery").await;
    app.register("saul", "correct horse battery").await;
    let form = [("username", "rhea"), ("password", "correct horse battery")];
    let mut b = Browser::new(&app);
    b.post_form("/ui/login", &form).await;
    let first = b.jar.get("session").expect("access cookie").to_owned();

    let r = b.post_form("/ui/login", &form).await;
    assert_eq!(r.status(), 303);
    let second = b.jar.get("session").expect("access cookie").to_owned();
    assert_ne!(first, second);
    expect_error(app.get_auth("/api/profile", &first).await, 401, "token_revoked").await;
    assert!(b.page("/").await.contains("Logged in as rhea"));

    // A bearer login by the same browser sets no cookies, so its session stays.
    let r = app
        .client
        .post(app.url("/api/login"))
        .header("cookie", format!("session={second}"))
        .json(&json!({"username": "rhea", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(app.get_auth("/api/profile", &second).await.status(), 200);

    // Cookie mode, as another user: the held session ends whoever owned it.
    let r = app
        .client
        .post(app.url("/api/login?cookie=true"))
        .header("cookie", format!("session={second}"))
        .json(&json!({"username": "saul", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    expect_error(app.get_auth("/api/profile", &second).await, 401, "token_revoked").await;
}

#[tokio::test]
async fn logout_form_needs_the_token_then_clears_cookies_and_ends_the_session() {
    let app = TestApp::spawn().await;
    app.register("judy", "correct horse battery").await;
    let mut b = Browser::new(&app);
    b.post_form("/ui/login", &[("username", "judy"), ("password", "correct horse battery")]).await;
    let stolen = b.jar.clone();

    let r = b.post_form("/ui/logout", &[]).await;
    expect_error(r, 403, "csrf_failed").await;
    let r = b.post_form("/ui/logout", &[("csrf_token", "forged")]).await;
    expect_error(r, 403, "csrf_failed").await;
    assert!(b.page("/").await.contains("Logged in as judy"));

    let csrf = b.csrf();
    let r = b.post_form("/ui/logout", &[("csrf_token", &csrf)]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/?notice=logged_out");
    let cleared = set_cookies(&r);
    for name in ["session=;", "refresh_token=;", "csrf_token=;"] {
        assert!(cleared.iter().any(|c| c.starts_with(name) && c.contains("Max-Age=0")), "{name} in {cleared:?}");
    }
    assert!(b.jar.signed_out());
    assert!(b.jar.get("device").is_some(), "the device cookie outlives the session");
    let html = b.page("/?notice=logged_out").await;
    assert!(html.contains("You have been logged out.") && html.contains("action=\"/ui/login\""));

    // The old cookies are dead server-side too.
    let r = app.client.get(app.url("/api/profile")).header("cookie", stolen.header_for("/api/profile")).send().await;
    expect_error(r.unwrap(), 401, "token_revoked").await;
    let r = app.client.post(app.url("/api/refresh")).header("cookie", stolen.header_for("/api/refresh")).send().await;
    expect_error(r.unwrap(), 401, "refresh_token_invalid").await;
}

#[tokio::test]
async fn password_form_checks_the_current_password_and_starts_a_new_session() {
    let app = TestApp::spawn().await;
    app.register("kim", "correct horse battery").await;
    let other = app.login("kim", "correct horse battery").await;
    let mut b = Browser::new(&app);
    b.post_form("/ui/login", &[("username", "kim"), ("password", "correct horse battery")]).await;
    let csrf = b.csrf();
    let old_session = b.jar.get("session").unwrap().to_owned();

    let r = b
        .post_form(
            "/ui/password",
            &[("csrf_token", &csrf), ("current_password", "not my password"), ("new_password", "a brand new phrase")],
        )
        .await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("id=\"current-password-error\">Current password is incorrect."));

    let r = b
        .post_form("/ui/password", &[("current_password", "correct horse battery"), ("new_password", "a new phrase")])
        .await;
    expect_error(r, 403, "csrf_failed").await;

    let r = b
        .post_form(
            "/ui/password",
            &[("csrf_token", &csrf), ("current_password", "correct horse battery"), ("new_password", "a new phrase")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/?notice=password_changed");
    assert_ne!(b.jar.get("session").unwrap(), old_session);
    assert_ne!(b.csrf(), csrf, "new session, new CSRF token");
    assert!(b.page("/?notice=password_changed").await.contains("Password changed."));
    expect_error(app.get_auth("/api/profile", s(&other, "access_token")).await, 401, "token_revoked").await;
    app.login("kim", "a new phrase").await;
}

#[tokio::test]
async fn ending_other_sessions_from_the_page_needs_a_fresh_login() {
    let app = TestApp::spawn_with(&["--fresh-auth-max-age", "1s"]).await;
    app.register("lena", "correct horse battery").await;
    let other = app.login("lena", "correct horse battery").await;
    let other_token = s(&other, "access_token").to_owned();
    let other_sid: Value = app.get_auth("/api/sessions", &other_token).await.json().await.unwrap();
    let other_sid = other_sid["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["current"] == true)
        .map(|x| x["id"].as_str().unwrap().to_owned())
        .unwrap();
    let mut b = Browser::new(&app);
    b.post_form("/ui/login", &[("username", "lena"), ("password", "correct horse battery")]).await;
    let csrf = b.csrf();
    // Let the login age past the freshness window.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;

    let html = b.page("/").await;
    assert!(html.contains("Confirm your password to end other sessions"));
    let end_path = format!("/ui/sessions/{other_sid}/end");
    let r = b.post_form(&end_path, &[("csrf_token", &csrf)]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/?notice=fresh");
    assert_eq!(app.get_auth("/api/profile", &other_token).await.status(), 200, "nothing ended");
    let r = b.post_form("/ui/sessions/end-others", &[("csrf_token", &csrf)]).await;
    assert_eq!(location(&r), "/?notice=fresh");
    assert!(b.page("/?notice=fresh").await.contains("confirm your password before ending other sessions"));

    let r = b.post_form("/ui/reauth", &[("csrf_token", &csrf), ("password", "wrong password!")]).await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("id=\"reauth-error\">Password is incorrect."));
    let old_access = b.jar.get("session").expect("access cookie").to_owned();
    let r = b.post_form("/ui/reauth", &[("csrf_token", &csrf), ("password", "correct horse battery")]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/?notice=reauthed");
    // Renewal (ASVS 5 §7.2.4): a new session, so all three cookies are new and the old
    // session's access token and CSRF token are worthless.
    assert_eq!(set_cookies(&r).len(), 3, "step-up sets new access, refresh and CSRF cookies");
    let stale_csrf = csrf;
    let csrf = b.csrf();
    assert_ne!(csrf, stale_csrf, "a new session, a new CSRF token");
    expect_error(app.get_auth("/api/profile", &old_access).await, 401, "token_revoked").await;
    let r = b.post_form(&end_path, &[("csrf_token", &stale_csrf)]).await;
    assert_eq!(r.status(), 403, "the old session's CSRF token no longer works");

    let r = b.post_form(&end_path, &[("csrf_token", &csrf)]).await;
    assert_eq!(location(&r), "/?notice=session_ended");
    expect_error(app.get_auth("/api/profile", &other_token).await, 401, "token_revoked").await;
    assert!(b.page("/").await.contains("Logged in as lena"));

    // The JSON API says the same thing with a code.
    let third = app.login("lena", "correct horse battery").await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = app.client.post(app.url("/api/logout?scope=others")).bearer_auth(s(&third, "access_token")).send().await;
    expect_error(r.unwrap(), 401, "fresh_login_required").await;
}

#[tokio::test]
async fn an_expired_access_cookie_is_renewed_on_page_load_with_rotation() {
    let app =
        TestApp::spawn_with(&["--access-token-ttl", "1s", "--token-leeway", "0s", "--refresh-reuse-grace", "0s"]).await;
    app.register("mona", "correct horse battery").await;
    let mut b = Browser::new(&app);
    b.post_form("/ui/login", &[("username", "mona"), ("password", "correct horse battery")]).await;
    let csrf = b.csrf();
    let first_refresh = b.jar.get("refresh_token").unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;

    // GET changes nothing: it serves a page whose form posts to the renewal route.
    let r = b.get("/").await;
    assert!(set_cookies(&r).is_empty(), "a GET must not rotate anything");
    let html = r.text().await.unwrap();
    assert!(html.contains("action=\"/api/refresh/page\""), "{html}");
    assert!(html.contains(&format!("name=\"csrf_token\" value=\"{csrf}\"")));

    // The renewal route is POST-only and checks the double-submitted token.
    assert_eq!(b.get("/api/refresh/page").await.status(), 405);
    expect_error(b.post_form("/api/refresh/page", &[]).await, 403, "csrf_failed").await;
    assert_eq!(b.jar.get("refresh_token").unwrap(), first_refresh, "refused: nothing rotated");

    let r = b.post_form("/api/refresh/page", &[("csrf_token", &csrf)]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/");
    assert_ne!(b.jar.get("refresh_token").unwrap(), first_refresh, "rotated");
    assert_eq!(b.csrf(), csrf, "same session");
    assert!(b.page("/").await.contains("Logged in as mona"));

    // Presenting the rotated-away token again (after the grace window) is reuse: the
    // session ends.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let mut thief = Browser::new(&app);
    thief.jar = b.jar.clone();
    thief.jar.0.insert("refresh_token".into(), (first_refresh, "/api/refresh".into()));
    let r = thief.post_form("/api/refresh/page", &[("csrf_token", &csrf)]).await;
    assert_eq!(location(&r), "/?notice=expired");
    assert!(thief.jar.signed_out(), "cookies cleared");
    assert!(thief.page("/?notice=expired").await.contains("Session expired. Please log in again."));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let html = b.page("/").await;
    assert!(html.contains("action=\"/api/refresh/page\""));
    let r = b.post_form("/api/refresh/page", &[("csrf_token", &csrf)]).await;
    assert_eq!(location(&r), "/?notice=expired", "the whole session was revoked");
}

#[tokio::test]
async fn a_bad_session_cookie_shows_the_seed_messages() {
    let app = TestApp::spawn().await;
    let r = app.client.get(app.url("/")).header("cookie", "session=not.a.token").send().await.unwrap();
    assert!(r.text().await.unwrap().contains("Invalid session. Please log in again."));
    let r = app.client.get(app.url("/?notice=expired")).send().await.unwrap();
    assert!(r.text().await.unwrap().contains("Session expired. Please log in again."));
}

#[tokio::test]
async fn page_renewal_with_a_csrf_cookie_of_another_session_ends_the_session() {
    let app = TestApp::spawn_with(&["--access-token-ttl", "1s", "--token-leeway", "0s"]).await;
    app.register("nina", "correct horse battery").await;
    let other = cookie_login(&app, "nina", "correct horse battery").await;
    let mut b = Browser::new(&app);
    b.post_form("/ui/login", &[("username", "nina"), ("password", "correct horse battery")]).await;
    let planted = other.get("csrf_token").unwrap().to_owned();
    b.jar.0.insert("csrf_token".into(), (planted.clone(), "/".into()));
    let refresh = b.jar.get("refresh_token").unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = b.post_form("/api/refresh/page", &[("csrf_token", &planted)]).await;
    assert_eq!(location(&r), "/?notice=invalid");
    assert!(b.jar.signed_out());
    // The session is over: even a replay of its last refresh token within the grace
    // window gets nothing.
    let r = app.post("/api/refresh", json!({ "refresh_token": refresh })).await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn pages_work_with_host_prefixed_cookie_names() {
    let app = TestApp::spawn_with(&["--cookie-secure", "true"]).await;
    let mut b = Browser::new(&app);
    let r = b.post_form("/ui/register", &[("username", "omar"), ("password", "correct horse battery")]).await;
    assert_eq!(r.status(), 303);
    assert!(b.jar.get("__Host-session").is_some() && b.jar.get("__Secure-refresh").is_some());
    assert!(b.page("/").await.contains("Logged in as omar"));
    let csrf = b.jar.get("__Host-csrf").unwrap().to_owned();
    let r = b.post_form("/ui/logout", &[("csrf_token", &csrf)]).await;
    assert_eq!(location(&r), "/?notice=logged_out");
    assert!(b.jar.signed_out(), "{:?}", b.jar.0.keys().collect::<Vec<_>>());
}
