//! Runtime settings persisted in storage (key → JSON value) and how they overlay the
//! configured defaults. Throttling values live under `rate_limit.<field>` (see
//! [`RateLimitSettings`]).

use crate::auth::ratelimit::{MAX_FAILURES_PER_HOUR_CAP, RateLimitSettings};
use crate::domain::ValidationError;
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

/// Held while the in-memory settings are being changed (an API patch, or a reload of
/// settings another instance stored), so that changes apply in order.
pub static UPDATES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Bounds of `access_token_ttl`, seconds (the verifier refuses lifetimes above a day).
pub const ACCESS_TTL_RANGE: (i64, i64) = (1, 86_400);
/// Bounds of `refresh_token_ttl`, seconds (up to a year).
pub const REFRESH_TTL_RANGE: (i64, i64) = (60, 31_536_000);

/// The settings as `GET /api/info` shows them and `PATCH /api/info` takes them.
pub fn to_json(s: &RuntimeSettings) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("access_token_ttl".into(), s.access_token_ttl.into());
    m.insert("refresh_token_ttl".into(), s.refresh_token_ttl.into());
    m.insert("registration_open".into(), s.registration_open.into());
    m.insert("password_min_length".into(), (s.password_min_length as u64).into());
    let r = &s.rate_limit;
    m.insert(
        "rate_limit".into(),
        serde_json::json!({
            "enabled": r.enabled,
            "ip_per_minute": r.ip_per_minute,
            "ip_burst": r.ip_burst,
            "user_per_minute": r.user_per_minute,
            "user_burst": r.user_burst,
            "lockout_threshold": r.lockout_threshold,
            "lockout_max_secs": r.lockout_max_secs,
            "max_failures_per_hour": r.max_failures_per_hour,
        }),
    );
    m
}

/// Validates a patch against `current`: every key must be known and every value of the
/// right type and range. Returns the new settings and the `(key, JSON)` pairs to persist;
/// on any error nothing is returned, so nothing changes.
///
/// Adding a setting is one arm here, one line in [`to_json`] and one in [`apply_stored`].
pub fn apply_patch(
    current: &RuntimeSettings,
    patch: &serde_json::Map<String, serde_json::Value>,
) -> Result<(RuntimeSettings, Vec<(String, String)>), ValidationError> {
    if patch.is_empty() {
        return Err(ValidationError::new("settings", "no setting given"));
    }
    let mut next = current.clone();
    let mut persist = Vec::with_capacity(patch.len());
    for (key, value) in patch {
        match key.as_str() {
            "access_token_ttl" => next.access_token_ttl = int_in("access_token_ttl", value, ACCESS_TTL_RANGE)?,
            "refresh_token_ttl" => next.refresh_token_ttl = int_in("refresh_token_ttl", value, REFRESH_TTL_RANGE)?,
            "registration_open" => {
                next.registration_open =
                    value.as_bool().ok_or_else(|| ValidationError::new("registration_open", "must be true or false"))?
            }
            "password_min_length" => {
                next.password_min_length = int_in("password_min_length", value, (1, 1024))? as usize;
            }
            "rate_limit" => {
                let fields = value
                    .as_object()
                    .ok_or_else(|| ValidationError::new("rate_limit", "must be an object of rate-limit settings"))?;
                for (field, v) in fields {
                    patch_rate_limit(&mut next.rate_limit, field, v)?;
                    persist.push((format!("rate_limit.{field}"), v.to_string()));
                }
                continue;
            }
            other => {
                let name: String = other.chars().take(64).collect();
                return Err(ValidationError::new("settings", format!("unknown setting {name:?}")));
            }
        }
        persist.push((key.clone(), value.to_string()));
    }
    Ok((next, persist))
}

/// Strict counterpart of [`apply_rate_limit`] for patches: wrong types and out-of-range
/// values are errors rather than ignored.
fn patch_rate_limit(r: &mut RateLimitSettings, field: &str, v: &serde_json::Value) -> Result<(), ValidationError> {
    let count = |max: u64| {
        v.as_u64().filter(|n| (1..=max).contains(n)).ok_or_else(|| {
            ValidationError::new("rate_limit", format!("{field} must be a whole number from 1 to {max}"))
        })
    };
    match field {
        "enabled" => {
            r.enabled =
                v.as_bool().ok_or_else(|| ValidationError::new("rate_limit", "enabled must be true or false"))?
        }
        "ip_per_minute" => r.ip_per_minute = count(1_000_000)? as u32,
        "ip_burst" => r.ip_burst = count(1_000_000)? as u32,
        "user_per_minute" => r.user_per_minute = count(1_000_000)? as u32,
        "user_burst" => r.user_burst = count(1_000_000)? as u32,
        "lockout_threshold" => r.lockout_threshold = count(1_000)? as u32,
        "lockout_max_secs" => r.lockout_max_secs = count(86_400)?,
        "max_failures_per_hour" => r.max_failures_per_hour = count(u64::from(MAX_FAILURES_PER_HOUR_CAP))? as u32,
        other => {
            let name: String = other.chars().take(64).collect();
            return Err(ValidationError::new("rate_limit", format!("unknown rate-limit setting {name:?}")));
        }
    }
    Ok(())
}

fn int_in(field: &'static str, value: &serde_json::Value, (lo, hi): (i64, i64)) -> Result<i64, ValidationError> {
    // `as_i64` is None for floats and strings: `"900"` and `900.5` are refused, not coerced.
    value
        .as_i64()
        .filter(|n| (lo..=hi).contains(n))
        .ok_or_else(|| ValidationError::new(field, format!("must be a whole number from {lo} to {hi}")))
}
