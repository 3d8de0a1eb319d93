//! CSRF rules for cookie-authenticated requests (GP-26).
//!
//! A request that authenticates with a cookie and is not a safe method must (1) not come
//! from another site according to `Sec-Fetch-Site` or `Origin`, and (2) carry the session's
//! CSRF token in `X-CSRF-Token` (or, for HTML forms, the `csrf_token` field, checked by the
//! page handlers). Bearer-header requests need neither: browsers never add that header on
//! their own.

use axum::http::{HeaderMap, Method, header, request::Parts};

use crate::error::Error;
use crate::http::AppState;

/// Header carrying the CSRF token.
pub const HEADER: &str = "x-csrf-token";

/// Checks a cookie-authenticated API request for session `sid`.
pub fn check(parts: &Parts, app: &AppState, sid: &str) -> Result<(), Error> {
    if is_safe(&parts.method) {
        return Ok(());
    }
    if !same_origin(&parts.headers) {
        return Err(Error::CsrfFailed);
    }
    let presented = parts.headers.get(HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !app.csrf.verify(sid, presented) {
        return Err(Error::CsrfFailed);
    }
    Ok(())
}

/// Safe methods never change state, so they need no token.
pub fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// False when `Sec-Fetch-Site` or `Origin` shows the request came from another site.
pub fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return false;
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let Ok(origin) = origin.to_str() else { return false };
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
        let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or("");
        if origin == "null" || origin_host.is_empty() || !origin_host.eq_ignore_ascii_case(host) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn origin_rules() {
        assert!(same_origin(&headers(&[("host", "a.test")])));
        assert!(same_origin(&headers(&[("host", "a.test"), ("origin", "https://a.test")])));
        assert!(!same_origin(&headers(&[("host", "a.test"), ("origin", "https://evil.test")])));
        assert!(!same_origin(&headers(&[("host", "a.test"), ("origin", "null")])));
        assert!(!same_origin(&headers(&[("host", "a.test"), ("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&headers(&[("host", "a.test"), ("sec-fetch-site", "same-site")])));
        assert!(same_origin(&headers(&[("host", "a.test"), ("sec-fetch-site", "same-origin")])));
    }
}
