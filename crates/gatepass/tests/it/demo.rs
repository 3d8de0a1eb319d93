//! `gatepass demo` walks the whole flow against a live server and succeeds; against a
//! server that misbehaves (here: nothing listening) it fails.

use crate::common::TestApp;

#[tokio::test]
async fn demo_walkthrough_passes_against_a_live_server() {
    let app = TestApp::spawn().await;
    gatepass::demo::run(&app.base, None).await.expect("every demo step behaves");
}

/// With the operator token the demo also reads `/info` and leaves no account behind.
#[tokio::test]
async fn demo_with_the_operator_token_cleans_up_after_itself() {
    let app = TestApp::spawn().await;
    gatepass::demo::run(&app.base, Some(app.operator())).await.expect("every demo step behaves");
    let users: serde_json::Value = app.get_auth("/api/admin/users", app.operator()).await.json().await.unwrap();
    assert_eq!(users["users"].as_array().map(Vec::len), Some(0), "the demo account was removed: {users}");
    let audit: serde_json::Value =
        app.get_auth("/api/admin/audit?event=user_deleted", app.operator()).await.json().await.unwrap();
    assert!(audit.to_string().contains("user_deleted"), "{audit}");
}

#[tokio::test]
async fn demo_fails_when_a_step_misbehaves() {
    let app = TestApp::spawn_with(&["--registration-open", "false"]).await;
    let err = gatepass::demo::run(&app.base, None).await.expect_err("registration is closed");
    assert!(err.to_string().contains("Register"), "{err}");
}
