//! Issue 22, browser pages: a stale tab's form post shows the same form again (message,
//! typed fields kept except passwords, a fresh token) instead of a JSON error; the
//! registration page follows the runtime settings (password rule, closed registration);
//! every field error at once, with the first invalid field focused.

use crate::browser_csrf::{Browser, location};
use crate::common::{TestApp, expect_error};
use serde_json::json;

const EXPIRED: &str = "This page had expired, please try again.";
/// What Chrome sends on its own form posts (with `Referrer-Policy: no-referrer`).
const OWN_PAGE: &[(&str, &str)] = &[
    ("origin", "null"),
    ("sec-fetch-site", "same-origin"),
    ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
];
/// A post the origin check refuses (another origin), from a browser.
const OTHER_ORIGIN: &[(&str, &str)] = &[("origin", "http://old-name.example"), ("accept", "text/html")];

/// The value of the first hidden `csrf_token` field of a page.
fn form_token(html: &str) -> String {
    let needle = "name=\"csrf_token\" value=\"";
    let start = html.find(needle).expect("csrf field") + needle.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// The `<input …>` tag with `id`.
fn input<'h>(html: &'h str, id: &str) -> &'h str {
    let start = html.find(&format!("<input id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in {html}"));
    let len = html[start..].find('>').unwrap();
    &html[start..=start + len]
}

#[tokio::test]
async fn a_stale_signed_in_form_comes_back_with_a_fresh_token() {
    let app = TestApp::spawn().await;
    app.register("tess", "correct horse battery").await;
    let mut b = Browser::new(&app);
    b.post_form("/ui/login", &[("username", "tess"), ("password", "correct horse battery")]).await;
    // The tab was rendered under a session that has since been replaced.
    let stale = b.csrf();
    b.post_form("/ui/logout", &[("csrf_token", &stale)]).await;
    b.post_form("/ui/login", &[("username", "tess"), ("password", "correct horse battery")]).await;
    assert_ne!(b.csrf(), stale);

    let form = [
        ("csrf_token", stale.as_str()),
        ("current_password", "correct horse battery"),
        ("new_password", "a new phrase"),
    ];
    let r = b.post_with("/ui/password", &form, OWN_PAGE).await;
    assert_eq!(r.status(), 403);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = r.text().await.unwrap();
    assert!(html.contains(EXPIRED), "{html}");
    assert!(html.contains("id=\"password-form\""), "the same form is shown again");
    assert!(!html.contains("correct horse battery") && !html.contains("a new phrase"), "passwords are never echoed");
    let fresh = form_token(&html);
    assert_eq!(fresh, b.csrf(), "the page carries the session's current token");
    // Nothing changed: the old password still works.
    app.login("tess", "correct horse battery").await;

    // The address form keeps what was typed.
    let r = b.post_with("/ui/email/change", &[("csrf_token", &stale), ("email", "tess@new.example")], OWN_PAGE).await;
    assert_eq!(r.status(), 403);
    let html = r.text().await.unwrap();
    assert!(html.contains(EXPIRED));
    assert!(input(&html, "new_email").contains("value=\"tess@new.example\""), "{html}");

    // API callers (no Accept: text/html) keep the JSON answer.
    let r = b.post_form("/ui/password", &form).await;
    expect_error(r, 403, "csrf_failed").await;
    // So do cross-site posts, even from a browser: the origin check comes first.
    let mut cross = OTHER_ORIGIN.to_vec();
    cross.push(("sec-fetch-site", "cross-site"));
    let r = b.post_with("/ui/password", &[("csrf_token", &fresh)], &cross).await;
    expect_error(r, 403, "csrf_failed").await;

    // The retry with the page's token works.
    let retry = [
        ("csrf_token", fresh.as_str()),
        ("current_password", "correct horse battery"),
        ("new_password", "a new phrase"),
    ];
    let r = b.post_with("/ui/password", &retry, OWN_PAGE).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/?notice=password_changed");
    app.login("tess", "a new phrase").await;
}

#[tokio::test]
async fn refused_login_and_register_posts_show_the_form_again() {
    let app = TestApp::spawn().await;
    app.register("uma", "correct horse battery").await;
    let mut b = Browser::new(&app);

    let login = [("username", "uma"), ("password", "correct horse battery")];
    let r = b.post_with("/ui/login", &login, OTHER_ORIGIN).await;
    assert_eq!(r.status(), 403);
    assert!(b.jar.get("session").is_none(), "no sign-in");
    let html = r.text().await.unwrap();
    assert!(html.contains(EXPIRED) && html.contains("action=\"/ui/login\""), "{html}");
    assert!(input(&html, "username").contains("value=\"uma\""));
    assert!(!html.contains("correct horse battery"));
    // Without Accept: text/html it stays the JSON answer.
    let r = b.post_with("/ui/login", &login, &[("origin", "http://old-name.example")]).await;
    expect_error(r, 403, "csrf_failed").await;
    // The retry from the page shown works.
    let r = b.post_with("/ui/login", &login, OWN_PAGE).await;
    assert_eq!(r.status(), 303);
    assert!(b.jar.get("session").is_some());

    let mut b = Browser::new(&app);
    let register = [
        ("username", "vera"),
        ("email", "vera@example.com"),
        ("password", "blue kettle morning"),
        ("confirm_password", "blue kettle morning"),
    ];
    let r = b.post_with("/ui/register", &register, OTHER_ORIGIN).await;
    assert_eq!(r.status(), 403);
    let html = r.text().await.unwrap();
    assert!(html.contains(EXPIRED) && html.contains("action=\"/ui/register\""), "{html}");
    assert!(input(&html, "username").contains("value=\"vera\""));
    assert!(input(&html, "email").contains("value=\"vera@example.com\""));
    assert!(!html.contains("blue kettle morning"));
    expect_error(
        app.post("/api/login", json!({"username": "vera", "password": "blue kettle morning"})).await,
        401,
        "invalid_credentials",
    )
    .await;
    let r = b.post_with("/ui/register", &register, OWN_PAGE).await;
    assert_eq!(r.status(), 303);
    app.login("vera", "blue kettle morning").await;
}

#[tokio::test]
async fn the_register_page_follows_the_runtime_settings() {
    let app = TestApp::spawn().await;
    let mut b = Browser::new(&app);
    let html = b.page("/register").await;
    assert!(html.contains("At least 8 characters") && input(&html, "password").contains("minlength=\"8\""));

    let r = app.patch_auth("/api/info", app.operator(), json!({"password_min_length": 12})).await;
    assert_eq!(r.status(), 200);
    let html = b.page("/register").await;
    assert!(html.contains("At least 12 characters"), "{html}");
    assert!(!html.contains("At least 8 characters"));
    assert!(input(&html, "password").contains("minlength=\"12\""));
    let short = [("username", "wes"), ("password", "elevenchars"), ("confirm_password", "elevenchars")];
    let r = b.post_form("/ui/register", &short).await;
    assert_eq!(r.status(), 400);
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"password-error\">Password must be at least 12 bytes long."), "{html}");

    let r = app.patch_auth("/api/info", app.operator(), json!({"registration_open": false})).await;
    assert_eq!(r.status(), 200);
    let html = b.page("/register").await;
    assert!(html.contains("Registration is closed"), "{html}");
    assert!(!html.contains("action=\"/ui/register\"") && !html.contains("id=\"password\""), "no form while closed");
    let ok = [("username", "wes"), ("password", "twelve chars!"), ("confirm_password", "twelve chars!")];
    let r = b.post_form("/ui/register", &ok).await;
    assert_eq!(r.status(), 403);
    assert!(b.jar.get("session").is_none());
    assert!(r.text().await.unwrap().contains("Registration is closed"));
    expect_error(
        app.post("/api/login", json!({"username": "wes", "password": "twelve chars!"})).await,
        401,
        "invalid_credentials",
    )
    .await;

    let r = app.patch_auth("/api/info", app.operator(), json!({"registration_open": true})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(b.post_form("/ui/register", &ok).await.status(), 303);
}

#[tokio::test]
async fn the_register_form_shows_every_error_at_once_and_focuses_the_first() {
    let app = TestApp::spawn().await;
    let mut b = Browser::new(&app);
    let all_wrong =
        [("username", "a b"), ("email", "not an address"), ("password", "short"), ("confirm_password", "shorter")];
    let r = b.post_form("/ui/register", &all_wrong).await;
    assert_eq!(r.status(), 400);
    let html = r.text().await.unwrap();
    for (id, error) in [
        ("username", "username-error"),
        ("email", "email-error"),
        ("password", "password-error"),
        ("confirm_password", "confirm-password-error"),
    ] {
        let tag = input(&html, id);
        assert!(tag.contains("aria-invalid=\"true\""), "{tag}");
        assert!(tag.contains(error), "{id} described by its error: {tag}");
        assert!(html.contains(&format!("id=\"{error}\"")), "{error} shown: {html}");
    }
    assert!(html.contains("id=\"confirm-password-error\">The two passwords do not match."));
    assert!(input(&html, "username").contains(" autofocus"));
    assert_eq!(html.matches(" autofocus").count(), 1, "one field focused");
    assert!(!html.contains("<script"), "focus without script (CSP)");

    // The first invalid field gets the focus, whichever it is.
    let r = b
        .post_form(
            "/ui/register",
            &[("username", "xena"), ("password", "blue kettle morning"), ("confirm_password", "")],
        )
        .await;
    assert_eq!(r.status(), 400);
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"confirm-password-error\">Enter the password again."), "{html}");
    assert!(input(&html, "confirm_password").contains(" autofocus"));
    assert!(!input(&html, "username").contains("aria-invalid") && !input(&html, "password").contains("aria-invalid"));
    assert_eq!(html.matches(" autofocus").count(), 1);
    expect_error(
        app.post("/api/login", json!({"username": "xena", "password": "blue kettle morning"})).await,
        401,
        "invalid_credentials",
    )
    .await;
}
