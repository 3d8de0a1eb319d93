//! Hostile input, table-driven: each case has its expected status (and error code where
//! the response comes from gatepass), no case ever gets a 5xx, and after every case the
//! number of accounts and live sessions is unchanged.

use crate::common::{TestApp, s};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

/// What to send.
enum Body {
    None,
    Json(Value),
    Raw(&'static str, Vec<u8>),
}

struct Case {
    name: String,
    method: reqwest::Method,
    path: &'static str,
    headers: Vec<(String, String)>,
    body: Body,
    status: u16,
    /// Expected `code`; `None` when the response is not gatepass's JSON (431 from hyper).
    code: Option<&'static str>,
}

fn post(name: &str, path: &'static str, body: Body, status: u16, code: &'static str) -> Case {
    Case { name: name.into(), method: reqwest::Method::POST, path, headers: vec![], body, status, code: Some(code) }
}

fn json_raw(s: &str) -> Body {
    Body::Raw("application/json", s.as_bytes().to_vec())
}

fn bearer(name: &str, token: String, code: &'static str) -> Case {
    Case {
        name: format!("token: {name}"),
        method: reqwest::Method::GET,
        path: "/api/profile",
        headers: vec![("authorization".into(), format!("Bearer {token}"))],
        body: Body::None,
        status: 401,
        code: Some(code),
    }
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

async fn counts(app: &TestApp) -> (i64, i64) {
    let storage = &app.storage;
    (storage.count_users().await.unwrap(), storage.count_live_sessions(gatepass::domain::clock::now()).await.unwrap())
}

fn body_cases() -> Vec<Case> {
    let nested = format!("{{\"username\":{}{}}}", "[".repeat(20_000), "]".repeat(20_000));
    let nested_obj = format!("{}{}", "{\"a\":".repeat(5_000), "}".repeat(5_000));
    let mut invalid_utf8 = br#"{"username":"al"#.to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe]);
    invalid_utf8.extend_from_slice(br#"ice","password":"correct horse staple"}"#);
    let sql = "' OR '1'='1' --";
    let huge = "x".repeat(70 * 1024);
    vec![
        post("malformed JSON", "/api/register", json_raw(r#"{"username": "bob", "password": "#), 400, "invalid_json"),
        post("trailing garbage", "/api/login", json_raw(r#"{"username":"a","password":"b"} x"#), 400, "invalid_json"),
        post("deeply nested array", "/api/register", json_raw(&nested), 400, "invalid_json"),
        post("deeply nested object", "/api/login", json_raw(&nested_obj), 400, "invalid_json"),
        post("top-level array", "/api/login", json_raw("[1,2,3]"), 400, "invalid_json"),
        post(
            "number for username",
            "/api/register",
            Body::Json(json!({"username": 123, "password": "correct horse staple"})),
            400,
            "invalid_json",
        ),
        post(
            "array for password",
            "/api/login",
            Body::Json(json!({"username": "alice", "password": ["a"]})),
            400,
            "invalid_json",
        ),
        post(
            "object for refresh token",
            "/api/refresh",
            Body::Json(json!({"refresh_token": {"$ne": null}})),
            400,
            "invalid_json",
        ),
        post("missing fields", "/api/register", Body::Json(json!({})), 400, "validation_failed"),
        post("missing password", "/api/login", Body::Json(json!({"username": "alice"})), 400, "validation_failed"),
        post(
            "null fields",
            "/api/register",
            Body::Json(json!({"username": null, "password": null})),
            400,
            "validation_failed",
        ),
        post(
            "duplicate keys",
            "/api/register",
            json_raw(r#"{"username":"mallory","username":"admin","password":"correct horse staple"}"#),
            400,
            "invalid_json",
        ),
        post(
            "duplicate keys at login",
            "/api/login",
            json_raw(r#"{"username":"x","username":"alice","password":"correct horse staple"}"#),
            400,
            "invalid_json",
        ),
        post(
            "privileged field",
            "/api/register",
            Body::Json(json!({"username": "mallory", "password": "correct horse staple", "roles": ["admin"]})),
            400,
            "invalid_json",
        ),
        post(
            "null byte in username",
            "/api/register",
            Body::Json(json!({"username": "mal\u{0}lory", "password": "correct horse staple"})),
            400,
            "validation_failed",
        ),
        post(
            "null byte at login",
            "/api/login",
            Body::Json(json!({"username": "alice\u{0}", "password": "correct horse staple"})),
            401,
            "invalid_credentials",
        ),
        post("invalid UTF-8 JSON", "/api/register", Body::Raw("application/json", invalid_utf8), 400, "invalid_json"),
        post(
            "invalid UTF-8 form",
            "/register",
            Body::Raw("application/x-www-form-urlencoded", b"username=%FF%FE&password=correct+horse+staple".to_vec()),
            400,
            "validation_failed",
        ),
        post(
            "SQL in username (register)",
            "/api/register",
            Body::Json(json!({"username": sql, "password": "correct horse staple"})),
            400,
            "validation_failed",
        ),
        post(
            "SQL in email",
            "/api/register",
            Body::Json(json!({"username": "mallory", "password": "correct horse staple", "email": sql})),
            400,
            "validation_failed",
        ),
        post(
            "SQL in password (register, too short)",
            "/api/register",
            Body::Json(json!({"username": "mallory", "password": "' OR 1"})),
            400,
            "validation_failed",
        ),
        post(
            "SQL in username (login)",
            "/api/login",
            Body::Json(json!({"username": "alice' --", "password": sql})),
            401,
            "invalid_credentials",
        ),
        post(
            "SQL in password (login)",
            "/api/login",
            Body::Json(json!({"username": "alice", "password": sql})),
            401,
            "invalid_credentials",
        ),
        post(
            "SQL in form login",
            "/login",
            Body::Raw("application/x-www-form-urlencoded", b"username=alice%27%20OR%201%3D1--&password=x".to_vec()),
            401,
            "invalid_credentials",
        ),
        post(
            "SQL in refresh token",
            "/api/refresh",
            Body::Json(json!({"refresh_token": sql})),
            401,
            "refresh_token_invalid",
        ),
        post(
            "oversized username",
            "/api/register",
            Body::Json(json!({"username": "a".repeat(10_000), "password": "correct horse staple"})),
            400,
            "validation_failed",
        ),
        post(
            "oversized password at login",
            "/api/login",
            Body::Json(json!({"username": "alice", "password": "p".repeat(2000)})),
            400,
            "validation_failed",
        ),
        post(
            "oversized email",
            "/api/register",
            Body::Json(
                json!({"username": "mallory", "password": "correct horse staple", "email": format!("{}@example.com", "a".repeat(5000))}),
            ),
            400,
            "validation_failed",
        ),
        post(
            "oversized body",
            "/api/register",
            Body::Raw("application/json", format!("{{\"username\":\"{huge}\"}}").into_bytes()),
            413,
            "payload_too_large",
        ),
        post(
            "oversized form body",
            "/login",
            Body::Raw("application/x-www-form-urlencoded", format!("username={huge}").into_bytes()),
            413,
            "payload_too_large",
        ),
        post(
            "text/plain body",
            "/api/login",
            Body::Raw("text/plain", br#"{"username":"alice","password":"x"}"#.to_vec()),
            415,
            "unsupported_media_type",
        ),
        post(
            "no content type",
            "/api/register",
            Body::Raw("", br#"{"username":"mallory","password":"correct horse staple"}"#.to_vec()),
            415,
            "unsupported_media_type",
        ),
        Case {
            name: "SQL in session id".into(),
            method: reqwest::Method::DELETE,
            path: "/api/sessions/1'%20OR%20'1'='1",
            headers: vec![],
            body: Body::None,
            status: 401,
            code: Some("token_missing"),
        },
        Case {
            name: "oversized header".into(),
            method: reqwest::Method::GET,
            path: "/api/profile",
            headers: vec![("x-pad".into(), "a".repeat(64 * 1024))],
            body: Body::None,
            status: 431,
            code: None,
        },
    ]
}

fn token_cases(app: &TestApp, valid: &str) -> Vec<Case> {
    let parts: Vec<&str> = valid.split('.').collect();
    let (h, p, sig) = (parts[0], parts[1], parts[2]);
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
    let kid = header["kid"].as_str().unwrap().to_owned();
    let issuer = app.state.service.issuer();
    let resign = |patch: Value| {
        let mut c = claims.clone();
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        issuer.sign("at+jwt", &c).unwrap()
    };
    let with_header = |extra: Value| {
        let mut hd = header.clone();
        for (k, v) in extra.as_object().unwrap() {
            hd[k] = v.clone();
        }
        format!("{}.{p}.{sig}", b64(&hd))
    };
    let sig_bytes = URL_SAFE_NO_PAD.decode(sig).unwrap();
    let mut cases = vec![
        bearer("extra segment", format!("{valid}.x"), "token_malformed"),
        bearer("five segments (JWE shape)", format!("{valid}.x.y"), "token_malformed"),
        bearer("two segments", format!("{h}.{p}"), "token_malformed"),
        bearer("bad base64 header", format!("eyJ!!!.{p}.{sig}"), "token_malformed"),
        bearer("padded payload", format!("{h}.{p}=.{sig}"), "token_malformed"),
        bearer("signature stripped", format!("{h}.{p}."), "token_malformed"),
        bearer(
            "signature re-encoded as standard base64",
            format!("{h}.{p}.{}", STANDARD.encode(&sig_bytes)),
            "token_malformed",
        ),
        bearer("signature of another payload", format!("{h}.{}.{sig}", b64(&json!({"sub": "x"}))), "token_invalid"),
        bearer("all-zero signature", format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode([0u8; 32])), "token_invalid"),
        bearer("kid unknown", with_header(json!({"kid": "other"})), "token_invalid"),
        bearer("kid path traversal", with_header(json!({"kid": "../../etc/passwd"})), "token_invalid"),
        bearer("kid SQL", with_header(json!({"kid": "x' OR '1'='1"})), "token_invalid"),
        bearer("typ of another kind", with_header(json!({"typ": "JWT"})), "token_invalid"),
        bearer("exp as string", resign(json!({"exp": (claims["exp"].as_i64().unwrap()).to_string()})), "token_invalid"),
        bearer("huge exp", resign(json!({"exp": 9_007_199_254_740_991_i64})), "token_invalid"),
        bearer("exp beyond i64", resign(json!({"exp": 1e30})), "token_invalid"),
        bearer("negative iat", resign(json!({"iat": -1})), "token_invalid"),
        bearer("iat as string", resign(json!({"iat": "0"})), "token_invalid"),
        bearer("expired", resign(json!({"exp": 1, "iat": 0, "nbf": 0})), "token_expired"),
        bearer("wrong issuer", resign(json!({"iss": "evil"})), "token_invalid"),
        bearer("unexpected audience", resign(json!({"aud": "other"})), "token_invalid"),
        bearer("audience null", resign(json!({"aud": null})), "token_invalid"),
        bearer("audience as number", resign(json!({"aud": 7})), "token_invalid"),
        bearer("audience as array", resign(json!({"aud": ["other"]})), "token_invalid"),
        bearer("oversized token", format!("{h}.{}.{sig}", "A".repeat(9000)), "token_malformed"),
    ];
    for alg in ["none", "None", "NONE", "nOnE"] {
        let hd = json!({"alg": alg, "typ": "at+jwt", "kid": kid});
        cases.push(bearer(&format!("alg {alg}, empty signature"), format!("{}.{p}.", b64(&hd)), "token_malformed"));
        cases.push(bearer(&format!("alg {alg}, kept signature"), format!("{}.{p}.{sig}", b64(&hd)), "token_invalid"));
    }
    for alg in ["HS512", "HS384", "RS256", "PS256", "ES256", "EdDSA", "hs256"] {
        cases.push(bearer(&format!("alg {alg}"), with_header(json!({"alg": alg})), "token_invalid"));
    }
    for (member, value) in [
        ("jku", json!("https://evil.example/jwks.json")),
        ("jwk", json!({"kty": "oct", "k": "AAAA"})),
        ("x5u", json!("https://evil.example/cert.pem")),
        ("x5c", json!(["MIIB"])),
        ("crit", json!(["exp"])),
        ("cty", json!("JWT")),
        ("zip", json!("DEF")),
    ] {
        cases.push(bearer(&format!("{member} header"), with_header(json!({ member: value })), "token_invalid"));
    }
    cases.push(bearer(
        "duplicate alg member",
        {
            let raw = format!(r#"{{"alg":"HS256","alg":"none","typ":"at+jwt","kid":"{kid}"}}"#);
            format!("{}.{p}.{sig}", URL_SAFE_NO_PAD.encode(raw))
        },
        "token_malformed",
    ));
    cases
}

#[tokio::test]
async fn hostile_input_changes_nothing_and_never_errors_5xx() {
    let app = TestApp::spawn_with(&["--rate-limit-ip-burst", "10000", "--rate-limit-user-burst", "10000"]).await;
    let grant = app.register("alice", "correct horse staple").await;
    let token = s(&grant, "access_token").to_owned();
    // The account the cases aim at must still work afterwards (and its token too).
    let mut cases = body_cases();
    cases.extend(token_cases(&app, &token));
    let before = counts(&app).await;
    let mut failures = Vec::new();
    for case in cases {
        let mut req = app.client.request(case.method.clone(), app.url(case.path));
        for (k, v) in &case.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        req = match case.body {
            Body::None => req,
            Body::Json(v) => req.json(&v),
            Body::Raw("", bytes) => req.body(bytes),
            Body::Raw(ct, bytes) => req.header("content-type", ct).body(bytes),
        };
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        assert!(status < 500, "{}: got {status}", case.name);
        let text = r.text().await.unwrap_or_default();
        let code = serde_json::from_str::<Value>(&text).ok().and_then(|v| v["code"].as_str().map(str::to_owned));
        if status != case.status || (case.code.is_some() && code.as_deref() != case.code) {
            failures.push(format!("{}: expected {} {:?}, got {status} {text}", case.name, case.status, case.code));
        }
        let after = counts(&app).await;
        assert_eq!(after, before, "{}: state changed", case.name);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(app.get_auth("/api/profile", &token).await.status(), 200);
    app.login("alice", "correct horse staple").await;
}
