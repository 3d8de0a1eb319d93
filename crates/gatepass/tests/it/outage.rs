//! PostgreSQL going away and coming back: requests that need the database get 503
//! `storage_unavailable` with `Retry-After`, token verification keeps working, and the
//! server recovers by itself with nothing lost.
//!
//! The outage is simulated by a TCP relay between gatepass and PostgreSQL that the test
//! cuts (every connection dropped, new ones refused) and restores, so the shared
//! PostgreSQL server other tests use is never stopped.

use crate::common::pg::{TestDb, admin_url};
use crate::common::{MASTER_KEY, TestApp, expect_error, s};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// A relay to `upstream` that can be switched off and on.
struct Relay {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Relay {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().expect("relay addr");
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (up2, conns2) = (up.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: connection refused in effect
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                conns2.lock().expect("lock").push(task.abort_handle());
            }
        });
        Relay { addr, up, conns }
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.conns.lock().expect("lock").drain(..) {
            c.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// `host:port` of a `postgres://user@host:port/db` URL.
fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    if authority.contains(':') { authority.to_owned() } else { format!("{authority}:5432") }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn database_outage_gives_503_and_recovers_by_itself() {
    let Some(admin) = admin_url() else { return };
    let db = TestDb::create(&admin).await;
    let relay = Relay::start(host_port(&db.url)).await;
    let via_relay = db.url.replace(&host_port(&db.url), &relay.addr.to_string());
    // An external database needs the master key (nothing is generated).
    let app = TestApp::spawn_on_database(&via_relay, &["--master-key", MASTER_KEY]).await;

    let reg = app.register("alice", "password-1").await;
    let token = s(&reg, "token").to_owned();
    let refresh = s(&reg, "refresh_token").to_owned();

    relay.down();
    // Concurrent requests that need the database all fail cleanly, with a retry hint.
    let logins: Vec<_> = (0..8)
        .map(|_| {
            let request =
                app.client.post(app.url("/api/login")).json(&json!({"username": "alice", "password": "password-1"}));
            tokio::spawn(async move { request.send().await.expect("request") })
        })
        .collect();
    for r in logins {
        let r = r.await.expect("task");
        assert!(r.headers().contains_key("retry-after"), "Retry-After on 503");
        expect_error(r, 503, "storage_unavailable").await;
    }
    let r = app.post("/api/register", json!({"username": "bob", "password": "password-1"})).await;
    expect_error(r, 503, "storage_unavailable").await;
    // The health check repeats its last verdict for up to a second.
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.get("/healthz").await.status() != 503 {
        assert!(Instant::now() < deadline, "/healthz did not report the outage");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Verifying an access token needs no database.
    let r = app.get_auth("/api/protected", &token).await;
    assert_eq!(r.status(), 200);

    relay.restore();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = app.post("/api/login", json!({"username": "alice", "password": "password-1"})).await;
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 503, "only 503 while recovering");
        assert!(Instant::now() < deadline, "gatepass did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Nothing was lost: the session from before the outage still refreshes.
    let r = app.post("/api/refresh", json!({"refresh_token": refresh})).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(app.get_auth("/api/profile", s(&body, "token")).await.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.get("/healthz").await.status() != 200 {
        assert!(Instant::now() < deadline, "/healthz did not report the recovery");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And the change feed came back: a logout is still enforced.
    let r = app.post_auth("/api/logout", s(&body, "token"), json!({})).await;
    assert!(r.status().is_success());
    expect_error(app.get_auth("/api/profile", s(&body, "token")).await, 401, "token_revoked").await;
}

#[test]
fn host_port_of_urls() {
    assert_eq!(host_port("postgres://postgres@127.0.0.1:5432/test"), "127.0.0.1:5432");
    assert_eq!(host_port("postgres://u:p@db/x?sslmode=disable"), "db:5432");
}
