//! Throttling of credential endpoints: token buckets per client IP and per account, and the
//! per-account failed-login back-off. No HTTP types and no storage here: callers pass the
//! client address and the canonical username, and keep the failure records wherever the
//! deployment shares them.
//!
//! The buckets live in this process ([`LocalLimiter`]); [`Limiter`] is the seam a shared
//! backend plugs into when several instances serve one user base
//! ([`crate::auth::ratelimit_redis::RedisLimiter`] keeps them in Redis and also offers a
//! shared home for the failure records, [`SharedRecords`]).
//!
//! Design (see docs/abuse.md):
//! - Token buckets (GCRA, `governor`) per (action, client network) and per (action,
//!   account). Settings are read on every check and the buckets are rebuilt when they
//!   change, so the admin API can retune them at run time.
//! - Failed logins: the policy is pure functions over a [`FailureRecord`] (the streak of
//!   consecutive failures, when the last one was, and the failures of the sliding hour).
//!   From the `lockout_threshold`-th consecutive failure the next attempt waits
//!   `2^(n - threshold)` seconds (capped), and no record takes more than
//!   `max_failures_per_hour` failures in a sliding hour. While waiting even the right
//!   password is refused, so the limit is no oracle. Every attempt is charged to its record
//!   *before* the password is checked (and the charge taken back on success), so that
//!   attempts racing through several instances cannot slip past the threshold.
//! - So that an attacker cannot keep the owner out, a browser that signed into the account
//!   before (it shows a signed device cookie, see [`crate::auth::device`]) is judged by its
//!   own record for that account and skips the per-account bucket; everyone else shares the
//!   account-wide record. A recognised device's failures also count in the account's
//!   hourly window, and once the device itself has reached the threshold it is held to
//!   that window as well, so a stolen device cookie buys no unlimited guesses.

use crate::domain::Username;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::RwLock;
use std::time::Duration;

/// An operation that is throttled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `POST /api/login`, `/login`.
    Login,
    /// `POST /api/register`, `/register`.
    Register,
    /// `POST /api/refresh`.
    Refresh,
    /// `POST /api/password`.
    PasswordChange,
    /// Requests that send mail: forgotten password, password reset, resend of a
    /// verification link, address change.
    Mail,
    /// A user code typed on the device verification page (`/oauth/device`).
    DeviceCode,
}

/// Tunables; part of the runtime settings (changeable through the admin API).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct RateLimitSettings {
    /// Master switch (off only for benchmarks and tests that measure something else).
    pub enabled: bool,
    /// Sustained requests per minute per client network and action.
    pub ip_per_minute: u32,
    /// Burst per client network and action.
    pub ip_burst: u32,
    /// Sustained requests per minute per account and action.
    pub user_per_minute: u32,
    /// Burst per account and action.
    pub user_burst: u32,
    /// Consecutive failed logins after which the back-off starts (default 5).
    pub lockout_threshold: u32,
    /// Longest single back-off, seconds.
    pub lockout_max_secs: u64,
    /// Failed logins allowed per account per sliding hour (ASVS 2.2.1: at most 100).
    pub max_failures_per_hour: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            ip_per_minute: 30,
            ip_burst: 20,
            user_per_minute: 10,
            user_burst: 10,
            lockout_threshold: 5,
            lockout_max_secs: 900,
            max_failures_per_hour: 100,
        }
    }
}

/// Largest accepted `max_failures_per_hour` (ASVS 2.2.1).
pub const MAX_FAILURES_PER_HOUR_CAP: u32 = 100;

/// Refusal: try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole seconds, at least 1 (the value of `Retry-After`).
    pub fn secs(&self) -> u64 {
        (self.0.as_secs() + u64::from(self.0.subsec_nanos() > 0)).max(1)
    }
}

/// Where the token buckets currently live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// In this process only (no shared store configured, or it is unreachable).
    Local,
    /// Shared through Redis by every instance pointed at it.
    Redis,
}

impl Backend {
    /// The name shown in `/api/info` and the metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Local => "local",
            Backend::Redis => "redis",
        }
    }
}

/// A throttling backend. Implementations must be cheap to call on every request and
/// must bound their memory.
#[async_trait::async_trait]
pub trait Limiter: Send + Sync {
    /// Takes one token for `action` from the client's and (if given) the account's bucket.
    /// Callers leave `account` out for a device the account recognises.
    async fn acquire(
        &self,
        settings: &RateLimitSettings,
        action: Action,
        ip: Option<IpAddr>,
        account: Option<&str>,
    ) -> Result<(), RetryAfter>;
    /// Drops state that no longer matters (called periodically).
    fn sweep(&self);
    /// Where the buckets live right now.
    fn backend(&self) -> Backend {
        Backend::Local
    }
    /// Whether a configured shared store answers (`None`: none configured).
    fn shared_store_up(&self) -> Option<bool> {
        None
    }
    /// The shared store for failed-login records this backend brings, if it has one and
    /// it is worth trying now; `None`: keep them in the database.
    fn records(&self) -> Option<&dyn SharedRecords> {
        None
    }
}

/// The shared store did not answer (the reason is for the log); the caller falls back.
#[derive(Debug, Clone)]
pub struct StoreDown(pub String);

/// Failed-login records in a store that every instance shares (Redis). A record is opaque
/// text ([`FailureRecord::encode`]) replaced only by compare-and-swap on its previous
/// text, so that instances racing on one account serialize.
#[async_trait::async_trait]
pub trait SharedRecords: Send + Sync {
    /// The text stored under `key`, if any.
    async fn load_record(&self, key: &str) -> Result<Option<String>, StoreDown>;
    /// Stores `new` under `key` (expiring after `ttl`) if the stored text is still
    /// `expected` (`None`: absent); false, and nothing changed, when another writer came
    /// first.
    async fn swap_record(&self, key: &str, expected: Option<&str>, new: &str, ttl: Duration)
    -> Result<bool, StoreDown>;
}

/// The key under which a client is counted: the address, or its /64 for IPv6 (one host
/// usually owns a whole /64).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The canonical account key of a submitted username: trimmed, in its RFC 8265
/// canonical form (case-mapped, width-mapped, NFC) and bounded, so `Alice`, ` alice `,
/// `ALICE`, `ＡＬＩＣＥ` and every spelling of `Élodie` share one bucket whether or not the
/// name is valid.
pub fn account_key(raw: &str) -> String {
    let t = Username::lookup_key(raw.trim());
    let mut end = t.len().min(128);
    while !t.is_char_boundary(end) {
        end -= 1;
    }
    t[..end].to_owned()
}

/// Key of the account-wide failure record of an account key ([`account_key`]). Control
/// characters and `%` are percent-encoded (so the key stays one-to-one with the name):
/// submitted names can hold anything, and PostgreSQL text cannot hold a NUL.
pub fn account_record_key(account: &str) -> String {
    let mut key = String::with_capacity(account.len() + 5);
    key.push_str("acct:");
    for c in account.chars() {
        if c == '%' || c.is_control() {
            let mut utf8 = [0u8; 4];
            for b in c.encode_utf8(&mut utf8).bytes() {
                key.push_str(&format!("%{b:02X}"));
            }
        } else {
            key.push(c);
        }
    }
    key
}

/// Key of the failure record of one recognised device of an account (by user id).
pub fn device_record_key(user_id: &str, device_id: &str) -> String {
    format!("dev:{user_id}:{device_id}")
}

const HOUR_MS: i64 = 3_600_000;

/// Failed logins of one account, or of one recognised device of it: what the back-off
/// decides on. Kept in shared state as the text of [`Self::encode`]; every change is a new
/// value computed by one of the pure functions below.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailureRecord {
    /// Failures since the last success (forgotten once the last one is [`stale_after`] old).
    pub consecutive: u32,
    /// When the last of them was charged, epoch milliseconds (0: never).
    pub last_ms: i64,
    /// Failures of the sliding hour, epoch milliseconds, oldest first; at most
    /// [`MAX_FAILURES_PER_HOUR_CAP`] of them.
    pub recent: Vec<i64>,
}

/// How long a record matters after its last failure: an hour, or the longest back-off if
/// that is longer. Stores may drop it afterwards (it then reads as empty anyway).
pub fn stale_after(s: &RateLimitSettings) -> Duration {
    Duration::from_millis(HOUR_MS as u64).max(Duration::from_secs(s.lockout_max_secs))
}

impl FailureRecord {
    /// The stored form: `consecutive/last_ms/t1,t2,…` (never empty).
    pub fn encode(&self) -> String {
        let recent: Vec<String> = self.recent.iter().map(i64::to_string).collect();
        format!("{}/{}/{}", self.consecutive, self.last_ms, recent.join(","))
    }

    /// Parses [`Self::encode`]'s form; `None` for anything else.
    pub fn decode(text: &str) -> Option<Self> {
        let mut parts = text.split('/');
        let (Some(consecutive), Some(last_ms), Some(recent), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let mut record =
            Self { consecutive: consecutive.parse().ok()?, last_ms: last_ms.parse().ok()?, recent: vec![] };
        if !recent.is_empty() {
            for t in recent.split(',') {
                if record.recent.len() >= 2 * MAX_FAILURES_PER_HOUR_CAP as usize {
                    return None;
                }
                record.recent.push(t.parse().ok()?);
            }
        }
        record.recent.sort_unstable();
        Some(record)
    }

    /// Nothing worth storing: no streak and no failure in the hour.
    pub fn is_empty(&self) -> bool {
        self.consecutive == 0 && self.recent.is_empty()
    }

    /// The record as it stands at `now_ms`: a streak whose last failure is
    /// [`stale_after`] old is forgotten, failures older than an hour leave the window.
    pub fn at(&self, s: &RateLimitSettings, now_ms: i64) -> Self {
        let stale = now_ms.saturating_sub(self.last_ms) >= stale_after(s).as_millis() as i64;
        Self {
            consecutive: if stale { 0 } else { self.consecutive },
            last_ms: self.last_ms,
            recent: self.recent.iter().copied().filter(|t| now_ms.saturating_sub(*t) < HOUR_MS).collect(),
        }
    }

    /// Milliseconds until the sliding hour holds fewer than the allowed failures (on a
    /// record already brought to `now_ms` by [`Self::at`]).
    fn hour_wait_ms(&self, s: &RateLimitSettings, now_ms: i64) -> i64 {
        let cap = s.max_failures_per_hour.clamp(1, MAX_FAILURES_PER_HOUR_CAP) as usize;
        match self.recent.len().checked_sub(cap) {
            // The failure whose expiry brings the count below the cap.
            Some(i) => self.recent[i].saturating_add(HOUR_MS).saturating_sub(now_ms),
            None => 0,
        }
    }

    /// Milliseconds until the exponential back-off of the streak is over (on a record
    /// already brought to `now_ms`).
    fn backoff_wait_ms(&self, s: &RateLimitSettings, now_ms: i64) -> i64 {
        let threshold = s.lockout_threshold.max(1);
        if self.consecutive < threshold {
            return 0;
        }
        let exp = (self.consecutive - threshold).min(30);
        let backoff_ms = (1i64 << exp).min(s.lockout_max_secs.max(1) as i64) * 1000;
        self.last_ms.saturating_add(backoff_ms).saturating_sub(now_ms)
    }

    /// Whether the streak has reached the threshold (the record is backing off).
    fn at_threshold(&self, s: &RateLimitSettings) -> bool {
        self.consecutive >= s.lockout_threshold.max(1)
    }

    /// This record with one more attempt charged at `now_ms`: the streak grows, and the
    /// attempt counts in the hour until [`Self::succeeded`] takes it back.
    pub fn charged(&self, s: &RateLimitSettings, now_ms: i64) -> Self {
        let mut r = self.counted(s, now_ms);
        r.consecutive = r.consecutive.saturating_add(1);
        r.last_ms = r.last_ms.max(now_ms);
        r
    }

    /// This record with one failure added to the hour only (a recognised device's failure,
    /// counted against its account).
    pub fn counted(&self, s: &RateLimitSettings, now_ms: i64) -> Self {
        let mut r = self.at(s, now_ms);
        let at = r.recent.partition_point(|t| *t <= now_ms);
        r.recent.insert(at, now_ms);
        let excess = r.recent.len().saturating_sub(MAX_FAILURES_PER_HOUR_CAP as usize);
        r.recent.drain(..excess);
        r
    }

    /// This record after the attempt charged at `charged_ms` succeeded: the streak ends and
    /// that attempt no longer counts as a failure. Other failures of the hour stay.
    pub fn succeeded(&self, s: &RateLimitSettings, now_ms: i64, charged_ms: i64) -> Self {
        let mut r = self.at(s, now_ms);
        r.consecutive = 0;
        if let Some(i) = r.recent.iter().position(|t| *t == charged_ms) {
            r.recent.remove(i);
        }
        r
    }
}

fn wait_of_ms(ms: i64) -> Option<RetryAfter> {
    (ms > 0).then(|| RetryAfter(Duration::from_millis(ms as u64)))
}

/// The back-off decision for an attempt by a client the account does not recognise: the
/// account-wide record's back-off and hourly cap.
pub fn stranger_wait(account: &FailureRecord, s: &RateLimitSettings, now_ms: i64) -> Option<RetryAfter> {
    let a = account.at(s, now_ms);
    wait_of_ms(a.backoff_wait_ms(s, now_ms).max(a.hour_wait_ms(s, now_ms)))
}

/// The back-off decision for an attempt by a recognised device: its own record (back-off
/// and hourly cap), whatever strangers did to the account; and, once the device itself has
/// reached the threshold, also the account-wide hourly cap, so a stolen device cookie is
/// held to the account's hour like everyone else. The owner who types the right password
/// on a recognised device within `lockout_threshold` attempts always gets in.
pub fn device_wait(
    device: &FailureRecord,
    account: &FailureRecord,
    s: &RateLimitSettings,
    now_ms: i64,
) -> Option<RetryAfter> {
    let d = device.at(s, now_ms);
    let mut wait = d.backoff_wait_ms(s, now_ms).max(d.hour_wait_ms(s, now_ms));
    if d.at_threshold(s) {
        wait = wait.max(account.at(s, now_ms).hour_wait_ms(s, now_ms));
    }
    wait_of_ms(wait)
}

struct Buckets {
    settings: RateLimitSettings,
    ip: DefaultKeyedRateLimiter<(Action, IpAddr)>,
    account: DefaultKeyedRateLimiter<(Action, String)>,
}

impl Buckets {
    fn new(s: &RateLimitSettings) -> Self {
        let quota = |per_minute: u32, burst: u32| {
            let per_minute = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
            let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
            Quota::per_minute(per_minute).allow_burst(burst)
        };
        Self {
            settings: s.clone(),
            ip: DefaultKeyedRateLimiter::keyed(quota(s.ip_per_minute, s.ip_burst)),
            account: DefaultKeyedRateLimiter::keyed(quota(s.user_per_minute, s.user_burst)),
        }
    }
}

/// Token buckets kept in this process.
pub struct LocalLimiter {
    buckets: RwLock<Buckets>,
}

impl Default for LocalLimiter {
    fn default() -> Self {
        Self { buckets: RwLock::new(Buckets::new(&RateLimitSettings::default())) }
    }
}

impl LocalLimiter {
    /// Runs `f` on buckets matching `settings`, rebuilding them if the settings changed.
    fn with_buckets<T>(&self, settings: &RateLimitSettings, f: impl Fn(&Buckets) -> T) -> T {
        {
            let b = self.buckets.read().unwrap_or_else(|p| p.into_inner());
            if b.settings == *settings {
                return f(&b);
            }
        }
        let mut b = self.buckets.write().unwrap_or_else(|p| p.into_inner());
        if b.settings != *settings {
            *b = Buckets::new(settings);
        }
        f(&b)
    }

    /// The synchronous bucket check behind [`Limiter::acquire`].
    pub fn acquire_local(
        &self,
        settings: &RateLimitSettings,
        action: Action,
        ip: Option<IpAddr>,
        account: Option<&str>,
    ) -> Result<(), RetryAfter> {
        if !settings.enabled {
            return Ok(());
        }
        self.with_buckets(settings, |b| {
            if let Some(ip) = ip {
                b.ip.check_key(&(action, client_key(ip))).map_err(wait_of)?;
            }
            if let Some(account) = account {
                b.account.check_key(&(action, account.to_owned())).map_err(wait_of)?;
            }
            Ok(())
        })
    }
}

fn wait_of(outcome: governor::NotUntil<governor::clock::QuantaInstant>) -> RetryAfter {
    RetryAfter(outcome.wait_time_from(DefaultClock::default().now()))
}

#[async_trait::async_trait]
impl Limiter for LocalLimiter {
    async fn acquire(
        &self,
        settings: &RateLimitSettings,
        action: Action,
        ip: Option<IpAddr>,
        account: Option<&str>,
    ) -> Result<(), RetryAfter> {
        self.acquire_local(settings, action, ip, account)
    }

    fn sweep(&self) {
        let b = self.buckets.read().unwrap_or_else(|p| p.into_inner());
        b.ip.retain_recent();
        b.account.retain_recent();
        b.ip.shrink_to_fit();
        b.account.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_900_000_000_000;

    fn fail_n(s: &RateLimitSettings, n: u32, at: i64) -> FailureRecord {
        (0..n).fold(FailureRecord::default(), |r, _| r.charged(s, at))
    }

    #[test]
    fn backoff_starts_at_threshold_and_doubles() {
        let s = RateLimitSettings::default();
        let mut r = FailureRecord::default();
        for _ in 0..5 {
            assert_eq!(stranger_wait(&r, &s, T0), None);
            r = r.charged(&s, T0);
        }
        assert_eq!(stranger_wait(&r, &s, T0).map(|w| w.secs()), Some(1));
        assert_eq!(stranger_wait(&r, &s, T0 + 999).map(|w| w.0), Some(Duration::from_millis(1)));
        assert_eq!(stranger_wait(&r, &s, T0 + 1000), None);
        let r = r.charged(&s, T0 + 1000);
        assert_eq!(stranger_wait(&r, &s, T0 + 1000).map(|w| w.secs()), Some(2));
    }

    #[test]
    fn backoff_is_capped_and_forgotten_once_stale() {
        let s = RateLimitSettings { lockout_max_secs: 3, ..Default::default() };
        let r = fail_n(&s, 40, T0);
        assert_eq!(stranger_wait(&r, &s, T0).map(|w| w.secs()), Some(3));
        let later = T0 + stale_after(&s).as_millis() as i64;
        assert_eq!(r.at(&s, later), FailureRecord { consecutive: 0, last_ms: T0, recent: vec![] });
    }

    #[test]
    fn success_ends_the_streak_and_takes_its_own_charge_back() {
        let s = RateLimitSettings::default();
        let r = fail_n(&s, 3, T0).charged(&s, T0 + 5);
        let r = r.succeeded(&s, T0 + 10, T0 + 5);
        assert_eq!(r.consecutive, 0);
        assert_eq!(r.recent, vec![T0, T0, T0], "the earlier failures still count in the hour");
    }

    #[test]
    fn hourly_cap_holds_and_slides() {
        let s = RateLimitSettings { lockout_threshold: 1000, max_failures_per_hour: 3, ..Default::default() };
        let r = FailureRecord::default().charged(&s, T0).charged(&s, T0 + 10).charged(&s, T0 + 20);
        let wait = stranger_wait(&r, &s, T0 + 20).expect("capped");
        assert_eq!(wait.0, Duration::from_millis((HOUR_MS - 20) as u64));
        assert_eq!(stranger_wait(&r, &s, T0 + HOUR_MS), None, "the oldest failure left the hour");
        // A success does not empty the hour.
        let r = r.succeeded(&s, T0 + 30, 0);
        assert!(stranger_wait(&r, &s, T0 + 30).is_some());
    }

    #[test]
    fn a_recognised_device_is_judged_by_its_own_record() {
        let s = RateLimitSettings { lockout_threshold: 5, max_failures_per_hour: 10, ..Default::default() };
        let account = fail_n(&s, 10, T0);
        assert!(stranger_wait(&account, &s, T0).is_some());
        let device = fail_n(&s, 4, T0);
        assert_eq!(device_wait(&device, &account, &s, T0), None, "strangers do not lock the owner out");
        // A device at its own threshold is held to its back-off and to the account's hour.
        let device = device.charged(&s, T0);
        let wait = device_wait(&device, &account, &s, T0 + 5_000).expect("held");
        assert!(wait.0 > Duration::from_secs(3000), "{wait:?}");
        assert_eq!(device_wait(&device, &FailureRecord::default(), &s, T0 + 1_000), None);
    }

    #[test]
    fn records_round_trip_and_refuse_garbage() {
        let s = RateLimitSettings::default();
        let r = fail_n(&s, 2, T0).counted(&s, T0 + 7);
        assert_eq!(FailureRecord::decode(&r.encode()), Some(r));
        assert_eq!(FailureRecord::decode(&FailureRecord::default().encode()), Some(FailureRecord::default()));
        assert!(!FailureRecord::default().encode().is_empty());
        for bad in ["", "1/2", "a/b/c", "1/2/3/4", "1/2/x", "1/2/,"] {
            assert_eq!(FailureRecord::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_window_keeps_at_most_the_cap() {
        let s = RateLimitSettings { lockout_threshold: 1000, ..Default::default() };
        let r = (0..150).fold(FailureRecord::default(), |r, i| r.counted(&s, T0 + i));
        assert_eq!(r.recent.len(), MAX_FAILURES_PER_HOUR_CAP as usize);
        assert_eq!(r.recent[0], T0 + 50);
    }

    #[test]
    fn record_keys_escape_what_stores_cannot_hold() {
        assert_eq!(account_record_key("alice"), "acct:alice");
        assert_eq!(account_record_key("a\0b%c\u{85}é"), "acct:a%00b%25c%C2%85é");
        assert_ne!(account_record_key("a%00"), account_record_key("a\0"));
    }

    #[test]
    fn ipv6_counts_per_64_and_names_fold() {
        assert_eq!(client_key("2001:db8::1".parse().unwrap()), client_key("2001:db8::ffff".parse().unwrap()));
        assert_eq!(account_key("  ALICE "), "alice");
        assert_eq!(account_key("ＡＬＩＣＥ"), "alice");
        assert_eq!(account_key("E\u{301}LODIE"), account_key("élodie"));
    }
}
