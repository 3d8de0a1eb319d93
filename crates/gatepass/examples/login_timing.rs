//! Measures how long a failed login takes for an unknown user, a wrong password and a
//! disabled account, over HTTP against a real server with the production Argon2id cost.
//! Enumeration safety needs these to be indistinguishable.
//!
//! `cargo run --release -p gatepass --example login_timing -- [ROUNDS]` (default 100)

use clap::Parser;
use gatepass::app::Application;
use gatepass::config::ServeArgs;
use serde_json::json;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Wrapper {
    #[command(flatten)]
    args: ServeArgs,
}

fn stats(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mean = v.iter().map(|d| ms(*d)).sum::<f64>() / v.len() as f64;
    (mean, ms(v[v.len() / 2]), ms(v[v.len() * 9 / 10]))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(100);
    let dir = tempfile::tempdir()?;
    let argv = [
        "gatepass",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().to_str().unwrap_or("."),
        "--jwt-secret",
        "9f2c4e7a1b3d5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8",
        "--rate-limit",
        "false",
    ];
    let args = Wrapper::try_parse_from(argv)?.args;
    let app = Application::build(args).await?;
    let base = format!("http://{}", app.local_addr()?);
    let state = app.state().clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    let client = reqwest::Client::new();
    for name in ["present", "switched-off"] {
        let r = client
            .post(format!("{base}/api/register"))
            .json(&json!({"username": name, "password": "correct horse staple"}))
            .send()
            .await?;
        anyhow::ensure!(r.status() == 201, "register failed");
    }
    let core = state.service.core();
    let off = core.find_user("switched-off").await?;
    let patch = gatepass::storage::UserPatch { disabled: Some(true), ..Default::default() };
    core.update_user(&gatepass::service::Actor::cli(), &off, &patch).await?;

    let cases = [
        ("unknown user", "absent-user", "correct horse staple"),
        ("wrong password", "present", "wrong horse staple"),
        ("disabled account", "switched-off", "correct horse staple"),
    ];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    // Warm-up, then interleave the cases so drift in machine load hits all alike.
    for round in 0..rounds + 5 {
        for (i, (_, user, pw)) in cases.iter().enumerate() {
            let start = Instant::now();
            let r = client
                .post(format!("{base}/api/login"))
                .json(&json!({"username": user, "password": pw}))
                .send()
                .await?;
            let status = r.status();
            let _ = r.bytes().await?;
            let took = start.elapsed();
            anyhow::ensure!(status == 401, "{user}: expected 401, got {status}");
            if round >= 5 {
                times[i].push(took);
            }
        }
    }
    println!("{rounds} rounds per case, Argon2id m=19456 KiB t=2 p=1, over loopback HTTP");
    println!("{:<18} {:>9} {:>9} {:>9}", "case", "mean ms", "median", "p90");
    let mut medians = Vec::new();
    for ((name, _, _), t) in cases.iter().zip(times) {
        let (mean, median, p90) = stats(t);
        medians.push(median);
        println!("{name:<18} {mean:>9.2} {median:>9.2} {p90:>9.2}");
    }
    let max = medians.iter().cloned().fold(f64::MIN, f64::max);
    let min = medians.iter().cloned().fold(f64::MAX, f64::min);
    println!("largest difference between medians: {:.2} ms ({:.1} %)", max - min, (max - min) / min * 100.0);
    let _ = tx.send(());
    let _ = server.await;
    Ok(())
}
