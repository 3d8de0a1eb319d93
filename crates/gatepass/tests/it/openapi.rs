//! The OpenAPI description at `/openapi.json`: it is OpenAPI 3.1, it describes every
//! route the server answers (and only those), and real responses match it.

use crate::common::{self, TestApp};
use reqwest::Method;
use serde_json::{Value, json};

async fn spec(app: &TestApp) -> Value {
    let r = app.get("/openapi.json").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    r.json().await.expect("JSON document")
}

/// Checks `response` against what the description says `method path` may answer: the
/// status is listed, the content type is one of the listed ones, required headers are
/// present and a JSON error `code` is one the status allows. Returns the JSON body, if any.
async fn conforms(spec: &Value, method: &str, path: &str, response: reqwest::Response) -> Option<Value> {
    let status = response.status().as_u16().to_string();
    let op = &spec["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not described");
    let documented = &op["responses"][&status];
    assert!(documented.is_object(), "{method} {path} answered {status}, which is not documented");
    if let Some(headers) = documented["headers"].as_object() {
        for (name, h) in headers {
            if h["required"] == true {
                assert!(response.headers().contains_key(name.as_str()), "{method} {path} {status}: {name} missing");
            }
        }
    }
    let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    let content = documented["content"].as_object()?;
    let content_type = content_type.unwrap_or_else(|| panic!("{method} {path} {status}: no content type"));
    let media = content_type.split(';').next().unwrap().trim().to_owned();
    let (_, listed) = content
        .iter()
        .find(|(ct, _)| ct.split(';').next().unwrap().trim() == media)
        .unwrap_or_else(|| panic!("{method} {path} {status}: content type {content_type} not documented"));
    if media != "application/json" {
        return None;
    }
    let body: Value = response.json().await.expect("JSON body");
    if let Some(codes) = listed["schema"]["properties"]["code"]["enum"].as_array() {
        assert!(codes.contains(&body["code"]), "{method} {path} {status}: code {} not in {codes:?}", body["code"]);
    }
    Some(body)
}

#[tokio::test]
async fn document_is_openapi_3_1_with_this_version() {
    let app = TestApp::spawn().await;
    let spec = spec(&app).await;
    assert_eq!(spec["openapi"], "3.1.0");
    assert_eq!(spec["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(spec["paths"]["/openapi.json"]["get"].is_object(), "the description describes itself");
    let schemes = spec["components"]["securitySchemes"].as_object().unwrap();
    for name in ["bearer", "session_cookie", "operator_token", "introspection_client", "metrics_token"] {
        assert!(schemes.contains_key(name), "security scheme {name}");
    }
    // Every machine code of the one error type is listed.
    let codes = spec["components"]["schemas"]["ErrorCode"]["enum"].as_array().unwrap();
    for code in ["token_missing", "token_expired", "rate_limited", "storage_unavailable", "csrf_failed"] {
        assert!(codes.contains(&json!(code)), "{code}");
    }
    // Every operation documents a summary and at least one success.
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(op["summary"].is_string(), "{method} {path}: no summary");
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.keys().any(|s| s.starts_with('2') || s.starts_with('3')), "{method} {path}");
            assert!(responses.contains_key("500") && responses.contains_key("408"), "{method} {path}");
        }
    }
}

/// Every documented operation exists (it is not answered by the fallbacks), and on every
/// documented path the methods that are not documented are refused with 405: no route
/// answers a method its description does not list.
#[tokio::test]
async fn routes_and_description_agree() {
    // With the OAuth provider and its dynamic registration on: their routes answer 404
    // while they are off.
    let app = TestApp::spawn_provider(&["--oauth-registration", "open"]).await;
    let spec = spec(&app).await;
    let methods = ["get", "post", "put", "patch", "delete"];
    for (path, item) in spec["paths"].as_object().unwrap() {
        let url = app.url(&path.replace("{id}", "0190f0f0-0000-7000-8000-000000000000"));
        for method in methods {
            let r = app
                .client
                .request(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(), &url)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            if item[method].is_object() {
                // Only the fallbacks answer `method_not_allowed`, and `not_found` on a path
                // without parameters.
                assert_ne!(body["code"], "method_not_allowed", "{method} {path} is documented but not routed");
                assert!(status != 404 || path.contains('{'), "{method} {path} is documented but not routed");
            } else {
                assert_eq!(status, 405, "{method} {path} answers but is not documented");
            }
        }
    }
}

/// Routes are only ever added through utoipa-axum's `routes!`, which takes the route
/// from the handler's description: a plain axum `.route(...)` would be undocumented.
#[test]
fn no_route_bypasses_the_description() {
    fn scan(dir: &std::path::Path, hits: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                scan(&path, hits);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (i, line) in text.lines().enumerate() {
                    if line.contains(".route(") || line.contains("axum::routing::") || line.contains(".nest(") {
                        hits.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
                    }
                }
            }
        }
    }
    let mut hits = Vec::new();
    scan(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut hits);
    assert!(hits.is_empty(), "routes added outside `routes!`:\n{}", hits.join("\n"));
}

#[tokio::test]
async fn real_responses_match_the_description() {
    let app = TestApp::spawn().await;
    let spec = spec(&app).await;
    let c = &app.client;

    let r = c
        .post(app.url("/api/register"))
        .json(&json!({ "username": "openapi_user", "password": "Plenty-of-entropy-42" }))
        .send()
        .await
        .unwrap();
    let body = conforms(&spec, "post", "/api/register", r).await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();

    let r = c
        .post(app.url("/api/login"))
        .json(&json!({ "username": "openapi_user", "password": "wrong-password-123" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    conforms(&spec, "post", "/api/login", r).await;

    let r = c.post(app.url("/api/login")).header("content-type", "text/plain").body("x").send().await.unwrap();
    assert_eq!(r.status(), 415);
    conforms(&spec, "post", "/api/login", r).await;

    let r = c.post(app.url("/api/login")).header("content-type", "application/json").body("{").send().await.unwrap();
    assert_eq!(r.status(), 400);
    conforms(&spec, "post", "/api/login", r).await;

    let big = "x".repeat(100 * 1024);
    let r = c.post(app.url("/api/refresh")).header("content-type", "application/json").body(big).send().await.unwrap();
    assert_eq!(r.status(), 413);
    conforms(&spec, "post", "/api/refresh", r).await;

    let r = c.post(app.url("/api/logout?scope=sideways")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 400, "a bad query is the JSON error");
    conforms(&spec, "post", "/api/logout", r).await;

    let r = c.get(app.url("/api/profile")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    conforms(&spec, "get", "/api/profile", r).await;

    let r = c.get(app.url("/api/profile")).bearer_auth(&token).send().await.unwrap();
    conforms(&spec, "get", "/api/profile", r).await.unwrap();

    let r = c.get(app.url("/api/sessions")).bearer_auth(&token).send().await.unwrap();
    let sessions = conforms(&spec, "get", "/api/sessions", r).await.unwrap();
    assert_eq!(sessions["sessions"][0]["current"], true);

    let r = c.get(app.url("/api/admin/users")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 403);
    conforms(&spec, "get", "/api/admin/users", r).await;

    let r = c.get(app.url("/api/admin/users?limit=5")).bearer_auth(app.operator()).send().await.unwrap();
    let page = conforms(&spec, "get", "/api/admin/users", r).await.unwrap();
    assert_eq!(page["users"][0]["username"], "openapi_user");

    let r = c.get(app.url("/api/admin/users/not-an-id")).bearer_auth(app.operator()).send().await.unwrap();
    assert_eq!(r.status(), 404);
    conforms(&spec, "get", "/api/admin/users/{id}", r).await;

    let r = c.post(app.url("/api/introspect")).form(&[("token", token.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    conforms(&spec, "post", "/api/introspect", r).await;

    let r = c.post(app.url("/ui/login")).form(&[("username", "a"), ("password", "b")]).send().await.unwrap();
    assert_eq!(r.status(), 403, "a form post without Origin is refused");
    conforms(&spec, "post", "/ui/login", r).await;

    // `/metrics` is among them: take turns with the other tests that scrape it.
    let _metrics = common::METRICS.lock().await;
    for path in ["/", "/register", "/static/gatepass.css", "/public", "/healthz", "/metrics", "/.well-known/jwks.json"]
    {
        let r = c.get(app.url(path)).send().await.unwrap();
        assert!(r.status().is_success(), "{path}");
        conforms(&spec, "get", path, r).await;
    }
}
