//! "Forgot password → mail → reset → sign in" in headless Chromium, with the mail going
//! through a real SMTP server. Needs `GATEPASS_TEST_CHROMEDRIVER` and
//! `GATEPASS_TEST_SMTP_PYTHON` (without either, the test says it was skipped).

use anyhow::{Context, Result, ensure};
use fantoccini::{Client, Locator};
use serde_json::json;

use crate::browser_e2e::{connect, save, screenshot_dir, start_chromedriver, wait_for_text};
use crate::common::TestApp;
use crate::common::smtp::SmtpServer;

const PASSWORD: &str = "correct horse battery";
const NEW_PASSWORD: &str = "lantern over the quiet river";
const PUBLIC: &str = "https://auth.example.test";

#[tokio::test]
async fn forgot_password_mail_reset_and_sign_in_in_a_browser() {
    let Ok(driver_path) = std::env::var("GATEPASS_TEST_CHROMEDRIVER") else {
        println!("SKIPPED: set GATEPASS_TEST_CHROMEDRIVER to run browser tests");
        return;
    };
    let Some(smtp) = SmtpServer::start("email_browser::forgot_password_mail_reset_and_sign_in").await else { return };
    let url = smtp.url();
    let app = TestApp::spawn_with(&["--smtp-url", &url, "--public-url", PUBLIC]).await;
    let profile = tempfile::tempdir().expect("profile dir");
    let (mut driver, driver_port) = start_chromedriver(&driver_path).await.expect("chromedriver starts");
    let client = connect(driver_port, &profile.path().to_string_lossy(), &[]).await.expect("browser session");
    let outcome = flow(&client, &app, &smtp).await;
    let _ = client.close().await;
    let _ = driver.kill().await;
    if let Err(e) = outcome {
        panic!("browser test failed: {e:#}");
    }
}

/// Mails link to the configured public URL; the browser opens the same path on the test
/// server (the one thing a user's click does differently here).
fn open(app: &TestApp, link: &str) -> String {
    app.url(link.strip_prefix(PUBLIC).expect("links start with the public URL"))
}

async fn flow(c: &Client, app: &TestApp, smtp: &SmtpServer) -> Result<()> {
    let shots = screenshot_dir()?;
    let r = app
        .post("/api/register", json!({ "username": "walker", "password": PASSWORD, "email": "walker@example.com" }))
        .await;
    ensure!(r.status() == 201, "register: {}", r.status());
    let verify = smtp.wait_for("walker@example.com", 1).await.pop().context("verification mail")?;

    // The verification link, opened and confirmed with the keyboard.
    c.goto(&open(app, &verify.link(&format!("{PUBLIC}/verify?token=")))).await?;
    wait_for_text(c, "Confirm your e-mail address").await?;
    c.find(Locator::Css("form[action='/ui/verify'] button")).await?.send_keys("\u{e007}").await?;
    wait_for_text(c, "E-mail address confirmed.").await?;

    // Forgot password, from the login page's link.
    c.goto(&app.url("/")).await?;
    c.find(Locator::LinkText("Forgot your password?")).await?.click().await?;
    wait_for_text(c, "Forgot your password?").await?;
    c.find(Locator::Id("login")).await?.send_keys("walker@example.com").await?;
    save(c, &shots, "forgot.png").await?;
    c.find(Locator::Css("form[action='/ui/forgot'] button[type=submit]")).await?.click().await?;
    wait_for_text(c, "If an account matches").await?;

    // The mail's link opens the reset page.
    let reset = smtp.wait_for("walker@example.com", 2).await.pop().context("reset mail")?;
    ensure!(reset.get("subject") == "Reset your password", "{:?}", reset.get("subject"));
    c.goto(&open(app, &reset.link(&format!("{PUBLIC}/reset?token=")))).await?;
    wait_for_text(c, "Choose a new password").await?;
    let policy = c.execute("return document.querySelector('meta[name=referrer]').content;", vec![]).await?;
    ensure!(policy.as_str() == Some("no-referrer"), "referrer policy: {policy}");
    save(c, &shots, "reset.png").await?;
    c.find(Locator::Id("new_password")).await?.send_keys(NEW_PASSWORD).await?;
    c.find(Locator::Css("form[action='/ui/reset'] button[type=submit]")).await?.click().await?;
    wait_for_text(c, "Password changed. Every session has been ended").await?;

    // Sign in with the address and the new password.
    c.find(Locator::Id("username")).await?.send_keys("walker@example.com").await?;
    c.find(Locator::Id("password")).await?.send_keys(NEW_PASSWORD).await?;
    c.find(Locator::Css("form[action='/ui/login'] button[type=submit]")).await?.click().await?;
    wait_for_text(c, "Logged in as walker").await?;
    save(c, &shots, "after-reset.png").await?;

    // The same link does not work twice.
    c.find(Locator::Id("logout")).await?.click().await?;
    wait_for_text(c, "You have been logged out.").await?;
    c.goto(&open(app, &reset.link(&format!("{PUBLIC}/reset?token=")))).await?;
    c.find(Locator::Id("new_password")).await?.send_keys("yet another passphrase").await?;
    c.find(Locator::Css("form[action='/ui/reset'] button[type=submit]")).await?.click().await?;
    wait_for_text(c, "This link is invalid, has expired or was already used").await?;
    Ok(())
}
