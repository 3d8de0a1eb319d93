//! Issue: asymmetric signing, JWKS, key rotation, algorithm confusion, introspection and
//! revocation — over HTTP against a real server, with the `gatepass-verify` library as the
//! client that caches the JWKS.

use crate::common::{self, SECRET, TestApp, expect_error, s};
use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use clap::Parser;
use gatepass::domain::Roles;
use gatepass_verify::{RemoteJwksOptions, Verifier, VerifierConfig, VerifyError};
use serde_json::{Value, json};
use std::time::Duration;

const PASSWORD: &str = "correct horse battery";

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn header_of(token: &str) -> Value {
    let h = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap()
}

fn claims_of(token: &str) -> Value {
    let p = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
}

/// A JWS over `header`/`claims` with a signature made by `sign`.
fn forge(header: &Value, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let sig = sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn hmac(secret: &[u8]) -> impl Fn(&[u8]) -> Vec<u8> {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    move |m| aws_lc_rs::hmac::sign(&key, m).as_ref().to_vec()
}

async fn remote_verifier(app: &TestApp, options: RemoteJwksOptions) -> Verifier {
    Verifier::from_jwks_url(&app.url("/.well-known/jwks.json"), VerifierConfig::new("gatepass"), options)
        .await
        .expect("JWKS loads")
}

async fn jwks(app: &TestApp) -> Value {
    app.get("/.well-known/jwks.json").await.json().await.unwrap()
}

#[tokio::test]
async fn each_algorithm_signs_with_a_kid_and_publishes_only_public_keys() {
    for (alg, kty) in [("EdDSA", "OKP"), ("ES256", "EC"), ("RS256", "RSA")] {
        let app = TestApp::spawn_with(&["--jwt-algorithm", alg]).await;
        let r = app.get("/.well-known/jwks.json").await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["cache-control"], "public, max-age=300", "{alg}");
        let set: Value = r.json().await.unwrap();
        let keys = set["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1, "{alg}: {set}");
        let key = &keys[0];
        assert_eq!(key["alg"], alg);
        assert_eq!(key["kty"], kty);
        assert_eq!(key["use"], "sig");
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(key.get(private).is_none(), "{alg} publishes `{private}`");
        }

        let body = app.register("alice", PASSWORD).await;
        let token = s(&body, "access_token");
        let header = header_of(token);
        assert_eq!(header["alg"], alg);
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(header["kid"], key["kid"]);
        assert_eq!(app.get_auth("/api/profile", token).await.status(), 200, "{alg}");

        // A service that only knows the JWKS URL verifies the token.
        let verifier = remote_verifier(&app, RemoteJwksOptions::default()).await;
        let claims = verifier.verify_access_async(token).await.expect("verifies through JWKS");
        assert_eq!(claims.username, "alice");

        let discovery: Value = app.get("/.well-known/openid-configuration").await.json().await.unwrap();
        assert_eq!(discovery["issuer"], "gatepass");
        assert_eq!(discovery["jwks_uri"], app.url("/.well-known/jwks.json"));
        assert_eq!(discovery["id_token_signing_alg_values_supported"], json!([alg]));

        // The private key is encrypted at rest; the master key file is private.
        let stored = gatepass::storage::KeyStore::signing_keys(app.storage.as_ref()).await.unwrap();
        assert_eq!(stored.len(), 1);
        let raw = STANDARD.decode(&stored[0].private_key).unwrap();
        assert!(Ed25519KeyPair::from_pkcs8(&raw).is_err());
        assert!(aws_lc_rs::rsa::KeyPair::from_pkcs8(&raw).is_err());
        assert!(signature::EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &raw).is_err());
        #[cfg(unix)]
        if app.db.is_none() {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(app.data_dir().join("master-key")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        // Keys survive a restart (same kid signs).
        let app = app.restart().await;
        let again = app.login("alice", PASSWORD).await;
        assert_eq!(header_of(s(&again, "access_token"))["kid"], key["kid"], "{alg}");
        assert_eq!(app.get_auth("/api/profile", token).await.status(), 200);
    }
}

#[tokio::test]
async fn hs256_mode_publishes_an_empty_key_set() {
    let app = TestApp::spawn().await;
    let r = app.get("/.well-known/jwks.json").await;
    assert_eq!(r.status(), 200);
    let set: Value = r.json().await.unwrap();
    assert_eq!(set, json!({ "keys": [] }));
    let body = app.register("alice", PASSWORD).await;
    assert_eq!(header_of(s(&body, "access_token"))["alg"], "HS256");
    assert!(header_of(s(&body, "access_token"))["kid"].is_string());
    let discovery: Value = app.get("/.well-known/openid-configuration").await.json().await.unwrap();
    assert_eq!(discovery["id_token_signing_alg_values_supported"], json!(["HS256"]));
}

/// Runs `gatepass keys …` in process, as an operator would on the data directory.
async fn cli(app: &TestApp, args: &[&str]) {
    let dir = app.data_dir();
    let mut argv = vec!["gatepass", "keys"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["--data-dir", dir.to_str().unwrap(), "--jwt-secret", SECRET]);
    if let Some(db) = &app.db {
        argv.extend_from_slice(&["--database-url", &db.url, "--master-key", common::MASTER_KEY]);
    }
    let parsed = gatepass::cli::Cli::try_parse_from(&argv).expect("valid command line");
    gatepass::cli::run(parsed).await.expect("command succeeds");
}

#[tokio::test]
async fn without_an_activation_delay_each_rotation_supersedes_the_last_even_within_a_second() {
    // Activation times are whole seconds; keys activating in the same one are ordered by
    // kid, so a rotation must not activate in the second of the key it replaces.
    let app = TestApp::spawn_with(&["--jwt-algorithm", "ES256", "--key-activation-delay", "0s"]).await;
    let mut last = String::new();
    for round in 0..6 {
        let r = app.post_auth("/api/admin/keys/rotate", app.operator(), json!({})).await;
        assert_eq!(r.status(), 201);
        let key: Value = r.json::<Value>().await.unwrap()["key"].clone();
        assert!(["pending", "active"].contains(&key["state"].as_str().unwrap()), "round {round}: {key}");
        last = s(&key, "kid").to_owned();
    }
    // The last one added is the one that signs, once its second has come.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let keys: Value = app.get_auth("/api/admin/keys", app.operator()).await.json().await.unwrap();
        let active: Vec<&str> =
            keys["keys"].as_array().unwrap().iter().filter(|k| k["state"] == "active").map(|k| s(k, "kid")).collect();
        if active == [last.as_str()] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "active {active:?}, last rotated {last}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn rotation_never_fails_a_verification_for_a_caching_client() {
    let app = TestApp::spawn_with(&[
        "--jwt-algorithm",
        "ES256",
        "--key-activation-delay",
        "2s",
        "--key-reload-interval",
        "200ms",
        // Logins go on until the new key signs: more than one account's burst.
        "--rate-limit-user-burst",
        "1000",
    ])
    .await;
    app.register("alice", PASSWORD).await;
    // The client caches the JWKS for an hour; only an unknown kid makes it refetch.
    let options = RemoteJwksOptions { min_refresh_interval: Duration::from_millis(500), ..Default::default() };
    let client = remote_verifier(&app, options).await;
    let first = s(&app.login("alice", PASSWORD).await, "access_token").to_owned();
    let old_kid = header_of(&first)["kid"].as_str().unwrap().to_owned();
    client.verify_access_async(&first).await.expect("first token verifies");

    cli(&app, &["rotate", "--jwt-algorithm", "ES256", "--key-activation-delay", "2s"]).await;

    // The running server picks the CLI's key up and publishes it before it signs.
    let mut published = false;
    for _ in 0..50 {
        if jwks(&app).await["keys"].as_array().unwrap().len() == 2 {
            published = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(published, "the rotated key is published by the running server");

    // Keep issuing and verifying until the new key signs: every token verifies, for the
    // caching client and for the server.
    let mut tokens = vec![first.clone()];
    let mut new_kid = None;
    for _ in 0..100 {
        let token = s(&app.login("alice", PASSWORD).await, "access_token").to_owned();
        client.verify_access_async(&token).await.expect("verifies across the rotation");
        assert_eq!(app.get_auth("/api/profile", &token).await.status(), 200);
        let kid = header_of(&token)["kid"].as_str().unwrap().to_owned();
        tokens.push(token);
        if kid != old_kid {
            new_kid = Some(kid);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let new_kid = new_kid.expect("the new key signs after the activation delay");

    // The retired key stays published, so its tokens keep verifying until they expire.
    let kids: Vec<String> =
        jwks(&app).await["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect();
    assert!(kids.contains(&old_kid) && kids.contains(&new_kid), "{kids:?}");
    for token in &tokens {
        client.verify_access_async(token).await.expect("old tokens still verify");
        assert_eq!(app.get_auth("/api/profile", token).await.status(), 200);
    }
    let states = app.state.service.key_statuses().await.unwrap();
    let state_of = |kid: &str| states.iter().find(|s| s.kid == kid).unwrap().state.name();
    assert_eq!(state_of(&old_kid), "retired");
    assert_eq!(state_of(&new_kid), "active");
    cli(&app, &["list", "--jwt-algorithm", "ES256"]).await;
}

#[tokio::test]
async fn admin_route_rotates_and_lists_keys_for_admins_only() {
    let app = TestApp::spawn_with(&["--jwt-algorithm", "EdDSA", "--key-activation-delay", "1h"]).await;
    let user = app.register("alice", PASSWORD).await;
    let user_token = s(&user, "access_token");
    expect_error(app.post_auth("/api/admin/keys/rotate", user_token, json!({})).await, 403, "insufficient_role").await;
    expect_error(app.post("/api/admin/keys/rotate", json!({})).await, 401, "token_missing").await;
    assert_eq!(jwks(&app).await["keys"].as_array().unwrap().len(), 1, "a refused rotation changes nothing");

    let by = gatepass::service::Actor::cli();
    app.state.service.core().create_user(&by, "root", PASSWORD, None, Roles::parse(&["admin"]).unwrap()).await.unwrap();
    let admin = s(&app.login("root", PASSWORD).await, "access_token").to_owned();
    let r = app.post_auth("/api/admin/keys/rotate", &admin, json!({})).await;
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["key"]["state"], "pending");
    assert_eq!(body["key"]["alg"], "EdDSA");
    assert!(body["key"].get("private_key").is_none());
    assert_eq!(jwks(&app).await["keys"].as_array().unwrap().len(), 2, "published at once");
    // Still signing with the old key for the next hour.
    let next = s(&app.login("root", PASSWORD).await, "access_token").to_owned();
    assert_ne!(header_of(&next)["kid"], body["key"]["kid"]);

    // Audited with who asked for it (the start-up's own key generation is not).
    let audit: Value = app.get_auth("/api/admin/audit?event=signing_key_rotated", &admin).await.json().await.unwrap();
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{audit}");
    let root = app.state.service.core().find_user("root").await.unwrap();
    assert_eq!(entries[0]["actor"], root.id.as_str());
    assert_eq!(entries[0]["detail"]["kid"], body["key"]["kid"]);

    let list: Value = app.get_auth("/api/admin/keys", &admin).await.json().await.unwrap();
    let states: Vec<&str> = list["keys"].as_array().unwrap().iter().map(|k| k["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["active", "pending"]);
    expect_error(app.get_auth("/api/admin/keys", user_token).await, 403, "insufficient_role").await;
}

#[tokio::test]
async fn algorithm_confusion_and_header_key_material_are_rejected() {
    let app = TestApp::spawn_with(&["--jwt-algorithm", "EdDSA"]).await;
    let body = app.register("alice", PASSWORD).await;
    let good = s(&body, "access_token");
    let claims = claims_of(good);
    let kid = header_of(good)["kid"].as_str().unwrap().to_owned();
    let server_jwk = jwks(&app).await["keys"][0].clone();
    let x = URL_SAFE_NO_PAD.decode(server_jwk["x"].as_str().unwrap()).unwrap();
    let mut spki = hex_decode("302a300506032b6570032100");
    spki.extend_from_slice(&x);
    let pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", STANDARD.encode(&spki));

    let attacker = Ed25519KeyPair::generate().unwrap();
    let attacker_sign = |m: &[u8]| attacker.sign(m).as_ref().to_vec();
    let attacker_jwk =
        json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(attacker.public_key().as_ref())});
    let es = signature::EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let es_sign = |m: &[u8]| es.sign(&rng, m).unwrap().as_ref().to_vec();
    let hdr = |alg: &str| json!({"alg": alg, "typ": "at+jwt", "kid": kid});

    let mut forged: Vec<(&str, String)> = vec![
        // HS256 with the server's public key, in every encoding, as the HMAC secret.
        ("HS256 keyed with raw public key", forge(&hdr("HS256"), &claims, hmac(&x))),
        ("HS256 keyed with DER public key", forge(&hdr("HS256"), &claims, hmac(&spki))),
        ("HS256 keyed with PEM public key", forge(&hdr("HS256"), &claims, hmac(pem.as_bytes()))),
        ("HS256 keyed with the JWK", forge(&hdr("HS256"), &claims, hmac(server_jwk.to_string().as_bytes()))),
        // The HS256 secret is not trusted in asymmetric mode.
        (
            "HS256 with the server secret",
            forge(
                &json!({"alg": "HS256", "typ": "at+jwt", "kid": gatepass_verify::hs256_kid(SECRET.as_bytes())}),
                &claims,
                hmac(SECRET.as_bytes()),
            ),
        ),
        // alg other than the key's.
        ("ES256 on an EdDSA key", forge(&hdr("ES256"), &claims, es_sign)),
        ("lower-case eddsa", forge(&hdr("eddsa"), &claims, attacker_sign)),
        // Right alg, wrong key.
        ("EdDSA with another key", forge(&hdr("EdDSA"), &claims, attacker_sign)),
        // Key material named in the header.
        (
            "embedded jwk",
            forge(&json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid, "jwk": attacker_jwk}), &claims, attacker_sign),
        ),
        (
            "jku",
            forge(
                &json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid, "jku": "http://127.0.0.1:9/jwks.json"}),
                &claims,
                attacker_sign,
            ),
        ),
        (
            "x5u",
            forge(
                &json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid, "x5u": "http://127.0.0.1:9/cert.pem"}),
                &claims,
                attacker_sign,
            ),
        ),
        ("unknown kid", forge(&json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "attacker"}), &claims, attacker_sign)),
    ];
    // alg none, with an empty and with a non-empty signature.
    for alg in ["none", "None", "NONE"] {
        let unsigned = format!("{}.{}.", b64(&hdr(alg)), b64(&claims));
        forged.push(("alg none, empty signature", unsigned.clone()));
        forged.push(("alg none, junk signature", format!("{unsigned}AA")));
    }
    // The untouched header with a signature transplanted from another token is refused too.
    let mut swapped: Vec<&str> = good.split('.').collect();
    let other = forge(&hdr("EdDSA"), &json!({"sub": "x"}), attacker_sign);
    swapped[2] = other.split('.').nth(2).unwrap();
    forged.push(("foreign signature", swapped.join(".")));

    let client = remote_verifier(&app, RemoteJwksOptions::default()).await;
    for (what, token) in &forged {
        let r = app.get_auth("/api/profile", token).await;
        assert_eq!(r.status(), 401, "{what}");
        let body: Value = r.json().await.unwrap();
        assert!(matches!(body["code"].as_str(), Some("token_invalid" | "token_malformed")), "{what}: {body}");
        let verdict = client.verify_access_async(token).await;
        assert!(matches!(verdict, Err(VerifyError::Invalid(_) | VerifyError::Malformed(_))), "{what}: {verdict:?}");
    }
    // The genuine token still passes, so the rejections above are about the forgeries.
    assert_eq!(app.get_auth("/api/profile", good).await.status(), 200);
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

const CLIENT_SECRET: &str = "introspection-secret-0123456789abcdef";

#[tokio::test]
async fn introspection_is_revocation_aware_and_needs_a_service_credential() {
    let clients = format!("api:{CLIENT_SECRET}");
    let app = TestApp::spawn_with(&["--jwt-algorithm", "EdDSA", "--introspection-clients", &clients]).await;
    let body = app.register("alice", PASSWORD).await;
    let token = s(&body, "access_token").to_owned();
    let introspect = |auth: Option<(&str, &str)>, form: Vec<(&str, String)>| {
        let mut req = app.client.post(app.url("/api/introspect")).form(&form);
        if let Some((id, secret)) = auth {
            req = req.basic_auth(id, Some(secret));
        }
        req.send()
    };

    let r = introspect(None, vec![("token", token.clone())]).await.unwrap();
    assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"gatepass\"");
    expect_error(r, 401, "invalid_client").await;
    expect_error(
        introspect(Some(("api", "wrong-secret")), vec![("token", token.clone())]).await.unwrap(),
        401,
        "invalid_client",
    )
    .await;
    expect_error(
        introspect(Some(("other", CLIENT_SECRET)), vec![("token", token.clone())]).await.unwrap(),
        401,
        "invalid_client",
    )
    .await;
    expect_error(introspect(Some(("api", CLIENT_SECRET)), vec![]).await.unwrap(), 400, "invalid_request").await;

    let r = introspect(
        Some(("api", CLIENT_SECRET)),
        vec![("token", token.clone()), ("token_type_hint", "access_token".into())],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let active: Value = r.json().await.unwrap();
    assert_eq!(active["active"], true);
    assert_eq!(active["username"], "alice");
    assert_eq!(active["sub"], body["user"]["id"]);

    for junk in ["garbage", "a.b.c", "gpr_nope"] {
        let r = introspect(Some(("api", CLIENT_SECRET)), vec![("token", junk.into())]).await.unwrap();
        assert_eq!(r.json::<Value>().await.unwrap(), json!({ "active": false }), "{junk}");
    }

    // Logout makes the still-unexpired token inactive at once.
    assert_eq!(app.post_auth("/api/logout", &token, json!({})).await.status(), 200);
    let r = introspect(Some(("api", CLIENT_SECRET)), vec![("token", token.clone())]).await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({ "active": false }));
}

#[tokio::test]
async fn revocation_ends_the_session_of_a_refresh_token() {
    let app = TestApp::spawn_with(&["--jwt-algorithm", "ES256"]).await;
    let body = app.register("alice", PASSWORD).await;
    let refresh = s(&body, "refresh_token").to_owned();
    let access = s(&body, "access_token").to_owned();
    let other = app.login("alice", PASSWORD).await;

    let r = app.client.post(app.url("/api/revoke")).form(&[("token", refresh.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), 200);
    expect_error(app.post("/api/refresh", json!({ "refresh_token": refresh })).await, 401, "refresh_token_invalid")
        .await;
    expect_error(app.get_auth("/api/profile", &access).await, 401, "token_revoked").await;
    // Only that session ended.
    assert_eq!(app.get_auth("/api/profile", s(&other, "access_token")).await.status(), 200);

    // Unknown tokens are not an error (RFC 7009 §2.2); a missing one is.
    let r = app.client.post(app.url("/api/revoke")).form(&[("token", "gpr_unknown")]).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app.client.post(app.url("/api/revoke")).form(&[("token_type_hint", "refresh_token")]).send().await.unwrap();
    expect_error(r, 400, "invalid_request").await;
}

#[tokio::test]
async fn the_high_s_twin_of_an_es256_token_is_refused() {
    const N: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6,
        0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
    ];
    let app = TestApp::spawn_with(&["--jwt-algorithm", "ES256"]).await;
    let body = app.register("alice", PASSWORD).await;
    let token = s(&body, "access_token");
    let (input, sig) = token.rsplit_once('.').unwrap();
    let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    assert_eq!(sig.len(), 64);
    assert!(sig[32..] <= gatepass_verify::P256_HALF_ORDER[..], "gatepass issues low-S signatures");
    // s' = n - s: a mathematically valid signature over the same input.
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(N[i]) - i16::from(sig[32 + i]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        sig[32 + i] = d as u8;
    }
    let twin = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&sig));
    expect_error(app.get_auth("/api/profile", &twin).await, 401, "token_invalid").await;
    // Wrong-length and DER-shaped signatures too.
    for bad in [vec![0u8; 64], vec![0x30, 0x44, 0x02, 0x20], sig[..63].to_vec()] {
        let t = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&bad));
        expect_error(app.get_auth("/api/profile", &t).await, 401, "token_invalid").await;
    }
    assert_eq!(app.get_auth("/api/profile", token).await.status(), 200);
}

#[derive(clap::Parser)]
struct ServeWrapper {
    #[command(flatten)]
    args: gatepass::config::ServeArgs,
}

#[tokio::test]
async fn a_wrong_master_key_or_hs256_rotation_fails_closed() {
    let mut app = TestApp::spawn_with(&["--jwt-algorithm", "EdDSA"]).await;
    if app.db.is_some() {
        println!("SKIPPED on PostgreSQL: this test restarts on the SQLite data directory");
        return;
    }
    let dir = app.data_dir();
    app.stop().await;
    let argv = |extra: &[&str]| {
        let mut v =
            vec!["gatepass", "--listen", "127.0.0.1:0", "--data-dir", dir.to_str().unwrap(), "--jwt-secret", SECRET];
        v.extend_from_slice(extra);
        ServeWrapper::try_parse_from(v).unwrap().args
    };
    let wrong = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
    let err = gatepass::app::Application::build(argv(&["--jwt-algorithm", "EdDSA", "--master-key", wrong]))
        .await
        .err()
        .expect("a master key that cannot decrypt the stored keys stops start-up");
    // The audit chain's anchor, sealed under the right key, is the first thing to say so.
    assert!(format!("{err:#}").contains("GATEPASS_MASTER_KEY is not the one"), "{err:#}");
    assert!(!format!("{err:#}").contains(wrong));
    // The generated key still works.
    assert!(gatepass::app::Application::build(argv(&["--jwt-algorithm", "EdDSA"])).await.is_ok());

    let rotate = gatepass::cli::Cli::try_parse_from([
        "gatepass",
        "keys",
        "rotate",
        "--data-dir",
        dir.to_str().unwrap(),
        "--jwt-secret",
        SECRET,
    ])
    .unwrap();
    let err = gatepass::cli::run(rotate).await.expect_err("HS256 has no key pair to rotate");
    assert!(err.to_string().contains("EdDSA, ES256 or RS256"), "{err}");
}

/// Polls `probe` until it holds; panics after a generous deadline. Propagation is expected
/// within a second; the deadline only keeps a loaded machine from failing the test, and no
/// timing is asserted.
async fn eventually<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !probe().await {
        assert!(std::time::Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn kids(set: &Value) -> Vec<String> {
    set["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
}

async fn status(app: &TestApp, token: &str) -> u16 {
    app.get_auth("/api/profile", token).await.status().as_u16()
}

/// An admin account's fresh access token (signed with whatever key signs now).
async fn admin_token(app: &TestApp) -> String {
    let by = gatepass::service::Actor::cli();
    let core = app.state.service.core();
    if core.find_user("root").await.is_err() {
        core.create_user(&by, "root", PASSWORD, None, Roles::parse(&["admin"]).unwrap()).await.unwrap();
    }
    s(&app.login("root", PASSWORD).await, "access_token").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_signing_key_is_refused_on_every_instance_and_after_a_restart() {
    // Keys are reloaded on their own only every hour here: what reaches the second instance
    // is the revocation's own propagation (change feed or version check).
    let flags = ["--jwt-algorithm", "EdDSA", "--key-reload-interval", "1h"];
    let a = TestApp::spawn_with(&flags).await;
    let b = a.spawn_peer().await;
    let alice = a.register("alice", PASSWORD).await;
    let token = s(&alice, "access_token").to_owned();
    let leaked = header_of(&token)["kid"].as_str().unwrap().to_owned();
    assert_eq!((status(&a, &token).await, status(&b, &token).await), (200, 200));
    let cached =
        remote_verifier(&a, RemoteJwksOptions { max_age: Duration::from_secs(3600), ..Default::default() }).await;
    cached.verify_access_async(&token).await.expect("verifies before the revocation");
    let admin = admin_token(&a).await;

    let r = a.post_auth(&format!("/api/admin/keys/{leaked}/revoke"), &admin, json!({})).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["already_revoked"], false);
    assert_eq!(body["key"]["kid"], leaked.as_str());
    assert_eq!(body["key"]["state"], "revoked");
    assert!(body["key"]["revoked_at"].is_string());
    let fresh = body["replacement"]["kid"].as_str().expect("the signing key was replaced").to_owned();
    assert_eq!(body["replacement"]["state"], "active");
    assert_eq!(body["replacement"]["alg"], "EdDSA");

    // This instance: refused and unpublished before the answer came back.
    expect_error(a.get_auth("/api/profile", &token).await, 401, "token_invalid").await;
    expect_error(a.get_auth("/api/profile", &admin).await, 401, "token_invalid").await;
    assert_eq!(kids(&jwks(&a).await), [fresh.as_str()]);
    // The other instance, through the same path as every other revocation.
    eventually("B refuses the revoked key", || async { status(&b, &token).await == 401 }).await;
    expect_error(b.get_auth("/api/profile", &token).await, 401, "token_invalid").await;
    assert_eq!(kids(&jwks(&b).await), [fresh.as_str()]);

    // Both go on issuing and accepting tokens, signed with the replacement.
    for (issuer, other) in [(&a, &b), (&b, &a)] {
        let t = s(&issuer.login("alice", PASSWORD).await, "access_token").to_owned();
        assert_eq!(header_of(&t)["kid"], fresh.as_str());
        assert_eq!((status(issuer, &t).await, status(other, &t).await), (200, 200));
    }
    // The session whose access token died refreshes, and gets a token of the new key.
    let r = b.post("/api/refresh", json!({ "refresh_token": s(&alice, "refresh_token") })).await;
    assert_eq!(r.status(), 200);
    let refreshed = s(&r.json::<Value>().await.unwrap(), "access_token").to_owned();
    assert_eq!(header_of(&refreshed)["kid"], fresh.as_str());
    assert_eq!(status(&a, &refreshed).await, 200);

    // A verifier with a cached JWKS keeps the key until its next fetch; a fresh fetch drops it.
    cached.verify_access_async(&token).await.expect("a cached key set still has the key");
    let refetching = remote_verifier(&a, RemoteJwksOptions { max_age: Duration::ZERO, ..Default::default() }).await;
    assert_eq!(refetching.verify_access_async(&token).await.unwrap_err(), VerifyError::Invalid("unknown key id"));
    refetching.verify_access_async(&refreshed).await.expect("the replacement verifies");

    // Revoking again changes nothing; an unknown key is not found.
    let admin = admin_token(&a).await;
    let r = a.post_auth(&format!("/api/admin/keys/{leaked}/revoke"), &admin, json!({})).await;
    assert_eq!(r.status(), 200);
    let again: Value = r.json().await.unwrap();
    assert_eq!((again["already_revoked"].clone(), again["replacement"].clone()), (json!(true), Value::Null));
    assert_eq!(again["key"]["revoked_at"], body["key"]["revoked_at"]);
    assert_eq!(kids(&jwks(&a).await), [fresh.as_str()], "no second replacement");
    expect_error(a.post_auth("/api/admin/keys/eddsa-unknown/revoke", &admin, json!({})).await, 404, "not_found").await;

    // Audited once, with who did it.
    let entries: Value = a.get_auth("/api/admin/audit?event=signing_key_revoked", &admin).await.json().await.unwrap();
    let entries = entries["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    let root = a.state.service.core().find_user("root").await.unwrap();
    assert_eq!(entries[0]["actor"], root.id.as_str());
    assert_eq!(entries[0]["detail"]["kid"], leaked.as_str());
    assert_eq!(entries[0]["detail"]["replacement"], fresh.as_str());
    let list: Value = a.get_auth("/api/admin/keys", &admin).await.json().await.unwrap();
    let states: Vec<(&str, &str)> = list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["kid"].as_str().unwrap(), k["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [(leaked.as_str(), "revoked"), (fresh.as_str(), "active")]);

    // After a restart the revocation is read from storage.
    drop(b);
    let a = a.restart().await;
    expect_error(a.get_auth("/api/profile", &token).await, 401, "token_invalid").await;
    assert_eq!(kids(&jwks(&a).await), [fresh.as_str()]);
    let t = s(&a.login("alice", PASSWORD).await, "access_token").to_owned();
    assert_eq!(header_of(&t)["kid"], fresh.as_str());
    assert_eq!(status(&a, &t).await, 200);
}

#[tokio::test]
async fn revoking_needs_an_admin_and_a_key_that_is_not_signing_needs_no_replacement() {
    let app = TestApp::spawn_with(&["--jwt-algorithm", "ES256", "--key-activation-delay", "1h"]).await;
    let user = app.register("alice", PASSWORD).await;
    let user_token = s(&user, "access_token").to_owned();
    let signing = header_of(&user_token)["kid"].as_str().unwrap().to_owned();
    let path = format!("/api/admin/keys/{signing}/revoke");
    expect_error(app.post_auth(&path, &user_token, json!({})).await, 403, "insufficient_role").await;
    expect_error(app.post(&path, json!({})).await, 401, "token_missing").await;
    assert_eq!(kids(&jwks(&app).await), [signing.as_str()], "a refused revocation changes nothing");
    assert_eq!(status(&app, &user_token).await, 200);

    // A pending key (published, not yet signing) is withdrawn; the signing key goes on.
    let admin = admin_token(&app).await;
    let r = app.post_auth("/api/admin/keys/rotate", &admin, json!({})).await;
    let pending = s(&r.json::<Value>().await.unwrap()["key"], "kid").to_owned();
    assert_eq!(kids(&jwks(&app).await).len(), 2);
    let r = app.post_auth(&format!("/api/admin/keys/{pending}/revoke"), &admin, json!({})).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!((body["key"]["state"].clone(), body["replacement"].clone()), (json!("revoked"), Value::Null));
    assert_eq!(kids(&jwks(&app).await), [signing.as_str()]);
    assert_eq!(status(&app, &user_token).await, 200, "tokens of other keys are untouched");
    let next = s(&app.login("alice", PASSWORD).await, "access_token").to_owned();
    assert_eq!(header_of(&next)["kid"], signing.as_str());
}

#[tokio::test]
async fn hs256_has_no_key_to_revoke_and_says_why() {
    let app = TestApp::spawn().await;
    let body = app.register("alice", PASSWORD).await;
    let kid = header_of(s(&body, "access_token"))["kid"].as_str().unwrap().to_owned();
    let admin = admin_token(&app).await;
    for kid in [kid.as_str(), "eddsa-anything"] {
        let r = app.post_auth(&format!("/api/admin/keys/{kid}/revoke"), &admin, json!({})).await;
        let err = expect_error(r, 400, "invalid_request").await;
        assert!(err["error"].as_str().unwrap().contains("GATEPASS_JWT_SECRET"), "{err}");
    }
    let out = gatepass(&app, &["keys", "revoke", &kid]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot be revoked"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(status(&app, s(&body, "access_token")).await, 200);
}

/// Runs the real binary on `app`'s data directory (and database, on PostgreSQL).
fn gatepass(app: &TestApp, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gatepass"));
    cmd.args(args).args(["--data-dir", app.data_dir().to_str().unwrap(), "--jwt-secret", SECRET]);
    if let Some(db) = &app.db {
        cmd.args(["--database-url", &db.url, "--master-key", common::MASTER_KEY]);
    }
    cmd.env_remove("GATEPASS_DATABASE_URL").env("GATEPASS_LOG", "warn").output().expect("gatepass runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cli_revokes_a_key_under_a_running_server() {
    let app = TestApp::spawn_with(&["--jwt-algorithm", "EdDSA", "--key-reload-interval", "1h"]).await;
    let body = app.register("alice", PASSWORD).await;
    let token = s(&body, "access_token").to_owned();
    let kid = header_of(&token)["kid"].as_str().unwrap().to_owned();

    let out = gatepass(&app, &["keys", "revoke", &kid, "--jwt-algorithm", "EdDSA"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("revoked key {kid}")), "{stdout}");
    assert!(stdout.contains("it was the signing key: new EdDSA key"), "{stdout}");
    let listed = stdout.lines().find(|l| l.starts_with(&kid)).expect("listed");
    assert!(listed.contains(" revoked "), "{listed}");

    // The running server picks it up by itself.
    eventually("the server refuses the revoked key", || async { status(&app, &token).await == 401 }).await;
    assert!(!kids(&jwks(&app).await).contains(&kid));
    let next = s(&app.login("alice", PASSWORD).await, "access_token").to_owned();
    assert_ne!(header_of(&next)["kid"], kid.as_str());
    assert_eq!(status(&app, &next).await, 200);

    let out = gatepass(&app, &["keys", "revoke", &kid, "--jwt-algorithm", "EdDSA"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("already revoked"));
    let out = gatepass(&app, &["keys", "revoke", "eddsa-nope", "--jwt-algorithm", "EdDSA"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no signing key \"eddsa-nope\""));
    // (The operator token of this run was signed with the revoked key too.)
    expect_error(app.get_auth("/api/admin/keys", app.operator()).await, 401, "token_invalid").await;
    let admin = admin_token(&app).await;
    let audit: Value = app.get_auth("/api/admin/audit?event=signing_key_revoked", &admin).await.json().await.unwrap();
    assert_eq!(audit["entries"][0]["actor"], "cli");
}

/// Revocations of the signing key fired together, with logins among them, hundreds of
/// requests in all: each round revokes exactly once and adds exactly one replacement,
/// every login succeeds (the instance never lacks a signing key), and no token of a
/// revoked key is accepted afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_revocations_replace_the_signing_key_once() {
    const ROUNDS: usize = 25;
    let app = TestApp::spawn_with(&["--jwt-algorithm", "EdDSA", "--rate-limit", "false"]).await;
    app.register("alice", PASSWORD).await;
    let mut tokens = Vec::new();
    for round in 0..ROUNDS {
        let admin = admin_token(&app).await;
        let kid = header_of(&admin)["kid"].as_str().unwrap().to_owned();
        let revokes: Vec<_> = (0..4)
            .map(|_| {
                let (client, url, admin) =
                    (app.client.clone(), app.url(&format!("/api/admin/keys/{kid}/revoke")), admin.clone());
                tokio::spawn(async move { client.post(url).bearer_auth(admin).json(&json!({})).send().await })
            })
            .collect();
        let logins: Vec<_> = (0..4)
            .map(|_| {
                let (client, url) = (app.client.clone(), app.url("/api/login"));
                tokio::spawn(async move {
                    client.post(url).json(&json!({"username": "alice", "password": PASSWORD})).send().await
                })
            })
            .collect();
        let mut revoked_now = 0;
        for t in revokes {
            let r = t.await.unwrap().unwrap();
            match r.status().as_u16() {
                200 => {
                    let body: Value = r.json().await.unwrap();
                    if body["already_revoked"] == false {
                        revoked_now += 1;
                        assert!(body["replacement"]["kid"].is_string(), "round {round}: {body}");
                    }
                }
                // The caller's own token was signed with the key just revoked.
                401 => {}
                other => panic!("round {round}: revocation answered {other}"),
            }
        }
        assert_eq!(revoked_now, 1, "round {round}");
        for t in logins {
            let r = t.await.unwrap().unwrap();
            assert_eq!(r.status(), 200, "round {round}: a login failed during the revocation");
            tokens.push(s(&r.json::<Value>().await.unwrap(), "access_token").to_owned());
        }
        let statuses = app.state.service.key_statuses().await.unwrap();
        let active: Vec<_> = statuses.iter().filter(|s| s.state.name() == "active").collect();
        assert_eq!(active.len(), 1, "round {round}: {statuses:?}");
        assert_eq!(statuses.iter().filter(|s| s.state.name() == "revoked").count(), round + 1);
    }
    let trusted = kids(&jwks(&app).await);
    assert_eq!(trusted.len(), 1);
    for token in &tokens {
        let kid = header_of(token)["kid"].as_str().unwrap().to_owned();
        let expected = if trusted.contains(&kid) { 200 } else { 401 };
        assert_eq!(status(&app, token).await, expected, "{kid}");
    }
}
