//! Token buckets and failed-login records shared by several instances through Redis, with
//! the in-process [`LocalLimiter`] as fallback for the buckets.
//!
//! Buckets (`acquire`): one Lua script applies GCRA to the client's and the account's
//! bucket atomically, using the Redis clock, so every instance pointed at the same Redis
//! draws from the same buckets. Failed-login records ([`SharedRecords`]): opaque values
//! under `<prefix>fail:<key>`, replaced by a compare-and-swap script and expiring with the
//! record (see docs/abuse.md); the back-off policy itself stays in
//! [`crate::auth::ratelimit`].
//!
//! When Redis fails or is slower than [`CALL_TIMEOUT`], a bucket check is judged by the
//! local limiter (fail closed: never unthrottled) and a record operation reports
//! [`StoreDown`], so the caller keeps records in the database meanwhile; the outage is
//! logged once and shown in `/api/info` and `/metrics`; while down, Redis is retried at
//! most once per [`RETRY_EVERY`] so a dead server does not slow every request.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::ratelimit::{
    Action, Backend, Limiter, LocalLimiter, RateLimitSettings, RetryAfter, SharedRecords, StoreDown, client_key,
};

/// Longest wait for Redis on a request path before the local limiter decides.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(50);
/// Longest wait for one Redis call on a failure record. Longer than [`CALL_TIMEOUT`]: a
/// record that falls back to the database mid-attack splits the account's count between
/// two stores, which is worse than a slower login (whose password hash takes longer anyway).
pub const RECORD_TIMEOUT: Duration = Duration::from_millis(250);
/// While Redis is down, how often a request tries it again.
pub const RETRY_EVERY: Duration = Duration::from_secs(1);
/// Default prefix of every key this limiter writes.
pub const DEFAULT_PREFIX: &str = "gatepass:rl:";

/// GCRA over up to two buckets. `KEYS[i]` has emission interval `ARGV[2i-1]` ms and burst
/// `ARGV[2i]`. Returns 0 and takes a token from every bucket, or the wait in ms and takes
/// nothing. Keys expire once their bucket is full again, so memory stays bounded.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait = 0
local tats = {}
for i, key in ipairs(KEYS) do
  local period = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then tat = now end
  local new_tat = tat + period
  local allow_at = new_tat - period * burst
  if allow_at > now and allow_at - now > wait then wait = allow_at - now end
  tats[i] = new_tat
end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, tats[i], 'PX', math.max(1, tats[i] - now))
end
return 0
";

/// Compare-and-swap of one value: `KEYS[1]` becomes `ARGV[2]` (expiring in `ARGV[3]` ms)
/// if it is `ARGV[1]` now (the empty string standing for "absent"). Returns 1 when it
/// swapped, 0 otherwise. Records never encode to the empty string.
const SWAP: &str = r"
local current = redis.call('GET', KEYS[1]) or ''
if current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
";

/// Buckets and failure records in Redis; the buckets fall back to a [`LocalLimiter`].
pub struct RedisLimiter {
    conn: ConnectionManager,
    script: redis::Script,
    swap: redis::Script,
    prefix: String,
    local: LocalLimiter,
    up: AtomicBool,
    /// While down: when the next request may try Redis again.
    retry_at: Mutex<Instant>,
}

impl RedisLimiter {
    /// A limiter on the Redis at `url` (`redis://…`; TLS is not compiled in). Connects
    /// lazily and reconnects by itself; only an unusable URL is an error.
    ///
    /// # Errors
    /// The URL is not a Redis URL.
    pub fn new(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).map_err(|e| anyhow::anyhow!("bad --redis-url: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            // Bucket checks bound themselves to CALL_TIMEOUT; record calls may take longer.
            .set_response_timeout(Some(RECORD_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(RETRY_EVERY);
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| anyhow::anyhow!("redis connection manager: {e}"))?;
        Ok(Self {
            conn,
            script: redis::Script::new(GCRA),
            swap: redis::Script::new(SWAP),
            prefix: prefix.to_owned(),
            local: LocalLimiter::default(),
            up: AtomicBool::new(true),
            retry_at: Mutex::new(Instant::now()),
        })
    }

    /// Checks Redis once (start-up), so the first outage is reported before any request.
    pub async fn probe(&self) -> bool {
        let mut conn = self.conn.clone();
        let ok = matches!(
            tokio::time::timeout(CALL_TIMEOUT * 10, redis::cmd("PING").query_async::<String>(&mut conn)).await,
            Ok(Ok(_))
        );
        if ok {
            self.mark_up()
        } else {
            self.mark_down("no answer to PING")
        }
        ok
    }

    fn mark_down(&self, why: &str) {
        *self.retry_at.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now() + RETRY_EVERY;
        if self.up.swap(false, Ordering::AcqRel) {
            tracing::warn!(reason = why, "redis unreachable: rate limits fall back to per-instance buckets");
        }
    }

    fn mark_up(&self) {
        if !self.up.swap(true, Ordering::AcqRel) {
            tracing::info!("redis reachable again: rate limits are shared across instances");
        }
    }

    /// Whether this call should try Redis (always when up; once per interval when down).
    fn should_try(&self) -> bool {
        if self.up.load(Ordering::Acquire) {
            return true;
        }
        let mut at = self.retry_at.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if now >= *at {
            // Only this request probes; the others go local until it answers.
            *at = now + RETRY_EVERY;
            true
        } else {
            false
        }
    }

    /// `<prefix><action>:<ip|acct>:<id>`; the id is already canonical (client network, or
    /// the lower-cased, bounded account key).
    fn key(&self, action: Action, kind: &str, id: &str) -> String {
        let action = match action {
            Action::Login => "login",
            Action::Register => "register",
            Action::Refresh => "refresh",
            Action::PasswordChange => "password",
            Action::Mail => "mail",
            Action::DeviceCode => "device_code",
        };
        format!("{}{action}:{kind}:{id}", self.prefix)
    }

    async fn acquire_shared(
        &self,
        settings: &RateLimitSettings,
        action: Action,
        ip: Option<IpAddr>,
        account: Option<&str>,
    ) -> Result<Result<(), RetryAfter>, String> {
        let period = |per_minute: u32| 60_000u64 / u64::from(per_minute.max(1));
        let mut inv = self.script.prepare_invoke();
        let mut any = false;
        if let Some(ip) = ip {
            inv.key(self.key(action, "ip", &client_key(ip).to_string()))
                .arg(period(settings.ip_per_minute).max(1))
                .arg(settings.ip_burst.max(1));
            any = true;
        }
        if let Some(account) = account {
            inv.key(self.key(action, "acct", account))
                .arg(period(settings.user_per_minute).max(1))
                .arg(settings.user_burst.max(1));
            any = true;
        }
        if !any {
            return Ok(Ok(()));
        }
        let mut conn = self.conn.clone();
        match tokio::time::timeout(CALL_TIMEOUT, inv.invoke_async::<u64>(&mut conn)).await {
            Ok(Ok(0)) => Ok(Ok(())),
            Ok(Ok(ms)) => Ok(Err(RetryAfter(Duration::from_millis(ms)))),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".to_owned()),
        }
    }
}

#[async_trait::async_trait]
impl Limiter for RedisLimiter {
    async fn acquire(
        &self,
        settings: &RateLimitSettings,
        action: Action,
        ip: Option<IpAddr>,
        account: Option<&str>,
    ) -> Result<(), RetryAfter> {
        if !settings.enabled {
            return Ok(());
        }
        if self.should_try() {
            match self.acquire_shared(settings, action, ip, account).await {
                Ok(outcome) => {
                    self.mark_up();
                    return outcome;
                }
                Err(why) => self.mark_down(&why),
            }
        }
        self.local.acquire_local(settings, action, ip, account)
    }

    fn sweep(&self) {
        self.local.sweep()
    }

    fn backend(&self) -> Backend {
        if self.up.load(Ordering::Acquire) { Backend::Redis } else { Backend::Local }
    }

    fn shared_store_up(&self) -> Option<bool> {
        Some(self.up.load(Ordering::Acquire))
    }

    fn records(&self) -> Option<&dyn SharedRecords> {
        self.should_try().then_some(self as &dyn SharedRecords)
    }
}

impl RedisLimiter {
    /// `<prefix>fail:<key>`.
    fn record_key(&self, key: &str) -> String {
        format!("{}fail:{key}", self.prefix)
    }

    /// Runs one record command within [`RECORD_TIMEOUT`], keeping the up/down state.
    async fn record_call<T: redis::FromRedisValue>(
        &self,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreDown> {
        let why = match tokio::time::timeout(RECORD_TIMEOUT, call).await {
            Ok(Ok(v)) => {
                self.mark_up();
                return Ok(v);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".to_owned(),
        };
        self.mark_down(&why);
        Err(StoreDown(why))
    }
}

#[async_trait::async_trait]
impl SharedRecords for RedisLimiter {
    async fn load_record(&self, key: &str) -> Result<Option<String>, StoreDown> {
        let mut conn = self.conn.clone();
        let key = self.record_key(key);
        self.record_call(async move { redis::cmd("GET").arg(key).query_async::<Option<String>>(&mut conn).await }).await
    }

    async fn swap_record(
        &self,
        key: &str,
        expected: Option<&str>,
        new: &str,
        ttl: Duration,
    ) -> Result<bool, StoreDown> {
        let mut conn = self.conn.clone();
        let mut inv = self.swap.prepare_invoke();
        inv.key(self.record_key(key)).arg(expected.unwrap_or("")).arg(new).arg(ttl.as_millis().max(1) as u64);
        self.record_call(async move { inv.invoke_async::<i64>(&mut conn).await }).await.map(|swapped| swapped == 1)
    }
}
