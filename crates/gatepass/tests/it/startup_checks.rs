//! What `gatepass serve` refuses or accepts at start-up, against the real binary:
//! weak published secrets and the spellings of boolean settings.

use crate::common::{self, serve};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Runs a server that must refuse to start; returns its stderr.
async fn refused(env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::time::timeout(Duration::from_secs(60), serve(dir.path(), env).output())
        .await
        .expect("exits promptly")
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "start-up must fail with {env:?}; stderr: {stderr}");
    stderr
}

/// Starts a server that must come up; returns once it listens, then stops it.
async fn starts(env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = serve(dir.path(), env).spawn().expect("spawns");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let listening = tokio::time::timeout(Duration::from_secs(60), async {
        let mut seen = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("listening on") {
                return Ok(());
            }
            seen.push(line);
        }
        Err(seen)
    })
    .await
    .expect("starts promptly");
    let _ = child.kill().await;
    if let Err(seen) = listening {
        panic!("the server did not start with {env:?}:\n{}", seen.join("\n"));
    }
}

#[tokio::test]
async fn published_and_low_entropy_jwt_secrets_stop_start_up() {
    for weak in [
        "12345678901234567890123456789012",
        "your-256-bit-secret",
        "a-string-secret-at-least-256-bits-long",
        "abcdefghijklmnopqrstuvwxyz0123456789",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "secretsecretsecretsecretsecret12",
    ] {
        let stderr = refused(&[("GATEPASS_JWT_SECRET", weak)]).await;
        assert!(stderr.contains("GATEPASS_JWT_SECRET (from the environment)"), "{weak}: {stderr}");
        assert!(stderr.contains("gatepass secret"), "says how to get a good one: {stderr}");
        assert!(!stderr.contains(weak), "the secret is never echoed: {stderr}");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = serve(dir.path(), &[]).args(["--jwt-secret", "12345678901234567890123456789012"]).output().await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("GATEPASS_JWT_SECRET (from the --jwt-secret flag)"));
    let out = serve(dir.path(), &[("JWT_SECRET_KEY", "12345678901234567890123456789012")])
        .env_remove("GATEPASS_JWT_SECRET")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("JWT_SECRET_KEY (alias of GATEPASS_JWT_SECRET, from the environment)"), "{stderr}");
}

#[tokio::test]
async fn a_weak_master_key_stops_start_up() {
    let stderr =
        refused(&[("GATEPASS_JWT_ALGORITHM", "EdDSA"), ("GATEPASS_MASTER_KEY", "0123456789abcdef0123456789abcdef")])
            .await;
    assert!(stderr.contains("GATEPASS_MASTER_KEY (from the environment)"), "{stderr}");
}

#[tokio::test]
async fn the_test_secrets_and_a_generated_secret_start_the_server() {
    starts(&[("GATEPASS_JWT_ALGORITHM", "EdDSA"), ("GATEPASS_MASTER_KEY", common::MASTER_KEY)]).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatepass")).arg("secret").output().unwrap();
    let generated = String::from_utf8(out.stdout).unwrap();
    starts(&[("GATEPASS_JWT_SECRET", generated.trim())]).await;
}

#[tokio::test]
async fn boolean_settings_take_1_0_yes_no_on_off() {
    for value in ["1", "YES", "on", "True"] {
        starts(&[("GATEPASS_COOKIE_SECURE", value), ("GATEPASS_REGISTRATION_OPEN", value)]).await;
    }
    for value in ["0", "no", "OFF", "false"] {
        starts(&[("GATEPASS_RATE_LIMIT", value), ("GATEPASS_OPERATOR_TOKEN", value)]).await;
    }
    let stderr = refused(&[("GATEPASS_COOKIE_SECURE", "maybe")]).await;
    assert!(stderr.contains("--cookie-secure"), "{stderr}");
}

/// Runs `serve` in `dir` (where a `.env` may wait) with `args`; it must fail. Its stderr.
async fn refused_in(dir: &std::path::Path, args: &[&str], unset: &[&str]) -> String {
    let mut cmd = serve(dir, &[]);
    for name in unset {
        cmd.env_remove(name);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.args(args).output())
        .await
        .expect("exits promptly")
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "start-up must fail with {args:?}; stderr: {stderr}");
    stderr
}

/// A value out of range stops start-up (never clamped), naming the setting, the value,
/// the allowed range and where the value came from: a flag, the environment or `.env`.
#[tokio::test]
async fn out_of_range_settings_stop_start_up_and_say_where_they_came_from() {
    let stderr = refused(&[("GATEPASS_ACCESS_TOKEN_TTL", "48h")]).await;
    for part in
        ["'48h'", "--access-token-ttl", "must be from 1s to 24h", "from the environment (GATEPASS_ACCESS_TOKEN_TTL)"]
    {
        assert!(stderr.contains(part), "{part}: {stderr}");
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "GATEPASS_TOKEN_LEEWAY=5m\n").unwrap();
    let stderr = refused_in(dir.path(), &[], &[]).await;
    assert!(
        stderr.contains("must be from 0s to 60s") && stderr.contains("from .env (GATEPASS_TOKEN_LEEWAY)"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let stderr = refused_in(dir.path(), &["--log-format", "yaml"], &[]).await;
    assert!(stderr.contains("'yaml'") && stderr.contains("from the command line (--log-format)"), "{stderr}");
    assert!(stderr.contains("text, json"), "{stderr}");
    let stderr = refused_in(dir.path(), &["--refresh-reuse-grace=1h"], &[]).await;
    assert!(stderr.contains("must be from 0s to 5m") && stderr.contains("(--refresh-reuse-grace)"), "{stderr}");

    // The JWT_SECRET_KEY alias from .env is named as such.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "JWT_SECRET_KEY=too-short\n").unwrap();
    let stderr = refused_in(dir.path(), &[], &["GATEPASS_JWT_SECRET"]).await;
    assert!(stderr.contains("JWT_SECRET_KEY (alias of GATEPASS_JWT_SECRET, from .env)"), "{stderr}");
}

/// `--listen` takes host names and `:PORT`; an address in use is named in the error.
#[tokio::test]
async fn listen_takes_host_names_and_a_busy_address_is_named() {
    starts(&[("GATEPASS_LISTEN", "localhost:0")]).await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let stderr = refused(&[("GATEPASS_LISTEN", &addr)]).await;
    assert!(stderr.contains(&format!("cannot listen on {addr}")), "{stderr}");
    let stderr = refused(&[("GATEPASS_LISTEN", ":notaport")]).await;
    assert!(stderr.contains("is not a port number"), "{stderr}");
}
