//! CSRF rules for cookie-authenticated requests (GP-26).
//!
//! A request that authenticates with a cookie and is not a safe method must (1) not come
//! from another site according to `Sec-Fetch-Site` or `Origin`, and (2) carry the session's
//! CSRF token in `X-CSRF-Token` (or, for HTML forms, the `csrf_token` field, checked by
//! `pages::actions::SignedInForm`). Bearer-header requests need neither: browsers never add that header on
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

/// Stricter [`same_origin`] for the HTML form routes: a browser always sends `Origin` or
/// `Sec-Fetch-Site` on a form post, so a request carrying neither is refused too (this is
/// what protects the login form, which has no session to bind a token to, against
/// login CSRF).
pub fn same_origin_required(headers: &HeaderMap) -> bool {
    let present = headers.contains_key("sec-fetch-site") || headers.contains_key(header::ORIGIN);
    present && same_origin(headers)
}

/// Safe methods never change state, so they need no token.
pub fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// False when `Sec-Fetch-Site` or `Origin` shows the request came from another site.
///
/// `Sec-Fetch-Site` wins when present: scripts cannot set it, and browsers send
/// `Origin: null` on same-origin form posts from pages served with
/// `Referrer-Policy: no-referrer`, so `Origin` alone would refuse our own forms.
pub fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return matches!(site.to_str(), Ok("same-origin" | "none"));
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
        // Referrer-Policy: no-referrer makes browsers send `Origin: null` on our own forms.
        assert!(same_origin(&headers(&[("host", "a.test"), ("sec-fetch-site", "same-origin"), ("origin", "null")])));
        assert!(!same_origin(&headers(&[
            ("host", "a.test"),
            ("sec-fetch-site", "same-site"),
            ("origin", "http://a.test")
        ])));
        assert!(!same_origin_required(&headers(&[("host", "a.test")])));
        assert!(same_origin_required(&headers(&[("host", "a.test"), ("origin", "http://a.test")])));
    }
}
