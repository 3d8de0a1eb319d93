//! `gatepass demo` walks the whole flow against a live server and succeeds; against a
//! server that misbehaves (here: nothing listening) it fails.

use crate::common::TestApp;

#[tokio::test]
async fn demo_walkthrough_passes_against_a_live_server() {
    let app = TestApp::spawn().await;
    gatepass::demo::run(&app.base).await.expect("every demo step behaves");
}

#[tokio::test]
async fn demo_fails_when_a_step_misbehaves() {
    let app = TestApp::spawn_with(&["--registration-open", "false"]).await;
    let err = gatepass::demo::run(&app.base).await.expect_err("registration is closed");
    assert!(err.to_string().contains("Register"), "{err}");
}
