//! Runtime settings: the values an administrator can change while the server runs.
//!
//! [`RuntimeSettings`] is both what `GET /api/info` shows and what is in force;
//! [`SettingsPatch`] is what `PATCH /api/info` takes and also how each stored value is
//! read back, so one set of range checks guards both. Storage keeps one row per changed
//! key (`access_token_ttl`, `rate_limit.ip_burst`, …) as JSON. The settings in force are
//! always the configured ones with the stored ones laid over them, computed by the one
//! routine [`Core::reload_settings`]: at start-up, on every maintenance tick, on a change
//! notice from another instance, and after a `PATCH`.
//!
//! Adding a setting: a field in [`RuntimeSettings`] (and its default), the same field in
//! [`SettingsPatch`], and its range in [`SettingsPatch::apply`]; a flag for it, if any, in
//! `config.rs`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::{Actor, Core};
use crate::auth::ratelimit::{MAX_FAILURES_PER_HOUR_CAP, RateLimitSettings};
use crate::domain::ValidationError;
use crate::error::Result;

/// Bounds of `access_token_ttl`, seconds (the verifier refuses lifetimes above a day).
pub const ACCESS_TTL_RANGE: (i64, i64) = (1, 86_400);
/// Bounds of `refresh_token_ttl`, seconds (up to a year).
pub const REFRESH_TTL_RANGE: (i64, i64) = (60, 31_536_000);
/// Bounds of `password_min_length`, bytes.
pub const PASSWORD_MIN_LENGTH_RANGE: (i64, i64) = (1, 1024);

/// Settings that can change while the server runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RuntimeSettings {
    /// Access-token lifetime, seconds.
    pub access_token_ttl: i64,
    /// Refresh-token lifetime, seconds.
    pub refresh_token_ttl: i64,
    /// Whether self-registration is allowed.
    pub registration_open: bool,
    /// Shortest new password accepted, bytes.
    pub password_min_length: usize,
    /// Throttling of credential endpoints.
    pub rate_limit: RateLimitSettings,
    /// Refuse login (`403 email_not_verified`) until the account's address is verified.
    pub require_verified_email: bool,
    /// Roles whose members must sign in with a second factor: one without a factor is led
    /// through enrolment at sign-in and gets no token before (see `docs/mfa.md`).
    pub mfa_required_roles: Vec<String>,
}

impl RuntimeSettings {
    /// Whether an account with `roles` must sign in with a second factor.
    pub fn mfa_required_for(&self, roles: &crate::domain::Roles) -> bool {
        self.mfa_required_roles.iter().any(|r| roles.contains(r))
    }
}

impl Default for RuntimeSettings {
    /// The defaults of `gatepass serve`'s flags.
    fn default() -> Self {
        Self {
            access_token_ttl: 900,
            refresh_token_ttl: 30 * 86_400,
            registration_open: true,
            password_min_length: 8,
            rate_limit: RateLimitSettings::default(),
            require_verified_email: false,
            mfa_required_roles: Vec::new(),
        }
    }
}

/// A settings change: any of these keys, all-or-nothing. Unknown keys, wrong types and
/// out-of-range values are refused and change nothing.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct SettingsPatch {
    /// Access-token lifetime, seconds.
    #[schema(minimum = 1, maximum = 86400)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token_ttl: Option<i64>,
    /// Refresh-token lifetime, seconds.
    #[schema(minimum = 60, maximum = 31536000)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token_ttl: Option<i64>,
    /// Whether `/api/register` is open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration_open: Option<bool>,
    /// Shortest password accepted.
    #[schema(minimum = 1, maximum = 1024)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_min_length: Option<i64>,
    /// Rate-limit settings to change.
    #[schema(inline)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitPatch>,
    /// Refuse login until the address is verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_verified_email: Option<bool>,
    /// Roles whose members must use a second factor (replaces the list; `[]` for none).
    #[schema(max_items = 16)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfa_required_roles: Option<Vec<String>>,
}

/// Rate-limit settings to change.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct RateLimitPatch {
    /// Rate limiting on or off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Per-IP refill.
    #[schema(minimum = 1, maximum = 1000000)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_per_minute: Option<u64>,
    /// Per-IP burst.
    #[schema(minimum = 1, maximum = 1000000)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_burst: Option<u64>,
    /// Per-username refill.
    #[schema(minimum = 1, maximum = 1000000)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_per_minute: Option<u64>,
    /// Per-username burst.
    #[schema(minimum = 1, maximum = 1000000)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_burst: Option<u64>,
    /// Failed logins before back-off.
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lockout_threshold: Option<u64>,
    /// Longest single back-off, seconds.
    #[schema(minimum = 1, maximum = 86400)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lockout_max_secs: Option<u64>,
    /// Failed logins per account per hour.
    #[schema(minimum = 1, maximum = 100)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_failures_per_hour: Option<u64>,
}

fn in_range<T: Copy + Into<i128>>(
    field: &'static str,
    name: &str,
    v: T,
    (lo, hi): (i64, i64),
) -> Result<T, ValidationError> {
    if (i128::from(lo)..=i128::from(hi)).contains(&v.into()) {
        Ok(v)
    } else {
        Err(ValidationError::new(field, format!("{name} must be a whole number from {lo} to {hi}")))
    }
}

impl SettingsPatch {
    /// Reads a patch from a JSON object; `null` values are refused rather than read as
    /// "no change", so a client never believes it changed something it did not.
    ///
    /// # Errors
    /// An empty object, `null` values, unknown keys and wrong types.
    pub fn from_json(body: Map<String, Value>) -> Result<Self, ValidationError> {
        if body.is_empty() {
            return Err(ValidationError::new("settings", "no setting given"));
        }
        let nested = body.get("rate_limit").and_then(Value::as_object).into_iter().flat_map(|m| m.values());
        if body.values().chain(nested).any(Value::is_null) {
            return Err(ValidationError::new("settings", "a setting must not be null"));
        }
        serde_json::from_value(Value::Object(body)).map_err(|e| {
            let msg: String = e.to_string().chars().take(200).collect();
            ValidationError::new("settings", msg)
        })
    }

    /// Applies the patch to `s`, checking every range.
    ///
    /// # Errors
    /// The first value out of range; `s` may then be partly changed, so callers apply to a
    /// copy.
    pub fn apply(&self, s: &mut RuntimeSettings) -> Result<(), ValidationError> {
        if let Some(v) = self.access_token_ttl {
            s.access_token_ttl = in_range("access_token_ttl", "access_token_ttl", v, ACCESS_TTL_RANGE)?;
        }
        if let Some(v) = self.refresh_token_ttl {
            s.refresh_token_ttl = in_range("refresh_token_ttl", "refresh_token_ttl", v, REFRESH_TTL_RANGE)?;
        }
        if let Some(v) = self.registration_open {
            s.registration_open = v;
        }
        if let Some(v) = self.password_min_length {
            s.password_min_length =
                in_range("password_min_length", "password_min_length", v, PASSWORD_MIN_LENGTH_RANGE)? as usize;
        }
        if let Some(p) = &self.rate_limit {
            p.apply(&mut s.rate_limit)?;
        }
        if let Some(v) = self.require_verified_email {
            s.require_verified_email = v;
        }
        if let Some(v) = &self.mfa_required_roles {
            s.mfa_required_roles = role_list(v)?;
        }
        Ok(())
    }

    /// The `(key, JSON)` rows storage keeps for this patch.
    fn rows(&self) -> Vec<(String, String)> {
        let Ok(Value::Object(map)) = serde_json::to_value(self) else { return Vec::new() };
        let mut rows = Vec::new();
        for (key, value) in map {
            match value {
                Value::Object(fields) if key == "rate_limit" => {
                    rows.extend(fields.into_iter().map(|(f, v)| (format!("rate_limit.{f}"), v.to_string())))
                }
                v => rows.push((key, v.to_string())),
            }
        }
        rows
    }

    /// One stored row as a patch; `None` for an unknown key or an unreadable value.
    fn from_row(key: &str, value: &str) -> Option<Self> {
        let value: Value = serde_json::from_str(value).ok()?;
        let body = match key.strip_prefix("rate_limit.") {
            Some(field) => serde_json::json!({ "rate_limit": { field: value } }),
            None => serde_json::json!({ key: value }),
        };
        let Value::Object(body) = body else { return None };
        Self::from_json(body).ok()
    }
}

/// A checked list of role names: each a valid role, at most 16, sorted, no duplicates.
fn role_list(names: &[String]) -> Result<Vec<String>, ValidationError> {
    const FIELD: &str = "mfa_required_roles";
    if names.len() > 16 {
        return Err(ValidationError::new(FIELD, "at most 16 roles"));
    }
    let mut roles = Vec::with_capacity(names.len());
    for n in names {
        crate::domain::Role::parse(n)
            .map_err(|_| ValidationError::new(FIELD, "each role is 1 to 32 of a-z, 0-9, '_' or '-'"))?;
        roles.push(n.clone());
    }
    roles.sort();
    roles.dedup();
    Ok(roles)
}

impl RateLimitPatch {
    fn apply(&self, r: &mut RateLimitSettings) -> Result<(), ValidationError> {
        const COUNT: (i64, i64) = (1, 1_000_000);
        let small = |name, v, range| in_range("rate_limit", name, v, range).map(|v: u64| v as u32);
        if let Some(v) = self.enabled {
            r.enabled = v;
        }
        if let Some(v) = self.ip_per_minute {
            r.ip_per_minute = small("ip_per_minute", v, COUNT)?;
        }
        if let Some(v) = self.ip_burst {
            r.ip_burst = small("ip_burst", v, COUNT)?;
        }
        if let Some(v) = self.user_per_minute {
            r.user_per_minute = small("user_per_minute", v, COUNT)?;
        }
        if let Some(v) = self.user_burst {
            r.user_burst = small("user_burst", v, COUNT)?;
        }
        if let Some(v) = self.lockout_threshold {
            r.lockout_threshold = small("lockout_threshold", v, (1, 1_000))?;
        }
        if let Some(v) = self.lockout_max_secs {
            r.lockout_max_secs = in_range("rate_limit", "lockout_max_secs", v, (1, 86_400))?;
        }
        if let Some(v) = self.max_failures_per_hour {
            r.max_failures_per_hour = small("max_failures_per_hour", v, (1, i64::from(MAX_FAILURES_PER_HOUR_CAP)))?;
        }
        Ok(())
    }
}

/// Lays stored rows over `settings`; unknown keys and values that are unreadable or out of
/// range are skipped (the configured value stays in force).
pub fn apply_stored(settings: &mut RuntimeSettings, stored: &[(String, String)]) {
    for (key, value) in stored {
        if let Some(patch) = SettingsPatch::from_row(key, value) {
            let mut next = settings.clone();
            if patch.apply(&mut next).is_ok() {
                *settings = next;
            }
        }
    }
}

impl Core {
    /// The runtime settings in force.
    pub fn settings(&self) -> RuntimeSettings {
        self.settings.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Puts the configured settings, with the stored ones laid over them, in force. The
    /// one way settings in memory change.
    ///
    /// # Errors
    /// When storage cannot be read; the settings in force stay.
    pub async fn reload_settings(&self) -> Result<()> {
        // Under the update lock, so that a concurrent PATCH on this instance is never
        // undone by a read that predates it.
        let _one_at_a_time = self.settings_updates.lock().await;
        self.reload_settings_locked().await
    }

    async fn reload_settings_locked(&self) -> Result<()> {
        let mut next = self.configured.clone();
        apply_stored(&mut next, &self.storage.settings().await?);
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(())
    }

    /// Validates a settings change, stores it and puts it in force; audited. Invalid input
    /// changes nothing.
    ///
    /// # Errors
    /// Validation errors; storage errors.
    pub async fn update_settings(&self, by: &Actor, body: Map<String, Value>) -> Result<RuntimeSettings> {
        let patch = SettingsPatch::from_json(body)?;
        // One change at a time: each starts from the settings the previous one left.
        let _one_at_a_time = self.settings_updates.lock().await;
        let current = self.settings();
        let mut next = current.clone();
        patch.apply(&mut next)?;
        self.storage.put_settings(&patch.rows()).await?;
        self.reload_settings_locked().await?;
        let detail = serde_json::json!({ "from": current, "to": self.settings() });
        self.audit(by.event("settings_changed").detail(detail)).await;
        Ok(self.settings())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(v: Value) -> Result<SettingsPatch, ValidationError> {
        SettingsPatch::from_json(v.as_object().cloned().unwrap_or_default())
    }

    #[test]
    fn a_stored_patch_reads_back_as_it_was_applied() {
        let p = patch(serde_json::json!({
            "access_token_ttl": 600, "registration_open": false, "rate_limit": {"ip_burst": 7, "enabled": false}
        }))
        .unwrap();
        let mut applied = RuntimeSettings::default();
        p.apply(&mut applied).unwrap();
        let rows = p.rows();
        assert_eq!(rows.len(), 4, "{rows:?}");
        assert!(rows.contains(&("rate_limit.ip_burst".into(), "7".into())));
        let mut reloaded = RuntimeSettings::default();
        apply_stored(&mut reloaded, &rows);
        assert_eq!(reloaded, applied);
    }

    #[test]
    fn bad_patches_are_refused_whole() {
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"access_token_ttl": null}),
            serde_json::json!({"rate_limit": {"ip_burst": null}}),
            serde_json::json!({"no_such_setting": 1}),
            serde_json::json!({"rate_limit": {"no_such_field": 1}}),
            serde_json::json!({"access_token_ttl": "900"}),
            serde_json::json!({"access_token_ttl": 900.5}),
        ] {
            assert!(patch(bad.clone()).is_err(), "{bad}");
        }
        let mut s = RuntimeSettings::default();
        for out_of_range in [
            serde_json::json!({"access_token_ttl": 86_401}),
            serde_json::json!({"refresh_token_ttl": 59}),
            serde_json::json!({"password_min_length": 0}),
            serde_json::json!({"rate_limit": {"max_failures_per_hour": 101}}),
        ] {
            assert!(patch(out_of_range.clone()).unwrap().apply(&mut s).is_err(), "{out_of_range}");
        }
    }

    #[test]
    fn required_roles_are_checked_sorted_and_read_back() {
        let p = patch(serde_json::json!({ "mfa_required_roles": ["ops", "admin", "ops"] })).unwrap();
        let mut applied = RuntimeSettings::default();
        p.apply(&mut applied).unwrap();
        assert_eq!(applied.mfa_required_roles, ["admin", "ops"]);
        let mut reloaded = RuntimeSettings::default();
        apply_stored(&mut reloaded, &p.rows());
        assert_eq!(reloaded, applied);
        assert!(applied.mfa_required_for(&crate::domain::Roles::parse(&["ops"]).unwrap()));
        assert!(!applied.mfa_required_for(&crate::domain::Roles::default_user()));
        for bad in [serde_json::json!(["Admin"]), serde_json::json!([""]), serde_json::json!(vec!["r"; 17])] {
            let p = patch(serde_json::json!({ "mfa_required_roles": bad })).unwrap();
            assert!(p.apply(&mut RuntimeSettings::default()).is_err());
        }
        assert!(patch(serde_json::json!({ "mfa_required_roles": "admin" })).is_err());
    }

    #[test]
    fn unreadable_stored_rows_leave_the_configured_value() {
        let mut s = RuntimeSettings::default();
        let rows = [
            ("access_token_ttl".to_owned(), "not json".to_owned()),
            ("refresh_token_ttl".to_owned(), "1".to_owned()),
            ("unknown".to_owned(), "1".to_owned()),
            ("password_min_length".to_owned(), "12".to_owned()),
        ];
        apply_stored(&mut s, &rows);
        assert_eq!(s, RuntimeSettings { password_min_length: 12, ..RuntimeSettings::default() });
    }
}
