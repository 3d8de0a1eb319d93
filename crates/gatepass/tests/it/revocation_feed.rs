//! The revocation feed (`GET /api/revocations/stream`) and `gatepass-verify`'s
//! `RevocationFeed` against the real server: credentials, snapshot, live events and
//! resumption, two instances, a gatepass restart, dropped connections, a subscriber that
//! stops reading, and (on PostgreSQL) the database dropping every connection.

use eventsource_stream::Eventsource as _;
use futures_util::StreamExt as _;
use gatepass_verify::feed::{KEY_REVOKED, SESSION_REVOKED};
use gatepass_verify::{RevocationFeed, RevocationFeedOptions, Verifier, VerifierConfig, VerifyError};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::{SECRET, TestApp, s};

const CLIENT: &str = "feedclient";
const CLIENT_SECRET: &str = "feed-client-secret-0123456789abcdef";

fn clients() -> String {
    format!("{CLIENT}:{CLIENT_SECRET}")
}

async fn spawn(extra: &[&str]) -> TestApp {
    let clients = clients();
    let mut args = vec!["--introspection-clients", clients.as_str(), "--revocation-feed-heartbeat", "1s"];
    args.extend_from_slice(extra);
    TestApp::spawn_with(&args).await
}

/// Events of one stream, read until `ready` (inclusive).
struct Feed {
    events: std::pin::Pin<Box<dyn futures_util::Stream<Item = eventsource_stream::Event> + Send>>,
}

impl Feed {
    async fn open(app: &TestApp, last_event_id: Option<&str>) -> Feed {
        let mut req = app.client.get(app.url("/api/revocations/stream")).basic_auth(CLIENT, Some(CLIENT_SECRET));
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let r = req.send().await.expect("request");
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        let events = r.bytes_stream().eventsource().map(|e| e.expect("well-formed event stream"));
        Feed { events: Box::pin(events) }
    }

    async fn next(&mut self) -> eventsource_stream::Event {
        tokio::time::timeout(Duration::from_secs(20), self.events.next())
            .await
            .expect("an event within 20 s")
            .expect("the stream stays open")
    }

    /// Events up to and including `ready`.
    async fn until_ready(&mut self) -> Vec<eventsource_stream::Event> {
        let mut out = Vec::new();
        loop {
            let e = self.next().await;
            let done = e.event == "ready";
            out.push(e);
            if done {
                return out;
            }
        }
    }
}

fn data(e: &eventsource_stream::Event) -> Value {
    serde_json::from_str(&e.data).expect("JSON data")
}

fn sids(events: &[eventsource_stream::Event]) -> Vec<String> {
    events.iter().filter(|e| e.event == "revoked").map(|e| data(e)["sid"].as_str().unwrap().to_owned()).collect()
}

fn sid_of(token: &str) -> String {
    let verifier = Verifier::hs256(SECRET.as_bytes(), VerifierConfig::new("gatepass")).unwrap();
    verifier.verify_access(token).unwrap().sid
}

async fn logout(app: &TestApp, token: &str) {
    let r = app.post_auth("/api/logout", token, json!({})).await;
    assert_eq!(r.status(), 200, "logout");
}

#[tokio::test]
async fn the_feed_needs_a_service_credential() {
    let app = spawn(&[]).await;
    let url = app.url("/api/revocations/stream");
    let user = app.register("feed_cred", "correct-horse-battery").await;
    let attempts = [
        app.client.get(&url),
        app.client.get(&url).basic_auth(CLIENT, Some("wrong-secret-0123456789abcdef0123456")),
        app.client.get(&url).basic_auth("nobody", Some(CLIENT_SECRET)),
        app.client.get(&url).bearer_auth(s(&user, "access_token")),
        app.client.get(&url).header("Authorization", "Basic !!!"),
    ];
    for req in attempts {
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "invalid_client");
    }
}

#[tokio::test]
async fn snapshot_then_live_events_then_resumption_after_last_event_id() {
    let app = spawn(&[]).await;
    let a = app.register("feed_alice", "correct-horse-battery").await;
    let a_sid = sid_of(s(&a, "access_token"));
    logout(&app, s(&a, "access_token")).await;

    let mut feed = Feed::open(&app, None).await;
    let replay = feed.until_ready().await;
    assert_eq!(sids(&replay), [a_sid]);
    let first_id = replay[0].id.clone();
    let ready = replay.last().unwrap();
    assert_eq!(data(ready)["snapshot"], true);
    assert_eq!(data(&replay[0])["reason"], "revoked");

    // Account-wide: disabling an account ends every session, one `revoked` event each.
    let admin = app.create_and_login("feed_admin", "correct-horse-battery", &["admin"]).await;
    app.create_and_login("feed_bob", "correct-horse-battery", &[]).await;
    let b2 = app.login("feed_bob", "correct-horse-battery").await;
    let bob_id = s(&b2["user"], "id").to_owned();
    let r = app
        .patch_auth(&format!("/api/admin/users/{bob_id}"), s(&admin, "access_token"), json!({"disabled": true}))
        .await;
    assert_eq!(r.status(), 200);
    let (e1, e2) = (feed.next().await, feed.next().await);
    assert_eq!((e1.event.as_str(), e2.event.as_str()), ("revoked", "revoked"));
    let ids: Vec<i64> = [&replay[0], &e1, &e2].iter().map(|e| e.id.parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    let bob_sids = sids(&[e1.clone(), e2.clone()]);
    assert!(bob_sids.contains(&sid_of(s(&b2, "access_token"))));

    // Resuming after the first event gets exactly what came after it.
    let mut resumed = Feed::open(&app, Some(&first_id)).await;
    let replay = resumed.until_ready().await;
    assert_eq!(sids(&replay), bob_sids);
    assert_eq!(data(replay.last().unwrap())["snapshot"], false);
    assert_eq!(replay.last().unwrap().id, e2.id, "ready carries the position reached");

    // Malformed or foreign ids get a fresh snapshot, never an error.
    for bad in ["garbage", "-5", "99999999999", "1e9", ""] {
        let mut fresh = Feed::open(&app, Some(bad)).await;
        let replay = fresh.until_ready().await;
        assert_eq!(sids(&replay).len(), 3, "Last-Event-ID {bad:?}");
        assert_eq!(data(replay.last().unwrap())["snapshot"], true, "Last-Event-ID {bad:?}");
    }
}

/// A verifier following the feed of `app` (through `url`, e.g. a proxy).
async fn verifier_on(url: &str) -> (Verifier, RevocationFeed) {
    let mut options = RevocationFeedOptions::new(format!("{url}/api/revocations/stream"), CLIENT, CLIENT_SECRET);
    options.min_backoff = Duration::from_millis(50);
    options.max_backoff = Duration::from_millis(500);
    options.idle_timeout = Duration::from_secs(5);
    let feed = RevocationFeed::start(options).expect("valid URL");
    let verifier = Verifier::hs256(SECRET.as_bytes(), VerifierConfig::new("gatepass")).unwrap();
    assert!(feed.wait_current(Duration::from_secs(20)).await, "the feed becomes current");
    (verifier.with_revocation_feed(feed.clone()), feed)
}

/// Waits (bounded) until the verifier refuses `token` for `why`.
async fn refused(verifier: &Verifier, token: &str, why: &'static str) {
    for _ in 0..400 {
        match verifier.verify_access(token) {
            Err(VerifyError::Invalid(w)) if w == why => return,
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    panic!("token still not refused ({why}): {:?}", verifier.verify_access(token));
}

#[tokio::test]
async fn a_verifier_on_one_instance_refuses_a_logout_made_on_another() {
    let a = spawn(&[]).await;
    let b = a.spawn_peer().await;
    let (verifier, feed) = verifier_on(&b.base).await;
    let user = a.register("feed_two", "correct-horse-battery").await;
    let token = s(&user, "access_token");
    assert!(verifier.verify_access(token).is_ok(), "a live token verifies locally");
    logout(&a, token).await;
    refused(&verifier, token, SESSION_REVOKED).await;
    assert!(feed.is_session_revoked(&sid_of(token)));

    assert_eq!(feed.health().revoked_keys, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_signing_key_is_refused_by_a_verifier_that_still_caches_it() {
    let a = spawn(&["--jwt-algorithm", "EdDSA"]).await;
    let b = a.spawn_peer().await;
    let user = a.register("feed_keys", "correct-horse-battery").await;
    let token = s(&user, "access_token").to_owned();
    // The service fetched the JWKS once and keeps it: only the feed can tell it the key
    // is gone.
    let jwks = a.client.get(a.url("/.well-known/jwks.json")).send().await.unwrap().bytes().await.unwrap();
    let verifier = Verifier::from_jwks_json(&jwks, VerifierConfig::new("gatepass")).unwrap();
    let mut options = RevocationFeedOptions::new(b.url("/api/revocations/stream"), CLIENT, CLIENT_SECRET);
    options.min_backoff = Duration::from_millis(50);
    let feed = RevocationFeed::start(options).expect("valid URL");
    assert!(feed.wait_current(Duration::from_secs(20)).await, "the feed becomes current");
    let verifier = verifier.with_revocation_feed(feed.clone());
    let claims = verifier.verify_access(&token).expect("verifies before the revocation");
    assert!(!feed.is_session_revoked(&claims.sid));

    let header = jsonwebtoken::decode_header(&token).unwrap();
    let kid = header.kid.expect("a kid");
    let admin = a.create_and_login("feed_root", "correct-horse-battery", &["admin"]).await;
    let r = a.post_auth(&format!("/api/admin/keys/{kid}/revoke"), s(&admin, "access_token"), json!({})).await;
    assert_eq!(r.status(), 200);
    refused(&verifier, &token, KEY_REVOKED).await;
    assert!(feed.is_key_revoked(&kid));
    let health = feed.health();
    assert_eq!(health.revoked_keys, 1);
    assert!(health.accepting_tokens, "a revoked key does not stop the other tokens");

    // Persisted: a subscriber that connects later gets it in its snapshot, with the
    // revocation lasting as long as any token of the key could.
    let mut late = Feed::open(&b, None).await;
    let replay = late.until_ready().await;
    let key_events: Vec<Value> = replay.iter().filter(|e| e.event == "key_revoked").map(data).collect();
    assert_eq!(key_events.len(), 1, "{replay:?}");
    assert_eq!(key_events[0]["kid"], kid.as_str());
    let until = key_events[0]["until"].as_i64().unwrap();
    assert!(until >= claims.exp, "announced until {until}, token expires {}", claims.exp);
    // Revoking again announces nothing new (the admin's old token died with the key).
    let admin = a.login("feed_root", "correct-horse-battery").await;
    let r = a.post_auth(&format!("/api/admin/keys/{kid}/revoke"), s(&admin, "access_token"), json!({})).await;
    assert_eq!(r.status(), 200);
    let mut again = Feed::open(&b, None).await;
    let replay = again.until_ready().await;
    assert_eq!(replay.iter().filter(|e| e.event == "key_revoked").count(), 1);
}

/// A TCP proxy whose upstream can be changed and whose connections can be cut, standing
/// in for the network between a service and gatepass.
struct Proxy {
    url: String,
    upstream: Arc<Mutex<Option<String>>>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    async fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = Arc::new(Mutex::new(Some(upstream.trim_start_matches("http://").to_owned())));
        let conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (up, cs) = (upstream.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let target = up.lock().unwrap().clone();
                let Some(target) = target else { continue };
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                cs.lock().unwrap().push(task.abort_handle());
            }
        });
        Proxy { url, upstream, conns }
    }

    /// Drops every open connection and refuses new ones until [`Self::route`].
    fn cut(&self) {
        *self.upstream.lock().unwrap() = None;
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn route(&self, upstream: &str) {
        *self.upstream.lock().unwrap() = Some(upstream.trim_start_matches("http://").to_owned());
    }
}

#[tokio::test]
async fn dropped_connections_and_a_gatepass_restart_lose_no_revocation() {
    let app = spawn(&[]).await;
    let proxy = Proxy::start(&app.base).await;
    let (verifier, feed) = verifier_on(&proxy.url).await;
    let first = feed.health().connections;

    // The network drops mid-stream; a logout happens while the subscriber is away.
    let u = app.register("feed_net", "correct-horse-battery").await;
    let token = s(&u, "access_token").to_owned();
    proxy.cut();
    logout(&app, &token).await;
    assert!(verifier.verify_access(&token).is_ok(), "not yet known: the feed is down (and not yet stale)");
    proxy.route(&app.base);
    refused(&verifier, &token, SESSION_REVOKED).await;
    assert!(feed.health().connections > first, "it reconnected");

    // gatepass restarts (the stream ends at shutdown); a logout happens on the new process
    // before the subscriber is back.
    let again = app.login("feed_net", "correct-horse-battery").await;
    let token2 = s(&again, "access_token").to_owned();
    let app = app.restart().await;
    logout(&app, &token2).await;
    proxy.route(&app.base);
    refused(&verifier, &token2, SESSION_REVOKED).await;
    // What it knew before is kept across reconnections.
    assert!(feed.is_session_revoked(&sid_of(&token)));
}

#[tokio::test]
async fn a_stale_feed_fails_closed_and_says_so() {
    let app = spawn(&[]).await;
    let proxy = Proxy::start(&app.base).await;
    let mut options =
        RevocationFeedOptions::new(format!("{}/api/revocations/stream", proxy.url), CLIENT, CLIENT_SECRET);
    options.max_staleness = Duration::from_millis(300);
    options.min_backoff = Duration::from_millis(50);
    options.max_backoff = Duration::from_millis(200);
    let feed = RevocationFeed::start(options.clone()).unwrap();
    let verifier = Verifier::hs256(SECRET.as_bytes(), VerifierConfig::new("gatepass")).unwrap();
    let verifier = verifier.with_revocation_feed(feed.clone());
    let u = app.register("feed_stale", "correct-horse-battery").await;
    let token = s(&u, "access_token");
    assert!(feed.wait_current(Duration::from_secs(20)).await);
    assert!(verifier.verify_access(token).is_ok());
    proxy.cut();
    refused(&verifier, token, gatepass_verify::feed::FEED_STALE).await;
    let health = feed.health();
    assert_eq!(health.state, gatepass_verify::feed::FeedState::Stale);
    assert!(!health.accepting_tokens);
    assert!(health.last_error.is_some());
    proxy.route(&app.base);
    assert!(feed.wait_current(Duration::from_secs(20)).await);
    assert!(verifier.verify_access(token).is_ok(), "accepted again once the feed is back");

    // Failing open: a stale feed accepts tokens (known revocations still apply).
    options.fail_open = true;
    options.url = "http://127.0.0.1:9/api/revocations/stream".to_owned();
    let open = RevocationFeed::start(options).unwrap();
    let verifier =
        Verifier::hs256(SECRET.as_bytes(), VerifierConfig::new("gatepass")).unwrap().with_revocation_feed(open.clone());
    assert!(verifier.verify_access(token).is_ok());
    assert!(open.health().accepting_tokens);
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_disconnected_and_others_get_everything() {
    let app = spawn(&["--revocation-feed-buffer", "8", "--send-timeout", "1s"]).await;
    let (_verifier, good) = verifier_on(&app.base).await;

    // A raw subscriber with a tiny receive window that reads the response head and then
    // nothing more.
    let addr = app.base.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(addr).await.unwrap();
    let auth = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, clients());
    let request = format!("GET /api/revocations/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n\r\n");
    stalled.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 64];
    let n = stalled.read(&mut head).await.unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 200"));

    // Far more than the buffer and the socket buffers hold (loopback send buffers grow to
    // a few MiB, so the entries are made large: 2,000 × 4 KiB).
    let until = gatepass::domain::clock::now() + 600;
    let total = 2000;
    let padding = "x".repeat(4096);
    for i in 0..total {
        app.storage.record_key_revocation(&format!("flood-{i}-{padding}"), until).await.unwrap();
    }
    app.state.service.core().feed().wake();
    for _ in 0..400 {
        if good.health().revoked_keys == total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(good.health().revoked_keys, total, "a subscriber that reads gets every entry");

    // Its writes have been blocked since the flood filled the socket buffers; give the
    // 1 s send timeout room to fire (a late timer only makes this wait longer).
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The stalled one was cut off: reading now drains what was buffered, then ends.
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(20), stalled.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the stalled subscriber's connection was not closed"),
        }
    }
    let received = String::from_utf8_lossy(&seen).matches("event: key_revoked").count();
    assert!(received < total, "the stalled subscriber was dropped, not served everything ({received})");
    let r = app.get("/healthz").await;
    assert_eq!(r.status(), 200);
}

/// Reads `feed` until it has seen `kid`; returns the ids of its `key_revoked` events.
async fn key_ids_until(feed: &mut Feed, kid: &str) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    loop {
        let e = feed.next().await;
        if e.event != "key_revoked" {
            continue;
        }
        let seen = data(&e)["kid"].as_str().unwrap().to_owned();
        out.push((e.id.parse().unwrap(), seen.clone()));
        if seen == kid {
            return out;
        }
    }
}

#[tokio::test]
async fn subscribers_joining_while_revocations_stream_in_get_each_once_in_order() {
    // A small ring (buffer 32: 16 batches of 2) as well as the default, so joining
    // subscribers meet batches their replay partly covered, and fall behind the ring.
    for buffer in ["32", "1024"] {
        let app = spawn(&["--revocation-feed-buffer", buffer]).await;
        let total = 1500;
        let until = gatepass::domain::clock::now() + 600;
        let mut readers = Vec::new();
        for i in 0..total {
            if i % 250 == 0 {
                let mut feed = Feed::open(&app, None).await;
                readers
                    .push(tokio::spawn(async move { key_ids_until(&mut feed, &format!("race-{}", total - 1)).await }));
            }
            app.storage.record_key_revocation(&format!("race-{i}"), until).await.unwrap();
            if i % 7 == 0 {
                app.state.service.core().feed().wake();
            }
        }
        for (n, reader) in readers.into_iter().enumerate() {
            let got = reader.await.unwrap();
            let kids: Vec<&str> = got.iter().map(|(_, k)| k.as_str()).collect();
            let expected: Vec<String> = (0..total).map(|i| format!("race-{i}")).collect();
            assert_eq!(kids, expected, "buffer {buffer}, subscriber {n}: every revocation once, in order");
            assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "buffer {buffer}, subscriber {n}: ids increase");
        }
    }
}

#[tokio::test]
async fn postgresql_dropping_every_connection_loses_no_revocation() {
    if std::env::var("GATEPASS_TEST_BACKEND").as_deref() != Ok("postgres") {
        eprintln!("SKIPPED: PostgreSQL failover needs GATEPASS_TEST_BACKEND=postgres");
        return;
    }
    let a = spawn(&[]).await;
    let b = a.spawn_peer().await;
    let (verifier, _feed) = verifier_on(&b.base).await;
    let db_url = a.db.as_ref().expect("a PostgreSQL test database").url.clone();
    let mut tokens = Vec::new();
    for i in 0..6 {
        let u = a.register(&format!("feed_pg{i}"), "correct-horse-battery").await;
        tokens.push(s(&u, "access_token").to_owned());
    }
    use sqlx::Connection as _;
    let mut killer = sqlx::PgConnection::connect(&db_url).await.unwrap();
    for (i, token) in tokens.iter().enumerate() {
        if i % 2 == 0 {
            // Every server connection, LISTEN included, is terminated (a failover).
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .execute(&mut killer)
            .await
            .unwrap();
        }
        // The instance may answer 503 while it reconnects: retry as a client would.
        let mut done = false;
        for _ in 0..100 {
            let r = a.post_auth("/api/logout", token, json!({})).await;
            if r.status() == 200 {
                done = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(done, "logout {i} went through");
    }
    for token in &tokens {
        refused(&verifier, token, SESSION_REVOKED).await;
    }
}
