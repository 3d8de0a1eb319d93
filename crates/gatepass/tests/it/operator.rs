//! Issue: the start-up operator token, against the real `gatepass serve` binary: the
//! banner on stdout when it is a terminal, otherwise a 0600 file in the data directory
//! (never stdout or the log, which get shipped to log aggregators), first-admin creation
//! with it, and refusal after a restart on the same data directory.

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

    /// Reads the token from the file the server writes when stdout is not a terminal (it
    /// is written before the server logs its address).
    fn file_token(dir: &std::path::Path) -> String {
        let path = dir.join("operator-token");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("operator-token file").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "readable by the owner only");
        }
        let token = std::fs::read_to_string(&path).unwrap().trim_end().to_owned();
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
    let server = Server::start(dir.path(), &[]).await;
    let token = Server::file_token(dir.path());
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
    let signature = token.rsplit('.').next().unwrap();
    assert!(!stdout.iter().any(|l| l.contains(signature) || l.contains("NEW RUNTIME TOKEN")), "{stdout:?}");
    assert!(!stderr.iter().any(|l| l.contains(signature)), "the token must never reach the log");
    let path = dir.path().join("operator-token").display().to_string();
    assert!(stderr.iter().any(|l| l.contains("operator token written to a file") && l.contains(&path)), "{stderr:?}");

    // Same data dir, same signing secret, new process: the old token is refused although
    // it has not expired; the new banner token and the admin account both work.
    let server = Server::start(dir.path(), &[]).await;
    let fresh = Server::file_token(dir.path());
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
    std::fs::write(dir.path().join("operator-token"), "a previous run's token\n").unwrap();
    let server = Server::start(dir.path(), &[("GATEPASS_OPERATOR_TOKEN", "off")]).await;
    assert!(!dir.path().join("operator-token").exists(), "a previous run's file is removed");
    let base = server.base.clone();
    let r = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    let (stdout, stderr) = server.stop().await;
    assert!(!stdout.iter().any(|l| l.contains("NEW RUNTIME TOKEN")), "{stdout:?}");
    assert!(!stderr.iter().any(|l| l.contains("NEW RUNTIME TOKEN")));
}

/// On a terminal the seed-000 banner is printed and no file is written. `script` gives the
/// server a pseudo-terminal as standard output.
#[tokio::test]
async fn on_a_terminal_the_banner_is_printed_and_no_file_written() {
    if std::process::Command::new("script").arg("--version").output().is_err() {
        println!("SKIPPED: util-linux `script` is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new("script")
        .args(["-qefc", &format!("'{}' serve", env!("CARGO_BIN_EXE_gatepass")), "/dev/null"])
        .env("GATEPASS_LISTEN", "127.0.0.1:0")
        .env("GATEPASS_DATA_DIR", dir.path())
        .env("GATEPASS_JWT_SECRET", common::SECRET)
        .env("GATEPASS_ARGON2_MEMORY_KIB", "1024")
        .env("GATEPASS_ARGON2_ITERATIONS", "1")
        .env("GATEPASS_LOG", "warn")
        .env("NO_COLOR", "1")
        .env_remove("GATEPASS_DATABASE_URL")
        .env_remove("GATEPASS_OPERATOR_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("script starts");
    let mut stdout = lines(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    let rule = "=".repeat(50);
    let mut banner = Vec::new();
    while let Some(line) = next(&mut stdout, &mut seen).await {
        let line = line.trim_end_matches('\r').to_owned();
        if line == rule || !banner.is_empty() {
            banner.push(line);
        }
        if banner.len() == 4 {
            break;
        }
    }
    let _ = child.kill().await;
    let _ = child.wait().await;
    assert_eq!(banner.len(), 4, "the banner on the terminal: {seen:?}");
    assert_eq!(banner[0], rule);
    assert_eq!(banner[1], "NEW RUNTIME TOKEN GENERATED:");
    assert_eq!(banner[2].split('.').count(), 3, "a compact JWT");
    assert_eq!(banner[3], rule);
    assert!(!dir.path().join("operator-token").exists(), "no file when the banner was shown");
}
