//! Runtime settings persisted in storage (key → JSON value) and how they overlay the
//! configured defaults.

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
            _ => {}
        }
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
            other => {
                let name: String = other.chars().take(64).collect();
                return Err(ValidationError::new("settings", format!("unknown setting {name:?}")));
            }
        }
        persist.push((key.clone(), value.to_string()));
    }
    Ok((next, persist))
}

fn int_in(field: &'static str, value: &serde_json::Value, (lo, hi): (i64, i64)) -> Result<i64, ValidationError> {
    // `as_i64` is None for floats and strings: `"900"` and `900.5` are refused, not coerced.
    value
        .as_i64()
        .filter(|n| (lo..=hi).contains(n))
        .ok_or_else(|| ValidationError::new(field, format!("must be a whole number of seconds from {lo} to {hi}")))
}
