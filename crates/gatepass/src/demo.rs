//! `gatepass demo`: seed 000's demo script, against a running server. Walks register →
//! login → profile → protected → `/run` → refresh → logout → old token refused, and with
//! the operator token also `/info` and the removal of the demo account, printing every
//! request and response; fails (non-zero exit) if any step misbehaves.

use serde_json::{Value, json};
use std::io::IsTerminal;

/// One step's expectation.
struct Step<'a> {
    title: &'a str,
    method: reqwest::Method,
    path: &'a str,
    token: Option<&'a str>,
    body: Option<Value>,
    expect: u16,
}

struct Printer {
    colour: bool,
}

impl Printer {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_owned() }
    }
}

/// Runs the walkthrough against `base_url`. With the server's `operator` token it also
/// reads `/info` (seed 000) and deletes the demo account at the end, so runs leave nothing
/// behind.
pub async fn run(base_url: &str, operator: Option<&str>) -> anyhow::Result<()> {
    let base = base_url.trim_end_matches('/');
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build()?;
    let p = Printer { colour: std::io::stdout().is_terminal() };
    let username = format!("demo-{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let password = format!("demo-pass-{}", &uuid::Uuid::now_v7().simple().to_string()[16..]);

    let reg = step(
        &client,
        &p,
        base,
        Step {
            title: "1. Register a new user",
            method: reqwest::Method::POST,
            path: "/api/register",
            token: None,
            body: Some(json!({"username": username, "password": password, "email": "demo@example.com"})),
            expect: 201,
        },
    )
    .await?;
    let login = step(
        &client,
        &p,
        base,
        Step {
            title: "2. Log in",
            method: reqwest::Method::POST,
            path: "/api/login",
            token: None,
            body: Some(json!({"username": username, "password": password})),
            expect: 200,
        },
    )
    .await?;
    let access = field(&login, "access_token")?;
    step(
        &client,
        &p,
        base,
        Step {
            title: "3. Read the profile",
            method: reqwest::Method::GET,
            path: "/api/profile",
            token: Some(&access),
            body: None,
            expect: 200,
        },
    )
    .await?;
    step(
        &client,
        &p,
        base,
        Step {
            title: "4. Call a protected route",
            method: reqwest::Method::GET,
            path: "/api/protected",
            token: Some(&access),
            body: None,
            expect: 200,
        },
    )
    .await?;
    step(
        &client,
        &p,
        base,
        Step {
            title: "5. Analyse a text (seed 000's /run)",
            method: reqwest::Method::POST,
            path: "/run",
            token: Some(&access),
            body: Some(json!({"text": "hello from the gatepass demo"})),
            expect: 200,
        },
    )
    .await?;
    if let Some(op) = operator {
        step(
            &client,
            &p,
            base,
            Step {
                title: "5b. Server facts with the operator token (seed 000's /info)",
                method: reqwest::Method::GET,
                path: "/info",
                token: Some(op),
                body: None,
                expect: 200,
            },
        )
        .await?;
    }
    let refreshed = step(
        &client,
        &p,
        base,
        Step {
            title: "6. Refresh (the refresh token rotates)",
            method: reqwest::Method::POST,
            path: "/api/refresh",
            token: None,
            body: Some(json!({"refresh_token": field(&login, "refresh_token")?})),
            expect: 200,
        },
    )
    .await?;
    let new_access = field(&refreshed, "access_token")?;
    step(
        &client,
        &p,
        base,
        Step {
            title: "7. Log out",
            method: reqwest::Method::POST,
            path: "/api/logout",
            token: Some(&new_access),
            body: None,
            expect: 200,
        },
    )
    .await?;
    let refused = step(
        &client,
        &p,
        base,
        Step {
            title: "8. The old token is refused",
            method: reqwest::Method::GET,
            path: "/api/profile",
            token: Some(&new_access),
            body: None,
            expect: 401,
        },
    )
    .await?;
    if refused["code"] != "token_revoked" {
        anyhow::bail!("expected code token_revoked after logout, got {}", refused["code"]);
    }
    let user_path = format!("/api/admin/users/{}", field(&reg["user"], "id")?);
    match operator {
        Some(op) => {
            step(
                &client,
                &p,
                base,
                Step {
                    title: "9. Remove the demo account (operator token)",
                    method: reqwest::Method::DELETE,
                    path: &user_path,
                    token: Some(op),
                    body: None,
                    expect: 200,
                },
            )
            .await?;
        }
        None => println!(
            "\n{}",
            p.paint(
                "33",
                &format!(
                    "note: the account {username} stays; give --operator-token (or run where \
                     gatepass-data/operator-token is) to read /info and remove it"
                )
            )
        ),
    }
    println!("\n{}", p.paint("1;32", "demo passed: every step behaved as expected"));
    Ok(())
}

fn field(v: &Value, name: &str) -> anyhow::Result<String> {
    v[name].as_str().map(str::to_owned).ok_or_else(|| anyhow::anyhow!("response has no `{name}`: {v}"))
}

/// Shortens tokens for display: the demo shows that they exist, not their value.
fn redact(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| match (k.as_str(), v.as_str()) {
                    ("access_token" | "token" | "refresh_token", Some(s)) if s.len() > 16 => {
                        (k.clone(), Value::String(format!("{}…({} chars)", &s[..12], s.len())))
                    }
                    _ => (k.clone(), redact(v)),
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

async fn step(client: &reqwest::Client, p: &Printer, base: &str, s: Step<'_>) -> anyhow::Result<Value> {
    println!("\n{}", p.paint("1", s.title));
    println!("{} {}{}", p.paint("36", s.method.as_str()), base, s.path);
    let mut req = client.request(s.method.clone(), format!("{base}{}", s.path));
    if let Some(t) = s.token {
        println!("Authorization: Bearer {}…", &t[..t.len().min(12)]);
        req = req.bearer_auth(t);
    }
    if let Some(b) = &s.body {
        let mut shown = b.clone();
        if shown.get("password").is_some() {
            shown["password"] = json!("********");
        }
        println!("{}", serde_json::to_string_pretty(&redact(&shown))?);
        req = req.json(b);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    let ok = status == s.expect;
    let colour = if ok { "32" } else { "31" };
    println!("→ {}", p.paint(colour, &format!("{status} (expected {})", s.expect)));
    println!("{}", serde_json::to_string_pretty(&redact(&body))?);
    if !ok {
        anyhow::bail!("step `{}` answered {status}, expected {}", s.title, s.expect);
    }
    Ok(body)
}
