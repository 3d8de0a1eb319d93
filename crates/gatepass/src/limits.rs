//! Abuse-resistance configuration: throttling defaults, trusted proxies, allowed CORS
//! origins and connection limits, as flags and environment variables; and the one rule
//! for finding the client address behind trusted proxies.

use clap::Args;
use std::net::IpAddr;
use std::time::Duration;

use crate::config::duration_in;

use crate::auth::ratelimit::{MAX_FAILURES_PER_HOUR_CAP, RateLimitSettings};

/// Flags of `gatepass serve` that bound what one client can make the server do.
#[derive(Debug, Clone, Args)]
pub struct AbuseArgs {
    /// Throttle login, register, refresh, password change, the requests that send mail and
    /// device-code entry (`false` only for benchmarks).
    #[arg(long, env = "GATEPASS_RATE_LIMIT", default_value_t = true, action = clap::ArgAction::Set,
          value_parser = crate::config::parse_bool)]
    pub rate_limit: bool,
    /// Sustained attempts per minute per client IP (IPv6: per /64) and endpoint.
    #[arg(long, env = "GATEPASS_RATE_LIMIT_IP_PER_MINUTE", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_ip_per_minute: u32,
    /// Burst per client IP and endpoint.
    #[arg(long, env = "GATEPASS_RATE_LIMIT_IP_BURST", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_ip_burst: u32,
    /// Sustained attempts per minute per username and endpoint.
    #[arg(long, env = "GATEPASS_RATE_LIMIT_USER_PER_MINUTE", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_user_per_minute: u32,
    /// Burst per username and endpoint.
    #[arg(long, env = "GATEPASS_RATE_LIMIT_USER_BURST", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_user_burst: u32,
    /// Consecutive failed logins after which an account backs off exponentially.
    #[arg(long, env = "GATEPASS_LOCKOUT_THRESHOLD", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub lockout_threshold: u32,
    /// Longest single back-off of an account.
    #[arg(long, env = "GATEPASS_LOCKOUT_MAX", default_value = "15m", value_parser = duration_in("1s", "24h"))]
    pub lockout_max: Duration,
    /// Failed logins allowed per account per hour (1–100).
    #[arg(long, env = "GATEPASS_MAX_FAILED_LOGINS_PER_HOUR", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_FAILURES_PER_HOUR_CAP)))]
    pub max_failed_logins_per_hour: u32,
    /// Redis shared by all instances for the rate-limit buckets and the failed-login
    /// records (`redis://host:6379`); unset: each instance keeps its own buckets and the
    /// records live in the database.
    #[arg(long, env = "GATEPASS_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Prefix of the rate-limit keys in Redis (separates deployments sharing one Redis).
    #[arg(long, env = "GATEPASS_REDIS_PREFIX", default_value = crate::auth::ratelimit_redis::DEFAULT_PREFIX)]
    pub redis_prefix: String,
    /// Proxies whose `X-Forwarded-For` is believed: comma-separated IPs or CIDRs.
    #[arg(long, env = "GATEPASS_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_net)]
    pub trusted_proxies: Vec<IpNet>,
    /// Browser origins allowed to call the API cross-origin (comma-separated, exact).
    #[arg(long, env = "GATEPASS_CORS_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_origins: Vec<String>,
    /// Longest time a request may take before 408.
    #[arg(long, env = "GATEPASS_REQUEST_TIMEOUT", default_value = "30s", value_parser = duration_in("100ms", "10m"))]
    pub request_timeout: Duration,
    /// Longest time a client may take to send the request headers.
    #[arg(long, env = "GATEPASS_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = duration_in("100ms", "5m"))]
    pub header_read_timeout: Duration,
    /// Longest time a response may wait for the client to read it (a client that stops
    /// reading, such as a stalled revocation-feed subscriber, is disconnected after this).
    #[arg(long, env = "GATEPASS_SEND_TIMEOUT", default_value = "30s", value_parser = duration_in("100ms", "10m"))]
    pub send_timeout: Duration,
    /// Largest request head (request line + headers), bytes; larger gets 431.
    #[arg(long, env = "GATEPASS_MAX_HEADER_BYTES", default_value_t = 16 * 1024,
          value_parser = clap::value_parser!(u32).range(8192..=1_048_576))]
    pub max_header_bytes: u32,
    /// Most connections served at once; further clients wait in the accept queue.
    #[arg(long, env = "GATEPASS_MAX_CONNECTIONS", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
}

impl AbuseArgs {
    /// The throttling settings these flags configure.
    pub fn rate_limit_settings(&self) -> RateLimitSettings {
        RateLimitSettings {
            enabled: self.rate_limit,
            ip_per_minute: self.rate_limit_ip_per_minute.max(1),
            ip_burst: self.rate_limit_ip_burst.max(1),
            user_per_minute: self.rate_limit_user_per_minute.max(1),
            user_burst: self.rate_limit_user_burst.max(1),
            lockout_threshold: self.lockout_threshold.max(1),
            lockout_max_secs: self.lockout_max.as_secs().max(1),
            max_failures_per_hour: self.max_failed_logins_per_hour,
        }
    }
}

fn parse_origin(s: &str) -> Result<String, String> {
    let s = s.trim().trim_end_matches('/');
    let ok_scheme = s.starts_with("https://") || s.starts_with("http://");
    let rest = s.split_once("://").map(|(_, r)| r).unwrap_or("");
    if !ok_scheme || rest.is_empty() || rest.contains(['/', '*', ' ', '?', '#']) {
        return Err(format!("`{s}` is not an origin like https://app.example.com (no path, no wildcard)"));
    }
    Ok(s.to_ascii_lowercase())
}

/// An IP network (`10.0.0.0/8`, `::1`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Whether `ip` lies in this network (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Parses `a.b.c.d`, `a.b.c.d/n`, `x::y` or `x::y/n`.
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| format!("`{s}` is not an IP address or CIDR"))?;
    let addr = canonical(addr);
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| format!("bad prefix in `{s}`"))?,
        None => max,
    };
    Ok(IpNet { addr, prefix })
}

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<IpNet>);

impl TrustedProxies {
    /// Whether `ip` is one of the trusted proxies.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(ip))
    }

    /// The client address: the peer, unless the peer is a trusted proxy; then the
    /// right-most `X-Forwarded-For` entry that is not itself a trusted proxy. Entries left
    /// of that are written by the client and never believed. `X-Real-IP` and `Forwarded`
    /// are ignored.
    pub fn client_ip<'a>(&self, peer: IpAddr, forwarded_for: impl Iterator<Item = &'a str>) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let entries: Vec<&str> = forwarded_for.flat_map(|h| h.split(',')).map(str::trim).collect();
        let mut client = peer;
        for entry in entries.iter().rev() {
            let Ok(ip) = entry.parse::<IpAddr>() else {
                // Garbage: the hop that appended it is the last address we can vouch for.
                return client;
            };
            client = canonical(ip);
            if !self.trusts(client) {
                return client;
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_only_from_trusted_peers() {
        let t = TrustedProxies(vec![parse_net("10.0.0.0/8").unwrap()]);
        assert_eq!(t.client_ip(ip("203.0.113.5"), ["1.2.3.4"].into_iter()), ip("203.0.113.5"));
        assert_eq!(t.client_ip(ip("10.0.0.1"), ["1.2.3.4, 198.51.100.7"].into_iter()), ip("198.51.100.7"));
        assert_eq!(t.client_ip(ip("10.0.0.1"), ["1.2.3.4, 198.51.100.7, 10.1.1.1"].into_iter()), ip("198.51.100.7"));
        assert_eq!(t.client_ip(ip("10.0.0.1"), ["junk, 10.2.2.2"].into_iter()), ip("10.2.2.2"));
        assert_eq!(t.client_ip(ip("10.0.0.1"), std::iter::empty()), ip("10.0.0.1"));
    }

    #[test]
    fn origins_are_exact() {
        assert_eq!(parse_origin("https://App.example.com/").unwrap(), "https://app.example.com");
        for bad in ["null", "*", "https://*.example.com", "https://a.com/path", "ftp://x"] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
        assert!(parse_net("10.0.0.0/33").is_err());
        assert!(parse_net("::ffff:10.0.0.1").unwrap().contains(ip("10.0.0.1")));
    }
}
