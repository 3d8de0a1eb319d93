//! Several instances on one database behave as one: tokens issued by one are accepted by
//! the others, and revocations and settings changes made through one are enforced by all.
//!
//! Each test runs two in-process servers on the same database: the same PostgreSQL
//! database with `GATEPASS_TEST_BACKEND=postgres`, otherwise the same SQLite file.

use crate::common::{TestApp, expect_error, s};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Polls `probe` until it returns true; panics after a generous deadline. Propagation is
/// expected well within a second; the deadline only keeps a loaded CI machine from
/// turning a slow run into a failure, and nothing here asserts timing.
async fn eventually<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    let deadline = start + Duration::from_secs(15);
    loop {
        if probe().await {
            // Informational only (see `cargo test -- --nocapture`); never asserted.
            eprintln!("{what}: after {} ms", start.elapsed().as_millis());
            return;
        }
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn pair() -> (TestApp, TestApp) {
    let a = TestApp::spawn().await;
    let b = a.spawn_peer().await;
    (a, b)
}

async fn status_on(app: &TestApp, token: &str) -> u16 {
    app.get_auth("/api/profile", token).await.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_work_across_instances_and_logout_is_enforced_everywhere() {
    let (a, b) = pair().await;
    let reg = a.register("alice", "password-1").await;
    let token = s(&reg, "token").to_owned();
    assert_eq!(status_on(&b, &token).await, 200, "a token issued by A is accepted by B");
    // Refresh through B, the access token it returns works on A.
    let r = b.post("/api/refresh", json!({"refresh_token": s(&reg, "refresh_token")})).await;
    assert_eq!(r.status(), 200);
    let refreshed: Value = r.json().await.expect("json");
    assert_eq!(status_on(&a, s(&refreshed, "token")).await, 200);

    let r = a.post_auth("/api/logout", &token, json!({})).await;
    assert!(r.status().is_success(), "logout: {}", r.status());
    expect_error(a.get_auth("/api/profile", &token).await, 401, "token_revoked").await;
    eventually("B refuses the logged-out token", || async { status_on(&b, &token).await == 401 }).await;
    expect_error(b.get_auth("/api/profile", &token).await, 401, "token_revoked").await;
    // The other access token of that session is refused too (revocation is by session).
    expect_error(b.get_auth("/api/profile", s(&refreshed, "token")).await, 401, "token_revoked").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn password_change_and_user_deletion_propagate() {
    let (a, b) = pair().await;
    let reg = a.register("bob", "password-1").await;
    let old = s(&reg, "token").to_owned();
    let r = a
        .post_auth("/api/password", &old, json!({"current_password": "password-1", "new_password": "password-2"}))
        .await;
    assert_eq!(r.status(), 200);
    let new: Value = r.json().await.expect("json");
    eventually("B refuses tokens of sessions ended by the password change", || async {
        status_on(&b, &old).await == 401
    })
    .await;
    let new_token = s(&new, "token").to_owned();
    assert_eq!(status_on(&b, &new_token).await, 200, "the new session works everywhere");

    // Deleting the account (admin action on A's storage, applied by A) reaches B.
    let storage = &a.storage;
    let user = storage.user_by_username("bob").await.expect("query").expect("bob");
    a.state.service.core().delete_user(&gatepass::service::Actor::cli(), &user).await.expect("delete");
    eventually("B refuses the deleted user's token", || async { status_on(&b, &new_token).await == 401 }).await;
    expect_error(b.get_auth("/api/profile", &new_token).await, 401, "token_invalid").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refresh_reuse_detected_on_one_instance_is_enforced_on_the_other() {
    let (a, b) = pair().await;
    let reg = a.register("carol", "password-1").await;
    let first = s(&reg, "refresh_token").to_owned();
    let r = a.post("/api/refresh", json!({"refresh_token": first})).await;
    assert_eq!(r.status(), 200);
    let second: Value = r.json().await.expect("json");
    let live = s(&second, "token").to_owned();
    // Rotate again so the first token is two generations old: reuse, whatever the grace.
    let r = a.post("/api/refresh", json!({"refresh_token": s(&second, "refresh_token")})).await;
    assert_eq!(r.status(), 200);
    expect_error(b.post("/api/refresh", json!({"refresh_token": first})).await, 401, "refresh_token_reused").await;
    eventually("A refuses tokens of the session B revoked", || async { status_on(&a, &live).await == 401 }).await;
    expect_error(a.get_auth("/api/profile", &live).await, 401, "token_revoked").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refresh_with_one_token_through_both_instances() {
    let (a, b) = pair().await;
    let reg = a.register("dora", "password-1").await;
    let token = s(&reg, "refresh_token").to_owned();
    let body = json!({"refresh_token": token});
    let (ra, rb) = tokio::join!(a.post("/api/refresh", body.clone()), b.post("/api/refresh", body.clone()));
    let (sa, sb) = (ra.status().as_u16(), rb.status().as_u16());
    // One rotation happened; the other request either replays the same successor (grace
    // window) or is refused — never two independent successors.
    assert!(sa == 200 || sb == 200, "statuses {sa} {sb}");
    let mut successors = Vec::new();
    for r in [ra, rb] {
        if r.status() == 200 {
            let v: Value = r.json().await.expect("json");
            successors.push(s(&v, "refresh_token").to_owned());
        }
    }
    successors.dedup();
    assert_eq!(successors.len(), 1, "exactly one successor chain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registration_of_one_name_through_both_instances() {
    let (a, b) = pair().await;
    for round in 0..5 {
        let name = format!("erin{round}");
        let upper = name.to_uppercase();
        let (ra, rb) = tokio::join!(
            a.post("/api/register", json!({"username": name, "password": "password-1"})),
            b.post("/api/register", json!({"username": upper, "password": "password-1"})),
        );
        let mut statuses = [ra.status().as_u16(), rb.status().as_u16()];
        statuses.sort();
        assert_eq!(statuses, [201, 409], "round {round}");
    }
    assert_eq!(a.storage.count_users().await.expect("count"), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn settings_changes_propagate() {
    let (a, b) = pair().await;
    a.register("frank", "password-1").await;
    // A settings write through A's storage (what the settings API persists); B must pick
    // it up without a restart.
    let storage = &a.storage;
    storage.put_settings(&[("registration_open".to_owned(), "false".to_owned())]).await.expect("put");
    eventually("B closes registration", || async { !b.state.service.settings().registration_open }).await;
    expect_error(
        b.post("/api/register", json!({"username": "grace", "password": "password-1"})).await,
        403,
        "registration_closed",
    )
    .await;
}

/// Many sessions refreshed at once through both instances, every token presented twice on
/// each: each instance commits the rotations waiting for it in one transaction, so two
/// instances' groups hold overlapping tokens in different orders. Every token still gets
/// exactly one successor, no request fails, and the audit chain stays linear.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn race_many_sessions_refreshed_through_both_instances_rotate_once_each() {
    // Unthrottled: 48 refreshes at once from one address are the point here.
    let a = TestApp::spawn_with(&["--rate-limit", "false"]).await;
    let b = a.spawn_peer().await;
    let mut tokens = Vec::new();
    for u in 0..4 {
        let name = format!("crowd{u}");
        a.register(&name, "password-1").await;
        for _ in 0..3 {
            tokens.push(s(&a.login(&name, "password-1").await, "refresh_token").to_owned());
        }
    }
    for round in 0..50 {
        let mut requests = Vec::new();
        for (i, token) in tokens.iter().enumerate() {
            for copy in 0..4 {
                // Alternate the order per token so the two groups meet them differently.
                let app = if (copy + i + round) % 2 == 0 { &a } else { &b };
                let body = json!({"refresh_token": token});
                requests.push(async move { (i, app.post("/api/refresh", body).await) });
            }
        }
        let mut successors: Vec<Vec<String>> = vec![Vec::new(); tokens.len()];
        for (i, r) in futures_util::future::join_all(requests).await {
            let status = r.status();
            let v: Value = r.json().await.expect("json");
            assert_eq!(
                status, 200,
                "round {round}, token {i}: every presentation within the grace window succeeds: {v}"
            );
            successors[i].push(s(&v, "refresh_token").to_owned());
        }
        for (i, mut found) in successors.into_iter().enumerate() {
            found.dedup();
            assert_eq!(found.len(), 1, "round {round}, token {i}: one successor, got {found:?}");
            tokens[i] = found.remove(0);
        }
    }
    let verdict: Value = a.get_auth("/api/admin/audit/verify", a.operator()).await.json().await.expect("json");
    assert_eq!(verdict["intact"], true, "{verdict}");
}
