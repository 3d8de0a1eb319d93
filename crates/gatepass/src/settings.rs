//! Runtime settings persisted in storage (key → JSON value) and how they overlay the
//! configured defaults. Throttling values live under `rate_limit.<field>` (see
//! [`RateLimitSettings`]).

use crate::auth::ratelimit::{MAX_FAILURES_PER_HOUR_CAP, RateLimitSettings};
use crate::service::RuntimeSettings;

/// Overlays stored values on `settings`; unknown keys and unreadable values are ignored
/// (the configured default stays in force).
pub fn apply_stored(settings: &mut RuntimeSettings, stored: &[(String, String)]) {
    for (key, value) in stored {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(value) else { continue };
        match key.as_str() {
            "access_token_ttl" => {
                if let Some(n) = v.as_i64().filter(|n| (1..=86_400).contains(n)) {
                    settings.access_token_ttl = n;
                }
            }
            "refresh_token_ttl" => {
                if let Some(n) = v.as_i64().filter(|n| *n >= 1) {
                    settings.refresh_token_ttl = n;
                }
            }
            "registration_open" => {
                if let Some(b) = v.as_bool() {
                    settings.registration_open = b;
                }
            }
            "password_min_length" => {
                if let Some(n) = v.as_u64().filter(|n| (1..=1024).contains(n)) {
                    settings.password_min_length = n as usize;
                }
            }
            key if key.starts_with("rate_limit.") => apply_rate_limit(&mut settings.rate_limit, &key[11..], &v),
            _ => {}
        }
    }
}

/// Keys under `rate_limit.`; values outside the allowed range are ignored.
fn apply_rate_limit(r: &mut RateLimitSettings, key: &str, v: &serde_json::Value) {
    let n = v.as_u64().filter(|n| *n >= 1);
    let small = n.and_then(|n| u32::try_from(n).ok());
    match key {
        "enabled" => {
            if let Some(b) = v.as_bool() {
                r.enabled = b;
            }
        }
        "ip_per_minute" => r.ip_per_minute = small.unwrap_or(r.ip_per_minute),
        "ip_burst" => r.ip_burst = small.unwrap_or(r.ip_burst),
        "user_per_minute" => r.user_per_minute = small.unwrap_or(r.user_per_minute),
        "user_burst" => r.user_burst = small.unwrap_or(r.user_burst),
        "lockout_threshold" => r.lockout_threshold = small.unwrap_or(r.lockout_threshold),
        "lockout_max_secs" => r.lockout_max_secs = n.filter(|n| *n <= 86_400).unwrap_or(r.lockout_max_secs),
        "max_failures_per_hour" => {
            r.max_failures_per_hour =
                small.filter(|n| *n <= MAX_FAILURES_PER_HOUR_CAP).unwrap_or(r.max_failures_per_hour)
        }
        _ => {}
    }
}
