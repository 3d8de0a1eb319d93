//! Issue 16: security review of cookie mode. Which requests get `Secure` cookies, which
//! cookie names are read, the origin check (scheme, allowed origins, `Sec-Fetch-Site`)
//! and the CSRF token on cookie refreshes, driven over HTTP.

use crate::common::TestApp;
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

const SECURE_NAMES: [&str; 3] = ["__Host-csrf", "__Host-session", "__Secure-refresh"];
const PLAIN_NAMES: [&str; 3] = ["csrf_token", "refresh_token", "session"];

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
