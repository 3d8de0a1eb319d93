//! Passkeys over the JSON API, with a software authenticator written here from the
//! WebAuthn and CTAP2 specifications (P-256 keys from aws-lc-rs, CBOR encoded by hand), so
//! every byte the server checks comes from code that is not the server's: registration,
//! passwordless sign-in, the second factor, bad ceremonies, a cloned authenticator, step-up
//! removal and concurrent finishes of one ceremony.

use crate::common::TestApp;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const PASSWORD: &str = "a-long-password";

/// What is wrong with an answer, and how the browser data is altered to make it so.
type Alteration = (&'static str, Box<dyn Fn(&mut Ceremony)>);

/// Minimal CBOR (RFC 8949) for the few shapes an authenticator sends.
mod cbor {
    pub fn head(major: u8, n: u64) -> Vec<u8> {
        let m = major << 5;
        match n {
            0..=23 => vec![m | n as u8],
            24..=0xff => vec![m | 24, n as u8],
            0x100..=0xffff => [vec![m | 25], (n as u16).to_be_bytes().to_vec()].concat(),
            _ => [vec![m | 26], (n as u32).to_be_bytes().to_vec()].concat(),
        }
    }
    pub fn int(v: i64) -> Vec<u8> {
        if v >= 0 { head(0, v as u64) } else { head(1, (-1 - v) as u64) }
    }
    pub fn bytes(b: &[u8]) -> Vec<u8> {
        [head(2, b.len() as u64), b.to_vec()].concat()
    }
    pub fn text(s: &str) -> Vec<u8> {
        [head(3, s.len() as u64), s.as_bytes().to_vec()].concat()
    }
    pub fn map(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
        let mut out = head(5, entries.len() as u64);
        for (k, v) in entries {
            out.extend_from_slice(k);
            out.extend_from_slice(v);
        }
        out
    }
}

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

/// A CTAP2 authenticator holding one discoverable ES256 credential.
pub struct SoftAuthenticator {
    key: EcdsaKeyPair,
    cred_id: Vec<u8>,
    user_handle: Vec<u8>,
    /// The signature counter the next assertion reports (before incrementing).
    pub counter: u32,
    /// Backup eligible (a synced passkey) or device-bound.
    pub backup_eligible: bool,
}

/// What a browser would put in `clientDataJSON` and `authenticatorData`.
#[derive(Clone)]
pub struct Ceremony {
    pub origin: String,
    pub rp_id: String,
    pub challenge: String,
}

impl SoftAuthenticator {
    pub fn new() -> Self {
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("P-256 key");
        let cred_id: Vec<u8> = Sha256::digest(key.public_key().as_ref()).to_vec();
        Self { key, cred_id, user_handle: Vec::new(), counter: 1, backup_eligible: false }
    }

    fn flags(&self, attested: bool) -> u8 {
        // UP | UV, BE (and BS with it), AT for a new credential.
        let mut f = 0x01 | 0x04;
        if self.backup_eligible {
            f |= 0x08 | 0x10;
        }
        if attested {
            f |= 0x40;
        }
        f
    }

    fn client_data(kind: &str, c: &Ceremony) -> Vec<u8> {
        json!({ "type": kind, "challenge": c.challenge, "origin": c.origin, "crossOrigin": false })
            .to_string()
            .into_bytes()
    }

    /// `navigator.credentials.create()`'s answer (`toJSON()` form) for `options` (the
    /// `publicKey` member of the server's start), as made for `c`.
    pub fn register(&mut self, options: &Value, c: &Ceremony) -> Value {
        self.user_handle = URL_SAFE_NO_PAD.decode(options["user"]["id"].as_str().expect("user.id")).expect("b64");
        let public = self.key.public_key().as_ref();
        let (x, y) = (&public[1..33], &public[33..65]);
        let cose = cbor::map(&[
            (cbor::int(1), cbor::int(2)),
            (cbor::int(3), cbor::int(-7)),
            (cbor::int(-1), cbor::int(1)),
            (cbor::int(-2), cbor::bytes(x)),
            (cbor::int(-3), cbor::bytes(y)),
        ]);
        let mut auth_data = Sha256::digest(c.rp_id.as_bytes()).to_vec();
        auth_data.push(self.flags(true));
        auth_data.extend_from_slice(&0u32.to_be_bytes());
        auth_data.extend_from_slice(&[0u8; 16]);
        auth_data.extend_from_slice(&(self.cred_id.len() as u16).to_be_bytes());
        auth_data.extend_from_slice(&self.cred_id);
        auth_data.extend_from_slice(&cose);
        let attestation = cbor::map(&[
            (cbor::text("fmt"), cbor::text("none")),
            (cbor::text("attStmt"), cbor::map(&[])),
            (cbor::text("authData"), cbor::bytes(&auth_data)),
        ]);
        json!({
            "id": b64(&self.cred_id),
            "rawId": b64(&self.cred_id),
            "type": "public-key",
            "response": {
                "attestationObject": b64(&attestation),
                "clientDataJSON": b64(&Self::client_data("webauthn.create", c)),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
        })
    }

    /// `navigator.credentials.get()`'s answer for `c`, with the next counter value.
    pub fn assert(&mut self, c: &Ceremony) -> Value {
        let mut auth_data = Sha256::digest(c.rp_id.as_bytes()).to_vec();
        auth_data.push(self.flags(false));
        auth_data.extend_from_slice(&self.counter.to_be_bytes());
        self.counter += 1;
        let client_data = Self::client_data("webauthn.get", c);
        let signed = [auth_data.clone(), Sha256::digest(&client_data).to_vec()].concat();
        let signature = self.key.sign(&SystemRandom::new(), &signed).expect("sign");
        json!({
            "id": b64(&self.cred_id),
            "rawId": b64(&self.cred_id),
            "type": "public-key",
            "response": {
                "authenticatorData": b64(&auth_data),
                "clientDataJSON": b64(&client_data),
                "signature": b64(signature.as_ref()),
                "userHandle": b64(&self.user_handle),
            },
            "clientExtensionResults": {},
        })
    }
}

/// A server whose public URL is `http://localhost:PORT`, the relying party passkeys need.
pub async fn spawn_rp(extra: &[&str]) -> TestApp {
    spawn_rp_as(false, extra).await
}

/// [`spawn_rp`], also acting as the OAuth provider (issuer: the public URL).
pub async fn spawn_rp_provider(extra: &[&str]) -> TestApp {
    spawn_rp_as(true, extra).await
}

async fn spawn_rp_as(provider: bool, extra: &[&str]) -> TestApp {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
    let listen = format!("127.0.0.1:{port}");
    let public = format!("http://localhost:{port}");
    let mut args = vec!["--listen", listen.as_str(), "--public-url", public.as_str()];
    if provider {
        args.extend_from_slice(&["--issuer", public.as_str()]);
    }
    args.extend_from_slice(extra);
    TestApp::spawn_with(&args).await
}

fn origin(app: &TestApp) -> String {
    app.base.replace("127.0.0.1", "localhost")
}

fn ceremony_for(app: &TestApp, options: &Value) -> Ceremony {
    Ceremony {
        origin: origin(app),
        rp_id: "localhost".into(),
        challenge: options["challenge"].as_str().expect("challenge").to_owned(),
    }
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64")).expect("json")
}

async fn token_of(app: &TestApp, name: &str) -> String {
    app.register(name, PASSWORD).await["access_token"].as_str().expect("token").to_owned()
}

/// Starts a registration: `(ceremony handle, publicKey options)`.
async fn reg_start(app: &TestApp, token: &str) -> (String, Value) {
    let r = app.post_auth("/api/passkeys/registration/start", token, json!({})).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    (body["ceremony"].as_str().expect("ceremony").to_owned(), body["publicKey"].clone())
}

async fn reg_finish(app: &TestApp, token: &str, ceremony: &str, name: &str, credential: Value) -> reqwest::Response {
    let body = json!({ "ceremony": ceremony, "name": name, "credential": credential });
    app.post_auth("/api/passkeys/registration/finish", token, body).await
}

/// Adds a passkey for the holder of `token`; returns the authenticator and the answer.
async fn add_passkey(app: &TestApp, token: &str, name: &str) -> (SoftAuthenticator, Value) {
    let mut authenticator = SoftAuthenticator::new();
    let (ceremony, options) = reg_start(app, token).await;
    let credential = authenticator.register(&options, &ceremony_for(app, &options));
    let r = reg_finish(app, token, &ceremony, name, credential).await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    (authenticator, r.json().await.expect("json"))
}

async fn login_start(app: &TestApp) -> (String, Value, Value) {
    let r = app.post("/api/passkeys/login/start", json!({})).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    (body["ceremony"].as_str().expect("ceremony").to_owned(), body["publicKey"].clone(), body)
}

async fn login_finish(app: &TestApp, ceremony: &str, credential: Value) -> reqwest::Response {
    app.post("/api/passkeys/login/finish", json!({ "ceremony": ceremony, "credential": credential })).await
}

/// Signs in with the passkey; returns the access token.
async fn passwordless(app: &TestApp, authenticator: &mut SoftAuthenticator) -> String {
    let (ceremony, options, _) = login_start(app).await;
    let r = login_finish(app, &ceremony, authenticator.assert(&ceremony_for(app, &options))).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let body: Value = r.json().await.expect("json");
    body["access_token"].as_str().expect("token").to_owned()
}

async fn audit_has(app: &TestApp, event: &str) -> Value {
    let r = app.get_auth(&format!("/api/admin/audit?event={event}"), app.operator()).await;
    assert_eq!(r.status(), 200);
    r.json().await.expect("json")
}

#[tokio::test]
async fn add_sign_in_passwordless_and_as_second_factor() {
    let app = spawn_rp(&["--rate-limit", "false"]).await;
    let token = token_of(&app, "alice").await;
    let (ceremony, options) = reg_start(&app, &token).await;
    assert_eq!(options["rp"]["id"], "localhost");
    assert_eq!(options["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(options["authenticatorSelection"]["userVerification"], "required");
    let mut key = SoftAuthenticator::new();
    let credential = key.register(&options, &ceremony_for(&app, &options));
    let r = reg_finish(&app, &token, &ceremony, "Laptop", credential).await;
    assert_eq!(r.status(), 201);
    let added: Value = r.json().await.unwrap();
    assert_eq!(added["passkey"]["name"], "Laptop");
    assert_eq!(added["recovery_codes"].as_array().map(Vec::len), Some(10), "{added}");
    // A second passkey: no new recovery codes; both listed.
    let (_, second) = add_passkey(&app, &token, "Phone").await;
    assert!(second.get("recovery_codes").is_none(), "{second}");
    let list: Value = app.get_auth("/api/passkeys", &token).await.json().await.unwrap();
    let names: Vec<&str> = list["passkeys"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Laptop", "Phone"]);
    assert!(!list.to_string().contains("credential"), "the key material stays inside: {list}");

    // Password first: the account now has a second factor, and passkeys are offered.
    let r = app.post("/api/login", json!({ "username": "alice", "password": PASSWORD })).await;
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["mfa_required"], true);
    assert!(first["methods"].as_array().unwrap().contains(&json!("webauthn")), "{first}");
    let challenge = first["challenge"].as_str().unwrap();
    let r = app.post("/api/login/mfa/webauthn/options", json!({ "challenge": challenge })).await;
    assert_eq!(r.status(), 200);
    let options: Value = r.json().await.unwrap();
    assert_eq!(options["publicKey"]["allowCredentials"].as_array().map(Vec::len), Some(2));
    let assertion = key.assert(&ceremony_for(&app, &options["publicKey"]));
    let r = app.post("/api/login/mfa", json!({ "challenge": challenge, "webauthn": assertion })).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(claims(body["access_token"].as_str().unwrap())["amr"], json!(["pwd", "hwk", "mfa"]));

    // Passwordless: discoverable options for the autofill, then the same answer as a login.
    let (_, options, whole) = login_start(&app).await;
    assert_eq!(whole["mediation"], "conditional");
    assert!(options.get("allowCredentials").is_none_or(|a| a.as_array().is_some_and(Vec::is_empty)), "{options}");
    let access = passwordless(&app, &mut key).await;
    let c = claims(&access);
    assert_eq!(c["amr"], json!(["hwk", "mfa"]));
    assert_eq!(c["username"], "alice");
    // An account whose only factors are passkeys replaces its recovery codes after such a
    // fresh sign-in.
    let r = app.post_auth("/api/mfa/recovery-codes", &access, json!({})).await;
    assert_eq!(r.status(), 200, "new recovery codes with passkeys alone");
    let fresh: Value = r.json().await.unwrap();
    assert_eq!(fresh["recovery_codes"].as_array().map(Vec::len), Some(10), "{fresh}");
    // A synced passkey says so: swk.
    let mut synced = SoftAuthenticator::new();
    synced.backup_eligible = true;
    let (ceremony, options) = reg_start(&app, &token).await;
    let credential = synced.register(&options, &ceremony_for(&app, &options));
    assert_eq!(reg_finish(&app, &token, &ceremony, "Synced", credential).await.status(), 201);
    assert_eq!(claims(&passwordless(&app, &mut synced).await)["amr"], json!(["swk", "mfa"]));

    // Cookie delivery, like a login's.
    let (ceremony, options, _) = login_start(&app).await;
    let body = json!({ "ceremony": ceremony, "credential": key.assert(&ceremony_for(&app, &options)) });
    let r = app.client.post(app.url("/api/passkeys/login/finish?cookie=true")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let set: Vec<String> = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    assert!(set.iter().any(|c| c.starts_with("session=")), "{set:?}");
    let body: Value = r.json().await.unwrap();
    assert!(body.get("access_token").is_none(), "{body}");

    // Renaming; a taken name is a conflict; uses, additions are audited.
    let id = added["passkey"]["id"].as_str().unwrap();
    let r = app.patch_auth(&format!("/api/passkeys/{id}"), &token, json!({ "name": "Phone" })).await;
    assert_eq!(r.status(), 409);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "passkey_name_taken");
    let r = app.patch_auth(&format!("/api/passkeys/{id}"), &token, json!({ "name": "Work laptop" })).await;
    assert_eq!(r.status(), 204);
    let r = app.patch_auth("/api/passkeys/nope", &token, json!({ "name": "x" })).await;
    assert_eq!(r.status(), 404);
    assert!(audit_has(&app, "passkey_added").await.to_string().contains("Laptop"));
    assert!(audit_has(&app, "passkey_used").await.to_string().contains(id));
}

#[tokio::test]
async fn a_127_0_0_1_public_url_turns_passkeys_off_with_a_clear_answer() {
    let app = TestApp::spawn().await;
    let token = token_of(&app, "bob").await;
    let r = app.post_auth("/api/passkeys/registration/start", &token, json!({})).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "passkeys_unavailable");
    assert_eq!(app.post("/api/passkeys/login/start", json!({})).await.status(), 503);
}

#[tokio::test]
async fn bad_registrations_get_a_clear_answer_and_change_nothing() {
    let app = spawn_rp(&["--rate-limit", "false"]).await;
    let token = token_of(&app, "carol").await;
    let other = token_of(&app, "mallory").await;
    let count = |t: String| {
        let app = &app;
        async move {
            app.get_auth("/api/passkeys", &t).await.json::<Value>().await.unwrap()["passkeys"].as_array().unwrap().len()
        }
    };

    let cases: Vec<Alteration> = vec![
        ("another challenge", Box::new(|c: &mut Ceremony| c.challenge = b64(&[7u8; 32]))),
        ("another origin", Box::new(|c: &mut Ceremony| c.origin = "http://evil.example".into())),
        ("another port", Box::new(|c: &mut Ceremony| c.origin = "http://localhost:1".into())),
        ("another rp id", Box::new(|c: &mut Ceremony| c.rp_id = "evil.example".into())),
    ];
    for (what, alter) in cases {
        let (ceremony, options) = reg_start(&app, &token).await;
        let mut c = ceremony_for(&app, &options);
        alter(&mut c);
        let credential = SoftAuthenticator::new().register(&options, &c);
        let r = reg_finish(&app, &token, &ceremony, "Key", credential).await;
        assert_eq!(r.status(), 400, "{what}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "validation_failed", "{what}: {body}");
        assert!(body["error"].as_str().unwrap().starts_with("credential"), "{what}: {body}");
    }
    assert_eq!(count(token.clone()).await, 0);

    // Malformed bodies: 400 invalid_json naming the problem.
    let (ceremony, options) = reg_start(&app, &token).await;
    for bad in [
        json!({ "ceremony": ceremony, "name": "Key", "credential": "not an object" }),
        json!({ "ceremony": ceremony, "name": "Key", "credential": { "id": "x", "rawId": "!!!", "type": "public-key" } }),
        json!({ "ceremony": ceremony, "name": "Key", "credential": {}, "extra": 1 }),
    ] {
        let r = app.post_auth("/api/passkeys/registration/finish", &token, bad.clone()).await;
        assert_eq!(r.status(), 400, "{bad}");
        assert_eq!(r.json::<Value>().await.unwrap()["code"], "invalid_json", "{bad}");
    }
    // A bad name is refused before the ceremony is used; the ceremony still works after.
    let mut key = SoftAuthenticator::new();
    let credential = key.register(&options, &ceremony_for(&app, &options));
    for name in ["", "a\u{202E}b", &"x".repeat(65)] {
        let r = reg_finish(&app, &token, &ceremony, name, credential.clone()).await;
        assert_eq!(r.status(), 400, "{name:?}");
    }
    // Someone else cannot finish it.
    let r = reg_finish(&app, &other, &ceremony, "Key", credential.clone()).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "invalid_request");
    assert_eq!(count(other.clone()).await, 0);
    // …and that attempt used it up: a ceremony works once.
    let r = reg_finish(&app, &token, &ceremony, "Key", credential.clone()).await;
    assert_eq!(r.status(), 400);
    let (ceremony, options) = reg_start(&app, &token).await;
    let credential = key.register(&options, &ceremony_for(&app, &options));
    assert_eq!(reg_finish(&app, &token, &ceremony, "Key", credential.clone()).await.status(), 201);
    // Replaying the finish: the ceremony is gone.
    let r = reg_finish(&app, &token, &ceremony, "Key 2", credential.clone()).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "invalid_request");
    // The same authenticator again (excluded, but a client could ignore that): refused.
    let (ceremony, options) = reg_start(&app, &token).await;
    assert_eq!(options["excludeCredentials"].as_array().map(Vec::len), Some(1));
    let credential = key.register(&options, &ceremony_for(&app, &options));
    let r = reg_finish(&app, &token, &ceremony, "Again", credential).await;
    assert_eq!(r.status(), 400);
    // A name already used: 409, ceremony kept.
    let (ceremony, options) = reg_start(&app, &token).await;
    let credential = SoftAuthenticator::new().register(&options, &ceremony_for(&app, &options));
    assert_eq!(reg_finish(&app, &token, &ceremony, "Key", credential.clone()).await.status(), 409);
    assert_eq!(reg_finish(&app, &token, &ceremony, "Other", credential).await.status(), 201);
    assert_eq!(count(token.clone()).await, 2);
    // Without a token: 401.
    assert_eq!(app.post("/api/passkeys/registration/start", json!({})).await.status(), 401);
}

#[tokio::test]
async fn bad_sign_ins_are_refused_and_change_nothing() {
    let app = spawn_rp(&["--rate-limit", "false"]).await;
    let token = token_of(&app, "dave").await;
    let (mut key, _) = add_passkey(&app, &token, "Key").await;
    let stored = || async { app.storage.passkeys(claims(&token)["sub"].as_str().unwrap()).await.unwrap() };
    let before = stored().await;

    let cases: Vec<Alteration> = vec![
        ("another challenge", Box::new(|c: &mut Ceremony| c.challenge = b64(&[9u8; 32]))),
        ("another origin", Box::new(|c: &mut Ceremony| c.origin = "http://evil.example".into())),
        ("another rp id", Box::new(|c: &mut Ceremony| c.rp_id = "evil.example".into())),
    ];
    for (what, alter) in cases {
        let (ceremony, options, _) = login_start(&app).await;
        let mut c = ceremony_for(&app, &options);
        alter(&mut c);
        let r = login_finish(&app, &ceremony, key.assert(&c)).await;
        assert_eq!(r.status(), 401, "{what}");
        assert_eq!(r.json::<Value>().await.unwrap()["code"], "invalid_credentials", "{what}");
    }
    // An unknown credential, a forged signature.
    let (ceremony, options, _) = login_start(&app).await;
    let mut stranger = SoftAuthenticator::new();
    stranger.user_handle = vec![1; 16];
    assert_eq!(login_finish(&app, &ceremony, stranger.assert(&ceremony_for(&app, &options))).await.status(), 401);
    let (ceremony, options, _) = login_start(&app).await;
    let mut forged = key.assert(&ceremony_for(&app, &options));
    forged["response"]["signature"] = json!(b64(&[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]));
    assert_eq!(login_finish(&app, &ceremony, forged).await.status(), 401);
    // Malformed: 400.
    let (ceremony, _, _) = login_start(&app).await;
    let r = login_finish(&app, &ceremony, json!({ "id": 5 })).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "invalid_json");
    let r = app.post("/api/passkeys/login/finish", json!({ "credential": {} })).await;
    assert_eq!(r.status(), 400);
    assert_eq!(stored().await, before, "refusals changed the stored passkey");

    // A ceremony works once, and only from the client that started it.
    let (ceremony, options, _) = login_start(&app).await;
    let assertion = key.assert(&ceremony_for(&app, &options));
    let elsewhere = app
        .client
        .post(app.url("/api/passkeys/login/finish"))
        .header("user-agent", "another browser")
        .json(&json!({ "ceremony": ceremony, "credential": assertion }))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 401);
    assert_eq!(login_finish(&app, &ceremony, assertion.clone()).await.status(), 401, "used up by the other client");
    let (ceremony, options, _) = login_start(&app).await;
    let assertion = key.assert(&ceremony_for(&app, &options));
    assert_eq!(login_finish(&app, &ceremony, assertion.clone()).await.status(), 200);
    assert_eq!(login_finish(&app, &ceremony, assertion).await.status(), 401, "replayed");
    let audit = audit_has(&app, "login_failed").await.to_string();
    assert!(audit.contains("ceremony_invalid") && audit.contains("other_client"), "{audit}");

    // The second-step options need a live challenge from the same client.
    let r = app.post("/api/login/mfa/webauthn/options", json!({ "challenge": b64(&[1; 32]) })).await;
    assert_eq!(r.status(), 401);
    let first: Value =
        app.post("/api/login", json!({ "username": "dave", "password": PASSWORD })).await.json().await.unwrap();
    let challenge = first["challenge"].as_str().unwrap();
    let r = app
        .client
        .post(app.url("/api/login/mfa/webauthn/options"))
        .header("user-agent", "another browser")
        .json(&json!({ "challenge": challenge }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // An assertion for other options (a passwordless ceremony's) is refused at the second step.
    let (_, options, _) = login_start(&app).await;
    let r = app.post("/api/login/mfa/webauthn/options", json!({ "challenge": challenge })).await;
    assert_eq!(r.status(), 200);
    let wrong = key.assert(&ceremony_for(&app, &options));
    let r = app.post("/api/login/mfa", json!({ "challenge": challenge, "webauthn": wrong })).await;
    assert_eq!(r.status(), 401);
    let r = app.post("/api/login/mfa", json!({ "challenge": challenge, "webauthn": {}, "totp": "123456" })).await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn a_counter_that_goes_back_is_a_clone_refused_and_audited() {
    let app = spawn_rp(&["--rate-limit", "false"]).await;
    let token = token_of(&app, "erin").await;
    let (mut key, _) = add_passkey(&app, &token, "Key").await;
    key.counter = 5;
    passwordless(&app, &mut key).await;
    // The clone still reports 3.
    key.counter = 3;
    let (ceremony, options, _) = login_start(&app).await;
    let r = login_finish(&app, &ceremony, key.assert(&ceremony_for(&app, &options))).await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("www-authenticate").is_some());
    let audit = audit_has(&app, "passkey_clone_suspected").await;
    assert!(audit.to_string().contains("\"stored_counter\":5"), "{audit}");
    // The same counter again is no better; a higher one is the genuine authenticator.
    key.counter = 5;
    let (ceremony, options, _) = login_start(&app).await;
    assert_eq!(login_finish(&app, &ceremony, key.assert(&ceremony_for(&app, &options))).await.status(), 401);
    key.counter = 6;
    passwordless(&app, &mut key).await;
    // As a second factor too.
    key.counter = 2;
    let first: Value =
        app.post("/api/login", json!({ "username": "erin", "password": PASSWORD })).await.json().await.unwrap();
    let challenge = first["challenge"].as_str().unwrap();
    let options: Value =
        app.post("/api/login/mfa/webauthn/options", json!({ "challenge": challenge })).await.json().await.unwrap();
    let assertion = key.assert(&ceremony_for(&app, &options["publicKey"]));
    assert_eq!(
        app.post("/api/login/mfa", json!({ "challenge": challenge, "webauthn": assertion })).await.status(),
        401
    );
}

#[tokio::test]
async fn passkey_sign_ins_pass_the_login_back_off() {
    let app = spawn_rp(&[]).await;
    let token = token_of(&app, "frank").await;
    let (mut key, _) = add_passkey(&app, &token, "Key").await;
    // Wrong assertions (another origin) for this account until the back-off answers.
    let mut limited = false;
    for _ in 0..30 {
        let (ceremony, options, _) = login_start(&app).await;
        let mut c = ceremony_for(&app, &options);
        c.origin = "http://evil.example".into();
        let r = login_finish(&app, &ceremony, key.assert(&c)).await;
        if r.status() == 429 {
            limited = true;
            break;
        }
        assert_eq!(r.status(), 401);
    }
    assert!(limited, "failed passkey sign-ins never met the login back-off");
}

#[tokio::test]
async fn removing_a_passkey_needs_a_fresh_second_factor_sign_in() {
    let app = spawn_rp(&["--rate-limit", "false"]).await;
    let token = token_of(&app, "grace").await;
    let (mut key, added) = add_passkey(&app, &token, "Key").await;
    let id = added["passkey"]["id"].as_str().unwrap();
    // The session that added it was a password sign-in: not enough.
    let r = app.delete_auth(&format!("/api/passkeys/{id}"), &token).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "fresh_login_required");
    let mfa: Value = app.get_auth("/api/mfa", &token).await.json().await.unwrap();
    assert_eq!(mfa, json!({"totp": false, "totp_pending": false, "recovery_codes_left": 10, "passkeys": 1}));
    // A passkey sign-in is a fresh sign-in with two factors.
    let fresh = passwordless(&app, &mut key).await;
    assert_eq!(app.delete_auth(&format!("/api/passkeys/{id}"), &fresh).await.status(), 204);
    assert_eq!(app.delete_auth(&format!("/api/passkeys/{id}"), &fresh).await.status(), 404);
    // The last factor gone: recovery codes gone, the password alone signs in again.
    let mfa: Value = app.get_auth("/api/mfa", &fresh).await.json().await.unwrap();
    assert_eq!(mfa, json!({"totp": false, "totp_pending": false, "recovery_codes_left": 0, "passkeys": 0}));
    let body = app.login("grace", PASSWORD).await;
    assert!(body["access_token"].is_string(), "{body}");
    assert!(audit_has(&app, "passkey_removed").await.to_string().contains(id));
    // The removed passkey no longer signs in.
    let (ceremony, options, _) = login_start(&app).await;
    assert_eq!(login_finish(&app, &ceremony, key.assert(&ceremony_for(&app, &options))).await.status(), 401);
}

const ROUNDS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_finishes_of_one_ceremony_let_at_most_one_through() {
    let app = spawn_rp(&["--rate-limit", "false"]).await;
    let mut token = String::new();
    let mut added = 0;
    for round in 0..ROUNDS {
        if round % 10 == 0 {
            token = token_of(&app, &format!("racer{round}")).await;
        }
        // Two different authenticators answer one registration ceremony: only the
        // ceremony's single use can stop the second.
        let (ceremony, options) = reg_start(&app, &token).await;
        let c = ceremony_for(&app, &options);
        let one = SoftAuthenticator::new().register(&options, &c);
        let two = SoftAuthenticator::new().register(&options, &c);
        let (name_a, name_b) = (format!("a{round}"), format!("b{round}"));
        let (a, b) = tokio::join!(
            reg_finish(&app, &token, &ceremony, &name_a, one),
            reg_finish(&app, &token, &ceremony, &name_b, two)
        );
        let ok = [a.status(), b.status()].iter().filter(|s| s.as_u16() == 201).count();
        assert!(ok <= 1, "round {round}: both finishes of one ceremony succeeded");
        added += ok;
    }
    assert!(added > 0, "no registration ever succeeded");
    // The same for a passwordless sign-in: two valid assertions (counters n, n+1) for one
    // ceremony.
    let (mut key, _) = add_passkey(&app, &token, "Signer").await;
    let mut signed_in = 0;
    for round in 0..ROUNDS {
        let (ceremony, options, _) = login_start(&app).await;
        let c = ceremony_for(&app, &options);
        let (one, two) = (key.assert(&c), key.assert(&c));
        let (a, b) = tokio::join!(login_finish(&app, &ceremony, one), login_finish(&app, &ceremony, two));
        let ok = [a.status(), b.status()].iter().filter(|s| s.as_u16() == 200).count();
        assert!(ok <= 1, "round {round}: both finishes of one sign-in succeeded");
        signed_in += ok;
    }
    assert!(signed_in > 0, "no sign-in ever succeeded");
}
