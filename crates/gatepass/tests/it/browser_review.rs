//! Issue 16: security review of cookie mode. Which requests get `Secure` cookies, which
//! cookie names are read, the origin check (scheme, allowed origins, `Sec-Fetch-Site`)
//! and the CSRF token on cookie refreshes, driven over HTTP.

use crate::common::{TestApp, expect_error};
use reqwest::header::SET_COOKIE;
use serde_json::json;

const PASSWORD: &str = "correct horse battery";

/// `name=value` of each `Set-Cookie`, with whether it is flagged `Secure`.
fn set_cookies(r: &reqwest::Response) -> Vec<(String, String, bool)> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| {
            let v = v.to_str().unwrap();
            let (pair, attrs) = v.split_once(';').unwrap_or((v, ""));
            let (name, value) = pair.split_once('=').unwrap();
            let secure = attrs.split(';').any(|a| a.trim() == "Secure");
            (name.to_owned(), value.to_owned(), secure)
        })
        .collect()
}

fn cookie<'a>(cookies: &'a [(String, String, bool)], name: &str) -> &'a str {
    cookies.iter().find(|(n, _, _)| n == name).map(|(_, v, _)| v.as_str()).unwrap_or_else(|| panic!("{name}"))
}

/// Logs in with `?cookie=true`, sending `headers`; returns the cookies set.
async fn cookie_login(app: &TestApp, user: &str, headers: &[(&str, &str)]) -> Vec<(String, String, bool)> {
    let mut rb =
        app.client.post(app.url("/api/login?cookie=true")).json(&json!({"username": user, "password": PASSWORD}));
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let r = rb.send().await.unwrap();
    assert_eq!(r.status(), 200);
    set_cookies(&r)
}

fn names(cookies: &[(String, String, bool)]) -> Vec<&str> {
    let mut n: Vec<&str> = cookies.iter().map(|(n, _, _)| n.as_str()).collect();
    n.sort_unstable();
    n
}

/// What a sign-in sets: the session's three cookies and the device cookie.
const SECURE_NAMES: [&str; 4] = ["__Host-csrf", "__Host-device", "__Host-session", "__Secure-refresh"];
const PLAIN_NAMES: [&str; 4] = ["csrf_token", "device", "refresh_token", "session"];

#[tokio::test]
async fn an_https_issuer_makes_cookies_secure_on_loopback() {
    let app = TestApp::spawn_with(&["--issuer", "https://auth.example.com"]).await;
    app.register("ada", PASSWORD).await;
    let cookies = cookie_login(&app, "ada", &[]).await;
    assert_eq!(names(&cookies), SECURE_NAMES);
    assert!(cookies.iter().all(|(_, _, secure)| *secure), "{cookies:?}");

    // The explicit setting still wins.
    let plain = TestApp::spawn_with(&["--issuer", "https://auth.example.com", "--cookie-secure", "false"]).await;
    plain.register("ada", PASSWORD).await;
    let cookies = cookie_login(&plain, "ada", &[]).await;
    assert_eq!(names(&cookies), PLAIN_NAMES);
    assert!(cookies.iter().all(|(_, _, secure)| !*secure), "{cookies:?}");
}

#[tokio::test]
async fn a_trusted_proxy_forwarding_https_makes_cookies_secure() {
    let app = TestApp::spawn_with(&["--trusted-proxies", "127.0.0.1/32"]).await;
    app.register("bea", PASSWORD).await;
    let cookies = cookie_login(&app, "bea", &[("x-forwarded-proto", "https")]).await;
    assert_eq!(names(&cookies), SECURE_NAMES);
    assert!(cookies.iter().all(|(_, _, secure)| *secure), "{cookies:?}");
    // The same proxy forwarding plain HTTP: plain cookies, as before.
    let cookies = cookie_login(&app, "bea", &[("x-forwarded-proto", "http")]).await;
    assert_eq!(names(&cookies), PLAIN_NAMES);

    // A secure session then works through the proxy: profile, refresh, logout.
    let cookies = cookie_login(&app, "bea", &[("x-forwarded-proto", "https")]).await;
    let jar = format!(
        "__Host-session={}; __Host-csrf={}",
        cookie(&cookies, "__Host-session"),
        cookie(&cookies, "__Host-csrf")
    );
    let r = app.client.get(app.url("/api/profile")).header("cookie", &jar).header("x-forwarded-proto", "https");
    assert_eq!(r.send().await.unwrap().status(), 200);
    let r = app
        .client
        .post(app.url("/api/logout"))
        .header("cookie", &jar)
        .header("x-forwarded-proto", "https")
        .header("x-csrf-token", cookie(&cookies, "__Host-csrf"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(set_cookies(&r).iter().all(|(n, v, secure)| v.is_empty() && *secure && SECURE_NAMES.contains(&n.as_str())));
}

#[tokio::test]
async fn forwarded_proto_from_an_untrusted_peer_is_ignored() {
    let app = TestApp::spawn_with(&["--trusted-proxies", "10.0.0.0/8"]).await;
    app.register("cid", PASSWORD).await;
    let cookies = cookie_login(&app, "cid", &[("x-forwarded-proto", "https")]).await;
    assert_eq!(names(&cookies), PLAIN_NAMES);
}

/// A browser's cookies for one origin: name → value (the refresh cookie only goes to
/// `/api/refresh…`, like a browser would send it).
#[derive(Default)]
struct Jar(std::collections::BTreeMap<String, String>);

impl Jar {
    fn absorb(&mut self, cookies: &[(String, String, bool)]) {
        for (name, value, _) in cookies {
            if value.is_empty() {
                self.0.remove(name);
            } else {
                self.0.insert(name.clone(), value.clone());
            }
        }
    }

    fn header_for(&self, path: &str) -> String {
        self.0
            .iter()
            .filter(|(name, _)| !name.contains("refresh") || path.starts_with("/api/refresh"))
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn csrf(&self) -> &str {
        &self.0["csrf_token"]
    }
}

/// A cookie-mode POST to `path` with the jar, `headers` and the jar's CSRF token.
async fn post(app: &TestApp, jar: &Jar, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut rb =
        app.client.post(app.url(path)).header("cookie", jar.header_for(path)).header("x-csrf-token", jar.csrf());
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    rb.send().await.unwrap()
}

const FRONTEND: &str = "https://app.example.com";

#[tokio::test]
async fn a_frontend_on_an_allowed_origin_can_use_cookie_mode() {
    let app = TestApp::spawn_with(&["--cors-origins", FRONTEND]).await;
    app.register("dee", PASSWORD).await;
    let from_frontend = [("origin", FRONTEND), ("sec-fetch-site", "cross-site")];
    let mut jar = Jar::default();
    jar.absorb(&cookie_login(&app, "dee", &from_frontend).await);

    let r = app.client.get(app.url("/api/profile")).header("cookie", jar.header_for("/api/profile"));
    assert_eq!(r.header("origin", FRONTEND).send().await.unwrap().status(), 200);

    let r = post(&app, &jar, "/api/refresh", &from_frontend).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    assert_eq!(r.headers()["access-control-allow-origin"], FRONTEND);
    let rotated = set_cookies(&r);
    assert_ne!(cookie(&rotated, "refresh_token"), jar.0["refresh_token"]);
    jar.absorb(&rotated);

    // Another origin is refused, with the right token too, and changes nothing.
    for foreign in ["https://evil.example.com", "http://app.example.com", "null"] {
        let from_elsewhere = [("origin", foreign), ("sec-fetch-site", "cross-site")];
        expect_error(post(&app, &jar, "/api/logout", &from_elsewhere).await, 403, "csrf_failed").await;
        expect_error(post(&app, &jar, "/api/refresh", &from_elsewhere).await, 403, "csrf_failed").await;
    }
    // The allow-list does not excuse the token.
    let r = app
        .client
        .post(app.url("/api/logout"))
        .header("cookie", jar.header_for("/api/logout"))
        .header("origin", FRONTEND)
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "csrf_failed").await;

    let r = post(&app, &jar, "/api/logout", &from_frontend).await;
    assert_eq!(r.status(), 200);
    jar.absorb(&set_cookies(&r));
    // The device cookie stays: the browser did sign in here before.
    assert!(
        jar.0.keys().all(|k| k == "device" || k == "__Host-device"),
        "logout clears the session's cookies: {:?}",
        jar.0
    );
}

/// A frontend on another host of the allow-list cannot read gatepass's host-only cookies:
/// `GET /api/refresh/csrf` (reached by the refresh cookie's path) tells it the CSRF token,
/// and only this origin and the allowed ones get an answer.
#[tokio::test]
async fn a_frontend_on_an_allowed_origin_gets_the_csrf_token_from_the_refresh_cookie() {
    let app = TestApp::spawn_with(&["--cors-origins", FRONTEND]).await;
    app.register("ida", PASSWORD).await;
    let from_frontend = [("origin", FRONTEND), ("sec-fetch-site", "same-site")];
    let mut jar = Jar::default();
    jar.absorb(&cookie_login(&app, "ida", &from_frontend).await);
    let get = |jar: &Jar, headers: &[(&str, &str)]| {
        let mut rb = app.client.get(app.url("/api/refresh/csrf")).header("cookie", jar.header_for("/api/refresh/csrf"));
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        rb.send()
    };
    let r = get(&jar, &from_frontend).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], FRONTEND);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["csrf_token"], jar.csrf(), "the token of this session");
    // Same-origin callers (and non-browser clients) may ask too.
    assert_eq!(get(&jar, &[("sec-fetch-site", "same-origin")]).await.unwrap().status(), 200);

    // Other origins get nothing readable: refused outright, without CORS headers.
    for foreign in ["https://evil.example.com", "null"] {
        let r = get(&jar, &[("origin", foreign), ("sec-fetch-site", "cross-site")]).await.unwrap();
        assert!(r.headers().get("access-control-allow-origin").is_none());
        expect_error(r, 403, "csrf_failed").await;
    }
    let r = get(&jar, &[("sec-fetch-site", "cross-site")]).await.unwrap();
    expect_error(r, 403, "csrf_failed").await;

    // No refresh cookie, a made-up one, and one whose session has ended.
    let r = app.client.get(app.url("/api/refresh/csrf")).send().await.unwrap();
    expect_error(r, 400, "refresh_token_required").await;
    let mut forged = Jar::default();
    forged.0.insert("refresh_token".into(), "x".repeat(43));
    expect_error(get(&forged, &[]).await.unwrap(), 401, "refresh_token_invalid").await;
    let r = post(&app, &jar, "/api/logout", &from_frontend).await;
    assert_eq!(r.status(), 200);
    expect_error(get(&jar, &from_frontend).await.unwrap(), 401, "refresh_token_invalid").await;
}

#[tokio::test]
async fn allowed_origins_do_not_open_the_html_forms() {
    let app = TestApp::spawn_with(&["--cors-origins", FRONTEND]).await;
    let r = app
        .client
        .post(app.url("/ui/register"))
        .header("origin", FRONTEND)
        .header("sec-fetch-site", "cross-site")
        .form(&[("username", "eve"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "csrf_failed").await;
}

#[tokio::test]
async fn a_foreign_origin_is_refused_even_with_sec_fetch_site_same_origin() {
    let app = TestApp::spawn().await;
    app.register("fay", PASSWORD).await;
    let mut jar = Jar::default();
    jar.absorb(&cookie_login(&app, "fay", &[]).await);
    let this_host = app.base.strip_prefix("http://").unwrap().to_owned();
    let wrong_scheme = format!("https://{this_host}");
    for origin in ["https://evil.example.com", wrong_scheme.as_str()] {
        let headers = [("origin", origin), ("sec-fetch-site", "same-origin")];
        expect_error(post(&app, &jar, "/api/logout", &headers).await, 403, "csrf_failed").await;
        let headers = [("origin", origin)];
        expect_error(post(&app, &jar, "/api/logout", &headers).await, 403, "csrf_failed").await;
    }
    let r = post(&app, &jar, "/api/logout", &[("origin", &app.base), ("sec-fetch-site", "same-origin")]).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_cookie_refresh_needs_the_sessions_csrf_token() {
    let app = TestApp::spawn().await;
    app.register("gus", PASSWORD).await;
    let mut jar = Jar::default();
    jar.absorb(&cookie_login(&app, "gus", &[]).await);
    let mut other = Jar::default();
    other.absorb(&cookie_login(&app, "gus", &[]).await);
    let refresh = |token: Option<&str>| {
        let mut rb = app.client.post(app.url("/api/refresh")).header("cookie", jar.header_for("/api/refresh"));
        if let Some(t) = token {
            rb = rb.header("x-csrf-token", t);
        }
        rb.send()
    };
    expect_error(refresh(None).await.unwrap(), 403, "csrf_failed").await;
    expect_error(refresh(Some(other.csrf())).await.unwrap(), 403, "csrf_failed").await;
    expect_error(refresh(Some("x")).await.unwrap(), 403, "csrf_failed").await;
    // Nothing was rotated: the same refresh cookie still works, once, with the token.
    let r = refresh(Some(jar.csrf())).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(set_cookies(&r).iter().any(|(n, v, _)| n == "refresh_token" && !v.is_empty()));
}

#[tokio::test]
async fn with_host_prefixed_names_a_plain_session_cookie_is_ignored() {
    let app = TestApp::spawn_with(&["--cookie-secure", "true"]).await;
    let body = app.register("hal", PASSWORD).await;
    let token = crate::common::s(&body, "access_token");
    let r = app.client.get(app.url("/api/profile")).header("cookie", format!("session={token}")).send().await;
    expect_error(r.unwrap(), 401, "token_missing").await;
    let r = app.client.get(app.url("/api/profile")).header("cookie", format!("__Host-session={token}")).send().await;
    assert_eq!(r.unwrap().status(), 200);
}
