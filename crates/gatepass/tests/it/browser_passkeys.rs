//! Passkeys in headless Chromium with its WebAuthn virtual authenticator (chromedriver's
//! WebAuthn extension: CTAP2, internal transport, resident keys, user verification): a
//! passkey added through the real account page, passwordless sign-ins through the real
//! login page (the username field's autofill, then the button, then from the device page
//! and from an authorization request, which it returns to), the passkey as second factor through the page's script at the API
//! level, and its removal with step-up.
//!
//! Needs `GATEPASS_TEST_CHROMEDRIVER`; without it the test says it was skipped and passes.

use crate::browser_e2e::{connect, save, screenshot_dir, start_chromedriver, wait_for_text};
use crate::passkeys::spawn_rp_provider;
use anyhow::{Context, Result, ensure};
use fantoccini::{Client, Locator};
use serde_json::{Value, json};
use std::time::Duration;

const PASSWORD: &str = "correct horse battery";

#[tokio::test]
async fn passkey_added_on_the_account_page_signs_in_and_is_removed_with_step_up() {
    let Ok(driver_path) = std::env::var("GATEPASS_TEST_CHROMEDRIVER") else {
        println!("SKIPPED: set GATEPASS_TEST_CHROMEDRIVER to run browser tests");
        return;
    };
    let profile = tempfile::tempdir().expect("profile dir");
    let (mut driver, port) = start_chromedriver(&driver_path).await.expect("chromedriver starts");
    let client = connect(port, &profile.path().to_string_lossy(), &[]).await.expect("browser session");
    let outcome = flow(&client, port).await;
    let _ = client.close().await;
    let _ = driver.kill().await;
    if let Err(e) = outcome {
        panic!("browser passkey test failed: {e:#}");
    }
}

/// Adds Chromium's virtual authenticator to the session (WebDriver WebAuthn extension).
async fn add_virtual_authenticator(c: &Client, driver_port: u16) -> Result<String> {
    let session = c.session_id().await?.context("a session id")?;
    let url = format!("http://127.0.0.1:{driver_port}/session/{session}/webauthn/authenticator");
    let body = json!({
        "protocol": "ctap2",
        "transport": "internal",
        "hasResidentKey": true,
        "hasUserVerification": true,
        "isUserVerified": true,
        "automaticPresenceSimulation": true,
    });
    let r: Value = reqwest::Client::new().post(&url).json(&body).send().await?.json().await?;
    let id = r["value"].as_str().with_context(|| format!("no authenticator: {r}"))?;
    Ok(id.to_owned())
}

/// The credentials the virtual authenticator holds.
async fn stored_credentials(c: &Client, driver_port: u16, authenticator: &str) -> Result<Vec<Value>> {
    let session = c.session_id().await?.context("a session id")?;
    let url =
        format!("http://127.0.0.1:{driver_port}/session/{session}/webauthn/authenticator/{authenticator}/credentials");
    let r: Value = reqwest::Client::new().get(&url).send().await?.json().await?;
    Ok(r["value"].as_array().cloned().unwrap_or_default())
}

async fn flow(c: &Client, driver_port: u16) -> Result<()> {
    // A step-up window of a few seconds, so that the page's session goes stale in the test.
    // The provider is on for the device page's sign-in.
    let app = spawn_rp_provider(&["--rate-limit", "false", "--fresh-auth-max-age", "4s"]).await;
    let base = app.base.replace("127.0.0.1", "localhost");
    let shots = screenshot_dir()?;
    app.register("pk.user", PASSWORD).await;
    let authenticator = add_virtual_authenticator(c, driver_port).await?;

    // Sign in with the password on the real login page; its username field offers passkeys.
    c.goto(&format!("{base}/")).await?;
    wait_for_text(c, "Log in").await?;
    let autocomplete = c.find(Locator::Id("username")).await?.attr("autocomplete").await?;
    ensure!(autocomplete.as_deref() == Some("username webauthn"), "autocomplete: {autocomplete:?}");
    c.find(Locator::Id("username")).await?.send_keys("pk.user").await?;
    c.find(Locator::Id("password")).await?.send_keys(PASSWORD).await?;
    c.find(Locator::Css("form[action='/ui/login'] button[type=submit]")).await?.click().await?;
    wait_for_text(c, "Logged in as pk.user").await?;

    // Add a passkey through the account page.
    wait_for_text(c, "No passkeys yet.").await?;
    c.find(Locator::Id("passkey-name")).await?.send_keys("Laptop").await?;
    c.find(Locator::Css("#passkey-add button[type=submit]")).await?.click().await?;
    wait_for_text(c, "Passkey \u{201c}Laptop\u{201d} added").await?;
    wait_for_text(c, "Keep these recovery codes").await?;
    let codes = c.find_all(Locator::Css("#passkey-recovery-codes li")).await?.len();
    ensure!(codes == 10, "{codes} recovery codes shown");
    wait_for_text(c, "device-bound passkey").await?;
    save(c, &shots, "passkeys-account.png").await?;
    let held = stored_credentials(c, driver_port, &authenticator).await?;
    ensure!(held.len() == 1 && held[0]["isResidentCredential"] == true, "a discoverable credential: {held:?}");

    // Sign out: the login page asks for passkeys with conditional mediation, and the
    // virtual authenticator (which needs no one to pick from the autofill) answers it, so
    // the browser is signed in again without a click, a username or a password.
    c.find(Locator::Id("logout")).await?.click().await?;
    // (The old page may still show the name for a moment: wait for the sign-in itself.)
    let mut logins = Value::Null;
    for _ in 0..100 {
        logins = app.get_auth("/api/admin/audit?event=login", app.operator()).await.json().await?;
        if logins.to_string().contains("\"method\":\"passkey\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(logins.to_string().contains("\"method\":\"passkey\""), "a passkey sign-in: {logins}");
    wait_for_text(c, "Logged in as pk.user").await?;

    // The button: with no authenticator present, the autofill request waits; the button
    // cancels it and asks again once the authenticator (holding the same credential) is back.
    // (Its counter as it is now: a credential with an older counter would be a clone.)
    let credential = stored_credentials(c, driver_port, &authenticator).await?.remove(0);
    remove_authenticator(c, driver_port, &authenticator).await?;
    c.find(Locator::Id("logout")).await?.click().await?;
    wait_for_text(c, "You have been logged out.").await?;
    wait_until_visible(c, "passkey-login").await?;
    save(c, &shots, "passkeys-login.png").await?;
    let authenticator = add_virtual_authenticator(c, driver_port).await?;
    add_credential(c, driver_port, &authenticator, &credential).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    ensure!(
        c.source().await?.contains("You have been logged out."),
        "the waiting autofill request picked up the new authenticator; the button is not what signed in"
    );
    c.find(Locator::Id("passkey-login")).await?.click().await?;
    wait_for_text(c, "Logged in as pk.user").await?;

    // Signed out, the device page asks for a sign-in first; the passkey's sign-in (the
    // button, once the authenticator is back) goes on to the device page with its code,
    // not to the account page.
    let device_page = format!("{base}/oauth/device?user_code=WDJB-MJHT");
    let authenticator = passkey_sign_in_from(c, driver_port, &authenticator, &base, &device_page).await?;
    wait_for_text(c, "Connect a device").await?;
    let url = c.current_url().await?;
    ensure!(url.path() == "/oauth/device" && url.query() == Some("user_code=WDJB-MJHT"), "landed on {url}");
    ensure!(
        c.find(Locator::Css("input[name=user_code]")).await?.prop("value").await?.as_deref() == Some("WDJB-MJHT"),
        "the code is carried over"
    );

    // The same from an authorization request: the passkey's sign-in goes on to it (here
    // its consent page), not to the account page.
    let client = crate::oidc::register(
        &app,
        json!({ "client_name": "Shop", "redirect_uris": [crate::oidc::REDIRECT], "scope": "openid profile" }),
    )
    .await;
    let mut authorize = reqwest::Url::parse(&format!("{base}/oauth/authorize"))?;
    authorize.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", client["client_id"].as_str().context("client_id")?),
        ("redirect_uri", crate::oidc::REDIRECT),
        ("scope", "openid profile"),
        ("state", "shop-state"),
        ("code_challenge", crate::oidc::CHALLENGE),
        ("code_challenge_method", "S256"),
    ]);
    let authenticator = passkey_sign_in_from(c, driver_port, &authenticator, &base, authorize.as_str()).await?;
    wait_for_text(c, "Allow Shop?").await?;
    c.goto(&format!("{base}/")).await?;
    wait_for_text(c, "Logged in as pk.user").await?;

    // The second step of the login page: the password, then "Use a passkey instead" (the
    // authenticator away while the login page is open, so the autofill cannot sign in).
    let credential = stored_credentials(c, driver_port, &authenticator).await?.remove(0);
    remove_authenticator(c, driver_port, &authenticator).await?;
    c.find(Locator::Id("logout")).await?.click().await?;
    wait_for_text(c, "You have been logged out.").await?;
    c.find(Locator::Id("username")).await?.send_keys("pk.user").await?;
    c.find(Locator::Id("password")).await?.send_keys(PASSWORD).await?;
    c.find(Locator::Css("form[action='/ui/login'] button[type=submit]")).await?.click().await?;
    wait_for_text(c, "Confirm it is you").await?;
    wait_until_visible(c, "passkey-second").await?;
    let authenticator = add_virtual_authenticator(c, driver_port).await?;
    add_credential(c, driver_port, &authenticator, &credential).await?;
    c.find(Locator::Id("passkey-second")).await?.click().await?;
    wait_for_text(c, "Logged in as pk.user").await?;
    let mut logins = Value::Null;
    for _ in 0..100 {
        logins = app.get_auth("/api/admin/audit?event=login", app.operator()).await.json().await?;
        if logins.to_string().contains("\"second_factor\":\"webauthn\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(logins.to_string().contains("\"second_factor\":\"webauthn\""), "a second step with a passkey: {logins}");

    // The second factor at the API level, through the page script's conversions.
    let script = r#"
        const [base, password, done] = arguments;
        const post = (path, body) => fetch(path, { method: "POST", headers: { "Content-Type": "application/json" },
            body: JSON.stringify(body) }).then(r => r.json().then(j => ({ status: r.status, body: j })));
        (async () => {
          const first = await post("/api/login", { username: "pk.user", password });
          const options = await post("/api/login/mfa/webauthn/options", { challenge: first.body.challenge });
          const cred = await navigator.credentials.get({ publicKey: gatepassPasskeys.requestOptions(options.body.publicKey) });
          const second = await post("/api/login/mfa", { challenge: first.body.challenge,
            webauthn: gatepassPasskeys.credentialJSON(cred) });
          return { methods: first.body.methods, status: second.status, token: second.body.access_token };
        })().then(done, e => done({ error: String(e) }));
    "#;
    let out = c.execute_async(script, vec![json!(base), json!(PASSWORD)]).await?;
    ensure!(out["status"] == 200, "second step: {out}");
    ensure!(out["methods"].as_array().is_some_and(|m| m.contains(&json!("webauthn"))), "{out}");
    let token = out["token"].as_str().context("an access token")?;
    let claims: Value = serde_json::from_slice(&base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        token.split('.').nth(1).unwrap_or(""),
    )?)?;
    ensure!(claims["amr"] == json!(["pwd", "hwk", "mfa"]), "amr: {}", claims["amr"]);

    // New recovery codes on an account whose only factor is a passkey: the account page
    // offers them, locked until a fresh sign-in with the passkey (its button), then issues ten.
    tokio::time::sleep(Duration::from_secs(5)).await;
    c.goto(&format!("{base}/")).await?;
    wait_for_text(c, "device-bound passkey").await?;
    let left = c.find(Locator::Id("recovery-left")).await?.text().await?;
    ensure!(left == "10", "recovery codes left: {left}");
    let locked = c.find(Locator::Css("#mfa-regenerate button")).await?.attr("disabled").await?;
    ensure!(locked.is_some(), "new recovery codes need a fresh sign-in first");
    c.find(Locator::Id("mfa-passkey-stepup")).await?.click().await?;
    for _ in 0..50 {
        if c.find(Locator::Css("#mfa-regenerate button")).await?.attr("disabled").await?.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.find(Locator::Css("#mfa-regenerate button")).await?.click().await?;
    wait_for_text(c, "the old ones no longer work").await?;
    let fresh_codes = c.find_all(Locator::Css("#recovery-codes li")).await?.len();
    ensure!(fresh_codes == 10, "{fresh_codes} new recovery codes shown");
    let audit: Value =
        app.get_auth("/api/admin/audit?event=mfa_recovery_codes_regenerated", app.operator()).await.json().await?;
    ensure!(audit.to_string().contains("mfa_recovery_codes_regenerated"), "regeneration audited: {audit}");

    // Removal needs a fresh sign-in with a second factor: let the page's session go stale,
    // then the page signs in again with the passkey and removes it.
    tokio::time::sleep(Duration::from_secs(5)).await;
    c.refresh().await?;
    wait_for_text(c, "device-bound passkey").await?;
    c.find(Locator::Css("#passkey-list .passkey-remove")).await?.click().await?;
    wait_for_text(c, "Passkey \u{201c}Laptop\u{201d} removed").await?;
    wait_for_text(c, "No passkeys yet.").await?;
    let audit: Value = app.get_auth("/api/admin/audit?event=passkey_removed", app.operator()).await.json().await?;
    ensure!(audit.to_string().contains("Laptop"), "removal audited: {audit}");
    let steps: Value = app.get_auth("/api/admin/audit?event=login", app.operator()).await.json().await?;
    ensure!(steps.to_string().matches("\"passkey\"").count() >= 2, "the step-up was a passkey sign-in: {steps}");
    Ok(())
}

/// Signs out, opens `page` (which asks for a sign-in first), and signs in there with the
/// passkey's button. The authenticator is away while the login page loads, so the
/// autofill cannot sign in before the button does; it comes back holding the same
/// credential under a new id, which is returned.
async fn passkey_sign_in_from(
    c: &Client,
    driver_port: u16,
    authenticator: &str,
    base: &str,
    page: &str,
) -> Result<String> {
    let credential = stored_credentials(c, driver_port, authenticator).await?.remove(0);
    remove_authenticator(c, driver_port, authenticator).await?;
    c.goto(&format!("{base}/")).await?;
    c.find(Locator::Id("logout")).await?.click().await?;
    wait_for_text(c, "You have been logged out.").await?;
    c.goto(page).await?;
    wait_for_text(c, "Log in").await?;
    let authenticator = add_virtual_authenticator(c, driver_port).await?;
    add_credential(c, driver_port, &authenticator, &credential).await?;
    wait_until_visible(c, "passkey-login").await?;
    c.find(Locator::Id("passkey-login")).await?.click().await?;
    Ok(authenticator)
}

async fn remove_authenticator(c: &Client, driver_port: u16, authenticator: &str) -> Result<()> {
    let session = c.session_id().await?.context("a session id")?;
    let url = format!("http://127.0.0.1:{driver_port}/session/{session}/webauthn/authenticator/{authenticator}");
    let r = reqwest::Client::new().delete(&url).send().await?;
    ensure!(r.status().is_success(), "remove authenticator: {}", r.text().await?);
    Ok(())
}

/// Puts a credential (as Get Credentials returned it) into an authenticator.
async fn add_credential(c: &Client, driver_port: u16, authenticator: &str, credential: &Value) -> Result<()> {
    let session = c.session_id().await?.context("a session id")?;
    let url =
        format!("http://127.0.0.1:{driver_port}/session/{session}/webauthn/authenticator/{authenticator}/credential");
    let body = json!({
        "credentialId": credential["credentialId"],
        "isResidentCredential": true,
        "rpId": credential["rpId"],
        "privateKey": credential["privateKey"],
        "userHandle": credential["userHandle"],
        "signCount": credential["signCount"],
    });
    let r = reqwest::Client::new().post(&url).json(&body).send().await?;
    ensure!(r.status().is_success(), "add credential: {}", r.text().await?);
    Ok(())
}

async fn wait_until_visible(c: &Client, id: &str) -> Result<()> {
    for _ in 0..100 {
        let hidden = c.execute(&format!("return document.getElementById('{id}').hidden;"), vec![]).await?;
        if hidden == json!(false) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("#{id} stayed hidden")
}
