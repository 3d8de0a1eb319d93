//! Cookie names and attributes for browser sessions (GP-25), and the long-lived device
//! cookie that lets the failed-login back-off recognise a browser that signed in before.
//!
//! Whether cookies are `Secure` (with `__Host-`/`__Secure-` names) is decided per request
//! by [`CookiePolicy`]: gatepass itself speaks plain HTTP, so it has to be told, or see
//! from a trusted proxy, that the browser reached it over HTTPS.

use axum::http::{HeaderMap, HeaderValue, header};

/// When cookies are `Secure`, from configuration.
#[derive(Debug, Clone, Copy)]
pub struct CookiePolicy {
    /// `GATEPASS_COOKIE_SECURE`, when set: applies to every request, whatever else says.
    pub explicit: Option<bool>,
    /// Every browser is known to reach gatepass over HTTPS: the issuer is an `https://`
    /// URL, or gatepass listens beyond loopback (where plain HTTP is not supported).
    pub always_https: bool,
}

impl CookiePolicy {
    /// The settings for one request; `forwarded_https` is true when a trusted proxy said
    /// `X-Forwarded-Proto: https`.
    pub fn resolve(&self, forwarded_https: bool) -> CookieSettings {
        CookieSettings { secure: self.explicit.unwrap_or(self.always_https || forwarded_https) }
    }
}

/// How cookies are named and flagged for one request.
#[derive(Debug, Clone, Copy)]
pub struct CookieSettings {
    /// Set `Secure` and use `__Host-`/`__Secure-` names. Off only for plain-HTTP
    /// requests, where seed 001's clients expect a cookie named `session`; it also says
    /// which scheme this origin has (`https` when on), for the origin check.
    pub secure: bool,
}

/// Path of the refresh route, the only place the refresh cookie is sent.
pub const REFRESH_PATH: &str = "/api/refresh";

impl CookieSettings {
    /// Access-token cookie name.
    pub fn session_name(&self) -> &'static str {
        if self.secure { "__Host-session" } else { "session" }
    }

    /// Refresh-token cookie name (path-limited, so `__Secure-` rather than `__Host-`).
    pub fn refresh_name(&self) -> &'static str {
        if self.secure { "__Secure-refresh" } else { "refresh_token" }
    }

    /// CSRF cookie name (readable by scripts).
    pub fn csrf_name(&self) -> &'static str {
        if self.secure { "__Host-csrf" } else { "csrf_token" }
    }

    /// Device cookie name (`HttpOnly`, `Path=/`, for [`crate::auth::device::MAX_AGE_SECS`]).
    pub fn device_name(&self) -> &'static str {
        if self.secure { "__Host-device" } else { "device" }
    }

    fn build(&self, name: &str, value: &str, path: &str, max_age: i64, http_only: bool) -> HeaderValue {
        let mut c = format!("{name}={value}; Path={path}; Max-Age={max_age}; SameSite=Lax");
        if http_only {
            c.push_str("; HttpOnly");
        }
        if self.secure {
            c.push_str("; Secure");
        }
        HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// Appends the three session cookies to `headers`.
    pub fn set_session(
        &self,
        headers: &mut HeaderMap,
        access: &str,
        access_max_age: i64,
        refresh: &str,
        refresh_max_age: i64,
        csrf: &str,
    ) {
        headers.append(header::SET_COOKIE, self.build(self.session_name(), access, "/", access_max_age, true));
        headers
            .append(header::SET_COOKIE, self.build(self.refresh_name(), refresh, REFRESH_PATH, refresh_max_age, true));
        headers.append(header::SET_COOKIE, self.build(self.csrf_name(), csrf, "/", refresh_max_age, false));
    }

    /// Appends the device cookie (kept across logouts: it says the browser signed in here
    /// before, which stays true).
    pub fn set_device(&self, headers: &mut HeaderMap, value: &str) {
        let max_age = crate::auth::device::MAX_AGE_SECS;
        headers.append(header::SET_COOKIE, self.build(self.device_name(), value, "/", max_age, true));
    }

    /// Appends cookies that delete all three.
    pub fn clear_session(&self, headers: &mut HeaderMap) {
        headers.append(header::SET_COOKIE, self.build(self.session_name(), "", "/", 0, true));
        headers.append(header::SET_COOKIE, self.build(self.refresh_name(), "", REFRESH_PATH, 0, true));
        headers.append(header::SET_COOKIE, self.build(self.csrf_name(), "", "/", 0, false));
    }

    /// Reads a cookie by name.
    pub fn get(headers: &HeaderMap, name: &str) -> Option<String> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, v)| *k == name && !v.is_empty())
            .map(|(_, v)| v.to_owned())
    }
}
