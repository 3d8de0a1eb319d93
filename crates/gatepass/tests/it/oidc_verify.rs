//! `gatepass-verify` in a resource server that accepts the provider's access tokens: a real
//! gatepass issues `client_credentials` tokens, and a small axum service guarded by
//! `RequireScope` (its verifier loading the provider's JWKS, with the service's resource as
//! audience) admits exactly the tokens granted the scope for its resource.

use axum::Router;
use axum::extract::FromRef;
use axum::routing::get;
use gatepass_verify::extract::{OAuthAuthenticated, RequireScope, ScopeName};
use gatepass_verify::{RemoteJwksOptions, Verifier, VerifierConfig};
use serde_json::{Value, json};
use std::sync::Arc;

use crate::common::{TestApp, s};
use crate::oidc::{register, token};

const REPORTS: &str = "https://reports.example.com";

struct ReportsRead;
impl ScopeName for ReportsRead {
    const NAME: &'static str = "reports:read";
}

#[derive(Clone, FromRef)]
struct ServiceState {
    verifier: Arc<Verifier>,
}

async fn reports(scope: RequireScope<ReportsRead>) -> String {
    format!("reports for {}", scope.claims().client_id)
}

async fn whoami(OAuthAuthenticated(claims): OAuthAuthenticated) -> String {
    claims.scope
}

/// The resource server on a free port; its base URL.
async fn resource_server(verifier: Verifier) -> String {
    let app = Router::new()
        .route("/reports", get(reports))
        .route("/whoami", get(whoami))
        .with_state(ServiceState { verifier: Arc::new(verifier) });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

async fn cc_token(app: &TestApp, id: &str, secret: &str, form: &[(&str, &str)]) -> String {
    let mut f = vec![("grant_type", "client_credentials")];
    f.extend_from_slice(form);
    let r = token(app, id, secret, &f).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    s(&body, "access_token").to_owned()
}

#[tokio::test]
async fn require_scope_admits_provider_tokens_granted_the_scope_for_the_service() {
    let app = TestApp::spawn_provider(&[]).await;
    let c = register(
        &app,
        json!({
            "client_name": "Billing job",
            "grant_types": ["client_credentials"],
            "scope": "reports:read billing:write",
            "resources": [REPORTS],
        }),
    )
    .await;
    let (id, secret) = (s(&c, "client_id").to_owned(), s(&c, "client_secret").to_owned());

    let mut config = VerifierConfig::new(app.base.clone());
    config.audience = Some(REPORTS.into());
    let verifier = Verifier::from_jwks_url(&app.url("/.well-known/jwks.json"), config, RemoteJwksOptions::default())
        .await
        .expect("the provider's JWKS loads");
    let service = resource_server(verifier).await;
    let http = reqwest::Client::new();
    let call = |path: &'static str, token: Option<String>| {
        let mut req = http.get(format!("{service}{path}"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };

    let good = cc_token(&app, &id, &secret, &[("resource", REPORTS)]).await;
    let r = call("/reports", Some(good.clone())).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), format!("reports for {id}"));

    // Granted for the resource, but not the scope: 403 insufficient_scope naming it.
    let narrow = cc_token(&app, &id, &secret, &[("resource", REPORTS), ("scope", "billing:write")]).await;
    let r = call("/reports", Some(narrow.clone())).await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.headers()["www-authenticate"],
        r#"Bearer realm="gatepass", error="insufficient_scope", scope="reports:read""#
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "insufficient_scope");
    assert_eq!(call("/whoami", Some(narrow)).await.unwrap().text().await.unwrap(), "billing:write");

    // The scope, but for another audience (the client's default, its id): not this service's.
    let elsewhere = cc_token(&app, &id, &secret, &[]).await;
    let r = call("/reports", Some(elsewhere)).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().contains(r#"error="invalid_token""#));

    // gatepass's own session token is not a client token, even with the right issuer.
    let session = app.register("vera", "a-long-password").await;
    let r = call("/reports", Some(s(&session, "access_token").to_owned())).await.unwrap();
    assert_eq!(r.status(), 401);

    // No token, and a tampered one.
    let r = call("/reports", None).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], r#"Bearer realm="gatepass""#);
    let mut tampered = good.clone();
    tampered.pop();
    tampered.push(if good.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(call("/reports", Some(tampered)).await.unwrap().status(), 401);
}
