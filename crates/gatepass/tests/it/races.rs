//! Races between issuing an access token for a session and revoking that session, fired
//! together hundreds of times over HTTP (on whichever backend `GATEPASS_TEST_BACKEND`
//! selects). The invariant: no token handed out outlives its session's revocation, so a
//! logout, demotion or disable can never be undone by a token minted at the same moment.

use crate::common::{TestApp, s};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use std::collections::HashMap;

const ROUNDS: usize = 200;

/// `(sid, exp)` of an access token.
fn sid_and_exp(token: &str) -> (String, i64) {
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64")).expect("json");
    (claims["sid"].as_str().expect("sid").to_owned(), claims["exp"].as_i64().expect("exp"))
}

/// Every token whose session is revoked has a denylist entry that outlives it.
async fn assert_no_token_outlives_its_revocation(app: &TestApp, tokens: &[String]) -> usize {
    let until: HashMap<String, i64> =
        app.storage.live_revocations(0).await.expect("revocations").into_iter().map(|r| (r.sid, r.until)).collect();
    let mut revoked = 0;
    for token in tokens {
        let (sid, exp) = sid_and_exp(token);
        let session = app.storage.session(&sid).await.expect("read").expect("session exists");
        if session.revoked_at.is_some() {
            revoked += 1;
            let entry = until.get(&sid).copied();
            assert!(
                entry.is_some_and(|u| u >= exp),
                "session {sid}: token expires at {exp}, denylisted until {entry:?}"
            );
            assert_eq!(app.get_auth("/api/profile", token).await.status(), 401, "a revoked session's token works");
        }
    }
    revoked
}

async fn spawn() -> TestApp {
    TestApp::spawn_with(&["--rate-limit", "false", "--access-token-ttl", "60s"]).await
}

/// Sessions start with one-minute access tokens, then the lifetime goes up to fifteen: a
/// token minted in the race expires long after the ones the session held before, so a
/// revocation that read the old expiry would end before it.
async fn lengthen_access_tokens(app: &TestApp) {
    let r = app.patch_auth("/api/info", app.operator(), json!({ "access_token_ttl": 900 })).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refresh_racing_logout_never_outlives_the_logout() {
    let app = spawn().await;
    app.register("racer", "a-long-password").await;
    let mut grants = Vec::new();
    for _ in 0..ROUNDS {
        let grant = app.login("racer", "a-long-password").await;
        grants.push((s(&grant, "access_token").to_owned(), s(&grant, "refresh_token").to_owned()));
    }
    lengthen_access_tokens(&app).await;
    let mut issued = Vec::new();
    for (access, refresh) in grants {
        let (refreshed, logout) = tokio::join!(
            app.post("/api/refresh", json!({ "refresh_token": refresh })),
            app.post_auth("/api/logout", &access, json!({})),
        );
        assert_eq!(logout.status(), 200);
        if refreshed.status() == 200 {
            let body: Value = refreshed.json().await.expect("json");
            issued.push(s(&body, "access_token").to_owned());
        }
    }
    let revoked = assert_no_token_outlives_its_revocation(&app, &issued).await;
    assert_eq!(revoked, issued.len(), "every session was logged out");
}

/// `?cookie=true` login: the `Cookie` header and the CSRF token of the new browser session.
pub(crate) async fn cookie_login(app: &TestApp, username: &str, password: &str) -> (String, String) {
    let r = app.post("/api/login?cookie=true", json!({ "username": username, "password": password })).await;
    assert_eq!(r.status(), 200);
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect();
    let csrf = cookies.iter().find_map(|c| c.strip_prefix("csrf_token=")).expect("csrf cookie").to_owned();
    (cookies.join("; "), csrf)
}

/// Step-up (`POST /ui/reauth`) from the browser session `cookie`.
pub(crate) async fn reauth(app: &TestApp, cookie: &str, csrf: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/ui/reauth"))
        .header("cookie", cookie)
        .header("origin", "null")
        .header("sec-fetch-site", "same-origin")
        .form(&[("csrf_token", csrf), ("password", password)])
        .send()
        .await
        .expect("request")
}

/// The JWT among a response's `Set-Cookie` values.
fn access_cookie(r: &reqwest::Response) -> Option<String> {
    r.headers().get_all("set-cookie").iter().find_map(|v| {
        let value = v.to_str().ok()?.split(';').next()?.split_once('=')?.1;
        (value.split('.').count() == 3).then(|| value.to_owned())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn step_up_racing_a_demotion_never_outlives_the_demotion() {
    let app = spawn().await;
    // One admin per round: a demotion ends every session of its account.
    let mut admins = Vec::new();
    for i in 0..ROUNDS {
        let name = format!("boss{i}");
        let body = json!({ "username": name, "password": "a-long-password", "roles": ["admin"] });
        let created: Value = app.post_auth("/api/admin/users", app.operator(), body).await.json().await.expect("json");
        let user = format!("/api/admin/users/{}", created["user"]["id"].as_str().expect("id"));
        admins.push((user, cookie_login(&app, &name, "a-long-password").await));
    }
    lengthen_access_tokens(&app).await;
    let mut issued = Vec::new();
    for (user, (cookie, csrf)) in admins {
        let reauth = reauth(&app, &cookie, &csrf, "a-long-password");
        let demote = app.patch_auth(&user, app.operator(), json!({ "roles": [] }));
        let (reauth, demote) = tokio::join!(reauth, demote);
        assert_eq!(demote.status(), 200);
        if let Some(token) = access_cookie(&reauth) {
            issued.push(token);
        }
    }
    assert_no_token_outlives_its_revocation(&app, &issued).await;
    // A step-up that read the account after the demotion gets a live session without the
    // admin role; one that read it before is refused or ended by the demotion.
    for token in &issued {
        let status = app.get_auth("/api/admin/users", token).await.status();
        assert!(matches!(status.as_u16(), 401 | 403), "a demoted admin's token works: {status}");
    }
}

/// Step-up replaces the session (a new id); racing it against a logout of the old session
/// must leave either nothing (the logout won, the step-up is refused) or exactly the new
/// session, whose token the client got: never a live session nobody holds, and never a
/// token for the ended one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn step_up_racing_a_logout_of_its_session_leaves_one_outcome() {
    let app = spawn().await;
    let reg = app.register("stepper", "a-long-password").await;
    let id = s(&reg["user"], "id").to_owned();
    assert_eq!(app.post_auth("/api/logout", s(&reg, "access_token"), json!({})).await.status(), 200);
    let mut browsers = Vec::new();
    for _ in 0..ROUNDS {
        browsers.push(cookie_login(&app, "stepper", "a-long-password").await);
    }
    lengthen_access_tokens(&app).await;
    let mut issued = Vec::new();
    for (cookie, csrf) in &browsers {
        let old = cookie.split("; ").find_map(|c| c.strip_prefix("session=")).expect("access cookie").to_owned();
        let (stepped, logout) =
            tokio::join!(reauth(&app, cookie, csrf, "a-long-password"), app.post_auth("/api/logout", &old, json!({})),);
        assert!(matches!(logout.status().as_u16(), 200 | 401), "logout: {}", logout.status());
        assert_eq!(app.get_auth("/api/profile", &old).await.status(), 401, "the replaced session lives on");
        match access_cookie(&stepped) {
            Some(token) => {
                assert_eq!(stepped.status(), 303);
                assert_ne!(sid_and_exp(&token).0, sid_and_exp(&old).0, "step-up kept the session id");
                issued.push(token);
            }
            // Refused (the form again, or a redirect to sign in when the logout came first).
            None => assert_ne!(
                stepped.headers().get("location").and_then(|l| l.to_str().ok()),
                Some("/?notice=reauthed"),
                "a step-up succeeded without a new session"
            ),
        }
    }
    let live = app.storage.live_sessions(&id, gatepass::domain::clock::now()).await.expect("read");
    assert_eq!(live.len(), issued.len(), "live sessions other than the ones handed out");
    for token in &issued {
        assert_eq!(app.get_auth("/api/profile", token).await.status(), 200, "a step-up token was refused");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn password_change_racing_a_disable_leaves_no_live_session() {
    let app = spawn().await;
    let reg = app.register("mover", "password-number-0").await;
    let id = s(&reg["user"], "id").to_owned();
    let user = format!("/api/admin/users/{id}");
    let (mut password, mut issued) = (0, Vec::new());
    for _ in 0..ROUNDS {
        let r = app.patch_auth(&user, app.operator(), json!({ "disabled": false })).await;
        assert_eq!(r.status(), 200);
        let current = format!("password-number-{password}");
        let next = format!("password-number-{}", password + 1);
        let grant = app.login("mover", &current).await;
        let access = s(&grant, "access_token").to_owned();
        let change = json!({ "current_password": current, "new_password": next });
        let (changed, disabled) = tokio::join!(
            app.post_auth("/api/password", &access, change),
            app.patch_auth(&user, app.operator(), json!({ "disabled": true })),
        );
        assert_eq!(disabled.status(), 200);
        // The password may have changed even when the new session was refused.
        if is_password(&app, &next).await {
            password += 1;
        }
        if changed.status() == 200 {
            let body: Value = changed.json().await.expect("json");
            issued.push(s(&body, "access_token").to_owned());
        }
        let live = app.storage.live_sessions(&id, gatepass::domain::clock::now()).await.expect("read");
        assert!(live.is_empty(), "a disabled account kept a live session: {live:?}");
    }
    let revoked = assert_no_token_outlives_its_revocation(&app, &issued).await;
    assert_eq!(revoked, issued.len());
}

/// Whether `password` is the account's password now, as the stored hash says.
async fn is_password(app: &TestApp, password: &str) -> bool {
    let user = app.storage.user_by_username("mover").await.expect("read").expect("user");
    let pw = gatepass::domain::Password::parse_existing(password, "password").expect("length");
    let verdict = app.state.service.core().hasher().verify(&pw, Some(&user.password_hash)).await.expect("verify");
    !matches!(verdict, gatepass::auth::passwords::Verified::No)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_password_changes_racing_from_one_password_at_most_one_wins() {
    const RACERS: usize = 10;
    let app = spawn().await;
    app.register("changer", "password-gen-0").await;
    let mut current = "password-gen-0".to_owned();
    for round in 0..ROUNDS / RACERS {
        let grant = app.login("changer", &current).await;
        let access = s(&grant, "access_token").to_owned();
        let mut set = tokio::task::JoinSet::new();
        for i in 0..RACERS {
            let body = json!({ "current_password": current, "new_password": format!("password-gen-{round}-{i}") });
            let request = app.client.post(app.url("/api/password")).bearer_auth(&access).json(&body);
            set.spawn(async move { (i, request.send().await.expect("request").status().as_u16()) });
        }
        let mut statuses = vec![0; RACERS];
        while let Some(done) = set.join_next().await {
            let (i, status) = done.expect("task");
            statuses[i] = status;
        }
        let winners: Vec<usize> = (0..RACERS).filter(|i| statuses[*i] == 200).collect();
        assert!(winners.len() <= 1, "round {round}: {statuses:?}");
        assert!(statuses.iter().all(|s| [200, 401].contains(s)), "round {round}: {statuses:?}");
        if let Some(i) = winners.first() {
            current = format!("password-gen-{round}-{i}");
        }
        // Exactly the winner's password (or the old one, if none won) opens the account.
        app.login("changer", &current).await;
        let live = app.storage.live_sessions(s(&grant["user"], "id"), gatepass::domain::clock::now()).await;
        assert!(live.expect("read").len() <= 2, "the losers started no sessions");
    }
}
