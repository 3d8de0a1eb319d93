//! `gatepass-loadgen`: drives a running gatepass over HTTP for `scripts/bench`.
//!
//! Every run is bounded by `--duration` and targets the given URL (the benchmark script
//! only ever passes 127.0.0.1). Results print as one tab-separated line:
//! `name  requests  req_per_s  p50_ms  p99_ms  errors`.

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Register `count` users named `<prefix><i>` and print one access token.
    Seed {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 100)]
        count: u32,
        #[arg(long, default_value = "bench")]
        prefix: String,
        #[arg(long, default_value = "bench-password-1")]
        password: String,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
    /// Repeated logins of the seeded users.
    Login {
        #[command(flatten)]
        load: Load,
        #[arg(long, default_value_t = 100)]
        users: u32,
        #[arg(long, default_value = "bench")]
        prefix: String,
        #[arg(long, default_value = "bench-password-1")]
        password: String,
    },
    /// Each worker logs in once, then rotates its refresh token as fast as it can.
    Refresh {
        #[command(flatten)]
        load: Load,
        #[arg(long, default_value = "bench")]
        prefix: String,
        #[arg(long, default_value = "bench-password-1")]
        password: String,
    },
    /// Registrations of fresh users.
    Register {
        #[command(flatten)]
        load: Load,
    },
    /// Inserts users and revoked-but-unexpired sessions straight into a stopped server's
    /// SQLite database (HTTP registration of 100,000 users would take an hour of Argon2).
    SeedDb {
        #[arg(long)]
        database: String,
        #[arg(long, default_value_t = 100_000)]
        users: u32,
        #[arg(long, default_value_t = 100_000)]
        revoked: u32,
    },
    /// Waits until GET /healthz answers 200; prints milliseconds since `--since-ns` (a
    /// `date +%s%N` taken just before the server was started).
    WaitHealthy {
        #[arg(long)]
        url: String,
        #[arg(long)]
        since_ns: u128,
    },
}

#[derive(clap::Args, Clone)]
struct Load {
    #[arg(long)]
    url: String,
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    #[arg(long, default_value_t = 10)]
    duration: u64,
    #[arg(long, default_value = "run")]
    name: String,
}

struct Stats {
    hist: Mutex<Histogram<u64>>,
    errors: AtomicU64,
}

impl Stats {
    fn new() -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            hist: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3)?),
            errors: AtomicU64::new(0),
        }))
    }
    async fn record(&self, started: Instant, ok: bool) {
        if ok {
            let us = started.elapsed().as_micros().clamp(1, 60_000_000) as u64;
            let _ = self.hist.lock().await.record(us);
        } else {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    async fn print(&self, name: &str, elapsed: Duration) {
        let h = self.hist.lock().await;
        let n = h.len();
        println!(
            "{name}\t{n}\t{:.1}\t{:.2}\t{:.2}\t{}",
            n as f64 / elapsed.as_secs_f64(),
            h.value_at_quantile(0.50) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0,
            self.errors.load(Ordering::Relaxed)
        );
    }
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().pool_max_idle_per_host(256).build()?)
}

async fn post(client: &reqwest::Client, url: &str, body: Value) -> anyhow::Result<(u16, Value)> {
    let r = client.post(url).json(&body).send().await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

/// Runs `step` in `concurrency` workers until `duration` passes.
async fn run<F, Fut>(load: &Load, init: impl Fn(usize) -> F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let stats = Stats::new()?;
    let deadline = Instant::now() + Duration::from_secs(load.duration);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..load.concurrency {
        let mut step = init(w);
        let stats = stats.clone();
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let t = Instant::now();
                let ok = step().await;
                stats.record(t, ok).await;
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    stats.print(&load.name, started.elapsed()).await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Seed { url, count, prefix, password, concurrency } => {
            let client = client()?;
            let next = Arc::new(AtomicU64::new(0));
            let token = Arc::new(Mutex::new(String::new()));
            let mut tasks = Vec::new();
            for _ in 0..concurrency {
                let (client, next, token, url, prefix, password) =
                    (client.clone(), next.clone(), token.clone(), url.clone(), prefix.clone(), password.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= u64::from(count) {
                            return anyhow::Ok(());
                        }
                        let body = json!({"username": format!("{prefix}{i}"), "password": password});
                        let (status, v) = post(&client, &format!("{url}/api/register"), body).await?;
                        if status != 201 && status != 409 {
                            bail!("register returned {status}: {v}");
                        }
                        if let Some(t) = v["access_token"].as_str() {
                            *token.lock().await = t.to_owned();
                        }
                    }
                }));
            }
            for t in tasks {
                t.await??;
            }
            println!("{}", token.lock().await);
        }
        Cmd::Login { load, users, prefix, password } => {
            let client = client()?;
            let url = format!("{}/api/login", load.url);
            run(&load, |w| {
                let (client, url, prefix, password) = (client.clone(), url.clone(), prefix.clone(), password.clone());
                let mut i = w as u32;
                move || {
                    i = (i + 7) % users.max(1);
                    let (client, url) = (client.clone(), url.clone());
                    let body = json!({"username": format!("{prefix}{i}"), "password": password});
                    async move { matches!(post(&client, &url, body).await, Ok((200, _))) }
                }
            })
            .await?;
        }
        Cmd::Refresh { load, prefix, password } => {
            let client = client()?;
            let mut chains = Vec::new();
            for w in 0..load.concurrency {
                let body = json!({"username": format!("{prefix}{w}"), "password": password});
                let (status, v) = post(&client, &format!("{}/api/login", load.url), body).await?;
                if status != 200 {
                    bail!("login for refresh chain failed: {status} {v}");
                }
                chains.push(Arc::new(Mutex::new(v["refresh_token"].as_str().context("refresh_token")?.to_owned())));
            }
            let url = format!("{}/api/refresh", load.url);
            run(&load, |w| {
                let (client, url, chain) = (client.clone(), url.clone(), chains[w].clone());
                move || {
                    let (client, url, chain) = (client.clone(), url.clone(), chain.clone());
                    async move {
                        let current = chain.lock().await.clone();
                        match post(&client, &url, json!({"refresh_token": current})).await {
                            Ok((200, v)) => {
                                if let Some(next) = v["refresh_token"].as_str() {
                                    *chain.lock().await = next.to_owned();
                                    return true;
                                }
                                false
                            }
                            _ => false,
                        }
                    }
                }
            })
            .await?;
        }
        Cmd::Register { load } => {
            let client = client()?;
            let url = format!("{}/api/register", load.url);
            let run_id = uuid::Uuid::now_v7().simple().to_string();
            let next = Arc::new(AtomicU64::new(0));
            run(&load, |_| {
                let (client, url, next, run_id) = (client.clone(), url.clone(), next.clone(), run_id.clone());
                move || {
                    let (client, url) = (client.clone(), url.clone());
                    let name = format!("r{}-{}", &run_id[20..], next.fetch_add(1, Ordering::Relaxed));
                    async move {
                        let body = json!({"username": name, "password": "bench-password-1"});
                        matches!(post(&client, &url, body).await, Ok((201, _)))
                    }
                }
            })
            .await?;
        }
        Cmd::SeedDb { database, users, revoked } => seed_db(&database, users, revoked).await?,
        Cmd::WaitHealthy { url, since_ns } => {
            let client = reqwest::Client::builder().timeout(Duration::from_millis(500)).build()?;
            let give_up = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(r) = client.get(format!("{url}/healthz")).send().await
                    && r.status() == 200
                {
                    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
                    println!("{:.1}", (now.saturating_sub(since_ns)) as f64 / 1e6);
                    return Ok(());
                }
                if Instant::now() > give_up {
                    bail!("server did not become healthy within 30 s");
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }
    Ok(())
}

async fn seed_db(database: &str, users: u32, revoked: u32) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{database}")).await?;
    let now = i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs())?;
    // One real Argon2id hash shape; these users are for size, not for logging in.
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$8sdMoJ7Ujkf8Fb2zvGQB2OZkqbOprl0vXI4BIb8c3k4";
    let mut tx = conn.begin().await?;
    for i in 0..users {
        let id = uuid::Uuid::now_v7().to_string();
        let name = format!("bulk{i}");
        sqlx::query(
            "INSERT INTO users (id, username, username_canonical, password_hash, roles, disabled, created_at, updated_at) \
             VALUES (?1, ?2, ?2, ?3, 'user', 0, ?4, ?4)",
        )
        .bind(&id)
        .bind(&name)
        .bind(hash)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if i < revoked {
            let sid = uuid::Uuid::now_v7().to_string();
            sqlx::query(
                "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, auth_time, access_expires_at, revoked_at) \
                 VALUES (?1, ?2, ?3, ?3, ?4, ?3, ?5, ?3)",
            )
            .bind(&sid)
            .bind(&id)
            .bind(now)
            .bind(now + 86_400)
            .bind(now + 900)
            .execute(&mut *tx)
            .await?;
            sqlx::query("INSERT INTO revocations (session_id, until, reason) VALUES (?1, ?2, 'revoked')")
                .bind(&sid)
                .bind(now + 960)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    println!("seeded {users} users and {revoked} revoked sessions");
    Ok(())
}
