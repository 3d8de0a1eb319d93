//! Rate limits shared through Redis (`--redis-url`): two instances draw from one bucket
//! and share one failed-login back-off; with Redis unreachable each instance falls back to
//! its own buckets (and the back-off to the database) and says so.
//!
//! Tests that need a live Redis read `GATEPASS_TEST_REDIS_URL` and skip without it. Each
//! test writes under its own random key prefix and deletes only those keys afterwards.

use crate::backoff::{PASSWORD, attempt, expect_429};
use crate::common::{self, TestApp, expect_error};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

const BURST: &[&str] =
    &["--rate-limit-ip-burst", "3", "--rate-limit-ip-per-minute", "1", "--rate-limit-user-burst", "100"];

/// The Redis under test, checked to answer; `None` (test skipped) when not configured.
async fn redis_url() -> Option<String> {
    let Ok(url) = std::env::var("GATEPASS_TEST_REDIS_URL") else {
        println!("SKIPPED: GATEPASS_TEST_REDIS_URL not set");
        return None;
    };
    let client = redis::Client::open(url.as_str()).expect("GATEPASS_TEST_REDIS_URL is a redis URL");
    let mut conn = tokio::time::timeout(Duration::from_secs(5), client.get_multiplexed_async_connection())
        .await
        .unwrap_or_else(|_| panic!("Redis at {url} does not answer"))
        .unwrap_or_else(|e| panic!("Redis at {url} is unreachable: {e}"));
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.expect("PING");
    assert_eq!(pong, "PONG");
    Some(url)
}

fn unique_prefix() -> String {
    format!("gatepass:test:{}:", uuid::Uuid::now_v7().simple())
}

/// Deletes the keys under `prefix` (never anything else: the server is shared).
async fn delete_keys(url: &str, prefix: &str) -> usize {
    let client = redis::Client::open(url).expect("url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("connect");
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut conn).await.expect("KEYS");
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await.expect("DEL");
    }
    keys.len()
}

async fn login_status(app: &TestApp, username: &str) -> reqwest::Response {
    app.post("/api/login", json!({"username": username, "password": "wrong password"})).await
}

async fn info(app: &TestApp) -> Value {
    let r = app.get_auth("/api/info", app.operator()).await;
    assert_eq!(r.status(), 200);
    r.json().await.expect("json")
}

async fn metrics(app: &TestApp) -> String {
    let r = app.get("/metrics").await;
    assert_eq!(r.status(), 200);
    r.text().await.expect("text")
}

fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    BURST.iter().copied().chain(extra.iter().copied()).collect()
}

#[tokio::test]
async fn two_instances_share_one_burst_through_redis() {
    let Some(url) = redis_url().await else { return };
    let _serial = common::METRICS.lock().await;
    let prefix = unique_prefix();
    let a = TestApp::spawn_with(&args(&["--redis-url", &url, "--redis-prefix", &prefix])).await;
    let b = a.spawn_peer().await;

    // Burst 3 shared by both: two attempts through A and one through B use it up.
    for (app, name) in [(&a, "nobody1"), (&b, "nobody2"), (&a, "nobody3")] {
        expect_error(login_status(app, name).await, 401, "invalid_credentials").await;
    }
    expect_error(login_status(&b, "nobody4").await, 429, "rate_limited").await;
    expect_error(login_status(&a, "nobody5").await, 429, "rate_limited").await;

    for app in [&a, &b] {
        let body = info(app).await;
        assert_eq!(body["rate_limit_backend"], "redis");
        assert_eq!(body["redis_up"], true);
    }
    let text = metrics(&a).await;
    assert!(text.contains("gatepass_rate_limit_backend{backend=\"redis\"} 1"), "{text}");
    assert!(text.contains("gatepass_redis_up 1"), "{text}");

    // The buckets live under the configured prefix (and only there), with a TTL.
    assert!(delete_keys(&url, &prefix).await >= 1, "keys written under {prefix}");
}

#[tokio::test]
async fn without_redis_each_instance_has_its_own_burst() {
    let a = TestApp::spawn_with(BURST).await;
    let b = a.spawn_peer().await;
    for app in [&a, &b] {
        for i in 0..3 {
            expect_error(login_status(app, &format!("nobody{i}")).await, 401, "invalid_credentials").await;
        }
        expect_error(login_status(app, "nobody9").await, 429, "rate_limited").await;
        let body = info(app).await;
        assert_eq!(body["rate_limit_backend"], "local");
        assert_eq!(body["redis_up"], Value::Null);
    }
}

#[tokio::test]
async fn unreachable_redis_falls_back_to_local_limits_and_says_so() {
    let _serial = common::METRICS.lock().await;
    let app =
        TestApp::spawn_with(&args(&["--redis-url", "redis://127.0.0.1:1", "--redis-prefix", &unique_prefix()])).await;
    let body = info(&app).await;
    assert_eq!(body["rate_limit_backend"], "local");
    assert_eq!(body["redis_up"], false);
    // Fail closed: still throttled, by this instance's own buckets.
    for i in 0..3 {
        expect_error(login_status(&app, &format!("nobody{i}")).await, 401, "invalid_credentials").await;
    }
    expect_error(login_status(&app, "nobody9").await, 429, "rate_limited").await;
    let text = metrics(&app).await;
    assert!(text.contains("gatepass_rate_limit_backend{backend=\"local\"} 1"), "{text}");
    assert!(text.contains("gatepass_redis_up 0"), "{text}");
}

/// A TCP relay to Redis that can be cut and restored, to simulate an outage.
struct Relay {
    port: u16,
    open: Arc<AtomicBool>,
    conns: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let open = Arc::new(AtomicBool::new(true));
        let conns: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (o, c) = (open.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !o.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection closed
                }
                let target = target.clone();
                c.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                }));
            }
        });
        Relay { port, open, conns }
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for h in self.conns.lock().unwrap().drain(..) {
            h.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn redis_outage_is_reported_and_recovery_is_automatic() {
    let Some(url) = redis_url().await else { return };
    let _serial = common::METRICS.lock().await;
    let target = url.trim_start_matches("redis://").trim_end_matches('/').to_owned();
    let relay = Relay::start(target).await;
    let prefix = unique_prefix();
    let relay_url = format!("redis://127.0.0.1:{}", relay.port);
    let app = TestApp::spawn_with(&args(&["--redis-url", &relay_url, "--redis-prefix", &prefix])).await;
    assert_eq!(info(&app).await["rate_limit_backend"], "redis");

    relay.cut();
    // Requests keep being answered (401, then 429 from the local buckets) during the outage.
    let mut saw_local = false;
    for i in 0..20 {
        let r = login_status(&app, &format!("down{i}")).await;
        assert!(r.status() == 401 || r.status() == 429, "status {}", r.status());
        if info(&app).await["rate_limit_backend"] == "local" {
            saw_local = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(saw_local, "the outage shows in /api/info");
    assert_eq!(info(&app).await["redis_up"], false);

    relay.restore();
    let mut recovered = false;
    for i in 0..50 {
        let r = login_status(&app, &format!("up{i}")).await;
        assert!(r.status() == 401 || r.status() == 429, "status {}", r.status());
        if info(&app).await["rate_limit_backend"] == "redis" {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recovered, "shared limits resume once Redis answers again");
    assert_eq!(info(&app).await["redis_up"], true);
    delete_keys(&url, &prefix).await;
}

#[tokio::test]
async fn instance_started_while_redis_is_down_switches_over_when_it_answers() {
    let Some(url) = redis_url().await else { return };
    let _serial = common::METRICS.lock().await;
    let target = url.trim_start_matches("redis://").trim_end_matches('/').to_owned();
    let relay = Relay::start(target).await;
    relay.cut();
    let prefix = unique_prefix();
    let relay_url = format!("redis://127.0.0.1:{}", relay.port);
    let app = TestApp::spawn_with(&args(&["--redis-url", &relay_url, "--redis-prefix", &prefix])).await;
    assert_eq!(info(&app).await["rate_limit_backend"], "local");
    expect_error(login_status(&app, "early").await, 401, "invalid_credentials").await;

    relay.restore();
    let mut recovered = false;
    for i in 0..50 {
        let r = login_status(&app, &format!("later{i}")).await;
        assert!(r.status() == 401 || r.status() == 429, "status {}", r.status());
        if info(&app).await["rate_limit_backend"] == "redis" {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recovered, "shared limits start once Redis answers");
    assert!(delete_keys(&url, &prefix).await >= 1, "buckets now live in Redis");
}

/// The TTL (ms) of `key` in Redis; negative when there is no such key or it never expires.
async fn pttl(url: &str, key: &str) -> i64 {
    let client = redis::Client::open(url).expect("url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("connect");
    redis::cmd("PTTL").arg(key).query_async(&mut conn).await.expect("PTTL")
}

#[tokio::test]
async fn the_backoff_is_shared_through_redis_and_outlives_an_instance() {
    let Some(url) = redis_url().await else { return };
    let prefix = unique_prefix();
    let mut flags = crate::backoff::OPEN_BUCKETS.to_vec();
    flags.extend(["--redis-url", &url, "--redis-prefix", &prefix]);
    let a = TestApp::spawn_with(&flags).await;
    let b = a.spawn_peer().await;
    a.register("yara", PASSWORD).await;
    // The hourly cap at the threshold keeps the account refused however long a restart takes.
    for app in [&a, &b] {
        let r = app.patch_auth("/api/info", app.operator(), json!({"rate_limit": {"max_failures_per_hour": 5}})).await;
        assert_eq!(r.status(), 200);
    }
    for app in [&a, &b, &a, &b, &a] {
        expect_error(attempt(app, "yara", "wrong password", None).await, 401, "invalid_credentials").await;
    }
    expect_429(attempt(&b, "yara", PASSWORD, None).await).await;
    // The record lives in Redis, under the prefix, expiring; the database has none.
    let key = format!("{prefix}fail:acct:yara");
    assert!(pttl(&url, &key).await > 0, "{key} has a TTL");
    assert_eq!(a.storage.failure_record("acct:yara").await.expect("read"), None);
    let a = a.restart().await;
    expect_429(attempt(&a, "yara", PASSWORD, None).await).await;
    delete_keys(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_wrong_guesses_through_redis_stop_at_the_threshold() {
    let Some(url) = redis_url().await else { return };
    let prefix = unique_prefix();
    let mut flags = crate::backoff::OPEN_BUCKETS.to_vec();
    flags.extend(["--redis-url", &url, "--redis-prefix", &prefix]);
    let a = TestApp::spawn_with(&flags).await;
    let b = a.spawn_peer().await;
    crate::backoff::race_to_the_threshold(&a, &b, 3, 60).await;
    assert_eq!(delete_keys(&url, &format!("{prefix}fail:acct:")).await, 3, "one record per account in Redis");
    delete_keys(&url, &prefix).await;
}

#[tokio::test]
async fn with_redis_unreachable_the_backoff_is_kept_in_the_database() {
    let mut flags = crate::backoff::OPEN_BUCKETS.to_vec();
    let prefix = unique_prefix();
    flags.extend(["--redis-url", "redis://127.0.0.1:1", "--redis-prefix", &prefix]);
    let app = TestApp::spawn_with(&flags).await;
    app.register("zeno", PASSWORD).await;
    for _ in 0..5 {
        expect_error(attempt(&app, "zeno", "wrong password", None).await, 401, "invalid_credentials").await;
    }
    expect_429(attempt(&app, "zeno", PASSWORD, None).await).await;
    assert!(app.storage.failure_record("acct:zeno").await.expect("read").is_some());
}
