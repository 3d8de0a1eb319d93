//! Issue 16: a frontend on another origin of the CORS allow-list uses cookie mode in a real
//! browser. The page is served from `app.gatepass.test`, gatepass from
//! `auth.gatepass.test` (same site, different hosts, both mapped to 127.0.0.1 by Chromium's
//! host resolver), so the page cannot read gatepass's host-only cookies and must fetch the
//! CSRF token. A page on an origin that is not allowed gets nothing.
//!
//! Needs `GATEPASS_TEST_CHROMEDRIVER`, like the other browser tests.

use crate::browser_e2e::{connect, start_chromedriver};
use crate::common::TestApp;
use anyhow::{Context, Result, ensure};
use fantoccini::Client;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

/// Runs in the page: every step of a cookie-mode frontend, reporting each status.
const FRONTEND_FLOW: &str = r#"
const [api, password, done] = arguments;
(async () => {
  const out = {};
  const post = (path, csrf) => fetch(api + path, {
    method: 'POST', credentials: 'include',
    headers: Object.assign({'content-type': 'application/json'}, csrf ? {'x-csrf-token': csrf} : {}),
    body: path.startsWith('/api/login') ? JSON.stringify({username: 'front.end', password}) : '{}',
  });
  out.login = (await post('/api/login?cookie=true')).status;
  out.visible_cookies = document.cookie;
  let r = await fetch(api + '/api/refresh/csrf', {credentials: 'include'});
  out.csrf_status = r.status;
  const csrf = (await r.json()).csrf_token || '';
  out.csrf_length = csrf.length;
  out.profile = (await fetch(api + '/api/profile', {credentials: 'include'})).status;
  out.refresh_without_token = (await post('/api/refresh')).status;
  out.refresh = (await post('/api/refresh', csrf)).status;
  r = await fetch(api + '/api/refresh/csrf', {credentials: 'include'});
  out.same_token_after_refresh = (await r.json()).csrf_token === csrf;
  window.sessionStorage.setItem('csrf', csrf);
  done(out);
})().catch(e => done({error: String(e)}));
"#;

/// Runs in a page on a foreign origin: tries to read the token and to log the user out.
const FOREIGN_FLOW: &str = r#"
const [api, done] = arguments;
(async () => {
  const out = {};
  try { await fetch(api + '/api/refresh/csrf', {credentials: 'include'}); out.read = 'readable'; }
  catch (e) { out.read = 'blocked'; }
  try {
    await fetch(api + '/api/logout', {method: 'POST', credentials: 'include', mode: 'no-cors',
      headers: {'content-type': 'text/plain'}, body: '{}'});
  } catch (e) {}
  done(out);
})().catch(e => done({error: String(e)}));
"#;

/// Back on the frontend: the session survived the foreign page; log out.
const LOGOUT_FLOW: &str = r#"
const [api, done] = arguments;
(async () => {
  const out = {};
  const csrf = window.sessionStorage.getItem('csrf');
  out.profile_before = (await fetch(api + '/api/profile', {credentials: 'include'})).status;
  out.logout = (await fetch(api + '/api/logout', {method: 'POST', credentials: 'include',
    headers: {'content-type': 'application/json', 'x-csrf-token': csrf}, body: '{}'})).status;
  out.profile_after = (await fetch(api + '/api/profile', {credentials: 'include'})).status;
  done(out);
})().catch(e => done({error: String(e)}));
"#;

#[tokio::test]
async fn a_frontend_on_another_allowed_origin_signs_in_refreshes_and_logs_out() {
    let Ok(driver_path) = std::env::var("GATEPASS_TEST_CHROMEDRIVER") else {
        println!("SKIPPED: set GATEPASS_TEST_CHROMEDRIVER to run browser tests");
        return;
    };
    // The frontend's own server: an empty page on any host name.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let page_port = listener.local_addr().expect("addr").port();
    let page = axum::Router::new()
        .route("/", axum::routing::get(|| async { axum::response::Html("<!doctype html><title>frontend</title>") }));
    tokio::spawn(async move { axum::serve(listener, page).await });

    let frontend = format!("http://app.gatepass.test:{page_port}");
    let app = TestApp::spawn_with(&["--cors-origins", &frontend]).await;
    app.register("front.end", PASSWORD).await;
    let api = app.base.replace("127.0.0.1", "auth.gatepass.test");

    let profile = tempfile::tempdir().expect("profile dir");
    let (mut driver, port) = start_chromedriver(&driver_path).await.expect("chromedriver starts");
    let resolver = "--host-resolver-rules=MAP *.gatepass.test 127.0.0.1";
    let client = connect(port, &profile.path().to_string_lossy(), &[resolver]).await.expect("browser session");
    let outcome = run(&client, &frontend, &api, page_port).await;
    let _ = client.close().await;
    let _ = driver.kill().await;
    if let Err(e) = outcome {
        panic!("cross-origin browser test failed: {e:#}");
    }
}

async fn run(c: &Client, frontend: &str, api: &str, page_port: u16) -> Result<()> {
    c.goto(&format!("{frontend}/")).await?;
    let out = c.execute_async(FRONTEND_FLOW, vec![json!(api), json!(PASSWORD)]).await.context("frontend flow")?;
    let expect = |out: &Value, key: &str, want: Value| -> Result<()> {
        ensure!(out[key] == want, "{key}: expected {want}, got {} in {out}", out[key]);
        Ok(())
    };
    expect(&out, "login", json!(200))?;
    // Host-only cookies of auth.gatepass.test are invisible to app.gatepass.test.
    expect(&out, "visible_cookies", json!(""))?;
    expect(&out, "csrf_status", json!(200))?;
    ensure!(out["csrf_length"].as_u64().unwrap_or(0) >= 40, "no CSRF token: {out}");
    expect(&out, "profile", json!(200))?;
    expect(&out, "refresh_without_token", json!(403))?;
    expect(&out, "refresh", json!(200))?;
    expect(&out, "same_token_after_refresh", json!(true))?;

    c.goto(&format!("http://evil.gatepass.test:{page_port}/")).await?;
    let out = c.execute_async(FOREIGN_FLOW, vec![json!(api)]).await.context("foreign flow")?;
    expect(&out, "read", json!("blocked"))?;

    c.goto(&format!("{frontend}/")).await?;
    let out = c.execute_async(LOGOUT_FLOW, vec![json!(api)]).await.context("logout flow")?;
    expect(&out, "profile_before", json!(200))?;
    expect(&out, "logout", json!(200))?;
    expect(&out, "profile_after", json!(401))?;
    Ok(())
}
