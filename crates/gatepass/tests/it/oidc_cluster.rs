//! The OAuth provider as two instances on one PostgreSQL database behind nginx (configured
//! by `docs/nginx.conf`), the issuer being the balancer's URL: a code issued by one
//! instance is redeemed at the other (and its replay detected back at the first), the
//! whole flow works through the balancer, and a refresh token rotated at one instance is
//! detected as reused at the other, which ends the grant everywhere.
//!
//! Needs `GATEPASS_TEST_POSTGRES_URL` and an `nginx` binary; prints SKIPPED otherwise.

use reqwest::header::LOCATION;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

use crate::common::pg::{TestDb, admin_url};
use crate::common::{MASTER_KEY, TestApp, s};
use crate::mfa::claims;
use crate::multi_instance::{Nginx, free_port, nginx_binary, wait_healthy};
use crate::oidc::{REDIRECT, code_params, exchange, oauth_error, query, register, signed_in, token};

fn port_of(base: &str) -> u16 {
    base.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port in the base URL")
}

/// A code from `base`'s authorization endpoint for the browser holding `session`.
async fn code_at(http: &reqwest::Client, base: &str, session: &str, client_id: &str, issuer: &str) -> String {
    let mut url = reqwest::Url::parse(&format!("{base}/oauth/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs(code_params(client_id, "openid offline_access").iter());
    let r = http.get(url).header("Cookie", format!("session={session}")).send().await.unwrap();
    assert_eq!(r.status(), 303, "authorize at {base}");
    let q = query(r.headers()[LOCATION].to_str().unwrap());
    assert_eq!(q["iss"], issuer, "every instance answers as the one issuer");
    q["code"].clone()
}

async fn ok_json(r: reqwest::Response) -> Value {
    assert_eq!(r.status(), 200, "token request");
    r.json().await.unwrap()
}

/// Waits until `base` answers `status` to userinfo with `access` (revocation propagation).
async fn userinfo_becomes(http: &reqwest::Client, base: &str, access: &str, status: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = http.get(format!("{base}/oauth/userinfo")).bearer_auth(access).send().await.unwrap();
        if r.status() == status {
            return;
        }
        assert!(Instant::now() < deadline, "{base} still answers {} to userinfo", r.status());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_behind_nginx_share_codes_and_refresh_tokens() {
    let Some(admin) = admin_url() else { return };
    let Some(nginx) = nginx_binary() else {
        eprintln!("SKIPPED oidc_cluster: nginx not installed");
        return;
    };
    let db = TestDb::create(&admin).await;
    let lb_port = free_port();
    let lb = format!("http://127.0.0.1:{lb_port}");
    let a = TestApp::spawn_on_database(&db.url, &["--issuer", &lb, "--master-key", MASTER_KEY]).await;
    let b = a.spawn_peer().await;
    let prefix = a.dir.path().join("nginx");
    std::fs::create_dir_all(&prefix).expect("nginx prefix");
    // docs/nginx.conf names three upstreams: the first instance takes the third place too.
    let _nginx = Nginx::start(&nginx, &prefix, lb_port, &[port_of(&a.base), port_of(&b.base), port_of(&a.base)]);
    let http = a.client.clone();
    wait_healthy(&http, &lb).await;

    let c = register(
        &a,
        json!({
            "client_name": "Web app",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid offline_access",
            "first_party": true,
        }),
    )
    .await;
    let (id, secret) = (s(&c, "client_id").to_owned(), s(&c, "client_secret").to_owned());
    let session = signed_in(&a, "nils").await;

    // Issued by A, redeemed at B; presented again at A: a replay, which revokes the grant.
    let code = code_at(&http, &a.base, &session, &id, &lb).await;
    let first = ok_json(exchange(&b, &id, &secret, &code).await).await;
    assert_eq!(claims(s(&first, "id_token"))["iss"], lb.as_str());
    oauth_error(exchange(&a, &id, &secret, &code).await, 400, "invalid_grant").await;
    let form = [("grant_type", "refresh_token"), ("refresh_token", s(&first, "refresh_token"))];
    oauth_error(token(&b, &id, &secret, &form).await, 400, "invalid_grant").await;
    userinfo_becomes(&http, &a.base, s(&first, "access_token"), 401).await;
    userinfo_becomes(&http, &b.base, s(&first, "access_token"), 401).await;

    // The whole flow through the balancer (whichever instance nginx picks for each step).
    let code = code_at(&http, &lb, &session, &id, &lb).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", crate::oidc::VERIFIER),
    ];
    let via_lb = http.post(format!("{lb}/oauth/token")).basic_auth(&id, Some(&secret)).form(&form).send().await;
    let grant = ok_json(via_lb.unwrap()).await;
    let r = http.get(format!("{lb}/oauth/userinfo")).bearer_auth(s(&grant, "access_token")).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // Rotated at A, presented again at B: reuse, and the grant ends on both instances.
    let rt = s(&grant, "refresh_token");
    let rotated =
        ok_json(token(&a, &id, &secret, &[("grant_type", "refresh_token"), ("refresh_token", rt)]).await).await;
    let reused = token(&b, &id, &secret, &[("grant_type", "refresh_token"), ("refresh_token", rt)]).await;
    oauth_error(reused, 400, "invalid_grant").await;
    let successor = [("grant_type", "refresh_token"), ("refresh_token", s(&rotated, "refresh_token"))];
    oauth_error(token(&a, &id, &secret, &successor).await, 400, "invalid_grant").await;
    for base in [&a.base, &b.base] {
        userinfo_becomes(&http, base, s(&rotated, "access_token"), 401).await;
    }
}
