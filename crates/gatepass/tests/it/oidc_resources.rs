//! Resource indicators (RFC 8707) at the authorization and token endpoints: the access
//! token's `aud` is the resource asked for (one the client is allowed), else the client's
//! default; every bad `resource` is `invalid_target` and changes nothing.

use reqwest::header::LOCATION;
use serde_json::{Value, json};

use crate::common::{TestApp, s};
use crate::mfa::claims;
use crate::oidc::{REDIRECT, authorize, code_params, exchange, oauth_error, query, register, signed_in, token};

const DEFAULT: &str = "https://api.example.com";
const REPORTS: &str = "https://reports.example.com/v1";
const BILLING: &str = "urn:example:billing";

/// Inputs that are never a resource this client may have: not absolute, a fragment, not
/// allowed, another client's.
const BAD: &[&str] = &["reports", "/v1", "https://reports.example.com/v1#x", "https://evil.example.com", "urn:x:y"];

/// A first-party web client allowed `DEFAULT` (its default audience), `REPORTS` and `BILLING`.
async fn web_client(app: &TestApp) -> (String, String) {
    let c = register(
        app,
        json!({
            "client_name": "Web app",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid offline_access",
            "first_party": true,
            "resource": DEFAULT,
            "resources": [REPORTS, BILLING],
        }),
    )
    .await;
    assert_eq!(c["resources"], json!([REPORTS, BILLING]));
    (s(&c, "client_id").to_owned(), s(&c, "client_secret").to_owned())
}

/// A code for the client, with `extra` authorization parameters.
async fn code_with(app: &TestApp, session: &str, client_id: &str, extra: &[(&str, &str)]) -> String {
    let mut params = code_params(client_id, "openid offline_access");
    params.extend_from_slice(extra);
    let r = authorize(app, Some(session), &params).await;
    assert_eq!(r.status(), 303);
    let q = query(r.headers()[LOCATION].to_str().unwrap());
    q.get("code").cloned().unwrap_or_else(|| panic!("no code: {q:?}"))
}

async fn tokens(r: reqwest::Response) -> Value {
    assert_eq!(r.status(), 200, "token request");
    r.json().await.unwrap()
}

fn aud(tokens: &Value) -> Value {
    claims(s(tokens, "access_token"))["aud"].clone()
}

#[tokio::test]
async fn the_resource_of_the_authorization_request_is_the_audience_through_refreshes() {
    let app = TestApp::spawn_provider(&[]).await;
    let (id, secret) = web_client(&app).await;
    let session = signed_in(&app, "rhea").await;

    // Without a resource: the client's default.
    let plain = tokens(exchange(&app, &id, &secret, &code_with(&app, &session, &id, &[]).await).await).await;
    assert_eq!(aud(&plain), DEFAULT);

    let code = code_with(&app, &session, &id, &[("resource", REPORTS)]).await;
    let first = tokens(exchange(&app, &id, &secret, &code).await).await;
    assert_eq!(aud(&first), REPORTS);
    // The ID token stays the client's.
    assert_eq!(claims(s(&first, "id_token"))["aud"], id.as_str());

    // A refresh keeps the resource; naming another one (even one the client may have) is
    // refused and leaves the refresh token usable.
    let rt = s(&first, "refresh_token");
    for other in [BILLING, DEFAULT].iter().chain(BAD) {
        let r =
            token(&app, &id, &secret, &[("grant_type", "refresh_token"), ("refresh_token", rt), ("resource", other)])
                .await;
        oauth_error(r, 400, "invalid_target").await;
    }
    let second =
        tokens(token(&app, &id, &secret, &[("grant_type", "refresh_token"), ("refresh_token", rt)]).await).await;
    assert_eq!(aud(&second), REPORTS);
    let rt2 = s(&second, "refresh_token");
    let form = [("grant_type", "refresh_token"), ("refresh_token", rt2), ("resource", REPORTS)];
    assert_eq!(aud(&tokens(token(&app, &id, &secret, &form).await).await), REPORTS);
}

#[tokio::test]
async fn a_bad_resource_in_the_authorization_request_goes_back_as_invalid_target() {
    let app = TestApp::spawn_provider(&[]).await;
    let (id, _) = web_client(&app).await;
    let session = signed_in(&app, "rita").await;
    for bad in BAD {
        let mut params = code_params(&id, "openid");
        params.push(("resource", bad));
        let r = authorize(&app, Some(&session), &params).await;
        assert_eq!(r.status(), 303, "{bad}");
        let q = query(r.headers()[LOCATION].to_str().unwrap());
        assert_eq!(q["error"], "invalid_target", "{bad}");
        assert_eq!(q["state"], "xyz");
        assert_eq!(q["iss"], app.base);
        assert!(!q.contains_key("code"));
    }
}

#[tokio::test]
async fn the_token_request_may_name_a_resource_and_must_match_the_authorized_one() {
    let app = TestApp::spawn_provider(&[]).await;
    let (id, secret) = web_client(&app).await;
    let session = signed_in(&app, "rosa").await;
    let with = |code: &str, resource: &str| {
        let code = code.to_owned();
        let resource = resource.to_owned();
        let (id, secret) = (id.clone(), secret.clone());
        let app = &app;
        async move {
            let form = [
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
                ("code_verifier", crate::oidc::VERIFIER),
                ("resource", resource.as_str()),
            ];
            token(app, &id, &secret, &form).await
        }
    };

    // A code for REPORTS: another resource (or a bad one) is refused and the code survives.
    let code = code_with(&app, &session, &id, &[("resource", REPORTS)]).await;
    for other in [BILLING].iter().chain(BAD) {
        oauth_error(with(&code, other).await, 400, "invalid_target").await;
    }
    assert_eq!(aud(&tokens(with(&code, REPORTS).await).await), REPORTS);

    // A code without a resource: the token request picks one of the client's.
    let code = code_with(&app, &session, &id, &[]).await;
    for bad in BAD {
        oauth_error(with(&code, bad).await, 400, "invalid_target").await;
    }
    let t = tokens(with(&code, BILLING).await).await;
    assert_eq!(aud(&t), BILLING);
    // ... and the grant is now for that resource.
    let form = [("grant_type", "refresh_token"), ("refresh_token", s(&t, "refresh_token"))];
    assert_eq!(aud(&tokens(token(&app, &id, &secret, &form).await).await), BILLING);
}

#[tokio::test]
async fn client_credentials_tokens_for_a_resource() {
    let app = TestApp::spawn_provider(&[]).await;
    let c = register(
        &app,
        json!({
            "client_name": "Billing job",
            "grant_types": ["client_credentials"],
            "scope": "reports:read",
            "resources": [REPORTS],
        }),
    )
    .await;
    let (id, secret) = (s(&c, "client_id"), s(&c, "client_secret"));
    let cc = |resource: Option<&'static str>| {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(r) = resource {
            form.push(("resource", r));
        }
        let app = &app;
        async move { token(app, id, secret, &form).await }
    };
    assert_eq!(aud(&tokens(cc(None).await).await), id);
    assert_eq!(aud(&tokens(cc(Some(REPORTS)).await).await), REPORTS);
    for bad in BAD.iter().chain(&[DEFAULT]) {
        oauth_error(cc(Some(bad)).await, 400, "invalid_target").await;
    }

    // Taking a resource off the client stops tokens for it at once.
    let r = app.patch_auth(&format!("/api/admin/clients/{id}"), app.operator(), json!({ "resources": [] })).await;
    assert_eq!(r.status(), 200);
    oauth_error(cc(Some(REPORTS)).await, 400, "invalid_target").await;
}

#[tokio::test]
async fn a_client_s_resources_must_be_absolute_uris_without_fragments() {
    let app = TestApp::spawn_provider(&[]).await;
    for bad in [json!(["reports"]), json!(["https://a.example/#f"]), json!([""]), json!(["https://a.example/ x"])] {
        let meta = json!({ "client_name": "X", "grant_types": ["client_credentials"], "resources": bad });
        let r = app.post_auth("/api/admin/clients", app.operator(), meta).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
}
