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
//! the replay already sent. Entries are broadcast in batches (what one read of the log
//! found), each put into wire form once for every subscriber, so a subscriber's cost per
//! batch does not grow with the batch. Memory per subscriber is bounded: the broadcast is
//! one shared ring holding at most `buffer` entries, and a subscriber that falls further
//! behind (a burst, a slow reader) reads what it missed from storage, a page at a time,
//! instead of holding it in memory. A subscriber that stops reading altogether stops being
//! polled; the server's send timeout then closes its connection (`server.rs`).

use futures_util::Stream;
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

/// Default of the most revocations the broadcast ring holds (`GATEPASS_REVOCATION_FEED_BUFFER`).
pub const DEFAULT_BUFFER: usize = 1024;

/// How often the publisher reads the log while nothing is happening: what another process
/// writes (the CLI on SQLite) reaches subscribers within this; this instance's own
/// revocations and, on PostgreSQL, every instance's wake it at once. An empty read is one
/// index probe.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// How often it reads while the last read found new entries.
const ACTIVE_POLL: Duration = Duration::from_millis(10);

/// Entries handed over in one go from which a subscription spaces out its next write
/// (see [`Subscription::next`]).
const SPREAD_AFTER: usize = 32;

/// The shortest such pause; the longest is twice this. As long as the publisher's fastest
/// reading interval, so that the pauses end at random points of the next one.
const SPREAD_PAUSE: Duration = ACTIVE_POLL;

/// Longest the publisher holds back a page for subscribers still reading the previous
/// ones (see [`spawn_feed`]).
const PACING_LIMIT: Duration = Duration::from_millis(100);

/// Most batches the broadcast ring holds; each holds at most `buffer / RING_BATCHES`
/// entries, so the ring never holds more than `buffer`.
const RING_BATCHES: usize = 16;

/// Revocations that go out together (what one read of the log found, or one replay page),
/// in `seq` order, with their wire form: made by the first subscriber that sends them and
/// reused by the others.
///
/// With a hundred subscribers, encoding each event once per subscriber cost the instance
/// more than the rest of the fan-out together, and handling each entry separately in each
/// subscription still cost more than writing the batch out.
#[derive(Debug)]
pub struct FeedBatch {
    entries: Vec<FeedEntry>,
    wire: OnceLock<Wire>,
}

/// A batch in wire form: the text of every entry, one after another, and where each starts.
#[derive(Debug)]
struct Wire {
    text: String,
    starts: Vec<usize>,
}

impl FeedBatch {
    fn new(entries: Vec<FeedEntry>) -> Arc<Self> {
        Arc::new(Self { entries, wire: OnceLock::new() })
    }

    /// The revocations, in `seq` order.
    pub fn entries(&self) -> &[FeedEntry] {
        &self.entries
    }

    /// The wire form of the entries from index `from` on: each `encode`d on the first call,
    /// the same text on every later one.
    pub fn wire_from(&self, from: usize, encode: impl Fn(&FeedEntry, &mut String)) -> &str {
        let wire = self.wire.get_or_init(|| {
            let mut text = String::with_capacity(self.entries.len() * 128);
            let mut starts = Vec::with_capacity(self.entries.len());
            for entry in &self.entries {
                starts.push(text.len());
                encode(entry, &mut text);
            }
            Wire { text, starts }
        });
        let start = wire.starts.get(from).copied().unwrap_or(wire.text.len());
        &wire.text[start..]
    }
}

/// One instance's publisher of the revocation log to its subscribers.
pub struct FeedHub {
    tx: broadcast::Sender<Arc<FeedBatch>>,
    /// Batches the ring holds: how far a subscriber may fall behind before it catches up
    /// from storage.
    slots: usize,
    /// Most entries in one batch.
    batch: usize,
    wake: Notify,
    closed: watch::Sender<bool>,
    /// Set once the publisher has read its starting position. A subscription waits for
    /// it: a subscriber whose replay ended before the publisher's start would otherwise
    /// miss the entries committed in between, which neither would send.
    publishing: watch::Sender<bool>,
}

impl FeedHub {
    /// A hub whose ring holds at most `buffer` entries.
    pub fn new(buffer: usize) -> Self {
        let buffer = buffer.max(1);
        let slots = buffer.min(RING_BATCHES);
        let (tx, _) = broadcast::channel(slots);
        Self {
            tx,
            slots,
            batch: buffer / slots,
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

    /// Waits, at most [`PACING_LIMIT`], until the ring has room for one more batch
    /// without pushing out one a subscriber has not read yet.
    ///
    /// A burst (a storage read that finds thousands of new entries, e.g. written by
    /// another process) would otherwise overrun every subscriber at once, and each would
    /// then read the same entries back from storage. A subscriber that does not keep up
    /// within the limit is left behind and catches up from storage alone.
    /// Returns `false` when the limit ran out.
    async fn pace(&self) -> bool {
        let deadline = tokio::time::Instant::now() + PACING_LIMIT;
        while self.tx.len() >= self.slots {
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

/// What a subscription yields, in order: the replay ([`FeedEvent::Entries`]), one
/// [`FeedEvent::Ready`], then live entries.
#[derive(Debug, Clone)]
pub enum FeedEvent {
    /// Revocations: `batch`'s entries from index `from` on (the earlier ones were sent
    /// already).
    Entries {
        /// The batch.
        batch: Arc<FeedBatch>,
        /// Index of the first entry to send.
        from: usize,
    },
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
            taken: 0,
            phase: Phase::Replay,
            _gauge: SubscriberGauge,
        };
        Ok(futures_util::stream::unfold(state, Subscription::next))
    }
}

enum Phase {
    /// Replaying storage.
    Replay,
    /// Following the broadcast.
    Live,
    /// Over.
    Done,
}

struct Subscription {
    storage: Arc<dyn Storage>,
    rx: broadcast::Receiver<Arc<FeedBatch>>,
    closed: watch::Receiver<bool>,
    /// Highest position sent.
    last: i64,
    head: i64,
    snapshot: bool,
    /// Replaying after falling behind the ring (no second `ready`).
    catching_up: bool,
    /// Live entries handed over since the subscription last waited for the broadcast.
    taken: usize,
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
                Phase::Replay => {
                    let read = self.storage.revocation_log(self.last, now(), PAGE).await;
                    match read {
                        Ok(rows) if !rows.is_empty() => {
                            self.last = rows.iter().map(|e| e.seq).fold(self.last, i64::max);
                            return Some((FeedEvent::Entries { batch: FeedBatch::new(rows), from: 0 }, self));
                        }
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
                    // A batch already waiting is taken without arming a wait (a hundred
                    // subscribers each take every batch: this is the feed's hot path).
                    let received = match self.rx.try_recv() {
                        _ if self.closed.has_changed().unwrap_or(true) && *self.closed.borrow() => {
                            Err(broadcast::error::RecvError::Closed)
                        }
                        Ok(batch) => Ok(batch),
                        Err(broadcast::error::TryRecvError::Lagged(n)) => Err(broadcast::error::RecvError::Lagged(n)),
                        Err(broadcast::error::TryRecvError::Closed) => Err(broadcast::error::RecvError::Closed),
                        Err(broadcast::error::TryRecvError::Empty) => {
                            // Everything ready has been handed over (hyper writes it out
                            // at once). Was it a lot? Then revocations are streaming in:
                            // pause before the next write, for a random while, so that the
                            // subscribers' writes spread out instead of all following each
                            // publication at once, which would hold up this instance's
                            // requests queued behind them. A lone revocation still goes
                            // out at once.
                            if std::mem::take(&mut self.taken) >= SPREAD_AFTER {
                                let pause = rand::random_range(SPREAD_PAUSE..2 * SPREAD_PAUSE);
                                tokio::select! {
                                    () = tokio::time::sleep(pause) => continue,
                                    _ = self.closed.wait_for(|c| *c) => Err(broadcast::error::RecvError::Closed),
                                }
                            } else {
                                tokio::select! {
                                    r = self.rx.recv() => r,
                                    _ = self.closed.wait_for(|c| *c) => Err(broadcast::error::RecvError::Closed),
                                }
                            }
                        }
                    };
                    match received {
                        Ok(batch) => {
                            // Skip what the replay already sent.
                            let from = batch.entries.partition_point(|e| e.seq <= self.last);
                            let Some(last) = batch.entries.last().filter(|_| from < batch.entries.len()) else {
                                continue;
                            };
                            self.last = last.seq;
                            self.taken += batch.entries.len() - from;
                            // `try_recv` does not count against the task's budget, so after a
                            // burst one connection would write all of it in one go while the
                            // other hundred wait their turn, and requests queued behind them
                            // all: counting each batch makes the connection yield every so
                            // often and lets the rest of the server run in between.
                            tokio::task::consume_budget().await;
                            return Some((FeedEvent::Entries { batch, from }, self));
                        }
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            // Fell out of the shared ring (a burst, or a slow reader): read
                            // what it missed from storage, page by page, instead of holding
                            // it in memory; the ring's later entries are skipped by `seq`.
                            tracing::debug!(behind = n, "revocation feed: subscriber behind; catching up from storage");
                            metrics::counter!("gatepass_revocation_feed_lagged_total").increment(1);
                            self.catching_up = true;
                            self.phase = Phase::Replay;
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
                    let mut rows = rows.into_iter().peekable();
                    while rows.peek().is_some() {
                        let batch: Vec<FeedEntry> = rows.by_ref().take(hub.batch).collect();
                        if tokio::time::Instant::now() >= pace_after && !hub.pace().await {
                            pace_after = tokio::time::Instant::now() + Duration::from_secs(1);
                        }
                        published = batch.last().map_or(published, |e| e.seq);
                        // No receiver is not an error: nobody is subscribed right now.
                        let _ = hub.tx.send(FeedBatch::new(batch));
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

    fn key(seq: i64) -> FeedEntry {
        FeedEntry { seq, item: crate::storage::FeedItem::Key { kid: format!("k{seq}"), until: 0 } }
    }

    #[test]
    fn the_ring_never_holds_more_entries_than_the_buffer() {
        for buffer in [1, 8, 16, 17, 1024, 1_000_000] {
            let hub = FeedHub::new(buffer);
            assert!(hub.slots * hub.batch <= buffer, "{buffer}");
            assert!(hub.slots >= 1 && hub.batch >= 1, "{buffer}");
        }
        assert_eq!((FeedHub::new(1024).slots, FeedHub::new(1024).batch), (16, 64));
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_waits_for_readers_and_a_stuck_reader_only_until_the_limit() {
        let hub = FeedHub::new(4);
        let mut reader = hub.tx.subscribe();
        for seq in 1..=4 {
            hub.tx.send(FeedBatch::new(vec![key(seq)])).unwrap();
        }
        // The ring is full: the next batch waits while the reader catches up, then goes.
        let paced = tokio::spawn(async move {
            let ok = hub.pace().await;
            (ok, hub)
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(!paced.is_finished(), "a batch that would push out an unread one waits");
        assert_eq!(reader.recv().await.unwrap().entries()[0].seq, 1);
        let (ok, hub) = paced.await.unwrap();
        assert!(ok, "room was made within the limit");
        hub.tx.send(FeedBatch::new(vec![key(5)])).unwrap();
        // A reader that stops reading holds a batch back only until the limit.
        let started = tokio::time::Instant::now();
        assert!(!hub.pace().await, "the limit ran out");
        assert!(started.elapsed() >= PACING_LIMIT);
        assert_eq!(reader.recv().await.unwrap().entries()[0].seq, 2, "nothing was pushed out while waiting");
    }

    #[test]
    fn a_batch_is_encoded_once_for_every_subscriber_and_sent_from_any_entry() {
        let batch = FeedBatch::new(vec![key(7), key(8), key(9)]);
        let calls = std::cell::Cell::new(0);
        let encode = |e: &FeedEntry, out: &mut String| {
            calls.set(calls.get() + 1);
            out.push_str(&format!("id: {}\n", e.seq));
        };
        assert_eq!(batch.wire_from(0, encode), "id: 7\nid: 8\nid: 9\n");
        assert_eq!(batch.wire_from(2, encode), "id: 9\n");
        assert_eq!(batch.wire_from(1, encode), "id: 8\nid: 9\n");
        assert_eq!(batch.wire_from(3, encode), "");
        assert_eq!(calls.get(), 3, "each entry encoded once");
    }

    #[tokio::test]
    async fn a_stream_of_revocations_spaces_a_subscribers_writes_and_a_lone_one_goes_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("feed.db").display());
        let storage: Arc<dyn Storage> = Arc::new(crate::storage::SqliteStorage::connect(&url).await.unwrap());
        // The pauses are measured on the paused clock: what is checked is when the
        // subscription asks to be woken, not how fast anything runs.
        tokio::time::pause();
        let hub = FeedHub::new(1024);
        let sub = Subscription {
            storage,
            rx: hub.tx.subscribe(),
            closed: hub.closed.subscribe(),
            last: 0,
            head: 0,
            snapshot: true,
            catching_up: false,
            taken: 0,
            phase: Phase::Live,
            _gauge: SubscriberGauge,
        };
        let sent = |seqs: std::ops::RangeInclusive<i64>| FeedBatch::new(seqs.map(key).collect());
        let take = |event: Option<(FeedEvent, Subscription)>| match event {
            Some((FeedEvent::Entries { batch, from }, sub)) => (batch.entries()[from..].len(), sub),
            _ => panic!("a batch"),
        };

        // A burst (32 or more at once) goes out at once ...
        hub.tx.send(sent(1..=40)).unwrap();
        let (n, sub) = take(sub.next().await);
        assert_eq!(n, 40);
        // ... and what follows right after waits 10-20 ms (the timer rounds up to 1 ms).
        let started = tokio::time::Instant::now();
        let next = tokio::spawn(sub.next());
        tokio::time::sleep(Duration::from_millis(1)).await;
        hub.tx.send(sent(41..=41)).unwrap();
        let (n, sub) = take(next.await.unwrap());
        assert_eq!(n, 1);
        let waited = started.elapsed();
        assert!(waited >= SPREAD_PAUSE && waited <= 2 * SPREAD_PAUSE + Duration::from_millis(1), "{waited:?}");

        // A lone revocation after that is not held back.
        let fut = tokio::spawn(async move { take(sub.next().await).0 });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = tokio::time::Instant::now();
        hub.tx.send(sent(42..=42)).unwrap();
        assert_eq!(fut.await.unwrap(), 1);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
