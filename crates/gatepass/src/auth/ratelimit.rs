//! Throttling of credential endpoints: token buckets per client IP and per account, and the
//! per-account failed-login back-off. No HTTP types here: callers pass the client address
//! and the canonical username.
//!
//! The state lives in this process ([`LocalLimiter`]). [`Limiter`] is the seam a shared
//! backend plugs into when several instances serve one user base
//! ([`crate::auth::ratelimit_redis::RedisLimiter`] shares the token buckets).
//!
//! Design (see docs/abuse.md):
//! - Token buckets (GCRA, `governor`) per (action, client network) and per (action,
//!   account). Settings are read on every check and the buckets are rebuilt when they
//!   change, so the admin API can retune them at run time.
//! - Failed logins per account: from the `lockout_threshold`-th consecutive failure the
//!   account waits `2^(n - threshold)` seconds (capped) before the next attempt, and never
//!   gets more than `max_failures_per_hour` failures in a sliding hour. While waiting even
//!   the right password is refused, so the limit is no oracle.
//! - So that an attacker cannot keep a known user out, a client network that has logged
//!   into the account before is judged by its own failure record for that account, not
//!   by the account-wide one, and is exempt from the per-account bucket.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// Takes one token for `action` from the client's and (if known) the account's bucket.
    /// `trusted` clients (logged into this account before) skip the account bucket.
    async fn acquire(
        &self,
        settings: &RateLimitSettings,
        action: Action,
        ip: Option<IpAddr>,
        account: Option<&str>,
    ) -> Result<(), RetryAfter>;
    /// Refuses a login attempt while the account (as seen from `ip`) is backing off.
    fn login_allowed(&self, settings: &RateLimitSettings, account: &str, ip: Option<IpAddr>) -> Result<(), RetryAfter>;
    /// Records a failed login.
    fn login_failed(&self, settings: &RateLimitSettings, account: &str, ip: Option<IpAddr>);
    /// Records a successful login: clears the failure records and remembers the client.
    fn login_succeeded(&self, account: &str, ip: Option<IpAddr>);
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

/// The canonical account key of a submitted username: trimmed, ASCII lower-case and
/// bounded, so `Alice`, ` alice ` and `ALICE` share one bucket whether or not the name is
/// valid.
pub fn account_key(raw: &str) -> String {
    let t = raw.trim().to_ascii_lowercase();
    let mut end = t.len().min(128);
    while !t.is_char_boundary(end) {
        end -= 1;
    }
    t[..end].to_owned()
}

const HOUR: Duration = Duration::from_secs(3600);
/// Hard bound on tracked accounts / clients (memory stays bounded under a spray attack).
const MAX_TRACKED: usize = 200_000;
/// Remembered clients per account.
const MAX_KNOWN_PER_ACCOUNT: usize = 8;

#[derive(Default)]
struct FailureRecord {
    consecutive: u32,
    last: Option<Instant>,
    /// Failure instants within the last hour (at most the hourly cap).
    window: VecDeque<Instant>,
}

impl FailureRecord {
    fn prune(&mut self, now: Instant) {
        while self.window.front().is_some_and(|t| now.duration_since(*t) >= HOUR) {
            self.window.pop_front();
        }
    }

    /// Remaining wait before the next attempt, if any (`backoff`: also the exponential
    /// back-off, not only the hourly cap).
    fn wait(&mut self, s: &RateLimitSettings, now: Instant, backoff: bool) -> Option<Duration> {
        self.prune(now);
        let cap = s.max_failures_per_hour.clamp(1, MAX_FAILURES_PER_HOUR_CAP) as usize;
        let mut wait = Duration::ZERO;
        if self.window.len() >= cap
            && let Some(oldest) = self.window.front()
        {
            wait = HOUR.saturating_sub(now.duration_since(*oldest));
        }
        let threshold = s.lockout_threshold.max(1);
        if backoff && self.consecutive >= threshold {
            let exp = (self.consecutive - threshold).min(30);
            let backoff = Duration::from_secs((1u64 << exp).min(s.lockout_max_secs.max(1)));
            if let Some(last) = self.last {
                wait = wait.max(backoff.saturating_sub(now.duration_since(last)));
            }
        }
        (!wait.is_zero()).then_some(wait)
    }

    fn fail(&mut self, s: &RateLimitSettings, now: Instant) {
        self.prune(now);
        self.consecutive = self.consecutive.saturating_add(1);
        self.last = Some(now);
        if self.window.len() < MAX_FAILURES_PER_HOUR_CAP.max(s.max_failures_per_hour) as usize {
            self.window.push_back(now);
        }
    }

    fn stale(&self, now: Instant, s: &RateLimitSettings) -> bool {
        self.last.is_none_or(|l| now.duration_since(l) >= HOUR.max(Duration::from_secs(s.lockout_max_secs)))
    }
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

#[derive(Default)]
struct Accounts {
    /// Account-wide failures.
    failures: HashMap<String, FailureRecord>,
    /// Failures per (account, client) for clients that logged in before.
    per_client: HashMap<(String, IpAddr), FailureRecord>,
    /// Clients that logged into each account (most recent last).
    known: HashMap<String, VecDeque<IpAddr>>,
}

impl Accounts {
    fn is_known(&self, account: &str, ip: Option<IpAddr>) -> bool {
        ip.is_some_and(|ip| self.known.get(account).is_some_and(|k| k.contains(&client_key(ip))))
    }
}

/// Throttling state kept in this process.
pub struct LocalLimiter {
    buckets: RwLock<Buckets>,
    accounts: Mutex<Accounts>,
}

impl Default for LocalLimiter {
    fn default() -> Self {
        Self { buckets: RwLock::new(Buckets::new(&RateLimitSettings::default())), accounts: Mutex::default() }
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

    fn accounts(&self) -> std::sync::MutexGuard<'_, Accounts> {
        self.accounts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `ip` logged into `account` before (through this instance), which exempts
    /// it from the per-account bucket.
    pub fn is_trusted(&self, account: &str, ip: Option<IpAddr>) -> bool {
        self.accounts().is_known(account, ip)
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
        let trusted = account.is_some_and(|a| self.is_trusted(a, ip));
        self.with_buckets(settings, |b| {
            if let Some(ip) = ip {
                b.ip.check_key(&(action, client_key(ip))).map_err(wait_of)?;
            }
            if let Some(account) = account.filter(|_| !trusted) {
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

    fn login_allowed(&self, settings: &RateLimitSettings, account: &str, ip: Option<IpAddr>) -> Result<(), RetryAfter> {
        if !settings.enabled {
            return Ok(());
        }
        let now = Instant::now();
        let mut a = self.accounts();
        // A known client is held to its own back-off; the account-wide hourly cap binds
        // everyone (with the default back-off, strangers alone cannot reach it).
        let known = a.is_known(account, ip);
        let mut wait = a.failures.get_mut(account).and_then(|r| r.wait(settings, now, !known));
        if known {
            let key = (account.to_owned(), ip.map(client_key).unwrap_or(IpAddr::from([0, 0, 0, 0])));
            let own = a.per_client.get_mut(&key).and_then(|r| r.wait(settings, now, true));
            wait = wait.max(own);
        }
        match wait {
            Some(w) => Err(RetryAfter(w)),
            None => Ok(()),
        }
    }

    fn login_failed(&self, settings: &RateLimitSettings, account: &str, ip: Option<IpAddr>) {
        if !settings.enabled {
            return;
        }
        let now = Instant::now();
        let mut a = self.accounts();
        if a.is_known(account, ip) {
            let key = (account.to_owned(), ip.map(client_key).unwrap_or(IpAddr::from([0, 0, 0, 0])));
            if a.per_client.len() < MAX_TRACKED || a.per_client.contains_key(&key) {
                a.per_client.entry(key).or_default().fail(settings, now);
            }
        }
        // Failures from known clients count account-wide too, so the hourly cap holds
        // for the account as a whole.
        if a.failures.len() < MAX_TRACKED || a.failures.contains_key(account) {
            a.failures.entry(account.to_owned()).or_default().fail(settings, now);
        }
    }

    fn login_succeeded(&self, account: &str, ip: Option<IpAddr>) {
        let mut a = self.accounts();
        a.failures.remove(account);
        let Some(ip) = ip.map(client_key) else { return };
        a.per_client.remove(&(account.to_owned(), ip));
        if a.known.len() >= MAX_TRACKED && !a.known.contains_key(account) {
            return;
        }
        let known = a.known.entry(account.to_owned()).or_default();
        known.retain(|k| *k != ip);
        known.push_back(ip);
        while known.len() > MAX_KNOWN_PER_ACCOUNT {
            known.pop_front();
        }
    }

    fn sweep(&self) {
        {
            let b = self.buckets.read().unwrap_or_else(|p| p.into_inner());
            b.ip.retain_recent();
            b.account.retain_recent();
            b.ip.shrink_to_fit();
            b.account.shrink_to_fit();
        }
        let settings = self.buckets.read().unwrap_or_else(|p| p.into_inner()).settings.clone();
        let now = Instant::now();
        let mut a = self.accounts();
        a.failures.retain(|_, r| !r.stale(now, &settings));
        a.per_client.retain(|_, r| !r.stale(now, &settings));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    #[test]
    fn backoff_starts_at_threshold_and_blocks_right_password_too() {
        let l = LocalLimiter::default();
        let s = RateLimitSettings::default();
        for _ in 0..4 {
            assert!(l.login_allowed(&s, "alice", ip("10.0.0.1")).is_ok());
            l.login_failed(&s, "alice", ip("10.0.0.1"));
        }
        assert!(l.login_allowed(&s, "alice", ip("10.0.0.1")).is_ok());
        l.login_failed(&s, "alice", ip("10.0.0.1"));
        let wait = l.login_allowed(&s, "alice", ip("10.0.0.2")).unwrap_err();
        assert_eq!(wait.secs(), 1);
    }

    #[test]
    fn known_client_is_not_locked_out_by_strangers() {
        let l = LocalLimiter::default();
        let s = RateLimitSettings::default();
        l.login_succeeded("alice", ip("10.0.0.1"));
        for _ in 0..20 {
            l.login_failed(&s, "alice", ip("192.0.2.9"));
        }
        assert!(l.login_allowed(&s, "alice", ip("192.0.2.9")).is_err());
        assert!(l.login_allowed(&s, "alice", ip("10.0.0.1")).is_ok());
    }

    #[test]
    fn hourly_cap_holds() {
        let l = LocalLimiter::default();
        let s = RateLimitSettings { lockout_threshold: 1000, max_failures_per_hour: 100, ..Default::default() };
        for _ in 0..100 {
            l.login_failed(&s, "bob", None);
        }
        let wait = l.login_allowed(&s, "bob", None).unwrap_err();
        assert!(wait.0 > Duration::from_secs(3500));
    }

    #[test]
    fn ipv6_counts_per_64_and_names_fold() {
        assert_eq!(client_key("2001:db8::1".parse().unwrap()), client_key("2001:db8::ffff".parse().unwrap()));
        assert_eq!(account_key("  ALICE "), "alice");
    }
}
