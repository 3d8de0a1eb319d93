//! Second factors in the HTML pages, driven as form posts (no browser): the second login
//! step, the account page's self-service, and the operator's `mfa_required_roles` policy
//! (pages and API), including the refresh rule and a race of concurrent enrolment
//! confirmations (on whichever backend `GATEPASS_TEST_BACKEND` selects). Codes come from
//! pyotp, as in `mfa.rs`.
//!
//! Every refusal must show the form again with its message and change nothing.

use crate::browser_csrf::{Browser, location};
use crate::common::{TestApp, expect_error, s};
use crate::mfa::{PASSWORD, claims, enrolled, pyotp_at, python_or_skip, steady_now};
use serde_json::{Value, json};

const EXPIRED: &str = "This page had expired, please try again.";
const SIGN_IN_AGAIN: &str = "That code was not accepted. Enter your password again.";
const CODE_REFUSED: &str = "That code was not accepted. Enter the code the app shows now, or start over.";
const STEP_UP: &str = "Confirm your password and a code from your app first.";
/// What Chrome sends on its own form posts.
const OWN_PAGE: &[(&str, &str)] = &[("origin", "null"), ("sec-fetch-site", "same-origin"), ("accept", "text/html")];
/// A browser post from another origin.
const OTHER_ORIGIN: &[(&str, &str)] =
    &[("origin", "http://elsewhere.example"), ("sec-fetch-site", "cross-site"), ("accept", "text/html")];

/// The value of the hidden field `name` (the first one).
pub(crate) fn hidden(html: &str, name: &str) -> String {
    let needle = format!("name=\"{name}\" value=\"");
    let start = html.find(&needle).unwrap_or_else(|| panic!("no hidden {name} in {html}")) + needle.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// The key shown on the setup page.
pub(crate) fn shown_secret(html: &str) -> String {
    let needle = "<code id=\"totp-secret\" class=\"secret\">";
    let start = html.find(needle).unwrap_or_else(|| panic!("no secret in {html}")) + needle.len();
    html[start..].split('<').next().unwrap().to_owned()
}

/// The recovery codes listed on a page.
pub(crate) fn listed_codes(html: &str) -> Vec<String> {
    html.split("<li><code>").skip(1).map(|rest| rest.split('<').next().unwrap().to_owned()).collect()
}

fn has_session_cookie(r: &reqwest::Response) -> bool {
    r.headers().get_all("set-cookie").iter().any(|v| v.to_str().unwrap_or("").starts_with("session="))
}

/// A code that is not the one pyotp gives for `secret` at `t`.
fn wrong_code(py: &str, secret: &str, t: u64) -> &'static str {
    if pyotp_at(py, secret, t) == "000000" { "111111" } else { "000000" }
}

async fn mfa_status(b: &mut Browser<'_>) -> Value {
    b.get("/api/mfa").await.json().await.unwrap()
}

/// The password step through the login form; asserts it leads to the second step with
/// no session cookie, and returns the challenge.
async fn password_step(b: &mut Browser<'_>, name: &str) -> String {
    let r = b.post_with("/ui/login", &[("username", name), ("password", PASSWORD)], OWN_PAGE).await;
    assert_eq!(r.status(), 200);
    assert!(!has_session_cookie(&r), "no session before the second factor");
    let html = r.text().await.unwrap();
    assert!(html.contains("action=\"/ui/login/mfa\""), "{html}");
    assert!(html.contains("id=\"passkey-slot\""), "the place for passkeys is there");
    hidden(&html, "challenge")
}

#[tokio::test]
async fn second_step_page_signs_in_and_every_refusal_changes_nothing() {
    let Some(py) = python_or_skip("second_step_page") else { return };
    let app = TestApp::spawn_with(&["--rate-limit", "false"]).await;
    let t = steady_now().await;
    let (_, secret, codes) = enrolled(&app, &py, "pia", t - 30).await;
    let mut b = Browser::new(&app);

    // Nothing typed: the same form, the challenge untouched.
    let c = password_step(&mut b, "pia").await;
    let r = b.post_with("/ui/login/mfa", &[("challenge", &c), ("username", "pia"), ("totp", "")], OWN_PAGE).await;
    assert_eq!(r.status(), 400);
    let html = r.text().await.unwrap();
    assert!(html.contains("Enter the code from your app") && html.contains("autofocus"), "{html}");
    assert_eq!(hidden(&html, "challenge"), c);
    // Another origin (the login form's CSRF defence): the login form again, nothing used.
    let form = [("challenge", c.as_str()), ("username", "pia"), ("totp", &pyotp_at(&py, &secret, t))];
    let r = b.post_with("/ui/login/mfa", &form, OTHER_ORIGIN).await;
    assert_eq!(r.status(), 403);
    assert!(!has_session_cookie(&r));
    assert!(r.text().await.unwrap().contains(EXPIRED));
    // Another client (user agent) with the right code: refused with the one message.
    let mut other = OWN_PAGE.to_vec();
    other.push(("user-agent", "another browser"));
    let r = b.post_with("/ui/login/mfa", &form, &other).await;
    assert_eq!(r.status(), 401);
    assert!(!has_session_cookie(&r));
    let html = r.text().await.unwrap();
    assert!(html.contains(SIGN_IN_AGAIN) && html.contains("autofocus"), "{html}");
    assert!(html.contains("value=\"pia\""), "the username is kept");
    // The challenge was taken by that attempt: stale now, even with the right code.
    let r = b.post_with("/ui/login/mfa", &form, OWN_PAGE).await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains(SIGN_IN_AGAIN));
    // A made-up challenge.
    let fake = [("challenge", "not-a-challenge"), ("username", "pia"), ("totp", "123456")];
    let r = b.post_with("/ui/login/mfa", &fake, OWN_PAGE).await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains(SIGN_IN_AGAIN));

    // A wrong code: the same message, no cookie.
    let c = password_step(&mut b, "pia").await;
    let bad = [("challenge", c.as_str()), ("username", "pia"), ("totp", wrong_code(&py, &secret, t))];
    let r = b.post_with("/ui/login/mfa", &bad, OWN_PAGE).await;
    assert_eq!(r.status(), 401);
    assert!(!has_session_cookie(&r));
    assert!(r.text().await.unwrap().contains(SIGN_IN_AGAIN));
    // The code of the enrolment's step was used: replaying it is refused alike.
    let c = password_step(&mut b, "pia").await;
    let replay = [("challenge", c.as_str()), ("username", "pia"), ("totp", &pyotp_at(&py, &secret, t - 30))];
    let r = b.post_with("/ui/login/mfa", &replay, OWN_PAGE).await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains(SIGN_IN_AGAIN));
    assert!(b.get("/api/mfa").await.status() == 401, "still signed out");

    // The right code signs in: 303 to / with the cookies, amr says how.
    let c = password_step(&mut b, "pia").await;
    let ok = [("challenge", c.as_str()), ("username", "pia"), ("totp", &pyotp_at(&py, &secret, t))];
    let r = b.post_with("/ui/login/mfa", &ok, OWN_PAGE).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/");
    assert!(has_session_cookie(&r));
    let token = b.jar.get("session").unwrap().to_owned();
    assert_eq!(claims(&token)["amr"], json!(["pwd", "otp", "mfa"]));
    assert!(b.page("/").await.contains("Logged in as pia"));

    // A recovery code through the switch's form, once.
    let mut b = Browser::new(&app);
    let c = password_step(&mut b, "pia").await;
    let rc = [("challenge", c.as_str()), ("username", "pia"), ("recovery_code", codes[0].as_str())];
    let r = b.post_with("/ui/login/mfa", &rc, OWN_PAGE).await;
    assert_eq!(r.status(), 303);
    assert_eq!(claims(b.jar.get("session").unwrap())["amr"], json!(["pwd", "mfa", "recovery_code"]));
    let mut b = Browser::new(&app);
    let c = password_step(&mut b, "pia").await;
    let rc = [("challenge", c.as_str()), ("username", "pia"), ("recovery_code", codes[0].as_str())];
    let r = b.post_with("/ui/login/mfa", &rc, OWN_PAGE).await;
    assert_eq!(r.status(), 401, "a recovery code works once");
    assert!(r.text().await.unwrap().contains(SIGN_IN_AGAIN));
}

#[tokio::test]
async fn account_page_self_service_and_its_errors() {
    let Some(py) = python_or_skip("account_page_self_service") else { return };
    let app = TestApp::spawn_with(&["--rate-limit", "false"]).await;
    let mut b = Browser::new(&app);
    // Early: the test then runs within one 30-second step without sleeping (an idle
    // keep-alive connection could be closed by the server meanwhile).
    let t = steady_now().await;
    let form = [("username", "sam"), ("password", PASSWORD), ("confirm_password", PASSWORD)];
    assert_eq!(b.post_with("/ui/register", &form, OWN_PAGE).await.status(), 303);
    let home = b.page("/").await;
    assert!(home.contains("id=\"mfa-setup\""), "{home}");
    let csrf = b.csrf();

    // Setting up without the CSRF token: the account page again, nothing started.
    let r = b.post_with("/ui/mfa/totp", &[("csrf_token", "")], OWN_PAGE).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains(EXPIRED));
    assert_eq!(mfa_status(&mut b).await["totp_pending"], false);

    let r = b.post_with("/ui/mfa/totp", &[("csrf_token", &csrf)], OWN_PAGE).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let html = r.text().await.unwrap();
    assert!(html.contains("<figure class=\"qr\"") && html.contains("<svg"), "QR code inline");
    let secret = shown_secret(&html);
    assert_eq!(secret.len(), 32);

    // Wrong code, missing code, missing CSRF: each shows the form again, nothing active.
    let r = b
        .post_with("/ui/mfa/totp/confirm", &[("csrf_token", &csrf), ("code", wrong_code(&py, &secret, t))], OWN_PAGE)
        .await;
    assert_eq!(r.status(), 400);
    let html = r.text().await.unwrap();
    assert!(html.contains(CODE_REFUSED) && html.contains("autofocus"), "{html}");
    assert!(!html.contains(&secret), "the key is shown once");
    let r = b.post_with("/ui/mfa/totp/confirm", &[("csrf_token", &csrf), ("code", "")], OWN_PAGE).await;
    assert_eq!(r.status(), 400);
    let good = pyotp_at(&py, &secret, t);
    let r = b.post_with("/ui/mfa/totp/confirm", &[("code", &good)], OWN_PAGE).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains(EXPIRED));
    assert_eq!(
        mfa_status(&mut b).await,
        json!({"totp": false, "totp_pending": true, "recovery_codes_left": 0, "passkeys": 0})
    );

    // The right code: the recovery codes, once.
    let r = b.post_with("/ui/mfa/totp/confirm", &[("csrf_token", &csrf), ("code", &good)], OWN_PAGE).await;
    assert_eq!(r.status(), 200);
    let codes = listed_codes(&r.text().await.unwrap());
    assert_eq!(codes.len(), 10);
    let home = b.page("/").await;
    assert!(home.contains("<strong id=\"recovery-left\">10</strong>"), "{home}");
    assert!(home.contains("id=\"mfa-reauth\""), "changing factors asks for a step-up first");

    // New codes without the step-up: refused with the message; the old codes stay.
    let r = b.post_with("/ui/mfa/recovery-codes", &[("csrf_token", &csrf)], OWN_PAGE).await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains(STEP_UP));
    let r = b.post_with("/ui/mfa/totp/remove", &[("csrf_token", &csrf)], OWN_PAGE).await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains(STEP_UP));
    assert_eq!(mfa_status(&mut b).await["recovery_codes_left"], 10);

    // Step-up: the password alone is not enough; a wrong code neither; both are.
    let reauth = |code: &'static str| [("password", PASSWORD), ("code", code), ("section", "mfa")];
    let r = b
        .post_with("/ui/reauth", &[("csrf_token", csrf.as_str()), ("password", PASSWORD), ("section", "mfa")], OWN_PAGE)
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("Enter a code from your authenticator app"));
    let mut form = vec![("csrf_token", csrf.as_str())];
    form.extend(reauth(wrong_code(&py, &secret, t)));
    let r = b.post_with("/ui/reauth", &form, OWN_PAGE).await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("Password or code is incorrect."));
    // The next step's code: later than the one that confirmed, within the ±1 step window.
    let code = pyotp_at(&py, &secret, t + 30);
    let form = [("csrf_token", csrf.as_str()), ("password", PASSWORD), ("code", &code), ("section", "mfa")];
    let r = b.post_with("/ui/reauth", &form, OWN_PAGE).await;
    assert_eq!(r.status(), 303);
    assert_eq!(claims(b.jar.get("session").unwrap())["amr"], json!(["pwd", "otp", "mfa"]));
    let csrf = b.csrf();

    // Now new codes: the old ones stop working.
    let r = b.post_with("/ui/mfa/recovery-codes", &[("csrf_token", &csrf)], OWN_PAGE).await;
    assert_eq!(r.status(), 200);
    let fresh = listed_codes(&r.text().await.unwrap());
    assert_eq!(fresh.len(), 10);
    assert!(fresh.iter().all(|c| !codes.contains(c)));
    let first = app.post("/api/login", json!({"username": "sam", "password": PASSWORD})).await;
    let c = s(&first.json::<Value>().await.unwrap(), "challenge").to_owned();
    let r = app.post("/api/login/mfa", json!({"challenge": c, "recovery_code": codes[1]})).await;
    expect_error(r, 401, "invalid_credentials").await;

    // Remove: without CSRF nothing happens; with it the app and the codes are gone.
    let r = b.post_with("/ui/mfa/totp/remove", &[("csrf_token", "stale")], OWN_PAGE).await;
    assert_eq!(r.status(), 403);
    assert_eq!(mfa_status(&mut b).await["totp"], true);
    let r = b.post_with("/ui/mfa/totp/remove", &[("csrf_token", &csrf)], OWN_PAGE).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/?notice=mfa_removed");
    assert_eq!(
        mfa_status(&mut b).await,
        json!({"totp": false, "totp_pending": false, "recovery_codes_left": 0, "passkeys": 0})
    );
    assert!(app.login("sam", PASSWORD).await.get("access_token").is_some());
}

/// Creates `name` with `roles` through the admin API.
async fn create(app: &TestApp, name: &str, roles: &[&str]) {
    let body = json!({ "username": name, "password": PASSWORD, "roles": roles });
    assert_eq!(app.post_auth("/api/admin/users", app.operator(), body).await.status(), 201);
}

async fn require_roles(app: &TestApp, roles: Value) -> reqwest::Response {
    app.patch_auth("/api/info", app.operator(), json!({ "mfa_required_roles": roles })).await
}

#[tokio::test]
async fn role_policy_over_the_api() {
    let Some(py) = python_or_skip("role_policy_over_the_api") else { return };
    let app = TestApp::spawn_with(&["--rate-limit", "false"]).await;
    let t = steady_now().await;
    create(&app, "root", &["admin"]).await;
    create(&app, "plain", &[]).await;
    // A session from before the policy, password only.
    let before = app.login("root", PASSWORD).await;
    let old_refresh = s(&before, "refresh_token").to_owned();

    // Bad values change nothing.
    for bad in [json!("admin"), json!(["Admin"]), json!([""]), json!(null), json!(vec!["r"; 17])] {
        let r = require_roles(&app, bad.clone()).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    let info: Value = app.get_auth("/api/info", app.operator()).await.json().await.unwrap();
    assert_eq!(info["settings"]["mfa_required_roles"], json!([]));
    let r = require_roles(&app, json!(["admin", "admin", "auditor"])).await;
    assert_eq!(r.status(), 200);
    let info: Value = app.get_auth("/api/info", app.operator()).await.json().await.unwrap();
    assert_eq!(info["settings"]["mfa_required_roles"], json!(["admin", "auditor"]));

    // The session from before: no refresh until the owner signs in with a factor.
    let r = app.post("/api/refresh", json!({ "refresh_token": old_refresh })).await;
    expect_error(r, 403, "mfa_enrollment_required").await;
    let r = app.post("/api/refresh", json!({ "refresh_token": old_refresh })).await;
    expect_error(r, 403, "mfa_enrollment_required").await;

    // Members of other roles are not concerned.
    assert!(app.login("plain", PASSWORD).await.get("access_token").is_some());

    // root: no token, an enrolment challenge.
    let r = app.post("/api/login?cookie=true", json!({ "username": "root", "password": PASSWORD })).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get_all("set-cookie").iter().next().is_none(), "no cookie");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["mfa_enrollment_required"], true);
    assert_eq!(body["methods"], json!(["totp"]));
    assert!(body.get("access_token").is_none() && body.get("refresh_token").is_none());
    let c = s(&body, "challenge").to_owned();
    // The routes that cannot enrol fail closed.
    let r = app.client.post(app.url("/login")).form(&[("username", "root"), ("password", PASSWORD)]).send().await;
    assert!(r.unwrap().headers().get_all("set-cookie").iter().all(|v| !v.to_str().unwrap().starts_with("session=")));
    // It is not a second-step challenge, and it is not a token.
    let r = app.post("/api/login/mfa", json!({ "challenge": c, "totp": "123456" })).await;
    expect_error(r, 401, "invalid_credentials").await;
    expect_error(app.get_auth("/api/profile", &c).await, 401, "token_malformed").await;
    let body: Value =
        app.post("/api/login", json!({ "username": "root", "password": PASSWORD })).await.json().await.unwrap();
    let c = s(&body, "challenge").to_owned();
    let r = app.post("/api/login/mfa/enrol", json!({ "challenge": "made-up" })).await;
    expect_error(r, 401, "invalid_credentials").await;
    let r = app.post("/api/login/mfa/enrol", json!({})).await;
    expect_error(r, 400, "validation_failed").await;

    let r = app.post("/api/login/mfa/enrol", json!({ "challenge": c })).await;
    assert_eq!(r.status(), 200);
    let e: Value = r.json().await.unwrap();
    let secret = s(&e, "secret").to_owned();
    assert!(s(&e, "qr_svg").starts_with("<svg"));
    // A wrong code: refused, counted, the challenge stays.
    let r =
        app.post("/api/login/mfa/enrol/confirm", json!({ "challenge": c, "code": wrong_code(&py, &secret, t) })).await;
    expect_error(r, 401, "invalid_credentials").await;
    let r =
        app.post("/api/login/mfa/enrol/confirm", json!({ "challenge": c, "code": pyotp_at(&py, &secret, t) })).await;
    assert_eq!(r.status(), 200);
    let done: Value = r.json().await.unwrap();
    assert_eq!(done["recovery_codes"].as_array().unwrap().len(), 10);
    let token = s(&done, "access_token").to_owned();
    assert_eq!(claims(&token)["amr"], json!(["pwd", "otp", "mfa"]));
    let status: Value = app.get_auth("/api/mfa", &token).await.json().await.unwrap();
    assert_eq!(status["totp"], true);
    // The challenge is used up.
    let r =
        app.post("/api/login/mfa/enrol/confirm", json!({ "challenge": c, "code": pyotp_at(&py, &secret, t) })).await;
    expect_error(r, 401, "invalid_credentials").await;
    // The new session refreshes; the next sign-in asks for the factor.
    let r = app.post("/api/refresh", json!({ "refresh_token": s(&done, "refresh_token") })).await;
    assert_eq!(r.status(), 200);
    let body: Value =
        app.post("/api/login", json!({ "username": "root", "password": PASSWORD })).await.json().await.unwrap();
    assert_eq!(body["mfa_required"], true);

    // Lifting the policy lets old sessions refresh again.
    assert_eq!(require_roles(&app, json!([])).await.status(), 200);
    create(&app, "root2", &["admin"]).await;
    assert!(app.login("root2", PASSWORD).await.get("access_token").is_some());
}

#[tokio::test]
async fn role_policy_through_the_pages() {
    let Some(py) = python_or_skip("role_policy_through_the_pages") else { return };
    let app = TestApp::spawn_with(&["--rate-limit", "false"]).await;
    let t = steady_now().await;
    create(&app, "boss", &["admin"]).await;
    // A browser signed in before the policy: its renewal is refused once it applies,
    // and it is sent to the login page with the reason, its cookies cleared.
    let mut before = Browser::new(&app);
    let r = before.post_with("/ui/login", &[("username", "boss"), ("password", PASSWORD)], OWN_PAGE).await;
    assert_eq!(r.status(), 303);
    assert_eq!(require_roles(&app, json!(["admin"])).await.status(), 200);
    let csrf = before.csrf();
    let r = before.post_with("/api/refresh/page", &[("csrf_token", &csrf)], OWN_PAGE).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/?notice=mfa_policy");
    assert!(before.get("/").await.text().await.unwrap().contains("Log in"), "signed out");
    let mut b = Browser::new(&app);
    let r = b.post_with("/ui/login", &[("username", "boss"), ("password", PASSWORD)], OWN_PAGE).await;
    assert_eq!(r.status(), 200);
    assert!(!has_session_cookie(&r));
    let html = r.text().await.unwrap();
    assert!(html.contains("action=\"/ui/login/enrol\""), "{html}");
    let c = hidden(&html, "challenge");

    // Another origin: nothing starts.
    let r = b.post_with("/ui/login/enrol", &[("challenge", &c), ("username", "boss")], OTHER_ORIGIN).await;
    assert_eq!(r.status(), 403);
    let r = b.post_with("/ui/login/enrol", &[("challenge", &c), ("username", "boss")], OWN_PAGE).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    let secret = shown_secret(&html);
    assert_eq!(hidden(&html, "challenge"), c);

    // A wrong code: the code form again, no cookie; missing CSRF (origin): nothing.
    let bad = [("challenge", c.as_str()), ("username", "boss"), ("code", wrong_code(&py, &secret, t))];
    let r = b.post_with("/ui/login/enrol/confirm", &bad, OWN_PAGE).await;
    assert_eq!(r.status(), 401);
    assert!(!has_session_cookie(&r));
    let html = r.text().await.unwrap();
    assert!(html.contains(CODE_REFUSED) && html.contains("autofocus"));
    let good = pyotp_at(&py, &secret, t);
    let ok = [("challenge", c.as_str()), ("username", "boss"), ("code", good.as_str())];
    let r = b.post_with("/ui/login/enrol/confirm", &ok, OTHER_ORIGIN).await;
    assert_eq!(r.status(), 403);
    assert!(!has_session_cookie(&r));
    assert_eq!(b.get("/api/mfa").await.status(), 401, "still signed out");

    let r = b.post_with("/ui/login/enrol/confirm", &ok, OWN_PAGE).await;
    assert_eq!(r.status(), 200);
    assert!(has_session_cookie(&r));
    let codes = listed_codes(&r.text().await.unwrap());
    assert_eq!(codes.len(), 10);
    assert!(b.page("/").await.contains("Logged in as boss"));
    // Replayed: the challenge is spent.
    let r = b.post_with("/ui/login/enrol/confirm", &ok, OWN_PAGE).await;
    assert_eq!(r.status(), 401);
}

/// Concurrent confirmations of one enrolment challenge with the right code: exactly one
/// signs in, and the account has one active factor and one session.
#[tokio::test]
async fn concurrent_enrolment_confirmations_sign_in_once() {
    let Some(py) = python_or_skip("concurrent_enrolment_confirmations") else { return };
    let app = TestApp::spawn_with(&["--rate-limit", "false"]).await;
    assert_eq!(require_roles(&app, json!(["admin"])).await.status(), 200);
    let t = steady_now().await;
    for round in 0..2 {
        let name = format!("racer{round}");
        create(&app, &name, &["admin"]).await;
        let body: Value =
            app.post("/api/login", json!({ "username": name, "password": PASSWORD })).await.json().await.unwrap();
        let c = s(&body, "challenge").to_owned();
        let e: Value = app.post("/api/login/mfa/enrol", json!({ "challenge": c })).await.json().await.unwrap();
        let code = pyotp_at(&py, s(&e, "secret"), t);
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let (client, url) = (app.client.clone(), app.url("/api/login/mfa/enrol/confirm"));
                let body = json!({ "challenge": c, "code": code });
                tokio::spawn(async move { client.post(url).json(&body).send().await.unwrap() })
            })
            .collect();
        let mut granted = Vec::new();
        for task in tasks {
            let r = task.await.unwrap();
            match r.status().as_u16() {
                200 => granted.push(r.json::<Value>().await.unwrap()),
                401 => {}
                other => panic!("unexpected {other}"),
            }
        }
        assert_eq!(granted.len(), 1, "exactly one confirmation signs in");
        let token = s(&granted[0], "access_token");
        let sessions: Value = app.get_auth("/api/sessions", token).await.json().await.unwrap();
        assert_eq!(sessions["sessions"].as_array().unwrap().len(), 1, "{sessions}");
        let status: Value = app.get_auth("/api/mfa", token).await.json().await.unwrap();
        assert_eq!(status, json!({"totp": true, "totp_pending": false, "recovery_codes_left": 10, "passkeys": 0}));
    }
}

#[tokio::test]
async fn an_oauth_sign_in_through_both_steps_goes_back_to_the_authorization_request() {
    let Some(py) = python_or_skip("oauth_sign_in_through_both_steps") else { return };
    let app = TestApp::spawn_provider(&[]).await;
    let t = steady_now().await;
    let (_, secret, recovery) = enrolled(&app, &py, "olga", t).await;
    let meta = json!({
        "client_name": "Web app",
        "redirect_uris": ["https://app.example.com/cb"],
        "grant_types": ["authorization_code"],
        "scope": "openid",
        "first_party": true,
    });
    let r = app.post_auth("/api/admin/clients", app.operator(), meta).await;
    assert_eq!(r.status(), 201);
    let client: Value = r.json().await.unwrap();
    let authorize = format!(
        "/oauth/authorize?response_type=code&client_id={}&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb\
         &scope=openid&state=xyz&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
        s(&client, "client_id")
    );

    // The password step carries the authorization request on to the second step.
    let mut b = Browser::new(&app);
    let form = [("username", "olga"), ("password", PASSWORD), ("return_to", authorize.as_str())];
    let r = b.post_with("/ui/login", &form, OWN_PAGE).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert_eq!(hidden(&html, "return_to").replace("&#38;", "&"), authorize);
    let challenge = hidden(&html, "challenge");

    // The code from the app finishes the sign-in there (the next step's: the enrolment
    // used this one).
    let code = pyotp_at(&py, &secret, t + 30);
    let step = [("challenge", challenge.as_str()), ("username", "olga"), ("totp", &code), ("return_to", &authorize)];
    let r = b.post_with("/ui/login/mfa", &step, OWN_PAGE).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), authorize, "back to the authorization request");

    // Which now answers the client with a code.
    let r = b.get(&authorize).await;
    assert_eq!(r.status(), 303);
    let back = location(&r).to_owned();
    assert!(back.starts_with("https://app.example.com/cb?"), "{back}");
    assert!(back.contains("code=") && back.contains("state=xyz"), "{back}");

    // A return_to that is not an authorization request is never followed.
    let mut b = Browser::new(&app);
    let form = [("username", "olga"), ("password", PASSWORD), ("return_to", "https://evil.example/")];
    let html = b.post_with("/ui/login", &form, OWN_PAGE).await.text().await.unwrap();
    assert!(!html.contains("name=\"return_to\""), "dropped at the first step");
    let challenge = hidden(&html, "challenge");
    let step = [
        ("challenge", challenge.as_str()),
        ("username", "olga"),
        ("recovery_code", recovery[0].as_str()),
        ("return_to", "//evil.example"),
    ];
    let r = b.post_with("/ui/login/mfa", &step, OWN_PAGE).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/");
}
