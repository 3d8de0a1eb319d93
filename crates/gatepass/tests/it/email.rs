//! E-mail flows end to end against a real SMTP server (aiosmtpd, see `common/smtp.rs`):
//! verification, sign-in by address, forgotten password and reset, address change,
//! notices, admin actions, bad input, and the durable outbox's faults (SMTP down, the
//! server killed after a 202, two instances on PostgreSQL).

use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;

use crate::common::smtp::SmtpServer;
use crate::common::{TestApp, expect_error, s};

/// Links in mails are built from this, never from the request's `Host`.
const PUBLIC: &str = "http://gatepass.test";
const PW: &str = "correct-horse-battery";

async fn app_with(smtp: &SmtpServer, extra: &[&str]) -> TestApp {
    let url = smtp.url();
    let mut args = vec!["--smtp-url", url.as_str(), "--public-url", PUBLIC];
    args.extend_from_slice(extra);
    TestApp::spawn_with(&args).await
}

async fn register(app: &TestApp, name: &str, email: &str) -> Value {
    let r = app.post("/api/register", json!({ "username": name, "password": PW, "email": email })).await;
    assert_eq!(r.status(), 201, "register {name}");
    r.json().await.unwrap()
}

/// Registers `name` with `email` and follows the verification link from the mail.
async fn verified_user(app: &TestApp, smtp: &SmtpServer, name: &str, email: &str) {
    register(app, name, email).await;
    let mail = smtp.wait_for(email, 1).await.pop().unwrap();
    let r = app.post("/api/email/verify", json!({ "token": mail.token(&format!("{PUBLIC}/verify?")) })).await;
    assert_eq!(r.status(), 200);
}

/// The payload of a JWT, unverified (the server made it; the test only reads a claim).
fn claims_of(jwt: &str) -> Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn outbox_depth(app: &TestApp) -> i64 {
    let info: Value = app.get_auth("/api/info", app.operator()).await.json().await.unwrap();
    info["counts"]["outbox"].as_i64().expect("outbox depth in /api/info")
}

async fn wait_outbox_empty(app: &TestApp) {
    for _ in 0..1200 {
        if outbox_depth(app).await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the outbox did not drain");
}

#[tokio::test]
async fn registration_mails_a_verification_link_and_then_the_address_signs_in() {
    let Some(smtp) = SmtpServer::start("email::registration_mails_a_verification_link").await else { return };
    let app = app_with(&smtp, &[]).await;
    let body = register(&app, "ann", "Ann@Example.com").await;
    assert_eq!(body["user"]["email_verified"], false);
    let mail = smtp.wait_for("Ann@Example.com", 1).await.pop().unwrap();
    assert_eq!(mail.get("subject"), "Verify your e-mail address");
    assert!(mail.get("text").contains("\"ann\""), "says which account: {}", mail.get("text"));
    assert!(mail.get("html").contains("Confirm this address"));
    assert!(mail.get("message_id").ends_with("@localhost>"), "{}", mail.get("message_id"));
    let link = mail.link(&format!("{PUBLIC}/verify?token="));

    // Not verified yet: the address does not sign in.
    let r = app.post("/api/login", json!({ "username": "ann@example.com", "password": PW })).await;
    expect_error(r, 401, "invalid_credentials").await;

    // The landing page only shows a form (a GET never uses the token).
    let path = link.strip_prefix(PUBLIC).unwrap();
    let page = app.get(path).await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    assert!(page.text().await.unwrap().contains("name=\"token\""));
    let token = mail.token(&format!("{PUBLIC}/verify?"));
    let r = app.post("/api/email/verify", json!({ "token": token })).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["user"]["email_verified"], true);
    // Single use.
    expect_error(app.post("/api/email/verify", json!({ "token": token })).await, 400, "link_invalid").await;
    expect_error(app.post("/api/email/verify", json!({ "token": "x".repeat(43) })).await, 400, "link_invalid").await;

    // Now the address (any case) signs in, and the token says the address is verified.
    let login = app.login("ANN@example.COM", PW).await;
    let profile: Value = app.get_auth("/api/profile", s(&login, "access_token")).await.json().await.unwrap();
    assert_eq!(profile["user"]["email_verified"], true);
    let claims = claims_of(s(&login, "access_token"));
    assert_eq!(claims["email_verified"], true, "{claims}");
}

#[tokio::test]
async fn forgot_password_mails_a_link_that_resets_once_and_ends_every_session() {
    let Some(smtp) = SmtpServer::start("email::forgot_password").await else { return };
    let app = app_with(&smtp, &[]).await;
    verified_user(&app, &smtp, "bob", "bob@example.com").await;
    let before = app.login("bob", PW).await;

    // A forged Host header does not make the link point elsewhere.
    let r = app
        .client
        .post(app.url("/api/password/forgot"))
        .header("Host", "evil.example")
        .header("X-Forwarded-Host", "evil.example")
        .json(&json!({ "login": "bob" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let poisoned = smtp.wait_for("bob@example.com", 2).await.pop().unwrap();
    assert!(poisoned.link(&format!("{PUBLIC}/reset?token=")).starts_with(PUBLIC));
    assert!(!poisoned.get("text").contains("evil.example") && !poisoned.get("html").contains("evil.example"));

    // Same answer for an account, an address and nobody.
    let mut bodies = HashSet::new();
    for login in ["bob", "nobody-here", "bob@example.com", "ghost@example.com"] {
        let r = app.post("/api/password/forgot", json!({ "login": login })).await;
        assert_eq!(r.status(), 202, "{login}");
        bodies.insert(r.text().await.unwrap());
    }
    assert_eq!(bodies.len(), 1, "one body for all: {bodies:?}");
    let mails = smtp.wait_for("bob@example.com", 4).await;
    let resets: Vec<_> = mails.iter().filter(|m| m.get("subject") == "Reset your password").collect();
    assert_eq!(resets.len(), 3);
    let first = resets[1].token(&format!("{PUBLIC}/reset?"));
    let second = resets[2].token(&format!("{PUBLIC}/reset?"));

    // The reset page keeps the token out of referrers.
    let page = app.get(&format!("/reset?token={second}")).await;
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");

    // A password the policy refuses changes nothing and leaves the link usable.
    let r = app.post("/api/password/reset", json!({ "token": second, "new_password": "bob" })).await;
    expect_error(r, 400, "validation_failed").await;
    let r = app.post("/api/password/reset", json!({ "token": second, "new_password": "a-brand-new-secret" })).await;
    assert_eq!(r.status(), 200);
    // Used, and the other outstanding links are void too.
    let poisoned = resets[0].token(&format!("{PUBLIC}/reset?"));
    for t in [&second, &first, &poisoned] {
        let r = app.post("/api/password/reset", json!({ "token": t, "new_password": "another-new-secret" })).await;
        expect_error(r, 400, "link_invalid").await;
    }
    // Every session ended; the new password works, the old does not.
    let r = app.get_auth("/api/profile", s(&before, "access_token")).await;
    expect_error(r, 401, "token_revoked").await;
    app.login("bob", "a-brand-new-secret").await;
    expect_error(
        app.post("/api/login", json!({ "username": "bob", "password": PW })).await,
        401,
        "invalid_credentials",
    )
    .await;
    // The owner is told, without any link.
    let notice = smtp.wait_for("bob@example.com", 5).await.pop().unwrap();
    assert_eq!(notice.get("subject"), "Your password was changed");
    assert!(!notice.get("text").contains("token="));
    // Audited.
    let audit: Value =
        app.get_auth("/api/admin/audit?event=password_reset", app.operator()).await.json().await.unwrap();
    assert_eq!(audit["entries"].as_array().map(Vec::len), Some(1), "{audit}");
}

#[tokio::test]
async fn forgot_password_is_throttled_per_account_silently() {
    let Some(smtp) = SmtpServer::start("email::forgot_password_is_throttled").await else { return };
    let app = app_with(&smtp, &["--rate-limit", "false"]).await;
    verified_user(&app, &smtp, "cara", "cara@example.com").await;
    for _ in 0..8 {
        let r = app.post("/api/password/forgot", json!({ "login": "cara" })).await;
        assert_eq!(r.status(), 202);
    }
    wait_outbox_empty(&app).await;
    let resets = smtp.mails_to("cara@example.com").into_iter().filter(|m| m.get("subject") == "Reset your password");
    assert_eq!(resets.count(), 5, "at most five reset mails an hour");
}

#[tokio::test]
async fn changing_the_address_needs_the_new_one_confirmed_and_tells_the_old_one() {
    let Some(smtp) = SmtpServer::start("email::changing_the_address").await else { return };
    let app = app_with(&smtp, &[]).await;
    verified_user(&app, &smtp, "dan", "dan@old.example").await;
    let login = app.login("dan", PW).await;
    let token = s(&login, "access_token");
    let r = app.post_auth("/api/email/change", token, json!({ "email": "dan@new.example" })).await;
    assert_eq!(r.status(), 202);
    let confirm = smtp.wait_for("dan@new.example", 1).await.pop().unwrap();
    assert_eq!(confirm.get("subject"), "Confirm your new e-mail address");
    // Nothing changed yet.
    let p: Value = app.get_auth("/api/profile", token).await.json().await.unwrap();
    assert_eq!(p["user"]["email"], "dan@old.example");
    let r = app.post("/api/email/verify", json!({ "token": confirm.token(&format!("{PUBLIC}/verify?")) })).await;
    assert_eq!(r.status(), 200);
    let p: Value = app.get_auth("/api/profile", token).await.json().await.unwrap();
    assert_eq!(p["user"]["email"], "dan@new.example");
    assert_eq!(p["user"]["email_verified"], true);
    let notice = smtp.wait_for("dan@old.example", 2).await.pop().unwrap();
    assert_eq!(notice.get("subject"), "Your e-mail address was changed");
    assert!(notice.get("text").contains("dan@new.example"));
    app.login("dan@new.example", PW).await;
    expect_error(
        app.post("/api/login", json!({ "username": "dan@old.example", "password": PW })).await,
        401,
        "invalid_credentials",
    )
    .await;

    // Someone else's address is refused.
    register(&app, "eve", "eve@example.com").await;
    let r = app.post_auth("/api/email/change", token, json!({ "email": "EVE@example.com" })).await;
    expect_error(r, 409, "email_taken").await;
}

#[tokio::test]
async fn a_stale_login_cannot_change_the_address() {
    let Some(smtp) = SmtpServer::start("email::a_stale_login").await else { return };
    let app = app_with(&smtp, &["--fresh-auth-max-age", "0s"]).await;
    register(&app, "fay", "fay@example.com").await;
    let login = app.login("fay", PW).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = app.post_auth("/api/email/change", s(&login, "access_token"), json!({ "email": "f@x.example" })).await;
    expect_error(r, 401, "fresh_login_required").await;
}

#[tokio::test]
async fn require_verified_email_refuses_login_until_verified() {
    let Some(smtp) = SmtpServer::start("email::require_verified_email").await else { return };
    let app = app_with(&smtp, &[]).await;
    register(&app, "gus", "gus@example.com").await;
    let r = app.patch_auth("/api/info", app.operator(), json!({ "require_verified_email": true })).await;
    assert_eq!(r.status(), 200);
    let r = app.post("/api/login", json!({ "username": "gus", "password": PW })).await;
    expect_error(r, 403, "email_not_verified").await;
    // A wrong password still says only "invalid credentials".
    let r = app.post("/api/login", json!({ "username": "gus", "password": "wrong-password" })).await;
    expect_error(r, 401, "invalid_credentials").await;
    let mail = smtp.wait_for("gus@example.com", 1).await.pop().unwrap();
    app.post("/api/email/verify", json!({ "token": mail.token(&format!("{PUBLIC}/verify?")) })).await;
    app.login("gus", PW).await;
}

#[tokio::test]
async fn admin_sees_resends_marks_verified_and_sends_resets() {
    let Some(smtp) = SmtpServer::start("email::admin").await else { return };
    let app = app_with(&smtp, &[]).await;
    let body = register(&app, "hal", "hal@example.com").await;
    let id = s(&body["user"], "id").to_owned();
    let op = app.operator();
    let u: Value = app.get_auth(&format!("/api/admin/users/{id}"), op).await.json().await.unwrap();
    assert_eq!(u["user"]["email_verified"], false, "{u}");
    let r = app.post_auth(&format!("/api/admin/users/{id}/verification"), op, json!({})).await;
    assert_eq!(r.status(), 202);
    smtp.wait_for("hal@example.com", 2).await;
    let r = app.post_auth(&format!("/api/admin/users/{id}/verify-email"), op, json!({})).await;
    assert_eq!(r.status(), 200);
    let u: Value = app.get_auth(&format!("/api/admin/users/{id}"), op).await.json().await.unwrap();
    assert_eq!(u["user"]["email_verified"], true);
    let r = app.post_auth(&format!("/api/admin/users/{id}/verification"), op, json!({})).await;
    expect_error(r, 400, "invalid_request").await;
    let r = app.post_auth(&format!("/api/admin/users/{id}/password-reset"), op, json!({})).await;
    assert_eq!(r.status(), 202);
    let reset = smtp.wait_for("hal@example.com", 3).await.pop().unwrap();
    let r = app
        .post(
            "/api/password/reset",
            json!({ "token": reset.token(&format!("{PUBLIC}/reset?")), "new_password": "maple-harbour-42" }),
        )
        .await;
    assert_eq!(r.status(), 200);
    app.login("hal@example.com", "maple-harbour-42").await;
    // Not for just anyone.
    let user = app.login("hal@example.com", "maple-harbour-42").await;
    let r = app.post_auth(&format!("/api/admin/users/{id}/password-reset"), s(&user, "access_token"), json!({})).await;
    expect_error(r, 403, "insufficient_role").await;
}

#[tokio::test]
async fn addresses_are_unique_and_bad_ones_are_refused_at_the_edge() {
    let Some(smtp) = SmtpServer::start("email::addresses_are_unique").await else { return };
    let app = app_with(&smtp, &[]).await;
    register(&app, "ivy", "ivy@example.com").await;
    let r = app.post("/api/register", json!({ "username": "ivy2", "password": PW, "email": "IVY@EXAMPLE.COM" })).await;
    expect_error(r, 409, "email_taken").await;
    for bad in [
        "ivy@example.com\r\nBcc: victim@example.com",
        "a\nb@example.com",
        "not-an-address",
        &format!("{}@example.com", "a".repeat(250)),
    ] {
        let r = app.post("/api/register", json!({ "username": "ivy3", "password": PW, "email": bad })).await;
        expect_error(r, 400, "validation_failed").await;
        let r = app.post("/api/password/forgot", json!({ "login": bad })).await;
        assert!(r.status() == 202 || r.status() == 400, "{bad}: {}", r.status());
    }
    let r = app.post("/api/password/forgot", json!({ "login": "x".repeat(300) })).await;
    expect_error(r, 400, "validation_failed").await;
    let r = app.post("/api/password/reset", json!({ "token": "../../etc", "new_password": "whatever-long" })).await;
    expect_error(r, 400, "link_invalid").await;
    wait_outbox_empty(&app).await;
    assert_eq!(smtp.mails().len(), 1, "only ivy's verification went out");
}

#[tokio::test]
async fn mails_queued_while_smtp_is_down_arrive_once_when_it_is_back() {
    let Some(mut smtp) = SmtpServer::start("email::mails_queued_while_smtp_is_down").await else { return };
    let app = app_with(&smtp, &["--rate-limit", "false"]).await;
    for i in 0..3 {
        let name = format!("jo{i}");
        let r = app
            .post_auth(
                "/api/admin/users",
                app.operator(),
                json!({ "username": name, "password": PW, "email": format!("{name}@example.com") }),
            )
            .await;
        assert_eq!(r.status(), 201);
    }
    smtp.wait_total(3).await;
    smtp.stop().await;
    for i in 0..3 {
        let r = app.post("/api/password/forgot", json!({ "login": format!("jo{i}") })).await;
        assert_eq!(r.status(), 202);
    }
    // Delivery is failing and being retried; nothing is lost.
    for _ in 0..200 {
        let m = metrics_text(&app).await;
        if m.contains("gatepass_mail_retried_total") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(outbox_depth(&app).await >= 3);
    smtp.up().await;
    let mails = smtp.wait_total(6).await;
    wait_outbox_empty(&app).await;
    let mails_after = smtp.mails();
    assert_eq!(mails_after.len(), 6, "each mail once");
    let ids: HashSet<_> = mails.iter().map(|m| m.get("message_id").to_owned()).collect();
    assert_eq!(ids.len(), 6);
    let m = metrics_text(&app).await;
    for name in [
        "gatepass_mail_queued_total",
        "gatepass_mail_sent_total",
        "gatepass_mail_retried_total",
        "gatepass_mail_outbox_depth",
    ] {
        assert!(m.contains(name), "{name} in /metrics");
    }
}

async fn metrics_text(app: &TestApp) -> String {
    let _turn = crate::common::METRICS.lock().await;
    app.get("/metrics").await.text().await.unwrap()
}

#[tokio::test]
async fn reset_tokens_are_single_use_under_concurrency() {
    let Some(smtp) = SmtpServer::start("email::reset_tokens_are_single_use").await else { return };
    let app = app_with(&smtp, &["--rate-limit", "false"]).await;
    verified_user(&app, &smtp, "kim", "kim@example.com").await;
    let user = app.storage.user_by_username("kim").await.unwrap().unwrap();
    for round in 0..50 {
        let (token, digest) = gatepass::auth::onetime::generate();
        let t = gatepass::domain::clock::now();
        let stored = gatepass::storage::OneTimeToken {
            token_hash: digest,
            purpose: gatepass::storage::TokenPurpose::PasswordReset,
            user_id: user.id.as_str().to_owned(),
            email: Some("kim@example.com".into()),
            created_at: t,
            expires_at: t + 600,
        };
        app.storage.issue_token(&stored, &[], false).await.unwrap();
        let tries: Vec<_> = (0..4)
            .map(|i| {
                let (client, url) = (app.client.clone(), app.url("/api/password/reset"));
                let body = json!({ "token": token, "new_password": format!("orchid-lantern-{round}-{i}") });
                tokio::spawn(async move { client.post(url).json(&body).send().await.unwrap().status().as_u16() })
            })
            .collect();
        let mut statuses = Vec::new();
        for t in tries {
            statuses.push(t.await.unwrap());
        }
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "round {round}: {statuses:?}");
        assert!(statuses.iter().all(|s| *s == 200 || *s == 400), "{statuses:?}");
    }
}

#[tokio::test]
async fn a_mail_queued_before_sigkill_arrives_after_restart() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let Some(mut smtp) = SmtpServer::down("email::a_mail_queued_before_sigkill") else { return };
    let dir = tempfile::tempdir().unwrap();
    let url = smtp.url();
    let env = [("GATEPASS_SMTP_URL", url.as_str()), ("GATEPASS_PUBLIC_URL", PUBLIC)];
    let start = |dir: &std::path::Path| {
        let mut child = crate::common::serve(dir, &env).spawn().expect("serve");
        let stderr = child.stderr.take().unwrap();
        (child, stderr)
    };
    let (mut child, stderr) = start(dir.path());
    let base = listening(stderr).await;
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{base}/api/register"))
        .json(&json!({ "username": "lee", "password": PW, "email": "lee@example.com" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // Killed at once, with the SMTP server still down: the mail exists only in the outbox
    // (possibly claimed by the dead sender, then it waits out the lease).
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    smtp.up().await;
    let (_child, stderr) = start(dir.path());
    let _ = listening(stderr).await;
    let mail = smtp.wait_for("lee@example.com", 1).await;
    assert_eq!(mail[0].get("subject"), "Verify your e-mail address");

    async fn listening(stderr: tokio::process::ChildStderr) -> String {
        let mut lines = BufReader::new(stderr).lines();
        loop {
            let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
                .await
                .expect("server starts")
                .unwrap()
                .expect("server runs");
            if let Some((_, addr)) = line.split_once("listening on ") {
                let addr = addr.split_whitespace().next().unwrap().to_owned();
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                return addr;
            }
        }
    }
}

#[tokio::test]
async fn two_instances_on_postgres_send_each_mail_once() {
    if std::env::var("GATEPASS_TEST_BACKEND").as_deref() != Ok("postgres") {
        eprintln!("SKIPPED email::two_instances_on_postgres_send_each_mail_once: needs GATEPASS_TEST_BACKEND=postgres");
        return;
    }
    let Some(smtp) = SmtpServer::start("email::two_instances_on_postgres").await else { return };
    let a = app_with(&smtp, &["--rate-limit", "false"]).await;
    let b = a.spawn_peer().await;
    for i in 0..20 {
        let app = if i % 2 == 0 { &a } else { &b };
        let name = format!("mo{i}");
        let r = app
            .post_auth(
                "/api/admin/users",
                app.operator(),
                json!({ "username": name, "password": PW, "email": format!("{name}@example.com") }),
            )
            .await;
        assert_eq!(r.status(), 201);
        for _ in 0..2 {
            let r = app.post("/api/password/forgot", json!({ "login": name })).await;
            assert_eq!(r.status(), 202);
        }
    }
    smtp.wait_total(60).await;
    wait_outbox_empty(&a).await;
    let mails = smtp.mails();
    assert_eq!(mails.len(), 60, "each mail exactly once");
    let ids: HashSet<_> = mails.iter().map(|m| m.get("message_id").to_owned()).collect();
    assert_eq!(ids.len(), 60);
}

#[tokio::test]
async fn without_smtp_mails_are_written_to_the_data_directory() {
    let app = TestApp::spawn().await;
    register(&app, "nia", "nia@example.com").await;
    let outbox = app.data_dir().join("outbox");
    for _ in 0..1200 {
        let files: Vec<_> = std::fs::read_dir(&outbox).map(|d| d.filter_map(Result::ok).collect()).unwrap_or_default();
        if let Some(f) = files.iter().find(|f| f.path().extension().is_some_and(|x| x == "eml")) {
            let eml = std::fs::read_to_string(f.path()).unwrap();
            assert!(eml.contains("To: nia@example.com"), "{eml}");
            assert!(eml.contains("Subject: Verify your e-mail address"));
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no .eml in {}", outbox.display());
}

#[tokio::test]
async fn the_command_line_marks_verified_and_queues_a_reset_the_server_delivers() {
    if std::env::var("GATEPASS_TEST_BACKEND").as_deref() == Ok("postgres") {
        return; // The command line works on the data directory's SQLite file here.
    }
    let Some(smtp) = SmtpServer::start("email::the_command_line").await else { return };
    let app = app_with(&smtp, &[]).await;
    register(&app, "ola", "ola@example.com").await;
    smtp.wait_for("ola@example.com", 1).await;
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatepass"))
            .args(args)
            .arg("--data-dir")
            .arg(app.data_dir())
            .env_remove("GATEPASS_DATABASE_URL")
            .output()
            .expect("gatepass runs");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(cli(&["user", "mark-verified", "ola"]).contains("marked verified"));
    assert!(cli(&["user", "send-reset", "ola", "--public-url", PUBLIC]).contains("queued"));
    let mail = smtp.wait_for("ola@example.com", 2).await.pop().unwrap();
    let token = mail.token(&format!("{PUBLIC}/reset?"));
    let r = app.post("/api/password/reset", json!({ "token": token, "new_password": "quiet-meadow-77" })).await;
    assert_eq!(r.status(), 200);
    app.login("ola@example.com", "quiet-meadow-77").await;
}

#[tokio::test]
async fn of_registrations_racing_for_one_address_exactly_one_wins() {
    let Some(smtp) = SmtpServer::start("email::of_registrations_racing_for_one_address").await else { return };
    let app = app_with(&smtp, &["--rate-limit", "false"]).await;
    for round in 0..50 {
        let tries: Vec<_> = (0..4)
            .map(|i| {
                let (client, url) = (app.client.clone(), app.url("/api/register"));
                let email =
                    if i % 2 == 0 { format!("race{round}@example.com") } else { format!("RACE{round}@Example.com") };
                let body = json!({ "username": format!("racer{round}x{i}"), "password": PW, "email": email });
                tokio::spawn(async move {
                    let r = client.post(url).json(&body).send().await.unwrap();
                    let status = r.status().as_u16();
                    let code = r.json::<Value>().await.unwrap()["code"].as_str().map(str::to_owned);
                    (status, code)
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for t in tries {
            outcomes.push(t.await.unwrap());
        }
        assert_eq!(outcomes.iter().filter(|(s, _)| *s == 201).count(), 1, "round {round}: {outcomes:?}");
        assert!(
            outcomes.iter().all(|(s, c)| *s == 201 || (*s == 409 && c.as_deref() == Some("email_taken"))),
            "{outcomes:?}"
        );
    }
    // Each winner got one verification mail; the losers none.
    wait_outbox_empty(&app).await;
    assert_eq!(smtp.mails().len(), 50);
}

#[tokio::test]
async fn smtp_without_a_public_url_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = crate::common::serve(dir.path(), &[("GATEPASS_SMTP_URL", "smtp://127.0.0.1:1")])
        .env_remove("GATEPASS_PUBLIC_URL")
        .output()
        .await
        .expect("gatepass runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("GATEPASS_PUBLIC_URL") && stderr.contains("Host"), "{stderr}");
}

#[tokio::test]
async fn the_new_device_notice_goes_to_a_verified_address_unless_switched_off() {
    let Some(smtp) = SmtpServer::start("email::the_new_device_notice").await else { return };
    let client = gatepass::service::ClientInfo {
        ip: Some("203.0.113.9".into()),
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0".into()),
        device: None,
    };
    for (switch, expected) in [("true", 2), ("false", 1)] {
        let app = app_with(&smtp, &["--notify-new-device", switch]).await;
        let name = format!("pat{switch}");
        let email = format!("{name}@example.com");
        verified_user(&app, &smtp, &name, &email).await;
        let user = app.storage.user_by_username(&name).await.unwrap().unwrap();
        app.state.service.core().notify_new_device(&user, &client).await;
        wait_outbox_empty(&app).await;
        let mails = smtp.mails_to(&email);
        assert_eq!(mails.len(), expected, "notify-new-device {switch}");
        if expected == 2 {
            let notice = &mails[1];
            assert_eq!(notice.get("subject"), "New sign-in to your account");
            assert!(notice.get("text").contains("203.0.113.9") && notice.get("text").contains("Firefox"));
        }
    }
}

/// Through the real login: a browser sign-in (cookie mode) without a device cookie for
/// the account mails the notice; the same browser, showing the device cookie it got, does
/// not; a bearer-token client is no device and never triggers it.
#[tokio::test]
async fn a_browser_login_from_a_new_device_mails_the_owner_once() {
    let Some(smtp) = SmtpServer::start("email::a_browser_login_from_a_new_device").await else { return };
    let app = app_with(&smtp, &[]).await;
    verified_user(&app, &smtp, "newdev", "newdev@example.com").await;
    let before = smtp.mails_to("newdev@example.com").len();
    let body = json!({ "username": "newdev", "password": PW });
    assert_eq!(app.post("/api/login", body.clone()).await.status(), 200, "bearer login");
    let r = app.post("/api/login?cookie=true", body.clone()).await;
    assert_eq!(r.status(), 200);
    let device = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("device=").map(|v| v.split(';').next().unwrap_or("").to_owned()))
        .expect("device cookie");
    let again = app
        .client
        .post(app.url("/api/login?cookie=true"))
        .header("cookie", format!("device={device}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    wait_outbox_empty(&app).await;
    let mails = smtp.mails_to("newdev@example.com");
    let notices: Vec<_> =
        mails[before..].iter().filter(|m| m.get("subject") == "New sign-in to your account").collect();
    assert_eq!(notices.len(), 1, "one notice, for the unrecognised browser only");
}

#[tokio::test]
async fn password_changes_are_noticed_unless_switched_off() {
    let Some(smtp) = SmtpServer::start("email::password_changes_are_noticed").await else { return };
    for (switch, expected) in [("true", 2), ("false", 1)] {
        let app = app_with(&smtp, &["--notify-password-changed", switch]).await;
        let name = format!("quin{switch}");
        let email = format!("{name}@example.com");
        verified_user(&app, &smtp, &name, &email).await;
        let login = app.login(&name, PW).await;
        let body = json!({ "current_password": PW, "new_password": "violet-canyon-echo" });
        let r = app.post_auth("/api/password", s(&login, "access_token"), body).await;
        assert_eq!(r.status(), 200);
        wait_outbox_empty(&app).await;
        let mails = smtp.mails_to(&email);
        assert_eq!(mails.len(), expected, "notify-password-changed {switch}");
        assert!(mails.iter().skip(1).all(|m| m.get("subject") == "Your password was changed"));
    }
}

#[tokio::test]
async fn the_account_page_shows_pending_verification_and_its_forms_need_the_csrf_token() {
    let Some(smtp) = SmtpServer::start("email::the_account_page").await else { return };
    let app = app_with(&smtp, &[]).await;
    register(&app, "rue", "rue@example.com").await;
    let r = app.post("/api/login?cookie=true", json!({ "username": "rue", "password": PW })).await;
    let pairs: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect();
    let csrf = pairs.iter().find_map(|p| p.strip_prefix("csrf_token=")).expect("csrf cookie").to_owned();
    let cookie = pairs.join("; ");
    let form = |path: &str, fields: Vec<(&'static str, String)>| {
        app.client
            .post(app.url(path))
            .header("cookie", cookie.clone())
            .header("origin", "null")
            .header("sec-fetch-site", "same-origin")
            .form(&fields)
            .send()
    };
    let home = app.client.get(app.url("/")).header("cookie", cookie.clone()).send().await.unwrap();
    let html = home.text().await.unwrap();
    assert!(html.contains("id=\"verify-pending\"") && html.contains("action=\"/ui/email/resend\""), "{html}");

    let r = form("/ui/email/resend", vec![]).await.unwrap();
    expect_error(r, 403, "csrf_failed").await;
    let r = form("/ui/email/resend", vec![("csrf_token", csrf.clone())]).await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/?notice=verification_sent");
    smtp.wait_for("rue@example.com", 2).await;

    let r = form("/ui/email/change", vec![("email", "rue@new.example".into())]).await.unwrap();
    expect_error(r, 403, "csrf_failed").await;
    let r =
        form("/ui/email/change", vec![("csrf_token", csrf.clone()), ("email", "not an address".into())]).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("id=\"email-form-error\""));
    let r = form("/ui/email/change", vec![("csrf_token", csrf), ("email", "rue@new.example".into())]).await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/?notice=email_change_sent");
    let confirm = smtp.wait_for("rue@new.example", 1).await.pop().unwrap();

    // The landing page's form confirms it (same-origin post, no session needed).
    let token = confirm.token(&format!("{PUBLIC}/verify?"));
    let r = form("/ui/verify", vec![("token", token.clone())]).await.unwrap();
    assert_eq!(r.headers()["location"], "/?notice=email_verified");
    let r = form("/ui/verify", vec![("token", token)]).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("already used"));
    let r = form("/ui/forgot", vec![("login", "rue@new.example".into())]).await.unwrap();
    assert_eq!(r.headers()["location"], "/forgot?sent=1");
    smtp.wait_for("rue@new.example", 2).await;
}
