//! Following gatepass's revocation feed (feature `revocation-feed`): logouts, disabled or
//! deleted accounts and revoked signing keys take effect here within milliseconds, while
//! every token is still verified locally (a hash lookup, no network per request).
//!
//! A [`RevocationFeed`] subscribes to `GET /api/revocations/stream` (Server-Sent Events,
//! authenticated with an introspection client's credentials), keeps the revoked sessions
//! and keys in memory, and reconnects with back-off, resuming with `Last-Event-ID`. Attach
//! it with [`crate::Verifier::with_revocation_feed`]; then [`crate::Verifier::verify_access`]
//! and the axum extractors refuse revoked tokens.
//!
//! **Fail closed.** Until the feed has delivered its first snapshot, and once it has been
//! out of contact for longer than [`RevocationFeedOptions::max_staleness`], every token is
//! refused ([`FEED_STALE`]; the extractors answer 503), because a revocation may have been
//! missed. [`RevocationFeedOptions::fail_open`] accepts tokens instead (known revocations
//! still apply). [`RevocationFeed::health`] reports the state for a health endpoint, and
//! every change of state is logged (`tracing`).

use eventsource_stream::Eventsource as _;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;

use crate::VerifyError;

/// Why a token of a revoked session is refused (`VerifyError::Invalid`).
pub const SESSION_REVOKED: &str = "session revoked";
/// Why a token signed by a revoked key is refused (`VerifyError::Invalid`).
pub const KEY_REVOKED: &str = "signing key revoked";
/// Why every token is refused while the feed is stale (`VerifyError::Invalid`).
pub const FEED_STALE: &str = "revocation feed stale";

/// How to follow the feed.
#[derive(Clone)]
pub struct RevocationFeedOptions {
    /// The feed's URL, e.g. `https://auth.example.com/api/revocations/stream`.
    pub url: String,
    /// Introspection client id (`GATEPASS_INTROSPECTION_CLIENTS`).
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
    /// How long the feed may be out of contact before tokens are refused (default 60 s).
    pub max_staleness: Duration,
    /// Accept tokens while the feed is stale instead of refusing them (default `false`).
    pub fail_open: bool,
    /// A connection that delivers nothing (not even a heartbeat) for this long is
    /// considered dead and replaced (default 45 s: three of the server's default 15 s
    /// heartbeats).
    pub idle_timeout: Duration,
    /// First reconnection delay; doubles up to `max_backoff` (defaults 250 ms and 10 s).
    pub min_backoff: Duration,
    /// Longest reconnection delay.
    pub max_backoff: Duration,
}

impl std::fmt::Debug for RevocationFeedOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationFeedOptions")
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .field("max_staleness", &self.max_staleness)
            .field("fail_open", &self.fail_open)
            .finish_non_exhaustive()
    }
}

impl RevocationFeedOptions {
    /// Options with the defaults above.
    pub fn new(url: impl Into<String>, client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            max_staleness: Duration::from_secs(60),
            fail_open: false,
            idle_timeout: Duration::from_secs(45),
            min_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// Why a feed could not be started.
#[derive(Debug, thiserror::Error)]
pub enum RevocationFeedError {
    /// The URL is not an absolute `http(s)` URL.
    #[error("invalid revocation feed URL")]
    Url,
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// The feed's state, as [`RevocationFeed::health`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedState {
    /// Connected and current.
    Live,
    /// Not connected, but in contact within `max_staleness`: tokens are still checked
    /// against what is known.
    Reconnecting,
    /// Never current yet, or out of contact for longer than `max_staleness`.
    Stale,
}

/// A health report, serializable for a `/health` endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct FeedHealth {
    /// The state.
    pub state: FeedState,
    /// Whether tokens are being accepted (live or reconnecting, or stale with `fail_open`).
    pub accepting_tokens: bool,
    /// Seconds since the feed was last heard from while current (`None`: never).
    pub seconds_since_contact: Option<f64>,
    /// The feed position held (the next `Last-Event-ID`).
    pub last_event_id: Option<String>,
    /// Revoked sessions held.
    pub revoked_sessions: usize,
    /// Revoked signing keys held.
    pub revoked_keys: usize,
    /// Connections made so far.
    pub connections: u64,
    /// The last connection error, if the feed is not live.
    pub last_error: Option<String>,
    /// Whether the feed fails open.
    pub fail_open: bool,
    /// The configured staleness limit in seconds.
    pub max_staleness_secs: u64,
}

struct Inner {
    options: RevocationFeedOptions,
    sessions: RwLock<HashMap<String, i64>>,
    keys: RwLock<HashMap<String, i64>>,
    origin: Instant,
    live: AtomicBool,
    ever: AtomicBool,
    /// Milliseconds after `origin` of the last contact while current.
    contact_ms: AtomicU64,
    connections: AtomicU64,
    last_event_id: Mutex<Option<String>>,
    last_error: Mutex<Option<String>>,
    ready: Notify,
}

/// A running subscription to gatepass's revocation feed; cheap to clone (all clones share
/// one connection and one set). The background task stops when the last clone is dropped.
#[derive(Clone)]
pub struct RevocationFeed {
    inner: Arc<Inner>,
    _task: Arc<TaskGuard>,
}

impl std::fmt::Debug for RevocationFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationFeed").field("health", &self.health()).finish()
    }
}

struct TaskGuard(tokio::task::JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[derive(Deserialize)]
struct RevokedData {
    sid: String,
    until: i64,
}

#[derive(Deserialize)]
struct KeyRevokedData {
    kid: String,
    until: i64,
}

impl RevocationFeed {
    /// Starts following the feed in the background (needs a Tokio runtime). Returns at
    /// once; tokens are refused until the first snapshot has arrived (see
    /// [`Self::wait_current`]).
    ///
    /// # Errors
    /// When the URL is not an absolute `http(s)` URL.
    pub fn start(options: RevocationFeedOptions) -> Result<Self, RevocationFeedError> {
        let url = reqwest::Url::parse(&options.url).map_err(|_| RevocationFeedError::Url)?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(RevocationFeedError::Url);
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // The feed is exactly the configured URL; credentials never follow a redirect.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| RevocationFeedError::Client(e.to_string()))?;
        let inner = Arc::new(Inner {
            options,
            sessions: RwLock::default(),
            keys: RwLock::default(),
            origin: Instant::now(),
            live: AtomicBool::new(false),
            ever: AtomicBool::new(false),
            contact_ms: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            last_event_id: Mutex::new(None),
            last_error: Mutex::new(None),
            ready: Notify::new(),
        });
        let task = tokio::spawn(run(Arc::downgrade(&inner), client, url));
        Ok(Self { inner, _task: Arc::new(TaskGuard(task)) })
    }

    /// Waits until the feed is current (first snapshot received, or live again), at most
    /// `timeout`; returns whether it is.
    pub async fn wait_current(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.ready.notified();
            if self.inner.live.load(Ordering::Acquire) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.inner.live.load(Ordering::Acquire);
            }
        }
    }

    /// Checks a verified token's session id and key id against the revocations held.
    ///
    /// # Errors
    /// `VerifyError::Invalid` with [`SESSION_REVOKED`], [`KEY_REVOKED`], or [`FEED_STALE`]
    /// when the feed is stale and fails closed.
    pub fn check(&self, sid: &str, kid: Option<&str>) -> Result<(), VerifyError> {
        let inner = &self.inner;
        if !inner.options.fail_open && self.state() == FeedState::Stale {
            return Err(VerifyError::Invalid(FEED_STALE));
        }
        if inner.sessions.read().unwrap_or_else(|p| p.into_inner()).contains_key(sid) {
            return Err(VerifyError::Invalid(SESSION_REVOKED));
        }
        if let Some(kid) = kid
            && inner.keys.read().unwrap_or_else(|p| p.into_inner()).contains_key(kid)
        {
            return Err(VerifyError::Invalid(KEY_REVOKED));
        }
        Ok(())
    }

    /// Whether the session `sid` is known to be revoked.
    pub fn is_session_revoked(&self, sid: &str) -> bool {
        self.inner.sessions.read().unwrap_or_else(|p| p.into_inner()).contains_key(sid)
    }

    /// Whether the signing key `kid` is known to be revoked.
    pub fn is_key_revoked(&self, kid: &str) -> bool {
        self.inner.keys.read().unwrap_or_else(|p| p.into_inner()).contains_key(kid)
    }

    /// The current state.
    pub fn state(&self) -> FeedState {
        let inner = &self.inner;
        if inner.live.load(Ordering::Acquire) {
            return FeedState::Live;
        }
        if inner.ever.load(Ordering::Acquire) && inner.since_contact() <= inner.options.max_staleness {
            return FeedState::Reconnecting;
        }
        FeedState::Stale
    }

    /// A health report (for a service's `/health`).
    pub fn health(&self) -> FeedHealth {
        let inner = &self.inner;
        let state = self.state();
        FeedHealth {
            state,
            accepting_tokens: state != FeedState::Stale || inner.options.fail_open,
            seconds_since_contact: inner
                .ever
                .load(Ordering::Acquire)
                .then(|| if state == FeedState::Live { 0.0 } else { inner.since_contact().as_secs_f64() }),
            last_event_id: inner.last_event_id.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            revoked_sessions: inner.sessions.read().unwrap_or_else(|p| p.into_inner()).len(),
            revoked_keys: inner.keys.read().unwrap_or_else(|p| p.into_inner()).len(),
            connections: inner.connections.load(Ordering::Relaxed),
            last_error: if state == FeedState::Live {
                None
            } else {
                inner.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
            },
            fail_open: inner.options.fail_open,
            max_staleness_secs: inner.options.max_staleness.as_secs(),
        }
    }
}

impl Inner {
    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        self.contact_ms.store(self.elapsed_ms(), Ordering::Release);
    }

    fn since_contact(&self) -> Duration {
        let at = Duration::from_millis(self.contact_ms.load(Ordering::Acquire));
        self.origin.elapsed().saturating_sub(at)
    }

    fn sweep(&self) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        self.sessions.write().unwrap_or_else(|p| p.into_inner()).retain(|_, until| *until > now);
        self.keys.write().unwrap_or_else(|p| p.into_inner()).retain(|_, until| *until > now);
    }

    fn set_error(&self, e: String) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
    }
}

/// Reconnects forever, with exponential back-off, until the feed handle is dropped.
async fn run(weak: std::sync::Weak<Inner>, client: reqwest::Client, url: reqwest::Url) {
    let mut backoff = None;
    let mut stale_logged = false;
    loop {
        let Some(inner) = weak.upgrade() else { return };
        inner.connections.fetch_add(1, Ordering::Relaxed);
        let outcome = follow(&inner, &client, &url).await;
        let was_live = inner.live.swap(false, Ordering::AcqRel);
        if was_live {
            // Contact lasted until now; staleness counts from here.
            inner.touch();
            backoff = None;
            stale_logged = false;
        }
        let error = match outcome {
            Ok(()) => "the server ended the stream".to_owned(),
            Err(e) => e,
        };
        tracing::warn!(error = %error, "revocation feed disconnected; reconnecting");
        inner.set_error(error);
        let min = inner.options.min_backoff;
        let max = inner.options.max_backoff.max(min);
        let delay = backoff.map_or(min, |d: Duration| (d * 2).min(max));
        backoff = Some(delay);
        // Up to 25 % jitter, so that many services do not reconnect in lockstep.
        let jitter = delay.mul_f64(f64::from(inner.origin.elapsed().subsec_nanos() % 250) / 1000.0);
        let fail_open = inner.options.fail_open;
        let max_staleness = inner.options.max_staleness;
        drop(inner);
        tokio::time::sleep(delay + jitter).await;
        if let Some(inner) = weak.upgrade()
            && !stale_logged
            && inner.ever.load(Ordering::Acquire)
            && inner.since_contact() > max_staleness
        {
            stale_logged = true;
            if fail_open {
                tracing::error!("revocation feed stale beyond max_staleness; accepting tokens (fail open)");
            } else {
                tracing::error!("revocation feed stale beyond max_staleness; refusing every token until it is back");
            }
        }
    }
}

/// One connection: replay, `ready`, then live events until it fails.
async fn follow(inner: &Inner, client: &reqwest::Client, url: &reqwest::Url) -> Result<(), String> {
    let mut request = client
        .get(url.clone())
        .basic_auth(&inner.options.client_id, Some(&inner.options.client_secret))
        .header(reqwest::header::ACCEPT, "text/event-stream");
    let last = inner.last_event_id.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(id) = &last {
        request = request.header("Last-Event-ID", id.as_str());
    }
    let response = tokio::time::timeout(inner.options.idle_timeout, request.send())
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| e.without_url().to_string())?;
    match response.status() {
        reqwest::StatusCode::OK => {}
        reqwest::StatusCode::UNAUTHORIZED => {
            tracing::error!("revocation feed refused the client credentials (401)");
            return Err("credentials refused (401)".to_owned());
        }
        s => return Err(format!("status {s}")),
    }
    // Heartbeats are SSE comments, which the parser swallows: contact is measured on the
    // raw bytes.
    let last_bytes = AtomicU64::new(inner.elapsed_ms());
    let mut events = response
        .bytes_stream()
        .inspect(|chunk| {
            if chunk.is_ok() {
                last_bytes.store(inner.elapsed_ms(), Ordering::Relaxed);
                if inner.live.load(Ordering::Acquire) {
                    inner.touch();
                }
            }
        })
        .eventsource();
    let mut last_sweep = Instant::now();
    loop {
        let next = loop {
            match tokio::time::timeout(inner.options.idle_timeout, events.next()).await {
                Ok(next) => break next,
                Err(_)
                    if inner.elapsed_ms().saturating_sub(last_bytes.load(Ordering::Relaxed))
                        < inner.options.idle_timeout.as_millis() as u64 => {}
                Err(_) => return Err("no data or heartbeat within the idle timeout".to_owned()),
            }
        };
        let event = match next {
            None => return Ok(()),
            Some(Err(e)) => return Err(e.to_string()),
            Some(Ok(e)) => e,
        };
        match event.event.as_str() {
            "revoked" => {
                if let Ok(d) = serde_json::from_str::<RevokedData>(&event.data) {
                    inner.sessions.write().unwrap_or_else(|p| p.into_inner()).insert(d.sid, d.until);
                }
            }
            "key_revoked" => {
                if let Ok(d) = serde_json::from_str::<KeyRevokedData>(&event.data) {
                    tracing::info!(kid = %d.kid, "signing key revoked; refusing its tokens");
                    inner.keys.write().unwrap_or_else(|p| p.into_inner()).insert(d.kid, d.until);
                }
            }
            "ready" => {
                inner.touch();
                inner.ever.store(true, Ordering::Release);
                inner.live.store(true, Ordering::Release);
                inner.ready.notify_waiters();
                tracing::info!(position = %event.id, "revocation feed current");
                inner.sweep();
            }
            // Kinds a newer server may add are skipped; their ids still count.
            _ => {}
        }
        if !event.id.is_empty() {
            *inner.last_event_id.lock().unwrap_or_else(|p| p.into_inner()) = Some(event.id);
        }
        if last_sweep.elapsed() > Duration::from_secs(60) {
            last_sweep = Instant::now();
            inner.sweep();
        }
    }
}
