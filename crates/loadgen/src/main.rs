//! `gatepass-loadgen`: drives a running gatepass over HTTP for `scripts/bench`.
//!
//! Every run is bounded by `--duration` and targets the given URL (the benchmark script
//! only ever passes 127.0.0.1). Results print as one tab-separated line:
//! `name  requests  req_per_s  p50_ms  p99_ms  errors`.

mod reference;

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
    /// The reference the request path is measured against: a bare axum route (`GET
    /// /bare`) and the same route verifying an HS256 token with `jsonwebtoken` (`GET
    /// /verify`), on `--listen`, until stopped.
    Reference {
        #[arg(long)]
        listen: String,
        /// The HS256 secret gatepass signs with.
        #[arg(long)]
        secret: String,
        #[arg(long, default_value = "gatepass")]
        issuer: String,
    },
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
        /// Live (unrevoked) sessions besides the revoked ones, spread over the users.
        #[arg(long, default_value_t = 0)]
        sessions: u32,
    },
    /// Token introspection (RFC 7662, `POST /api/introspect`) of one access token by an
    /// introspection client, as a resource server that does not verify locally would.
    Introspect {
        #[command(flatten)]
        load: Load,
        /// `id:secret` of an introspection client.
        #[arg(long)]
        credential: String,
        #[arg(long)]
        token: String,
    },
    /// OAuth `client_credentials` grants at `/oauth/token` (`client_secret_basic`).
    ClientCredentials {
        #[command(flatten)]
        load: Load,
        #[arg(long)]
        client_id: String,
        #[arg(long)]
        client_secret: String,
        #[arg(long)]
        scope: Option<String>,
    },
    /// The authorization-code flow end to end, as a browser and a web app run it: the login
    /// form (one Argon2 verification) returning to the authorization request, the redirect
    /// with the code, the code exchange with PKCE. A first-party client (no consent page).
    AuthCode {
        #[command(flatten)]
        load: Load,
        #[arg(long)]
        client_id: String,
        #[arg(long)]
        client_secret: String,
        #[arg(long)]
        redirect_uri: String,
        #[arg(long, default_value_t = 100)]
        users: u32,
        #[arg(long, default_value = "bench")]
        prefix: String,
        #[arg(long, default_value = "bench-password-1")]
        password: String,
    },
    /// Revocation feed, end to end: logs `count` sessions out on `--url` one after another
    /// and measures, for each, the time from sending the logout until a local
    /// `gatepass-verify` verifier following the feed of `--feed-url` (another instance, or
    /// the same) refuses the session's token. The verifier makes no call to gatepass per
    /// verification. Needs throttling off and a cheap Argon2 cost on the server (the
    /// sessions are made by `count` logins).
    FeedLogout {
        #[arg(long)]
        url: String,
        #[arg(long)]
        feed_url: Option<String>,
        /// `id:secret` of an introspection client.
        #[arg(long)]
        credential: String,
        /// The server's HS256 signing secret (the verifier's key).
        #[arg(long)]
        secret: String,
        #[arg(long, default_value_t = 1000)]
        count: u32,
    },
    /// Revocation feed fan-out: `--subscribers` SSE subscribers on `--url` while
    /// revocations are written straight into the server's SQLite database at `--rate` per
    /// second for `--duration` seconds, and `GET /api/protected` is driven by
    /// `--concurrency` workers; first the same route alone (idle) for comparison.
    FeedFanout {
        #[arg(long)]
        url: String,
        #[arg(long)]
        database: String,
        #[arg(long)]
        credential: String,
        #[arg(long)]
        token: String,
        #[arg(long, default_value_t = 100)]
        subscribers: usize,
        #[arg(long, default_value_t = 10_000)]
        rate: u32,
        #[arg(long, default_value_t = 10)]
        duration: u64,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// The server's process id: its CPU time in each phase is printed too.
        #[arg(long)]
        server_pid: Option<u32>,
        /// The fixed request rate of the compared phases, as a fraction of the capacity the
        /// closed loop measures first: the p99 comparison means something only below
        /// capacity, where the fan-out's cost lands in headroom instead of in a queue.
        #[arg(long, default_value_t = 0.25)]
        route_fraction: f64,
        /// The CPU the subscribers' thread runs on (default: wherever this process may).
        #[arg(long)]
        subscriber_cpu: Option<usize>,
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
    /// Prints the result line; returns the rate of successful requests.
    async fn print(&self, name: &str, elapsed: Duration) -> f64 {
        let h = self.hist.lock().await;
        let n = h.len();
        println!(
            "{name}\t{n}\t{:.1}\t{:.2}\t{:.2}\t{}",
            n as f64 / elapsed.as_secs_f64(),
            h.value_at_quantile(0.50) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0,
            self.errors.load(Ordering::Relaxed)
        );
        n as f64 / elapsed.as_secs_f64()
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

/// Runs `step` in `concurrency` workers until `duration` passes; returns the rate of
/// successful requests.
async fn run<F, Fut>(load: &Load, init: impl Fn(usize) -> F) -> anyhow::Result<f64>
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
    Ok(stats.print(&load.name, started.elapsed()).await)
}

/// Open loop: starts one `step` every `1 / rate` seconds until `duration` passes, whatever
/// the answers' latency (at most `in_flight` at once), and times each from when it was due
/// as well as from when it was sent. A closed loop slows down with the server and so hides
/// queueing (coordinated omission); this one does not. Prints the `run` line with the
/// latency from the due time, then `from send: p50 p99`.
async fn run_paced<F, Fut>(load: &Load, rate: f64, in_flight: usize, mut step: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let (due_stats, sent_stats) = (Stats::new()?, Stats::new()?);
    let limit = Arc::new(tokio::sync::Semaphore::new(in_flight));
    let started = Instant::now();
    let end = started + Duration::from_secs(load.duration);
    let period = Duration::from_secs_f64(1.0 / rate);
    let mut due = started;
    while due < end {
        tokio::time::sleep_until(due.into()).await;
        // Waiting for a free slot counts in the latency from the due time.
        let permit = limit.clone().acquire_owned().await?;
        let (due_stats, sent_stats, fut) = (due_stats.clone(), sent_stats.clone(), step());
        tokio::spawn(async move {
            let sent = Instant::now();
            let ok = fut.await;
            due_stats.record(due, ok).await;
            sent_stats.record(sent, ok).await;
            drop(permit);
        });
        due += period;
    }
    let _all = limit.acquire_many(u32::try_from(in_flight)?).await?;
    due_stats.print(&load.name, started.elapsed()).await;
    let h = sent_stats.hist.lock().await;
    println!(
        "  from send	p50 {:.2}	p99 {:.2}",
        h.value_at_quantile(0.50) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0
    );
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
        Cmd::Reference { listen, secret, issuer } => reference::serve(&listen, &secret, &issuer).await?,
        Cmd::SeedDb { database, users, revoked, sessions } => seed_db(&database, users, revoked, sessions).await?,
        Cmd::Introspect { load, credential, token } => {
            let (id, secret) = split_credential(&credential)?;
            let client = client()?;
            let url = format!("{}/api/introspect", load.url);
            run(&load, |_| {
                let (client, url, id, secret, token) =
                    (client.clone(), url.clone(), id.clone(), secret.clone(), token.clone());
                move || {
                    let req = client.post(&url).basic_auth(&id, Some(&secret)).form(&[("token", token.as_str())]);
                    async move {
                        match req.send().await {
                            Ok(r) if r.status() == 200 => {
                                r.json::<Value>().await.is_ok_and(|v| v["active"] == Value::Bool(true))
                            }
                            _ => false,
                        }
                    }
                }
            })
            .await?;
        }
        Cmd::ClientCredentials { load, client_id, client_secret, scope } => {
            let client = client()?;
            let url = format!("{}/oauth/token", load.url);
            let mut form = vec![("grant_type", "client_credentials".to_owned())];
            if let Some(scope) = scope {
                form.push(("scope", scope));
            }
            run(&load, |_| {
                let (client, url, id, secret, form) =
                    (client.clone(), url.clone(), client_id.clone(), client_secret.clone(), form.clone());
                move || {
                    let req = client.post(&url).basic_auth(&id, Some(&secret)).form(&form);
                    async move {
                        match req.send().await {
                            Ok(r) if r.status() == 200 => {
                                r.json::<Value>().await.is_ok_and(|v| v["access_token"].is_string())
                            }
                            _ => false,
                        }
                    }
                }
            })
            .await?;
        }
        Cmd::AuthCode { load, client_id, client_secret, redirect_uri, users, prefix, password } => {
            let flow = Arc::new(CodeFlow { base: load.url.clone(), client_id, client_secret, redirect_uri, password });
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .redirect(reqwest::redirect::Policy::none())
                .build()?;
            run(&load, |w| {
                let (client, flow, prefix) = (client.clone(), flow.clone(), prefix.clone());
                let mut i = w as u32;
                move || {
                    i = (i + 7) % users.max(1);
                    let (client, flow, user) = (client.clone(), flow.clone(), format!("{prefix}{i}"));
                    async move { flow.run(&client, &user).await.is_ok() }
                }
            })
            .await?;
        }
        Cmd::FeedLogout { url, feed_url, credential, secret, count } => {
            feed_logout(&url, feed_url.as_deref().unwrap_or(&url), &credential, &secret, count).await?
        }
        Cmd::FeedFanout {
            url,
            database,
            credential,
            token,
            subscribers,
            rate,
            duration,
            concurrency,
            server_pid,
            route_fraction,
            subscriber_cpu,
        } => {
            if !(route_fraction > 0.0 && route_fraction <= 1.0) {
                bail!("--route-fraction must be in (0, 1]");
            }
            let load = Load { url, concurrency, duration, name: String::new() };
            let fanout = Fanout { subscribers, rate, route_fraction, subscriber_cpu };
            feed_fanout(&load, &database, &credential, &token, fanout, server_pid).await?
        }
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

/// The PKCE pair of RFC 7636, appendix B (the verifier's S256 challenge).
const PKCE_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const PKCE_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// One client's authorization-code flow against `base`.
struct CodeFlow {
    base: String,
    client_id: String,
    client_secret: String,
    redirect_uri: String,
    password: String,
}

impl CodeFlow {
    /// Signs `user` in through the login form, follows the authorization request to the
    /// code and exchanges it; an error names the step that failed.
    async fn run(&self, client: &reqwest::Client, user: &str) -> anyhow::Result<()> {
        let mut authorize = reqwest::Url::parse(&format!("{}/oauth/authorize", self.base))?;
        authorize.query_pairs_mut().extend_pairs([
            ("response_type", "code"),
            ("client_id", self.client_id.as_str()),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("scope", "openid profile"),
            ("state", "bench"),
            ("code_challenge", PKCE_CHALLENGE),
            ("code_challenge_method", "S256"),
        ]);
        let return_to = &authorize.as_str()[self.base.len()..];
        let login = client
            .post(format!("{}/ui/login", self.base))
            .header("Origin", &self.base)
            .form(&[("username", user), ("password", self.password.as_str()), ("return_to", return_to)])
            .send()
            .await?;
        if login.status() != 303 {
            bail!("login form: {}", login.status());
        }
        let cookies: Vec<String> = login
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
            .collect();
        let next = login.headers().get(reqwest::header::LOCATION).context("login redirect")?.to_str()?;
        let back = client.get(format!("{}{next}", self.base)).header("Cookie", cookies.join("; ")).send().await?;
        let location = back.headers().get(reqwest::header::LOCATION).context("authorize redirect")?.to_str()?;
        let code = reqwest::Url::parse(location)?
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .context("a code in the redirect")?;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("code_verifier", PKCE_VERIFIER),
        ];
        let token = client
            .post(format!("{}/oauth/token", self.base))
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .form(&form)
            .send()
            .await?;
        if token.status() != 200 {
            bail!("code exchange: {}", token.status());
        }
        let v: Value = token.json().await?;
        v["id_token"].as_str().context("an ID token")?;
        Ok(())
    }
}

async fn seed_db(database: &str, users: u32, revoked: u32, sessions: u32) -> anyhow::Result<()> {
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
    // Live sessions, round-robin over the users just inserted (their ids come back in order).
    if sessions > 0 {
        let ids: Vec<(String,)> =
            sqlx::query_as("SELECT id FROM users WHERE username LIKE 'bulk%' ORDER BY id").fetch_all(&mut *tx).await?;
        for i in 0..sessions as usize {
            let Some((user_id,)) = ids.get(i % ids.len().max(1)) else { break };
            sqlx::query(
                "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, auth_time, access_expires_at) \
                 VALUES (?1, ?2, ?3, ?3, ?4, ?3, ?5)",
            )
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(user_id)
            .bind(now)
            .bind(now + 86_400)
            .bind(now + 900)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    println!("seeded {users} users, {revoked} revoked sessions and {sessions} live sessions");
    Ok(())
}

fn split_credential(credential: &str) -> anyhow::Result<(String, String)> {
    let (id, secret) = credential.split_once(':').context("--credential takes id:secret")?;
    Ok((id.to_owned(), secret.to_owned()))
}

async fn feed_logout(url: &str, feed_url: &str, credential: &str, secret: &str, count: u32) -> anyhow::Result<()> {
    use gatepass_verify::{RevocationFeed, RevocationFeedOptions, Verifier, VerifierConfig};
    let (id, client_secret) = split_credential(credential)?;
    let client = client()?;
    let name = format!("feedbench{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let password = "bench-password-1";
    let (status, v) =
        post(&client, &format!("{url}/api/register"), json!({"username": name, "password": password})).await?;
    if status != 201 {
        bail!("register returned {status}: {v}");
    }
    // One session per logout, made up front.
    let mut tokens = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let (status, v) =
            post(&client, &format!("{url}/api/login"), json!({"username": name, "password": password})).await?;
        if status != 200 {
            bail!("login returned {status}: {v}");
        }
        tokens.push(v["access_token"].as_str().context("access_token")?.to_owned());
    }
    let feed = RevocationFeed::start(RevocationFeedOptions::new(
        format!("{feed_url}/api/revocations/stream"),
        id,
        client_secret,
    ))?;
    if !feed.wait_current(Duration::from_secs(10)).await {
        bail!("the revocation feed did not become current");
    }
    let verifier = Verifier::hs256(secret.as_bytes(), VerifierConfig::new("gatepass"))?.with_revocation_feed(feed);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut missed = 0u64;
    let started = Instant::now();
    for token in &tokens {
        if verifier.verify_access(token).is_err() {
            bail!("a live token was refused before its logout");
        }
        let t = Instant::now();
        let r = client.post(format!("{url}/api/logout")).bearer_auth(token).send().await?;
        if r.status() != 200 {
            bail!("logout returned {}", r.status());
        }
        // Poll the local verifier (what a resource server does on its next request).
        let deadline = t + Duration::from_secs(5);
        loop {
            if verifier.verify_access(token).is_err() {
                let _ = hist.record(t.elapsed().as_micros().clamp(1, 60_000_000) as u64);
                break;
            }
            if Instant::now() > deadline {
                missed += 1;
                break;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "feed-logout\t{}\t{:.1}\tp50 {:.2}\tp99 {:.2}\tmax {:.2}\tnot refused within 5 s: {missed}",
        hist.len(),
        hist.len() as f64 / started.elapsed().as_secs_f64(),
        ms(0.5),
        ms(0.99),
        hist.max() as f64 / 1000.0
    );
    Ok(())
}

/// CPU time (user + system) of process `pid` so far, in seconds, from `/proc`.
fn process_cpu_secs(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // Linux reports these in USER_HZ, 100 on every common configuration.
    Ok((ticks(11) + ticks(12)) / 100.0)
}

/// The subscribers of a fan-out run: where, how many, and what they count into.
struct Subscribers {
    url: String,
    id: String,
    secret: String,
    count: usize,
    /// Revocations received, all subscribers together.
    received: Arc<AtomicU64>,
    /// Set when they should stop.
    stop: Arc<std::sync::atomic::AtomicBool>,
}

/// Opens the subscriptions (answering `ready` once all are open), counts the revocations
/// they receive, and returns once `stop` is set.
async fn subscribe(
    client: reqwest::Client,
    subs: Subscribers,
    ready: tokio::sync::oneshot::Sender<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let Subscribers { url, id, secret, count, received, stop } = subs;
    use futures_util::StreamExt as _;
    let mut responses = Vec::with_capacity(count);
    for _ in 0..count {
        let r = client.get(format!("{url}/api/revocations/stream")).basic_auth(&id, Some(&secret)).send().await;
        match r {
            Ok(r) if r.status() == 200 => responses.push(r),
            Ok(r) => {
                let _ = ready.send(Err(anyhow::anyhow!("subscribe returned {}", r.status())));
                return Ok(());
            }
            Err(e) => {
                let _ = ready.send(Err(e.into()));
                return Ok(());
            }
        }
    }
    let mut subs = Vec::with_capacity(count);
    for r in responses {
        let received = received.clone();
        subs.push(tokio::spawn(async move {
            // Counting event lines is all a subscriber does here: the load generator shares
            // the machine with the server, and a full SSE parse per event for a hundred
            // subscribers would take the cores the measured route needs.
            const MARK: &[u8] = b"event: key_revoked\n";
            let mut body = r.bytes_stream();
            let mut carry: Vec<u8> = Vec::new();
            while let Some(Ok(chunk)) = body.next().await {
                carry.extend_from_slice(&chunk);
                let n = memchr::memmem::find_iter(&carry, MARK).count();
                received.fetch_add(n as u64, Ordering::Relaxed);
                // Keep a tail that could hold the start of a split mark.
                let keep = carry.len().min(MARK.len() - 1);
                carry.drain(..carry.len() - keep);
            }
        }));
    }
    let _ = ready.send(Ok(()));
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for s in subs {
        s.abort();
    }
    Ok(())
}

/// The fan-out benchmark's shape.
struct Fanout {
    subscribers: usize,
    /// Revocations written per second.
    rate: u32,
    /// The protected route's fixed rate in the compared phases, as a fraction of capacity.
    route_fraction: f64,
    /// The CPU of the subscribers' thread.
    subscriber_cpu: Option<usize>,
}

async fn feed_fanout(
    base: &Load,
    database: &str,
    credential: &str,
    token: &str,
    fanout: Fanout,
    server_pid: Option<u32>,
) -> anyhow::Result<()> {
    let Fanout { subscribers, rate, route_fraction, subscriber_cpu } = fanout;
    let (url, duration) = (base.url.as_str(), base.duration);
    let (id, secret) = split_credential(credential)?;
    let client = client()?;
    let cpu = || server_pid.map(process_cpu_secs).transpose();
    let protected_url = format!("{url}/api/protected");
    let request = {
        let (client, url, token) = (client.clone(), protected_url.clone(), token.to_owned());
        move || {
            let (client, url, token) = (client.clone(), url.clone(), token.clone());
            async move { matches!(client.get(&url).bearer_auth(&token).send().await, Ok(r) if r.status() == 200) }
        }
    };
    let load =
        |name: &str| Load { url: url.to_owned(), concurrency: base.concurrency, duration, name: name.to_owned() };
    // Phases: capacity (closed loop), then the same fixed rate below it idle and during.
    let capacity = run(&load("GET /api/protected idle, closed loop (capacity)"), |_| request.clone()).await?;
    let route_rate = (capacity * route_fraction).max(1.0);
    let paced = |name: &'static str| {
        let load = load(name);
        let request = request.clone();
        async move {
            let cpu_before = cpu()?;
            run_paced(&load, route_rate, 256, request).await?;
            if let (Some(a), Some(b)) = (cpu_before, cpu()?) {
                println!("  server CPU	{:.2} s of {duration} s", b - a);
            }
            anyhow::Ok(())
        }
    };
    println!("fixed rate for the compared phases: {route_rate:.0} requests/s ({route_fraction} of capacity)");
    paced("GET /api/protected idle, fixed rate").await?;

    // Subscribers count the revocations they receive. They stand for other services on
    // other machines, so they run on a thread of their own at the lowest priority: on a
    // shared core they take what the measured route's load leaves, instead of delaying its
    // requests in one scheduler with them.
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    let subscriber_thread = {
        let subs = Subscribers {
            url: url.to_owned(),
            id: id.clone(),
            secret: secret.clone(),
            count: subscribers,
            received: received.clone(),
            stop: stop.clone(),
        };
        std::thread::spawn(move || -> anyhow::Result<()> {
            // SCHED_IDLE rather than a nice value: the kernel lets any other thread that
            // wakes on this CPU preempt it at once, where a niced thread still runs out its
            // time slice (milliseconds) before the route's load generator gets the CPU.
            // SAFETY: `param` is a valid sched_param; pid 0 is the calling thread.
            let param = libc::sched_param { sched_priority: 0 };
            if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } != 0 {
                bail!("sched_setscheduler: {}", std::io::Error::last_os_error());
            }
            if let Some(cpu) = subscriber_cpu {
                // SAFETY: `set` is a zeroed, owned cpu_set_t; pid 0 is the calling thread.
                let ok = unsafe {
                    let mut set: libc::cpu_set_t = std::mem::zeroed();
                    libc::CPU_SET(cpu, &mut set);
                    libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
                };
                if !ok {
                    bail!("sched_setaffinity: {}", std::io::Error::last_os_error());
                }
            }
            // A client of its own: one connection pool shared with the route's load would
            // make the two wait on each other's lock.
            let client = crate::client()?;
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(subscribe(client, subs, ready_tx))
        })
    };
    ready.await.context("the subscribers' thread ended before subscribing")??;

    // The writer: batches every 10 ms straight into the database (key revocations, the
    // same log rows a logout writes), as fast as `rate` allows.
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{database}")).await?;
    sqlx::query("PRAGMA busy_timeout = 5000").execute(&mut conn).await?;
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    let writer = tokio::spawn(async move {
        let per_tick = (rate / 100).max(1);
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        // A steady rate: after a slow commit (a WAL checkpoint's sync) the missed ticks are
        // skipped, not made up in a burst; the rate reached is printed.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let end = Instant::now() + Duration::from_secs(duration);
        let mut written = 0u64;
        let until = i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs())? + 600;
        while Instant::now() < end {
            tick.tick().await;
            let mut tx = conn.begin().await?;
            for _ in 0..per_tick {
                sqlx::query(
                    "INSERT INTO revocations (session_id, until, reason, kind) VALUES (?1, ?2, 'key_revoked', 'key')",
                )
                .bind(format!("key:bench-{run_id}-{written}"))
                .bind(until)
                .execute(&mut *tx)
                .await?;
                written += 1;
            }
            tx.commit().await?;
        }
        anyhow::Ok(written)
    });
    let started = Instant::now();
    paced("GET /api/protected during fan-out, fixed rate").await?;
    let written = writer.await??;
    let write_secs = started.elapsed().as_secs_f64();
    // Let the subscribers drain (bounded).
    let expected = written * subscribers as u64;
    let drain_end = Instant::now() + Duration::from_secs(30);
    while received.load(Ordering::Relaxed) < expected && Instant::now() < drain_end {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let total = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    subscriber_thread.join().map_err(|_| anyhow::anyhow!("the subscribers' thread panicked"))??;
    let got = received.load(Ordering::Relaxed);
    println!(
        "feed-fanout\t{subscribers} subscribers\twritten {written} ({:.0}/s)\tdelivered {got} of {expected} ({:.0} events/s) in {total:.1} s",
        written as f64 / write_secs,
        got as f64 / total
    );
    Ok(())
}
