//! Issue: browser sign-in, end to end in headless Chromium driven over WebDriver.
//!
//! Needs `GATEPASS_TEST_CHROMEDRIVER` (path to chromedriver; `.ci/run` sets it). Without
//! it the test says it was skipped and passes; with it, any failure fails the test.
//! Screenshots land in `target/screenshots/`.

use crate::common::TestApp;
use anyhow::{Context, Result, bail, ensure};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;
use tokio::process::{Child, Command};

const PASSWORD: &str = "correct horse battery";
const NEW_PASSWORD: &str = "a fresh new passphrase";

#[tokio::test]
async fn browser_sign_in_flow() {
    let Ok(driver_path) = std::env::var("GATEPASS_TEST_CHROMEDRIVER") else {
        println!("SKIPPED: set GATEPASS_TEST_CHROMEDRIVER to run browser tests");
        return;
    };
    let profile = tempfile::tempdir().expect("profile dir");
    let (mut driver, port) = start_chromedriver(&driver_path).await.expect("chromedriver starts");
    let client = connect(port, &profile.path().to_string_lossy(), &[]).await.expect("browser session");
    let outcome = run_flows(&client).await;
    let _ = client.close().await;
    let _ = driver.kill().await;
    if let Err(e) = outcome {
        panic!("browser test failed: {e:#}");
    }
}

async fn run_flows(c: &Client) -> Result<()> {
    sign_in_flow(c).await.context("sign-in flow")?;
    stale_tab_flow(c).await.context("stale tab flow")?;
    renewal_flow(c).await.context("page-load renewal flow")?;
    Ok(())
}

/// Register, stay signed in, cookies hidden from scripts, password change, cross-site
/// post refused, logout.
async fn sign_in_flow(c: &Client) -> Result<()> {
    let app = TestApp::spawn().await;
    let shots = screenshot_dir()?;
    c.set_window_size(1280, 900).await?;

    c.goto(&app.url("/")).await?;
    wait_for_text(c, "Log in").await?;
    save(c, &shots, "login.png").await?;

    c.find(Locator::LinkText("Create one")).await?.click().await?;
    wait_for_text(c, "Create an account").await?;
    save(c, &shots, "register.png").await?;
    c.find(Locator::Id("username")).await?.send_keys("browser.user").await?;
    c.find(Locator::Id("email")).await?.send_keys("browser@example.com").await?;
    c.find(Locator::Id("password")).await?.send_keys(PASSWORD).await?;
    c.find(Locator::Id("confirm_password")).await?.send_keys(PASSWORD).await?;
    c.find(Locator::Css("form[action='/ui/register'] button[type=submit]")).await?.click().await?;
    wait_for_text(c, "Logged in as browser.user").await?;
    ensure!(c.current_url().await?.path() == "/", "PRG lands on /");

    c.refresh().await?;
    wait_for_text(c, "Logged in as browser.user").await?;

    let visible = c.execute("return document.cookie;", vec![]).await?;
    let visible = visible.as_str().unwrap_or_default().to_owned();
    let names: Vec<&str> = visible.split("; ").filter_map(|kv| kv.split('=').next()).collect();
    ensure!(!names.contains(&"session"), "page script can read the session cookie: {visible}");
    ensure!(!names.contains(&"refresh_token"), "page script can read the refresh cookie: {visible}");
    ensure!(names.contains(&"csrf_token"), "the CSRF cookie is meant for scripts: {visible}");

    // A second signed-in browser name for the account shows up in the session list.
    app.post("/api/login", json!({"username": "browser.user", "password": PASSWORD})).await;
    c.refresh().await?;
    wait_for_text(c, "End all other sessions").await?;
    save(c, &shots, "profile.png").await?;

    c.find(Locator::Id("current_password")).await?.send_keys(PASSWORD).await?;
    c.find(Locator::Id("new_password")).await?.send_keys(NEW_PASSWORD).await?;
    c.find(Locator::Css("#password-form button[type=submit]")).await?.click().await?;
    wait_for_text(c, "Password changed.").await?;

    // Another origin (same host, other port: same-site, so SameSite=Lax cookies *are*
    // sent) auto-posts a logout form without the CSRF token.
    let evil = spawn_cross_site_page(&app.url("/ui/logout")).await?;
    c.goto(&evil).await?;
    wait_for_text(c, "csrf_failed").await?;
    c.goto(&app.url("/")).await?;
    wait_for_text(c, "Logged in as browser.user").await?;

    c.set_window_size(390, 844).await?;
    c.refresh().await?;
    wait_for_text(c, "Logged in as browser.user").await?;
    save(c, &shots, "profile-phone.png").await?;
    c.set_window_size(1280, 900).await?;

    c.find(Locator::Id("logout")).await?.click().await?;
    wait_for_text(c, "You have been logged out.").await?;
    c.find(Locator::Css("form[action='/ui/login']")).await?;
    let left = c.execute("return document.cookie;", vec![]).await?;
    ensure!(left.as_str().unwrap_or_default().is_empty(), "cookies left after logout: {left}");

    // The old password is gone, the new one works; the error keeps the username.
    login(c, &app, "browser.user", PASSWORD).await?;
    wait_for_text(c, "Invalid username or password.").await?;
    let kept = c.find(Locator::Id("username")).await?.prop("value").await?;
    ensure!(kept.as_deref() == Some("browser.user"), "username kept: {kept:?}");
    save(c, &shots, "login-error.png").await?;
    login(c, &app, "browser.user", NEW_PASSWORD).await?;
    wait_for_text(c, "Logged in as browser.user").await?;

    // Registration errors sit next to their fields and keep what was typed.
    c.find(Locator::Id("logout")).await?.click().await?;
    wait_for_text(c, "You have been logged out.").await?;
    c.goto(&app.url("/register")).await?;
    c.find(Locator::Id("username")).await?.send_keys("browser.user").await?;
    c.find(Locator::Id("password")).await?.send_keys(PASSWORD).await?;
    c.find(Locator::Id("confirm_password")).await?.send_keys(PASSWORD).await?;
    c.find(Locator::Css("form[action='/ui/register'] button[type=submit]")).await?.click().await?;
    wait_for_text(c, "This username is already taken.").await?;
    let kept = c.find(Locator::Id("username")).await?.prop("value").await?;
    ensure!(kept.as_deref() == Some("browser.user"), "username kept: {kept:?}");
    save(c, &shots, "register-error.png").await?;

    // Every problem at once, and the focus on the first invalid field (by `autofocus`:
    // the CSP allows no script for it).
    c.find(Locator::Id("username")).await?.clear().await?;
    c.find(Locator::Id("username")).await?.send_keys("fresh.user").await?;
    c.find(Locator::Id("password")).await?.send_keys("short").await?;
    c.find(Locator::Id("confirm_password")).await?.send_keys("different").await?;
    c.find(Locator::Css("form[action='/ui/register'] button[type=submit]")).await?.click().await?;
    wait_for_text(c, "The two passwords do not match.").await?;
    wait_for_text(c, "Password must be at least 8 bytes long.").await?;
    let focused = c.execute("return document.activeElement && document.activeElement.id;", vec![]).await?;
    ensure!(focused.as_str() == Some("password"), "focus on the first invalid field: {focused:?}");
    Ok(())
}

/// A tab left open across a new sign-in in another tab posts a form with the old CSRF
/// token: it gets the same page back with "This page had expired", and the retry from that
/// page works.
async fn stale_tab_flow(c: &Client) -> Result<()> {
    let app = TestApp::spawn().await;
    app.register("stale.tab", PASSWORD).await;
    login(c, &app, "stale.tab", PASSWORD).await?;
    wait_for_text(c, "Logged in as stale.tab").await?;
    let first = c.window().await?;

    // Another tab of the same browser logs out and in again: a new session, a new token.
    let second = c.new_window(true).await?.handle;
    c.switch_to_window(second).await?;
    c.goto(&app.url("/")).await?;
    c.find(Locator::Id("logout")).await?.click().await?;
    wait_for_text(c, "You have been logged out.").await?;
    login(c, &app, "stale.tab", PASSWORD).await?;
    wait_for_text(c, "Logged in as stale.tab").await?;
    c.close_window().await?;
    c.switch_to_window(first).await?;

    // The first tab still shows the page rendered under the old session.
    c.find(Locator::Id("current_password")).await?.send_keys(PASSWORD).await?;
    c.find(Locator::Id("new_password")).await?.send_keys(NEW_PASSWORD).await?;
    c.find(Locator::Css("#password-form button[type=submit]")).await?.click().await?;
    wait_for_text(c, "This page had expired, please try again.").await?;
    let typed = c.find(Locator::Id("current_password")).await?.prop("value").await?;
    ensure!(typed.as_deref() == Some(""), "passwords are not kept: {typed:?}");
    c.find(Locator::Id("current_password")).await?.send_keys(PASSWORD).await?;
    c.find(Locator::Id("new_password")).await?.send_keys(NEW_PASSWORD).await?;
    c.find(Locator::Css("#password-form button[type=submit]")).await?.click().await?;
    wait_for_text(c, "Password changed.").await?;
    c.find(Locator::Id("logout")).await?.click().await?;
    wait_for_text(c, "You have been logged out.").await?;
    Ok(())
}

/// With a 1-second access token, a later page load renews the sign-in through the
/// resume page's hashed script (so this also proves the CSP hash matches).
async fn renewal_flow(c: &Client) -> Result<()> {
    let app = TestApp::spawn_with(&["--access-token-ttl", "1s", "--token-leeway", "0s"]).await;
    app.register("sleepy", PASSWORD).await;
    login(c, &app, "sleepy", PASSWORD).await?;
    wait_for_text(c, "Logged in as sleepy").await?;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    c.goto(&app.url("/")).await?;
    wait_for_text(c, "Logged in as sleepy").await?;
    ensure!(c.current_url().await?.path() == "/", "renewal returns to /");
    Ok(())
}

async fn login(c: &Client, app: &TestApp, username: &str, password: &str) -> Result<()> {
    c.goto(&app.url("/")).await?;
    let user = c.find(Locator::Id("username")).await?;
    user.clear().await?;
    user.send_keys(username).await?;
    c.find(Locator::Id("password")).await?.send_keys(password).await?;
    c.find(Locator::Css("form[action='/ui/login'] button[type=submit]")).await?.click().await?;
    Ok(())
}

/// Polls the page source until it contains `text` (10 s at most).
pub(crate) async fn wait_for_text(c: &Client, text: &str) -> Result<()> {
    for _ in 0..100 {
        if c.source().await.is_ok_and(|s| s.contains(text)) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = c.current_url().await.map(|u| u.to_string()).unwrap_or_default();
    let source = c.source().await.unwrap_or_default();
    bail!("`{text}` never appeared at {url}; page was:\n{source}")
}

pub(crate) fn screenshot_dir() -> Result<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

pub(crate) async fn save(c: &Client, dir: &std::path::Path, name: &str) -> Result<()> {
    let png = c.screenshot().await?;
    std::fs::write(dir.join(name), png).with_context(|| format!("writing {name}"))?;
    Ok(())
}

/// A page on another origin that submits a form to `target` as soon as it loads.
async fn spawn_cross_site_page(target: &str) -> Result<String> {
    let html = format!(
        "<!doctype html><html><body><form id=f method=post action=\"{target}\">\
         <input name=reason value=csrf></form><script>document.getElementById('f').submit()</script></body></html>"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = axum::Router::new().route("/", axum::routing::get(move || async move { axum::response::Html(html) }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(format!("http://{addr}/"))
}

pub(crate) async fn start_chromedriver(path: &str) -> Result<(Child, u16)> {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let child = Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {path}"))?;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok((child, port));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("chromedriver did not listen on port {port}")
}

/// A headless Chromium session through the chromedriver on `port`, with `extra` flags.
pub(crate) async fn connect(port: u16, profile_dir: &str, extra: &[&str]) -> Result<Client> {
    let binary = std::env::var("GATEPASS_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let mut args: Vec<String> = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    .into_iter()
    .chain(extra.iter().copied())
    .map(str::to_owned)
    .collect();
    args.push(format!("--user-data-dir={profile_dir}"));
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), json!({ "binary": binary, "args": args }));
    let client = ClientBuilder::rustls()?
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .context("WebDriver session")?;
    Ok(client)
}
