//! The revocation feed served to verifiers (`GET /api/revocations/stream`): every
//! revocation that can still matter, then each new one as it is committed, anywhere in the
//! deployment.
//!
//! Storage gives every revocation a position `seq` in one deployment-wide order that
//! follows commit order (migration 0009), so the feed needs no state of its own beyond a
//! cursor: a subscriber that has seen `seq = n` is missing exactly the stored revocations
//! after `n`, whichever instance it asks. Each instance runs one task ([`spawn_feed`]) that
//! reads the log past the last position it published and broadcasts new entries to its
//! subscribers. It is woken by this instance's own revocations, by the change feed
//! (PostgreSQL `NOTIFY`) and by the once-a-second version check, and reads anyway every
//! 100 ms (every 10 ms while entries keep arriving), so an entry reaches every instance's
//! subscribers however it was written.
//!
//! A subscription first subscribes to the broadcast, then replays the log after its cursor
//! (everything, for a fresh snapshot) page by page, then follows the broadcast, skipping what
//! the replay already sent. Memory per subscriber is bounded: the broadcast is one shared
//! ring of `buffer` entries, and a subscriber that falls more than `buffer` entries behind
//! (a burst, a slow reader) reads what it missed from storage, a page at a time, instead
//! of holding it in memory. A subscriber that stops reading altogether stops being
//! polled; the server's send timeout then closes its connection (`server.rs`).

use futures_util::Stream;
use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinHandle;

use super::{AuthService, Core, now};
use crate::error::Result;
use crate::storage::{FeedEntry, Storage};

/// Entries read from storage per query (replay pages and catch-up).
const PAGE: i64 = 1000;

/// How long a subscription waits for this instance's publisher to start.
const PUBLISHER_START_WAIT: Duration = Duration::from_secs(10);

/// Default number of entries a subscriber may fall behind before it is dropped.
pub const DEFAULT_BUFFER: usize = 1024;

/// How often the publisher reads the log while nothing is happening: what another process
/// writes (the CLI on SQLite) reaches subscribers within this; this instance's own
/// revocations and, on PostgreSQL, every instance's wake it at once. An empty read is one
/// index probe.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// How often it reads while the last read found new entries.
const ACTIVE_POLL: Duration = Duration::from_millis(10);

/// Longest the publisher holds back a page for subscribers still reading the previous
/// ones (see [`spawn_feed`]).
const PACING_LIMIT: Duration = Duration::from_millis(100);

/// A revocation as every subscriber of this instance shares it: the entry, and its wire
/// form, made by the first subscriber that sends it and reused by the others.
///
/// With a hundred subscribers, encoding each event once per subscriber cost the instance
/// more than the rest of the fan-out together.
#[derive(Debug)]
pub struct SharedEntry {
    entry: FeedEntry,
    wire: OnceLock<String>,
}

impl SharedEntry {
    fn new(entry: FeedEntry) -> Arc<Self> {
        Arc::new(Self { entry, wire: OnceLock::new() })
    }

    /// The revocation.
    pub fn entry(&self) -> &FeedEntry {
        &self.entry
    }

    /// The entry's wire form: `encode`d on the first call, the same text on every later one.
    pub fn wire(&self, encode: impl FnOnce(&FeedEntry) -> String) -> &str {
        self.wire.get_or_init(|| encode(&self.entry))
    }
}

/// One instance's publisher of the revocation log to its subscribers.
pub struct FeedHub {
    tx: broadcast::Sender<Arc<SharedEntry>>,
    /// Ring size: how far a subscriber may fall behind before it catches up from storage.
    buffer: usize,
    wake: Notify,
    closed: watch::Sender<bool>,
    /// Set once the publisher has read its starting position. A subscription waits for
    /// it: a subscriber whose replay ended before the publisher's start would otherwise
    /// miss the entries committed in between, which neither would send.
    publishing: watch::Sender<bool>,
}

impl FeedHub {
    /// A hub whose subscribers may fall `buffer` entries behind.
    pub fn new(buffer: usize) -> Self {
        let buffer = buffer.max(1);
        let (tx, _) = broadcast::channel(buffer);
        Self {
            tx,
            buffer,
            wake: Notify::new(),
            closed: watch::Sender::new(false),
            publishing: watch::Sender::new(false),
        }
    }

    /// Asks the publishing task to read the log now (a revocation was just committed or
    /// announced).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Ends every subscription (server shutdown: open streams must not hold it up).
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Waits, at most [`PACING_LIMIT`], until the ring has room for `incoming` more
    /// entries without pushing out one a subscriber has not read yet.
    ///
    /// A burst (a storage read that finds thousands of new entries, e.g. written by
    /// another process) would otherwise overrun every subscriber at once, and each would
    /// then read the same entries back from storage. A subscriber that does not keep up
    /// within the limit is left behind and catches up from storage alone.
    /// Returns `false` when the limit ran out.
    async fn pace(&self, incoming: usize) -> bool {
        let incoming = incoming.min(self.buffer);
        let deadline = tokio::time::Instant::now() + PACING_LIMIT;
        while self.tx.len() + incoming > self.buffer {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        true
    }

    /// Number of open subscriptions on this instance.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}

/// What a subscription yields, in order: the replay ([`FeedEvent::Entry`]s), one
/// [`FeedEvent::Ready`], then live entries.
#[derive(Debug, Clone)]
pub enum FeedEvent {
    /// A revocation.
    Entry(Arc<SharedEntry>),
    /// The replay is complete: the subscriber holds everything up to `head`.
    Ready {
        /// Position the subscriber is now current to (its next cursor).
        head: i64,
        /// Whether the replay started from nothing (no, malformed or unusable
        /// `Last-Event-ID`) rather than resuming after the given one.
        snapshot: bool,
    },
}

/// Reads a `Last-Event-ID`: a decimal position, or `None` for anything else (which gets a
/// fresh snapshot, never an error).
pub fn parse_cursor(last_event_id: Option<&str>) -> Option<i64> {
    let s = last_event_id?.trim();
    if s.is_empty() || s.len() > 18 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl Core {
    /// The revocation feed's hub on this instance.
    pub fn feed(&self) -> &FeedHub {
        &self.feed
    }

    /// Opens a subscription to the revocation feed. `last_event_id` is the client's
    /// `Last-Event-ID`: the replay resumes after it when it is a position this deployment
    /// has reached, and is a fresh snapshot otherwise.
    ///
    /// # Errors
    /// When storage cannot be read, or this instance's publisher has not read its
    /// starting position within 10 s ([`crate::error::Error::StorageUnavailable`]).
    pub async fn subscribe_revocations(
        &self,
        last_event_id: Option<&str>,
    ) -> Result<impl Stream<Item = FeedEvent> + Send + 'static> {
        // The publisher's starting position must not be after our replay's end.
        let mut publishing = self.feed.publishing.subscribe();
        // (`wait_for`'s guard is dropped at once: it must not live across an await.)
        let started =
            matches!(tokio::time::timeout(PUBLISHER_START_WAIT, publishing.wait_for(|p| *p)).await, Ok(Ok(_)));
        if !started {
            tracing::warn!(
                "revocation feed: the publisher has not started (storage unreadable?); refusing the subscriber"
            );
            return Err(crate::error::Error::StorageUnavailable);
        }
        // Subscribe before reading storage: an entry committed after the replay's read is
        // then broadcast to us, and one broadcast before is in the replay.
        let rx = self.feed.tx.subscribe();
        let head = self.storage.revocation_log_head().await?;
        let cursor = parse_cursor(last_event_id).filter(|c| *c <= head);
        let snapshot = cursor.is_none();
        if last_event_id.is_some() && snapshot {
            tracing::info!("revocation feed: Last-Event-ID unusable here; sending a fresh snapshot");
        }
        metrics::gauge!("gatepass_revocation_feed_subscribers").increment(1.0);
        let state = Subscription {
            storage: self.storage.clone(),
            rx,
            closed: self.feed.closed.subscribe(),
            last: cursor.unwrap_or(0),
            head,
            snapshot,
            catching_up: false,
            phase: Phase::Replay(VecDeque::new()),
            _gauge: SubscriberGauge,
        };
        Ok(futures_util::stream::unfold(state, Subscription::next))
    }
}

enum Phase {
    /// Replaying storage; the page not yet sent.
    Replay(VecDeque<FeedEntry>),
    /// Following the broadcast.
    Live,
    /// Over.
    Done,
}

struct Subscription {
    storage: Arc<dyn Storage>,
    rx: broadcast::Receiver<Arc<SharedEntry>>,
    closed: watch::Receiver<bool>,
    /// Highest position sent.
    last: i64,
    head: i64,
    snapshot: bool,
    /// Replaying after falling behind the ring (no second `ready`).
    catching_up: bool,
    phase: Phase,
    _gauge: SubscriberGauge,
}

/// Counts a subscription in the gauge while it lives.
struct SubscriberGauge;

impl Drop for SubscriberGauge {
    fn drop(&mut self) {
        metrics::gauge!("gatepass_revocation_feed_subscribers").decrement(1.0);
    }
}

impl Subscription {
    async fn next(mut self) -> Option<(FeedEvent, Self)> {
        loop {
            match &mut self.phase {
                Phase::Replay(page) => {
                    if let Some(entry) = page.pop_front() {
                        self.last = self.last.max(entry.seq);
                        return Some((FeedEvent::Entry(SharedEntry::new(entry)), self));
                    }
                    let read = self.storage.revocation_log(self.last, now(), PAGE).await;
                    match read {
                        Ok(rows) if !rows.is_empty() => self.phase = Phase::Replay(rows.into()),
                        Ok(_) if self.catching_up => {
                            self.catching_up = false;
                            self.phase = Phase::Live;
                        }
                        Ok(_) => {
                            self.phase = Phase::Live;
                            self.last = self.last.max(self.head);
                            let ready = FeedEvent::Ready { head: self.last, snapshot: self.snapshot };
                            return Some((ready, self));
                        }
                        Err(e) => {
                            // The client reconnects with its last id and resumes.
                            tracing::warn!(error = %e, "revocation feed: storage read failed; closing the stream");
                            self.phase = Phase::Done;
                        }
                    }
                }
                Phase::Live => {
                    // An entry already waiting is taken without arming a wait (a hundred
                    // subscribers each take every entry: this is the feed's hot path).
                    let received = match self.rx.try_recv() {
                        _ if self.closed.has_changed().unwrap_or(true) && *self.closed.borrow() => {
                            Err(broadcast::error::RecvError::Closed)
                        }
                        Ok(entry) => Ok(entry),
                        Err(broadcast::error::TryRecvError::Lagged(n)) => Err(broadcast::error::RecvError::Lagged(n)),
                        Err(broadcast::error::TryRecvError::Closed) => Err(broadcast::error::RecvError::Closed),
                        Err(broadcast::error::TryRecvError::Empty) => tokio::select! {
                            r = self.rx.recv() => r,
                            _ = self.closed.wait_for(|c| *c) => Err(broadcast::error::RecvError::Closed),
                        },
                    };
                    match received {
                        Ok(shared) if shared.entry.seq > self.last => {
                            self.last = shared.entry.seq;
                            // `try_recv` does not count against the task's budget, so after a
                            // burst one connection would write all of it in one go while the
                            // other hundred wait their turn, and requests queued behind them
                            // all: counting each entry makes the connection yield every so
                            // often and lets the rest of the server run in between.
                            tokio::task::consume_budget().await;
                            return Some((FeedEvent::Entry(shared), self));
                        }
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            // Fell out of the shared ring (a burst, or a slow reader): read
                            // what it missed from storage, page by page, instead of holding
                            // it in memory; the ring's later entries are skipped by `seq`.
                            tracing::debug!(behind = n, "revocation feed: subscriber behind; catching up from storage");
                            metrics::counter!("gatepass_revocation_feed_lagged_total").increment(1);
                            self.catching_up = true;
                            self.phase = Phase::Replay(VecDeque::new());
                        }
                        Err(broadcast::error::RecvError::Closed) => self.phase = Phase::Done,
                    }
                }
                Phase::Done => return None,
            }
        }
    }
}

/// Starts this instance's feed publisher. Abort the handle to stop.
pub fn spawn_feed(service: Arc<AuthService>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let core = service.core();
        let hub = &core.feed;
        // Subscribers replay history from storage; the publisher starts at the present.
        let mut published = loop {
            match core.storage.revocation_log_head().await {
                Ok(head) => {
                    hub.publishing.send_replace(true);
                    break head;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "revocation feed: cannot read the log head; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        // After pacing ran out (a subscriber that stopped reading), don't pace again for a
        // while: one stuck subscriber must not slow the feed for everyone.
        let mut pace_after = tokio::time::Instant::now();
        let mut idle_wait = IDLE_POLL;
        loop {
            match core.storage.revocation_log(published, now(), PAGE).await {
                Ok(rows) => {
                    let full = rows.len() as i64 == PAGE;
                    // Entries written by another process (the CLI, a script) wake nobody
                    // here: while they keep coming, read again soon, so they go out a few
                    // at a time instead of in one burst a second.
                    idle_wait = if rows.is_empty() { IDLE_POLL } else { ACTIVE_POLL };
                    if tokio::time::Instant::now() >= pace_after && !hub.pace(rows.len()).await {
                        pace_after = tokio::time::Instant::now() + Duration::from_secs(1);
                    }
                    for entry in rows {
                        published = entry.seq;
                        // No receiver is not an error: nobody is subscribed right now.
                        let _ = hub.tx.send(SharedEntry::new(entry));
                    }
                    if full {
                        continue;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "revocation feed: log read failed; retrying"),
            }
            tokio::select! {
                () = hub.wake.notified() => {}
                () = tokio::time::sleep(idle_wait) => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_decimal_positions_and_anything_else_is_none() {
        assert_eq!(parse_cursor(Some("42")), Some(42));
        assert_eq!(parse_cursor(Some(" 7 ")), Some(7));
        for bad in ["", "-1", "1e3", "0x10", "abc", "99999999999999999999", "4 2"] {
            assert_eq!(parse_cursor(Some(bad)), None, "{bad}");
        }
        assert_eq!(parse_cursor(None), None);
    }

    fn key(seq: i64) -> Arc<SharedEntry> {
        SharedEntry::new(FeedEntry { seq, item: crate::storage::FeedItem::Key { kid: format!("k{seq}"), until: 0 } })
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_waits_for_readers_and_a_stuck_reader_only_until_the_limit() {
        let hub = FeedHub::new(4);
        let mut reader = hub.tx.subscribe();
        for seq in 1..=4 {
            hub.tx.send(key(seq)).unwrap();
        }
        // The ring is full: a page of 2 waits while the reader catches up, then goes.
        let paced = tokio::spawn(async move {
            let ok = hub.pace(2).await;
            (ok, hub)
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(!paced.is_finished(), "a page that would push out unread entries waits");
        for seq in 1..=2 {
            assert_eq!(reader.recv().await.unwrap().entry().seq, seq);
        }
        let (ok, hub) = paced.await.unwrap();
        assert!(ok, "room was made within the limit");
        // A reader that stops reading holds a page back only until the limit.
        let started = tokio::time::Instant::now();
        assert!(!hub.pace(4).await, "the limit ran out");
        assert!(started.elapsed() >= PACING_LIMIT);
        assert_eq!(reader.recv().await.unwrap().entry().seq, 3, "nothing was pushed out while waiting");
    }

    #[test]
    fn an_entry_is_encoded_once_for_every_subscriber() {
        let shared = key(7);
        let mut calls = 0;
        for _ in 0..3 {
            let wire = shared.wire(|e| {
                calls += 1;
                format!("id: {}", e.seq)
            });
            assert_eq!(wire, "id: 7");
        }
        assert_eq!(calls, 1);
    }
}
