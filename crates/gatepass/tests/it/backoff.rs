//! The failed-login back-off as a cluster sees it: the count and the hourly cap are shared
//! by every instance on one database and survive a restart; wrong guesses racing through
//! two instances never pass the threshold; and a browser that signed in before (its signed
//! device cookie) keeps its owner in while strangers hammer the account.
//!
//! The Redis variants of the shared-count tests live in `redis_limits.rs` and reuse the
//! helpers here.

use crate::common::{TestApp, expect_error};
use serde_json::{Value, json};
use std::time::Instant;

/// Token buckets wide open, so that only the back-off answers 429 here.
pub(crate) const OPEN_BUCKETS: &[&str] = &[
    "--rate-limit-ip-burst",
    "100000",
    "--rate-limit-ip-per-minute",
    "100000",
    "--rate-limit-user-burst",
    "100000",
    "--rate-limit-user-per-minute",
    "100000",
];

pub(crate) const PASSWORD: &str = "correct horse staple";
const WRONG: &str = "wrong password";

/// `POST /api/login` (JSON) for `username`, showing the device cookie `device` if given.
pub(crate) async fn attempt(app: &TestApp, username: &str, password: &str, device: Option<&str>) -> reqwest::Response {
    let mut req = app.client.post(app.url("/api/login")).json(&json!({"username": username, "password": password}));
    if let Some(device) = device {
        req = req.header("cookie", format!("device={device}"));
    }
    req.send().await.expect("request")
}

/// Asserts a back-off refusal; returns its `Retry-After` in seconds.
pub(crate) async fn expect_429(r: reqwest::Response) -> u64 {
    let retry: u64 = r.headers().get("retry-after").expect("Retry-After").to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    expect_error(r, 429, "rate_limited").await;
    retry
}

/// The value of the cookie `name` among a response's `Set-Cookie` headers, with its
/// attributes.
fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// The device cookie value a sign-in response set, if any.
pub(crate) fn device_cookie(r: &reqwest::Response) -> Option<String> {
    set_cookie(r, "device").map(|c| cookie_value(&c))
}

fn cookie_value(set_cookie: &str) -> String {
    let pair = set_cookie.split(';').next().expect("a pair");
    pair.split_once('=').expect("name=value").1.to_owned()
}

/// Signs in as a browser would (`?cookie=true`); returns the device cookie it was given,
/// if any.
pub(crate) async fn sign_in_browser(app: &TestApp, username: &str, password: &str) -> Option<String> {
    let r = app.post("/api/login?cookie=true", json!({"username": username, "password": password})).await;
    assert_eq!(r.status(), 200, "browser sign-in of {username}");
    device_cookie(&r)
}

/// Changes the runtime settings through the admin API of `app`.
async fn tune(app: &TestApp, rate_limit: Value) {
    let r = app.patch_auth("/api/info", app.operator(), json!({ "rate_limit": rate_limit })).await;
    assert_eq!(r.status(), 200, "settings accepted");
}

/// `n` wrong guesses for `username`, spread over `apps` in turn; each must be a 401.
async fn wrong_guesses(apps: &[&TestApp], username: &str, n: usize) {
    for i in 0..n {
        let app = apps[i % apps.len()];
        expect_error(attempt(app, username, WRONG, None).await, 401, "invalid_credentials").await;
    }
}

#[tokio::test]
async fn two_instances_allow_exactly_the_threshold_in_total() {
    let a = TestApp::spawn_with(OPEN_BUCKETS).await;
    let b = a.spawn_peer().await;
    a.register("pat", PASSWORD).await;
    // Five wrong guesses in all (the default threshold), three through A and two through B.
    wrong_guesses(&[&a, &b], "pat", 5).await;
    // Then the first back-off (one second): the right password is refused too (no oracle),
    // through either instance, with any spelling of the name, JSON or form.
    expect_429(attempt(&b, "pat", PASSWORD, None).await).await;
    expect_429(attempt(&a, " PAT ", PASSWORD, None).await).await;
    let r = b.client.post(b.url("/login")).form(&[("username", "Pat"), ("password", PASSWORD)]).send().await.unwrap();
    expect_429(r).await;
}

#[tokio::test]
async fn the_count_survives_a_restart() {
    let app = TestApp::spawn_with(OPEN_BUCKETS).await;
    app.register("quinn", PASSWORD).await;
    wrong_guesses(&[&app], "quinn", 3).await;
    let app = app.restart().await;
    wrong_guesses(&[&app], "quinn", 2).await;
    expect_429(attempt(&app, "quinn", PASSWORD, None).await).await;
}

#[tokio::test]
async fn the_hourly_cap_holds_across_instances() {
    let a = TestApp::spawn_with(OPEN_BUCKETS).await;
    let b = a.spawn_peer().await;
    a.register("rosa", PASSWORD).await;
    // No exponential back-off within reach: only the hourly cap stops the guessing.
    for app in [&a, &b] {
        tune(app, json!({"lockout_threshold": 1000, "max_failures_per_hour": 6})).await;
    }
    wrong_guesses(&[&a, &b], "rosa", 6).await;
    for app in [&a, &b] {
        let retry = expect_429(attempt(app, "rosa", PASSWORD, None).await).await;
        assert!(retry > 3000, "the cap lasts until the first failure leaves the hour: {retry}");
    }
}

/// Fires `per_round` wrong guesses at once for each of `rounds` fresh accounts, alternately
/// through `a` and `b`, and checks that no more than the threshold (5) got through before
/// the back-off: past it, the k-th further guess needs `2^k - 1` seconds of back-off, so a
/// round that took `t` seconds can let at most `log2(t + 1)` more through (none within a
/// second). Every other answer is a 429.
pub(crate) async fn race_to_the_threshold(a: &TestApp, b: &TestApp, rounds: usize, per_round: usize) {
    for round in 0..rounds {
        let name = format!("racer{round}");
        a.register(&name, PASSWORD).await;
        let mut set = tokio::task::JoinSet::new();
        let start = Instant::now();
        for i in 0..per_round {
            let (client, url) = if i % 2 == 0 {
                (a.client.clone(), a.url("/api/login"))
            } else {
                (b.client.clone(), b.url("/api/login"))
            };
            let body = json!({"username": name, "password": WRONG});
            set.spawn(async move { client.post(url).json(&body).send().await.expect("request").status().as_u16() });
        }
        let statuses = set.join_all().await;
        let elapsed = start.elapsed().as_secs_f64();
        let through = statuses.iter().filter(|s| **s == 401).count();
        let refused = statuses.iter().filter(|s| **s == 429).count();
        assert_eq!(through + refused, per_round, "only 401 and 429: {statuses:?}");
        let extra = (elapsed + 1.0).log2().floor() as usize;
        assert!(
            (5..=5 + extra).contains(&through),
            "round {round}: {through} wrong guesses got through in {elapsed:.2} s (threshold 5, at most {extra} more)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_wrong_guesses_through_two_instances_stop_at_the_threshold() {
    let a = TestApp::spawn_with(OPEN_BUCKETS).await;
    let b = a.spawn_peer().await;
    race_to_the_threshold(&a, &b, 4, 60).await;
}

#[tokio::test]
async fn a_stranger_hammering_the_account_cannot_keep_the_owner_out_of_a_recognised_browser() {
    let a = TestApp::spawn_with(OPEN_BUCKETS).await;
    let b = a.spawn_peer().await;
    a.register("sara", PASSWORD).await;
    let device = sign_in_browser(&a, "sara", PASSWORD).await;
    // The hourly cap at the threshold: once the stranger has had their five guesses the
    // account-wide record refuses for an hour, however long this test takes.
    for app in [&a, &b] {
        tune(app, json!({"max_failures_per_hour": 5})).await;
    }
    // The attacker comes from the very same address: only the device cookie tells them apart.
    let mut statuses = Vec::new();
    for i in 0..20 {
        let app = if i % 2 == 0 { &a } else { &b };
        statuses.push(attempt(app, "sara", WRONG, None).await.status().as_u16());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 5, "{statuses:?}");
    expect_429(attempt(&a, "sara", PASSWORD, None).await).await;
    // The owner's browser gets in, through either instance, as often as it likes.
    for app in [&a, &b, &a] {
        let r = attempt(app, "sara", PASSWORD, device.as_deref()).await;
        assert_eq!(r.status(), 200, "the owner's browser is recognised");
    }
    // ... while the stranger stays refused, right password or not.
    expect_429(attempt(&b, "sara", PASSWORD, None).await).await;
}

#[tokio::test]
async fn forged_tampered_and_foreign_device_cookies_are_not_recognised() {
    let app = TestApp::spawn_with(OPEN_BUCKETS).await;
    let tess = app.register("tess", PASSWORD).await;
    app.register("mallory", PASSWORD).await;
    let genuine = sign_in_browser(&app, "tess", PASSWORD).await.expect("a device cookie");
    let foreign = sign_in_browser(&app, "mallory", PASSWORD).await.expect("a device cookie");
    tune(&app, json!({"max_failures_per_hour": 5})).await;
    wrong_guesses(&[&app], "tess", 5).await;
    let (signed, tag) = genuine.rsplit_once('.').expect("value.mac");
    let (id, _) = signed.split_once('.').expect("id.accounts");
    let mallory_id = foreign.split('.').nth(1).expect("accounts").to_owned();
    let tess_id = tess["user"]["id"].as_str().expect("user id");
    let flipped = format!("{}{}", if tag.starts_with('A') { 'B' } else { 'A' }, &tag[1..]);
    // A cookie minted with another server's key, for the right account.
    let other_key = gatepass::auth::device::DeviceCookies::new(b"another server's secret, 32+ bytes");
    for bad in [
        format!("{signed}.{flipped}"),
        format!("{id}.{mallory_id}.{tag}"),
        format!("{id}.{tess_id}~{mallory_id}.{tag}"),
        foreign.clone(),
        other_key.remember(None, tess_id),
        "forged".to_owned(),
    ] {
        expect_429(attempt(&app, "tess", PASSWORD, Some(&bad)).await).await;
    }
    // The genuine one still works.
    assert_eq!(attempt(&app, "tess", PASSWORD, Some(&genuine)).await.status(), 200);
}

#[tokio::test]
async fn a_stolen_device_cookie_has_its_own_backoff_and_counts_in_the_accounts_hour() {
    let app = TestApp::spawn_with(OPEN_BUCKETS).await;
    app.register("uma", PASSWORD).await;
    tune(&app, json!({"lockout_threshold": 3, "max_failures_per_hour": 5})).await;
    let stolen = sign_in_browser(&app, "uma", PASSWORD).await.expect("a device cookie");
    let owners = sign_in_browser(&app, "uma", PASSWORD).await.expect("a device cookie");
    // The thief's guesses with the stolen cookie back off after the threshold, like anyone's.
    for _ in 0..3 {
        expect_error(attempt(&app, "uma", WRONG, Some(&stolen)).await, 401, "invalid_credentials").await;
    }
    expect_429(attempt(&app, "uma", PASSWORD, Some(&stolen)).await).await;
    // Its failures count in the account's hour: strangers get the two that are left.
    wrong_guesses(&[&app], "uma", 2).await;
    let retry = expect_429(attempt(&app, "uma", WRONG, None).await).await;
    assert!(retry > 3000, "the hourly cap is reached: {retry}");
    // A device that is itself backing off is held to the account's hour as well.
    let retry = expect_429(attempt(&app, "uma", WRONG, Some(&stolen)).await).await;
    assert!(retry > 3000, "{retry}");
    // The owner's other browser, with no failure of its own, still gets in.
    assert_eq!(attempt(&app, "uma", PASSWORD, Some(&owners)).await.status(), 200);
}

#[tokio::test]
async fn the_device_cookie_is_long_lived_http_only_and_set_only_with_cookie_delivery() {
    let app = TestApp::spawn().await;
    app.register("vera", PASSWORD).await;
    let r = app.post("/api/login?cookie=true", json!({"username": "vera", "password": PASSWORD})).await;
    let device = set_cookie(&r, "device").expect("cookie-mode login sets the device cookie");
    for attribute in ["Path=/;", "Max-Age=15552000", "SameSite=Lax", "HttpOnly"] {
        assert!(device.contains(attribute), "{attribute} in {device}");
    }
    assert!(!device.contains("Secure") && !device.contains("Domain="), "{device}");
    // JSON clients that take the tokens in the body get no cookie at all.
    let r = app.post("/api/login", json!({"username": "vera", "password": PASSWORD})).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("set-cookie").is_none());
    // The login form sets it too, keeping the browser's device id.
    let r = app
        .client
        .post(app.url("/ui/login"))
        .header("origin", "null")
        .header("sec-fetch-site", "same-origin")
        .header("cookie", format!("device={}", cookie_value(&device)))
        .form(&[("username", "vera"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let again = cookie_value(&set_cookie(&r, "device").expect("the form login sets it"));
    assert_eq!(again.split('.').next(), cookie_value(&device).split('.').next(), "same device id");

    let secure = TestApp::spawn_with(&["--cookie-secure", "true"]).await;
    secure.register("wren", PASSWORD).await;
    let r = secure.post("/api/login?cookie=true", json!({"username": "wren", "password": PASSWORD})).await;
    let device = set_cookie(&r, "__Host-device").expect("__Host- name with secure cookies");
    assert!(device.contains("Secure") && device.contains("Path=/;"), "{device}");
    assert!(set_cookie(&r, "device").is_none());
}
