//! Issue: the start-up operator token, against the real `gatepass serve` binary: the
//! banner on stdout (never in the log), first-admin creation with it, and refusal after a
//! restart on the same data directory.

use crate::common;
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// A running `gatepass serve` and what it has written so far.
struct Server {
    child: Child,
    base: String,
    stdout: mpsc::UnboundedReceiver<String>,
    stderr: mpsc::UnboundedReceiver<String>,
    stdout_seen: Vec<String>,
    stderr_seen: Vec<String>,
}

fn lines(r: impl tokio::io::AsyncRead + Unpin + Send + 'static) -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(r).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

async fn next(rx: &mut mpsc::UnboundedReceiver<String>, seen: &mut Vec<String>) -> Option<String> {
    let line = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.ok().flatten()?;
    seen.push(line.clone());
    Some(line)
}

impl Server {
    async fn start(dir: &std::path::Path, env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatepass"));
        cmd.arg("serve")
            .env("GATEPASS_LISTEN", "127.0.0.1:0")
            .env("GATEPASS_DATA_DIR", dir)
            .env("GATEPASS_JWT_SECRET", common::SECRET)
            .env("GATEPASS_ARGON2_MEMORY_KIB", "1024")
            .env("GATEPASS_ARGON2_ITERATIONS", "1")
            .env("GATEPASS_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("GATEPASS_DATABASE_URL")
            .env_remove("GATEPASS_OPERATOR_TOKEN")
            .env_remove("GATEPASS_OPERATOR_TOKEN_TTL")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("gatepass serve starts");
        let stdout = lines(child.stdout.take().expect("stdout"));
        let mut stderr = lines(child.stderr.take().expect("stderr"));
        let mut stderr_seen = Vec::new();
        let base = loop {
            let line = next(&mut stderr, &mut stderr_seen).await.expect("server logs its address");
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split_whitespace().next().expect("address").to_owned();
            }
        };
        Server { child, base, stdout, stderr, stdout_seen: Vec::new(), stderr_seen }
    }

    /// Reads the banner from stdout and returns the token.
    async fn banner_token(&mut self) -> String {
        let rule = "=".repeat(50);
        let first = next(&mut self.stdout, &mut self.stdout_seen).await.expect("banner");
        assert_eq!(first, rule);
        let title = next(&mut self.stdout, &mut self.stdout_seen).await.expect("banner title");
        assert_eq!(title, "NEW RUNTIME TOKEN GENERATED:");
        let token = next(&mut self.stdout, &mut self.stdout_seen).await.expect("token line");
        assert_eq!(next(&mut self.stdout, &mut self.stdout_seen).await.as_deref(), Some(rule.as_str()));
        assert_eq!(token.split('.').count(), 3, "a compact JWT");
        token
    }

    /// Stops the server and returns everything it wrote to stderr.
    async fn stop(mut self) -> (Vec<String>, Vec<String>) {
        let _ = self.child.kill().await;
        let _ = self.child.wait().await;
        while let Some(line) = next(&mut self.stderr, &mut self.stderr_seen).await {
            let _ = line;
        }
        while let Some(line) = next(&mut self.stdout, &mut self.stdout_seen).await {
            let _ = line;
        }
        (self.stdout_seen, self.stderr_seen)
    }
}

#[tokio::test]
async fn banner_token_creates_the_first_admin_and_dies_with_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let mut server = Server::start(dir.path(), &[]).await;
    let token = server.banner_token().await;
    let base = server.base.clone();

    let info = http.get(format!("{base}/info")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(info.status(), 200);
    let info: Value = info.json().await.unwrap();
    assert_eq!(info["operator_token_enabled"], true);

    let r = http
        .post(format!("{base}/api/admin/users"))
        .bearer_auth(&token)
        .json(&json!({"username": "firstadmin", "password": "first-admin-pass", "roles": ["admin"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // Not an access token: an ordinary protected route refuses it.
    let r = http.get(format!("{base}/api/profile")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 401);

    let (stdout, stderr) = server.stop().await;
    assert!(stdout.iter().filter(|l| l.contains(&token)).count() == 1, "printed once, on stdout");
    assert!(!stderr.iter().any(|l| l.contains(&token)), "the token must never reach the log");
    let signature = token.rsplit('.').next().unwrap();
    assert!(!stderr.iter().any(|l| l.contains(signature)));

    // Same data dir, same signing secret, new process: the old token is refused although
    // it has not expired; the new banner token and the admin account both work.
    let mut server = Server::start(dir.path(), &[]).await;
    let fresh = server.banner_token().await;
    assert_ne!(fresh, token);
    let base = server.base.clone();
    let r = http.get(format!("{base}/api/info")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "token_invalid");
    let r = http.get(format!("{base}/api/info")).bearer_auth(&fresh).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let login: Value = http
        .post(format!("{base}/api/login"))
        .json(&json!({"username": "firstadmin", "password": "first-admin-pass"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let admin = login["access_token"].as_str().unwrap();
    let r = http.get(format!("{base}/api/admin/users")).bearer_auth(admin).send().await.unwrap();
    assert_eq!(r.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn operator_token_off_prints_no_banner() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[("GATEPASS_OPERATOR_TOKEN", "off")]).await;
    let base = server.base.clone();
    let r = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    let (stdout, stderr) = server.stop().await;
    assert!(!stdout.iter().any(|l| l.contains("NEW RUNTIME TOKEN")), "{stdout:?}");
    assert!(!stderr.iter().any(|l| l.contains("NEW RUNTIME TOKEN")));
}
