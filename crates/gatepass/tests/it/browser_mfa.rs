//! Second factors in headless Chromium, through the real pages: an authenticator app set
//! up on the account page (the key read from the page, codes computed by pyotp), sign-in
//! through both login steps with an app code and with a recovery code, step-up with the
//! second factor, new recovery codes, removal; and the operator's policy leading an
//! administrator through enrolment before any session exists.
//!
//! Needs `GATEPASS_TEST_CHROMEDRIVER` and a Python with pyotp (as `mfa.rs`); without them
//! the test says it was skipped.

use crate::browser_e2e::{connect, save, screenshot_dir, start_chromedriver, wait_for_text};
use crate::common::TestApp;
use crate::mfa::{PASSWORD, pyotp_at, python_or_skip, steady_now};
use anyhow::{Context, Result, ensure};
use fantoccini::{Client, Locator};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn browser_second_factor_flows() {
    let Ok(driver_path) = std::env::var("GATEPASS_TEST_CHROMEDRIVER") else {
        println!("SKIPPED: set GATEPASS_TEST_CHROMEDRIVER to run browser tests");
        return;
    };
    let Some(py) = python_or_skip("browser_second_factor_flows") else { return };
    let profile = tempfile::tempdir().expect("profile dir");
    let (mut driver, port) = start_chromedriver(&driver_path).await.expect("chromedriver starts");
    let client = connect(port, &profile.path().to_string_lossy(), &[]).await.expect("browser session");
    let outcome = async {
        self_service_flow(&client, &py).await.context("self-service flow")?;
        policy_flow(&client, &py).await.context("policy flow")
    }
    .await;
    let _ = client.close().await;
    let _ = driver.kill().await;
    if let Err(e) = outcome {
        panic!("browser test failed: {e:#}");
    }
}

async fn text_of(c: &Client, id: &str) -> Result<String> {
    Ok(c.find(Locator::Id(id)).await?.text().await?.trim().to_owned())
}

async fn type_into(c: &Client, id: &str, text: &str) -> Result<()> {
    let field = c.find(Locator::Id(id)).await?;
    field.clear().await?;
    field.send_keys(text).await?;
    Ok(())
}

async fn click(c: &Client, css: &str) -> Result<()> {
    c.find(Locator::Css(css)).await?.click().await?;
    Ok(())
}

/// The codes listed on the recovery-codes page.
async fn listed_codes(c: &Client) -> Result<Vec<String>> {
    let mut codes = Vec::new();
    for item in c.find_all(Locator::Css("#recovery-codes code")).await? {
        codes.push(item.text().await?.trim().to_owned());
    }
    Ok(codes)
}

async fn password_step(c: &Client, app: &TestApp, name: &str) -> Result<()> {
    c.goto(&app.url("/")).await?;
    type_into(c, "username", name).await?;
    type_into(c, "password", PASSWORD).await?;
    click(c, "form[action='/ui/login'] button[type=submit]").await
}

async fn cookie_names(c: &Client) -> Result<Vec<String>> {
    Ok(c.get_all_cookies().await?.into_iter().map(|k| k.name().to_owned()).collect())
}

/// The key shown on the setup page, confirmed with pyotp's code for `at`; returns the
/// recovery codes the next page lists.
async fn set_up_app(c: &Client, py: &str, at: u64) -> Result<(String, Vec<String>)> {
    wait_for_text(c, "Scan this code with your authenticator app").await?;
    c.find(Locator::Css("#totp-qr svg")).await.context("the QR code is inline")?;
    let secret = text_of(c, "totp-secret").await?;
    ensure!(secret.len() == 32, "a 160-bit key in base32: {secret}");
    type_into(c, "setup-code", &pyotp_at(py, &secret, at)).await?;
    click(c, "#setup-confirm button[type=submit]").await?;
    wait_for_text(c, "Your recovery codes").await?;
    let codes = listed_codes(c).await?;
    ensure!(codes.len() == 10, "ten recovery codes: {codes:?}");
    Ok((secret, codes))
}

async fn self_service_flow(c: &Client, py: &str) -> Result<()> {
    // A short fresh-login window, so that the step-up form shows up during the test.
    let app = TestApp::spawn_with(&["--rate-limit", "false", "--fresh-auth-max-age", "3s"]).await;
    let shots = screenshot_dir()?;
    c.set_window_size(1280, 1000).await?;
    c.goto(&app.url("/register")).await?;
    type_into(c, "username", "mia").await?;
    type_into(c, "password", PASSWORD).await?;
    type_into(c, "confirm_password", PASSWORD).await?;
    click(c, "form[action='/ui/register'] button[type=submit]").await?;
    wait_for_text(c, "Logged in as mia").await?;

    let t = steady_now().await;
    click(c, "#mfa-setup button").await?;
    wait_for_text(c, "Scan this code with your authenticator app").await?;
    save(c, &shots, "mfa-setup.png").await?;
    let (secret, codes) = set_up_app(c, py, t).await?;
    save(c, &shots, "mfa-recovery-codes.png").await?;
    click(c, "#continue").await?;
    wait_for_text(c, "Logged in as mia").await?;
    ensure!(text_of(c, "recovery-left").await? == "10", "ten codes left");

    // Sign out, sign in through both pages with the next step's app code.
    click(c, "#logout").await?;
    wait_for_text(c, "You have been logged out.").await?;
    password_step(c, &app, "mia").await?;
    wait_for_text(c, "Confirm it is you").await?;
    c.find(Locator::Id("passkey-slot")).await.context("the passkey slot")?;
    ensure!(!cookie_names(c).await?.iter().any(|n| n == "session"), "no session before the second step");
    save(c, &shots, "mfa-second-step.png").await?;
    let focused = c.execute("return document.activeElement.id;", vec![]).await?;
    ensure!(focused == json!("totp"), "the code field has the focus: {focused}");
    type_into(c, "totp", &pyotp_at(py, &secret, t + 30)).await?;
    click(c, "#totp-form button[type=submit]").await?;
    wait_for_text(c, "Logged in as mia").await?;

    // A wrong code: the login form with the message, focused.
    click(c, "#logout").await?;
    wait_for_text(c, "You have been logged out.").await?;
    password_step(c, &app, "mia").await?;
    wait_for_text(c, "Confirm it is you").await?;
    type_into(c, "totp", "000000").await?;
    click(c, "#totp-form button[type=submit]").await?;
    wait_for_text(c, "That code was not accepted. Enter your password again.").await?;
    let focused = c.execute("return document.activeElement.id;", vec![]).await?;
    ensure!(focused == json!("login-error"), "the message has the focus: {focused}");

    // The switch to a recovery code.
    password_step(c, &app, "mia").await?;
    wait_for_text(c, "Confirm it is you").await?;
    click(c, "#recovery-switch summary").await?;
    type_into(c, "recovery_code", &codes[0]).await?;
    click(c, "#recovery-form button[type=submit]").await?;
    wait_for_text(c, "Logged in as mia").await?;
    ensure!(text_of(c, "recovery-left").await? == "9", "one code used");

    // Once the sign-in is no longer fresh, changing factors asks for the step-up.
    tokio::time::sleep(Duration::from_secs(4)).await;
    c.refresh().await?;
    wait_for_text(c, "To change these, confirm your password and a code first.").await?;
    type_into(c, "mfa-reauth-password", PASSWORD).await?;
    type_into(c, "mfa-reauth-code", &codes[1]).await?;
    click(c, "#mfa-reauth button[type=submit]").await?;
    wait_for_text(c, "Password and second factor confirmed.").await?;
    click(c, "#mfa-regenerate button").await?;
    wait_for_text(c, "New recovery codes; the old ones no longer work.").await?;
    let fresh = listed_codes(c).await?;
    ensure!(fresh.len() == 10 && fresh.iter().all(|f| !codes.contains(f)), "new codes");
    click(c, "#continue").await?;
    wait_for_text(c, "Logged in as mia").await?;
    ensure!(text_of(c, "recovery-left").await? == "10", "ten new codes");
    click(c, "#mfa-remove button").await?;
    wait_for_text(c, "The authenticator app and the recovery codes were removed.").await?;
    c.find(Locator::Id("mfa-setup")).await.context("set-up offered again")?;

    // A password alone signs in again.
    click(c, "#logout").await?;
    wait_for_text(c, "You have been logged out.").await?;
    password_step(c, &app, "mia").await?;
    wait_for_text(c, "Logged in as mia").await?;
    click(c, "#logout").await?;
    wait_for_text(c, "You have been logged out.").await?;
    Ok(())
}

async fn policy_flow(c: &Client, py: &str) -> Result<()> {
    let app = TestApp::spawn_with(&["--rate-limit", "false"]).await;
    let shots = screenshot_dir()?;
    let body = json!({ "username": "chief", "password": PASSWORD, "roles": ["admin"] });
    ensure!(app.post_auth("/api/admin/users", app.operator(), body).await.status() == 201);
    let r = app.patch_auth("/api/info", app.operator(), json!({ "mfa_required_roles": ["admin"] })).await;
    ensure!(r.status() == 200, "policy set");

    let t = steady_now().await;
    password_step(c, &app, "chief").await?;
    wait_for_text(c, "Accounts with your role must also use an authenticator app").await?;
    ensure!(!cookie_names(c).await?.iter().any(|n| n == "session"), "no session before enrolment");
    save(c, &shots, "mfa-policy.png").await?;
    // Not signed in yet: the home page is the login form.
    c.goto(&app.url("/")).await?;
    wait_for_text(c, "Log in").await?;
    password_step(c, &app, "chief").await?;
    wait_for_text(c, "Accounts with your role must also use an authenticator app").await?;
    click(c, "#enrol-start button").await?;
    let (_, codes) = set_up_app(c, py, t).await?;
    ensure!(cookie_names(c).await?.iter().any(|n| n == "session"), "signed in once enrolled");
    click(c, "#continue").await?;
    wait_for_text(c, "Logged in as chief").await?;
    ensure!(text_of(c, "recovery-left").await? == "10", "{codes:?}");
    Ok(())
}
