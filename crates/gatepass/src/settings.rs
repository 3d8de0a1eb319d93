//! Runtime settings persisted in storage (key → JSON value) and how they overlay the
//! configured defaults.

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
