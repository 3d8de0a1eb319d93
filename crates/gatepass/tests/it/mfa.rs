//! Second factors over HTTP: TOTP enrolment and sign-in with codes computed by pyotp (an
//! independent implementation, run by the Python in `GATEPASS_TEST_PYTHON`, or else in
//! `GATEPASS_TEST_SMTP_PYTHON`), the ±1 step window, replay, recovery codes, challenges
//! (single use, bound to the client), step-up, the routes that must fail closed, and races
//! of one code against itself (on whichever backend `GATEPASS_TEST_BACKEND` selects).
//!
//! Without a Python the tests that need one say they were skipped; with one set that
//! cannot run pyotp, they fail.

use crate::common::{TestApp, expect_error, s};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(crate) const PASSWORD: &str = "a-long-password";

/// The Python that runs pyotp, if one is configured.
fn python() -> Option<String> {
    ["GATEPASS_TEST_PYTHON", "GATEPASS_TEST_SMTP_PYTHON"].iter().find_map(|v| std::env::var(v).ok())
}

/// The Python, or a SKIPPED notice (the caller returns).
pub(crate) fn python_or_skip(test: &str) -> Option<String> {
    let py = python();
    if py.is_none() {
        eprintln!("SKIPPED mfa::{test}: set GATEPASS_TEST_PYTHON (a Python with pyotp==2.9.0) to run it");
    }
    py
}

/// The code pyotp computes for `secret` (base32) at `unix` seconds; panics when the Python
/// cannot run pyotp.
pub(crate) fn pyotp_at(py: &str, secret: &str, unix: u64) -> String {
    let out = std::process::Command::new(py)
        .args(["-c", "import sys, pyotp; print(pyotp.TOTP(sys.argv[1]).at(int(sys.argv[2])))", secret])
        .arg(unix.to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {py}: {e}"));
    assert!(out.status.success(), "pyotp failed: {}", String::from_utf8_lossy(&out.stderr));
    let code = String::from_utf8(out.stdout).expect("utf-8").trim().to_owned();
    assert_eq!(code.len(), 6, "pyotp gave {code:?}");
    code
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()
}

/// Now, at least ten seconds before the current 30-second step ends (waiting for the next
/// step otherwise), so that the codes a test computes and the server's clock stay in the
/// same step for the few requests that follow.
pub(crate) async fn steady_now() -> u64 {
    let t = unix_now();
    if t % 30 >= 20 {
        tokio::time::sleep(Duration::from_secs(30 - t % 30)).await;
    }
    unix_now()
}

/// Claims of a JWT, unverified.
pub(crate) fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64")).expect("json")
}

/// Registers `name`, enrols and confirms TOTP with the code of `at`; returns the access
/// token of the registration, the base32 secret and the recovery codes.
pub(crate) async fn enrolled(app: &TestApp, py: &str, name: &str, at: u64) -> (String, String, Vec<String>) {
    let reg = app.register(name, PASSWORD).await;
    let token = s(&reg, "access_token").to_owned();
    let r = app.post_auth("/api/mfa/totp", &token, json!({})).await;
    assert_eq!(r.status(), 200);
    let e: Value = r.json().await.unwrap();
    let secret = s(&e, "secret").to_owned();
    let r = app.post_auth("/api/mfa/totp/confirm", &token, json!({ "code": pyotp_at(py, &secret, at) })).await;
    assert_eq!(r.status(), 200, "confirm");
    let body: Value = r.json().await.unwrap();
    let codes = body["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    (token, secret, codes)
}

/// The password step; asserts it asks for the second factor and hands out no token.
async fn challenge(app: &TestApp, name: &str) -> String {
    let r = app.post("/api/login", json!({ "username": name, "password": PASSWORD })).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get_all("set-cookie").iter().next().is_none(), "no cookie before the second factor");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["mfa_required"], true);
    assert_eq!(body["methods"], json!(["totp", "recovery_code"]));
    assert!(body.get("access_token").is_none() && body.get("refresh_token").is_none() && body.get("token").is_none());
    s(&body, "challenge").to_owned()
}

async fn second(app: &TestApp, body: Value) -> reqwest::Response {
    app.post("/api/login/mfa", body).await
}

#[tokio::test]
async fn enrolment_sign_in_window_and_replay() {
    let Some(py) = python_or_skip("enrolment_sign_in_window_and_replay") else { return };
    let clients = "api:introspection-secret-0123456789abcdef";
    let app = TestApp::spawn_with(&["--rate-limit", "false", "--introspection-clients", clients]).await;
    let reg = app.register("alice", PASSWORD).await;
    let token = s(&reg, "access_token").to_owned();
    assert_eq!(claims(&token)["amr"], json!(["pwd"]));

    // Enrolment: a secret, its URI and an inline SVG QR code; pending until confirmed.
    let r = app.post_auth("/api/mfa/totp", &token, json!({})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let e: Value = r.json().await.unwrap();
    let secret = s(&e, "secret").to_owned();
    assert_eq!(secret.len(), 32, "160 bits in base32");
    assert!(s(&e, "otpauth_uri").starts_with("otpauth://totp/gatepass:alice?secret="));
    assert!(s(&e, "otpauth_uri").contains(&secret));
    assert!(s(&e, "qr_svg").starts_with("<svg") && s(&e, "qr_svg").ends_with("</svg>"));
    let status: Value = app.get_auth("/api/mfa", &token).await.json().await.unwrap();
    assert_eq!(status, json!({ "totp": false, "totp_pending": true, "recovery_codes_left": 0, "passkeys": 0 }));
    // Still a password-only account.
    let plain = app.login("alice", PASSWORD).await;
    assert!(plain.get("access_token").is_some());

    let t = steady_now().await;
    let wrong = if pyotp_at(&py, &secret, t) == "000000" { "111111" } else { "000000" };
    let r = app.post_auth("/api/mfa/totp/confirm", &token, json!({ "code": wrong })).await;
    expect_error(r, 400, "validation_failed").await;
    let r = app.post_auth("/api/mfa/totp/confirm", &token, json!({ "code": pyotp_at(&py, &secret, t - 30) })).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let codes = body["recovery_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    let status: Value = app.get_auth("/api/mfa", &token).await.json().await.unwrap();
    assert_eq!(status, json!({ "totp": true, "totp_pending": false, "recovery_codes_left": 10, "passkeys": 0 }));
    // A second enrolment is refused while one is active.
    expect_error(app.post_auth("/api/mfa/totp", &token, json!({})).await, 409, "mfa_already_enabled").await;

    // The confirming code's step is used: the same code does not sign in.
    let c = challenge(&app, "alice").await;
    let r = second(&app, json!({ "challenge": c, "totp": pyotp_at(&py, &secret, t - 30) })).await;
    expect_error(r, 401, "invalid_credentials").await;
    // The current step, then one step ahead: each once.
    let c = challenge(&app, "alice").await;
    let r = second(&app, json!({ "challenge": c, "totp": pyotp_at(&py, &secret, t) })).await;
    assert_eq!(r.status(), 200);
    let grant: Value = r.json().await.unwrap();
    let access = s(&grant, "access_token").to_owned();
    assert_eq!(claims(&access)["amr"], json!(["pwd", "otp", "mfa"]));
    let c = challenge(&app, "alice").await;
    let r = second(&app, json!({ "challenge": c, "totp": pyotp_at(&py, &secret, t) })).await;
    expect_error(r, 401, "invalid_credentials").await;
    // Two steps ahead is outside the window.
    let c = challenge(&app, "alice").await;
    let r = second(&app, json!({ "challenge": c, "totp": pyotp_at(&py, &secret, t + 90) })).await;
    expect_error(r, 401, "invalid_credentials").await;
    let c = challenge(&app, "alice").await;
    let r = second(&app, json!({ "challenge": c, "totp": pyotp_at(&py, &secret, t + 30) })).await;
    assert_eq!(r.status(), 200, "one step ahead is within the window");

    // A refresh keeps the session's amr; introspection reports it.
    let r = app.post("/api/refresh", json!({ "refresh_token": s(&grant, "refresh_token") })).await;
    assert_eq!(r.status(), 200);
    let refreshed: Value = r.json().await.unwrap();
    assert_eq!(claims(s(&refreshed, "access_token"))["amr"], json!(["pwd", "otp", "mfa"]));
    let r = app
        .client
        .post(app.url("/api/introspect"))
        .basic_auth("api", Some("introspection-secret-0123456789abcdef"))
        .form(&[("token", s(&refreshed, "access_token"))])
        .send()
        .await
        .unwrap();
    let i: Value = r.json().await.unwrap();
    assert_eq!((i["active"].clone(), i["amr"].clone()), (json!(true), json!(["pwd", "otp", "mfa"])));
    // Nothing the owner can read holds the secret.
    let text = app.get_auth("/api/mfa", &access).await.text().await.unwrap();
    assert!(!text.contains(&secret));
}

#[tokio::test]
async fn challenges_and_recovery_codes() {
    let Some(py) = python_or_skip("challenges_and_recovery_codes") else { return };
    let app = TestApp::spawn_with(&["--rate-limit", "false"]).await;
    let t = steady_now().await;
    let (_, secret, codes) = enrolled(&app, &py, "bob", t - 30).await;

    // A wrong code uses the challenge up: the right code cannot follow on it.
    let c = challenge(&app, "bob").await;
    let r = second(&app, json!({ "challenge": c, "totp": "12345" })).await;
    expect_error(r, 401, "invalid_credentials").await;
    let r = second(&app, json!({ "challenge": c, "totp": pyotp_at(&py, &secret, t) })).await;
    expect_error(r, 401, "invalid_credentials").await;
    // A challenge from another client is refused (and used up).
    let c = challenge(&app, "bob").await;
    let r = app
        .client
        .post(app.url("/api/login/mfa"))
        .header("user-agent", "another-client/1.0")
        .json(&json!({ "challenge": c, "totp": pyotp_at(&py, &secret, t) }))
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "invalid_credentials").await;
    let r = second(&app, json!({ "challenge": c, "totp": pyotp_at(&py, &secret, t) })).await;
    expect_error(r, 401, "invalid_credentials").await;
    // Garbage, and an access token in place of a challenge.
    expect_error(second(&app, json!({ "challenge": "x", "totp": "123456" })).await, 401, "invalid_credentials").await;
    let plain = app.register("carol", PASSWORD).await;
    let r = second(&app, json!({ "challenge": s(&plain, "access_token"), "totp": "123456" })).await;
    expect_error(r, 401, "invalid_credentials").await;
    // Exactly one factor.
    let c = challenge(&app, "bob").await;
    let r = second(&app, json!({ "challenge": c, "totp": "123456", "recovery_code": codes[0] })).await;
    expect_error(r, 400, "validation_failed").await;

    // A recovery code signs in once (any case, with or without dashes).
    let c = challenge(&app, "bob").await;
    let r = second(&app, json!({ "challenge": c, "recovery_code": codes[0].to_uppercase().replace('-', "") })).await;
    assert_eq!(r.status(), 200);
    let grant: Value = r.json().await.unwrap();
    let access = s(&grant, "access_token").to_owned();
    assert_eq!(claims(&access)["amr"], json!(["pwd", "mfa", "recovery_code"]));
    let c = challenge(&app, "bob").await;
    expect_error(second(&app, json!({ "challenge": c, "recovery_code": codes[0] })).await, 401, "invalid_credentials")
        .await;
    let status: Value = app.get_auth("/api/mfa", &access).await.json().await.unwrap();
    assert_eq!(status["recovery_codes_left"], 9);

    // Regenerating (fresh, with the second factor) replaces every code.
    let r = app.post_auth("/api/mfa/recovery-codes", &access, json!({})).await;
    assert_eq!(r.status(), 200);
    let fresh: Value = r.json().await.unwrap();
    let new_codes = fresh["recovery_codes"].as_array().unwrap();
    assert_eq!(new_codes.len(), 10);
    let c = challenge(&app, "bob").await;
    expect_error(second(&app, json!({ "challenge": c, "recovery_code": codes[2] })).await, 401, "invalid_credentials")
        .await;
    let c = challenge(&app, "bob").await;
    let r = second(&app, json!({ "challenge": c, "recovery_code": new_codes[0] })).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn step_up_and_the_routes_that_cannot_ask_fail_closed() {
    let Some(py) = python_or_skip("step_up_and_the_routes_that_cannot_ask_fail_closed") else { return };
    let app = TestApp::spawn_with(&["--rate-limit", "false"]).await;
    let t = steady_now().await;
    let (pwd_token, secret, codes) = enrolled(&app, &py, "dave", t - 30).await;

    // A session without the second factor cannot remove it or regenerate codes.
    expect_error(app.delete_auth("/api/mfa/totp", &pwd_token).await, 401, "fresh_login_required").await;
    expect_error(app.post_auth("/api/mfa/recovery-codes", &pwd_token, json!({})).await, 401, "fresh_login_required")
        .await;
    // Nor change the password or address, or end the other sessions.
    let body = json!({ "current_password": PASSWORD, "new_password": "another-long-password" });
    expect_error(app.post_auth("/api/password", &pwd_token, body).await, 401, "fresh_login_required").await;
    let body = json!({ "email": "dave@example.com" });
    expect_error(app.post_auth("/api/email/change", &pwd_token, body).await, 401, "fresh_login_required").await;
    let r = app.post_auth("/api/logout?scope=others", &pwd_token, json!({})).await;
    expect_error(r, 401, "fresh_login_required").await;

    // Seed paths, form posts and cookie delivery: no token, no session cookie.
    let r = app.client.post(app.url("/login")).json(&json!({ "username": "dave", "password": PASSWORD })).send().await;
    let r = r.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get_all("set-cookie").iter().next().is_none());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["mfa_required"], true);
    assert!(body.get("token").is_none());
    let origin = app.url("");
    let origin = origin.trim_end_matches('/');
    let r = app
        .client
        .post(app.url("/login"))
        .header("origin", origin)
        .form(&[("username", "dave"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert!(r.headers().get_all("set-cookie").iter().all(|c| !c.to_str().unwrap().contains("session")));
    let body: Value = r.json().await.unwrap();
    assert!(body.get("token").is_none() && body["mfa_required"] == true);
    let r = app.post("/api/login?cookie=true", json!({ "username": "dave", "password": PASSWORD })).await;
    assert!(r.headers().get_all("set-cookie").iter().next().is_none());
    // The HTML form goes on to its second step, without a cookie.
    let r = app
        .client
        .post(app.url("/ui/login"))
        .header("origin", origin)
        .form(&[("username", "dave"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get_all("set-cookie").iter().all(|c| !c.to_str().unwrap().contains("session")));
    assert!(r.text().await.unwrap().contains("action=\"/ui/login/mfa\""));

    // Signed in with the second factor, the owner can remove it (answering in cookies
    // works too).
    let c = challenge(&app, "dave").await;
    let r = app.post("/api/login/mfa?cookie=true", json!({ "challenge": c, "recovery_code": codes[0] })).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get_all("set-cookie").iter().any(|c| c.to_str().unwrap().contains("session")));
    let c = challenge(&app, "dave").await;
    let r = second(&app, json!({ "challenge": c, "totp": pyotp_at(&py, &secret, t) })).await;
    let grant: Value = r.json().await.unwrap();
    let mfa_token = s(&grant, "access_token").to_owned();
    assert_eq!(app.delete_auth("/api/mfa/totp", &mfa_token).await.status(), 204);
    expect_error(app.delete_auth("/api/mfa/totp", &mfa_token).await, 404, "not_found").await;
    // A password alone signs in again.
    let plain = app.login("dave", PASSWORD).await;
    assert_eq!(claims(s(&plain, "access_token"))["amr"], json!(["pwd"]));
}

#[tokio::test]
async fn wrong_second_factors_count_in_the_account_back_off() {
    let Some(py) = python_or_skip("wrong_second_factors_count_in_the_account_back_off") else { return };
    let app = TestApp::spawn().await;
    let t = steady_now().await;
    let (_, secret, _) = enrolled(&app, &py, "erin", t - 30).await;
    let good = pyotp_at(&py, &secret, t);
    let wrong = if good == "000000" { "111111" } else { "000000" };
    // Wrong codes until the back-off answers 429 (each needs a correct password first).
    let mut limited = false;
    for _ in 0..30 {
        let r = app.post("/api/login", json!({ "username": "erin", "password": PASSWORD })).await;
        if r.status() == 429 {
            limited = true;
            break;
        }
        let body: Value = r.json().await.unwrap();
        let r = second(&app, json!({ "challenge": s(&body, "challenge"), "totp": wrong })).await;
        if r.status() == 429 {
            limited = true;
            break;
        }
        expect_error(r, 401, "invalid_credentials").await;
    }
    assert!(limited, "wrong second factors were never throttled");
}

/// `n` challenges of `name`, then `n` concurrent second steps with the same `factor`:
/// exactly one signs in.
async fn race_round(app: &TestApp, name: &str, n: usize, factor: Value) {
    let mut challenges = Vec::new();
    for _ in 0..n {
        challenges.push(challenge(app, name).await);
    }
    let requests = challenges.into_iter().map(|c| {
        let mut body = factor.clone();
        body["challenge"] = json!(c);
        second(app, body)
    });
    let answers = futures_util::future::join_all(requests).await;
    let ok = answers.iter().filter(|r| r.status() == 200).count();
    assert_eq!(ok, 1, "{name}: {} of {n} concurrent uses of one code succeeded", ok);
    assert!(answers.iter().all(|r| r.status() == 200 || r.status() == 401));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_recovery_code_used_concurrently_signs_in_once() {
    let Some(py) = python_or_skip("one_recovery_code_used_concurrently_signs_in_once") else { return };
    let app = TestApp::spawn_with(&["--rate-limit", "false"]).await;
    for user in 0..2 {
        let t = steady_now().await;
        let name = format!("racer{user}");
        let (_, _, codes) = enrolled(&app, &py, &name, t).await;
        for code in &codes {
            race_round(&app, &name, 10, json!({ "recovery_code": code })).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_totp_code_used_concurrently_signs_in_once() {
    let Some(py) = python_or_skip("one_totp_code_used_concurrently_signs_in_once") else { return };
    let app = TestApp::spawn_with(&["--rate-limit", "false"]).await;
    for round in 0..20 {
        let t = steady_now().await;
        let name = format!("totp-racer{round}");
        let (_, secret, _) = enrolled(&app, &py, &name, t).await;
        // The confirmation used this step; the next one is still inside the window.
        race_round(&app, &name, 10, json!({ "totp": pyotp_at(&py, &secret, t + 30) })).await;
    }
}

/// Runs the real binary on `app`'s data directory (and database, on PostgreSQL).
fn cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gatepass"));
    cmd.args(args).args(["--data-dir", app.data_dir().to_str().unwrap()]);
    if let Some(db) = &app.db {
        cmd.args(["--database-url", &db.url, "--master-key", crate::common::MASTER_KEY]);
    }
    cmd.env_remove("GATEPASS_DATABASE_URL").env("GATEPASS_LOG", "warn").output().expect("gatepass runs")
}

#[tokio::test]
async fn administrators_reset_second_factors_by_api_and_cli() {
    let Some(py) = python_or_skip("administrators_reset_second_factors_by_api_and_cli") else { return };
    let app = TestApp::spawn_with(&["--rate-limit", "false"]).await;
    let t = steady_now().await;
    let (user_token, _, _) = enrolled(&app, &py, "frank", t).await;
    let id = claims(&user_token)["sub"].as_str().unwrap().to_owned();
    // Not for ordinary users.
    let path = format!("/api/admin/users/{id}/mfa");
    expect_error(app.delete_auth(&path, &user_token).await, 403, "insufficient_role").await;
    challenge(&app, "frank").await;
    let r = app.delete_auth(&path, app.operator()).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["had_factor"], true);
    // The password alone signs in again; the reset is in the audit trail.
    assert!(app.login("frank", PASSWORD).await.get("access_token").is_some());
    let audit: Value = app.get_auth("/api/admin/audit?event=mfa_reset", app.operator()).await.json().await.unwrap();
    assert!(audit.to_string().contains(&id), "{audit}");

    // The CLI, on the same data.
    enrolled(&app, &py, "grace", t).await;
    challenge(&app, "grace").await;
    let out = cli(&app, &["user", "mfa-reset", "grace"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("grace: second factors removed"));
    assert!(app.login("grace", PASSWORD).await.get("access_token").is_some());
    let out = cli(&app, &["user", "mfa-reset", "grace"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("grace: had no second factor"));
}

#[tokio::test]
async fn using_a_recovery_code_mails_a_notice() {
    let Some(py) = python_or_skip("using_a_recovery_code_mails_a_notice") else { return };
    let app = TestApp::spawn_with(&["--rate-limit", "false"]).await;
    let r = app.post("/api/register", json!({ "username": "hana", "password": PASSWORD, "email": "hana@example.com" }));
    let reg: Value = r.await.json().await.unwrap();
    let id = reg["user"]["id"].as_str().unwrap().to_owned();
    let r = app.post_auth(&format!("/api/admin/users/{id}/verify-email"), app.operator(), json!({})).await;
    assert_eq!(r.status(), 200);
    let token = s(&app.login("hana", PASSWORD).await, "access_token").to_owned();
    let e: Value = app.post_auth("/api/mfa/totp", &token, json!({})).await.json().await.unwrap();
    let t = steady_now().await;
    let r = app.post_auth("/api/mfa/totp/confirm", &token, json!({ "code": pyotp_at(&py, s(&e, "secret"), t) })).await;
    let body: Value = r.json().await.unwrap();
    let code = body["recovery_codes"][0].as_str().unwrap().to_owned();
    let c = challenge(&app, "hana").await;
    assert_eq!(second(&app, json!({ "challenge": c, "recovery_code": code })).await.status(), 200);
    // Without SMTP, mails are written to the data directory.
    let outbox = app.data_dir().join("outbox");
    for _ in 0..1200 {
        let files: Vec<_> = std::fs::read_dir(&outbox).map(|d| d.filter_map(Result::ok).collect()).unwrap_or_default();
        for f in files.iter().filter(|f| f.path().extension().is_some_and(|x| x == "eml")) {
            let eml = std::fs::read_to_string(f.path()).unwrap();
            if eml.contains("Subject: A recovery code was used") {
                assert!(eml.contains("To: hana@example.com"), "{eml}");
                assert!(!eml.contains(&code), "the notice never carries the code");
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no recovery-code notice in {}", outbox.display());
}

#[tokio::test]
async fn the_description_lists_the_mfa_routes_and_answers() {
    let app = TestApp::spawn().await;
    let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
    let login = &doc["paths"]["/api/login"]["post"]["responses"]["200"]["content"]["application/json"]["schema"];
    let variants = login["oneOf"].as_array().expect("login answers one of two shapes");
    assert!(variants.iter().any(|v| v["properties"]["mfa_required"].is_object()), "{login}");
    for (path, method) in [
        ("/api/mfa", "get"),
        ("/api/mfa/totp", "post"),
        ("/api/mfa/totp", "delete"),
        ("/api/mfa/totp/confirm", "post"),
        ("/api/mfa/recovery-codes", "post"),
        ("/api/login/mfa", "post"),
        ("/api/admin/users/{id}/mfa", "delete"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path} is described");
    }
}
