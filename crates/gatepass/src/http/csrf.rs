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
use crate::http::cookies::CookieSettings;

/// Header carrying the CSRF token.
pub const HEADER: &str = "x-csrf-token";

/// Checks a cookie-authenticated API request for session `sid`.
pub fn check(parts: &Parts, app: &AppState, cookies: CookieSettings, sid: &str) -> Result<(), Error> {
    if is_safe(&parts.method) {
        return Ok(());
    }
    if !api_origin(&parts.headers, cookies, &app.allowed_origins) {
        return Err(Error::CsrfFailed);
    }
    let presented = parts.headers.get(HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !app.csrf.verify(sid, presented) {
        return Err(Error::CsrfFailed);
    }
    Ok(())
}

/// The origin rule of the JSON API: [`same_origin`], or an `Origin` on the CORS allow-list
/// (a frontend on another origin that uses cookie mode). Such a page still has to send the
/// session's CSRF token, which only it can read from the CSRF cookie's response.
pub fn api_origin(headers: &HeaderMap, cookies: CookieSettings, allowed: &[String]) -> bool {
    let listed = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|origin| allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)));
    listed || same_origin(headers, cookies)
}

/// Stricter [`same_origin`] for the HTML form routes: a browser always sends `Origin` or
/// `Sec-Fetch-Site` on a form post, so a request carrying neither is refused too (this is
/// what protects the login form, which has no session to bind a token to, against
/// login CSRF).
pub fn same_origin_required(headers: &HeaderMap, cookies: CookieSettings) -> bool {
    let present = headers.contains_key("sec-fetch-site") || headers.contains_key(header::ORIGIN);
    present && same_origin(headers, cookies)
}

/// Safe methods never change state, so they need no token.
pub fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// False when `Sec-Fetch-Site` or `Origin` shows the request came from another origin.
///
/// Both are checked when both are present: a `Sec-Fetch-Site` that is not `same-origin`
/// (or `none`) refuses, and so does any `Origin` other than this origin — scheme, host
/// and port, the scheme being `https` exactly when this request gets secure cookies — or
/// `null`. `Origin: null` passes only with `Sec-Fetch-Site: same-origin`: browsers send it
/// on our own form posts because pages are served with `Referrer-Policy: no-referrer`, but
/// sandboxed frames and other opaque origins send it too.
pub fn same_origin(headers: &HeaderMap, cookies: CookieSettings) -> bool {
    let site = headers.get("sec-fetch-site");
    if let Some(site) = site
        && !matches!(site.to_str(), Ok("same-origin" | "none"))
    {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else { return true };
    let Ok(origin) = origin.to_str() else { return false };
    if origin == "null" {
        return site.is_some();
    }
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()).filter(|h| !h.is_empty()) else {
        return false;
    };
    let scheme = if cookies.secure { "https" } else { "http" };
    origin.strip_prefix(scheme).and_then(|rest| rest.strip_prefix("://")).is_some_and(|h| h.eq_ignore_ascii_case(host))
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

    const HTTP: CookieSettings = CookieSettings { secure: false };
    const HTTPS: CookieSettings = CookieSettings { secure: true };

    #[test]
    fn origin_rules() {
        let same = |pairs: &[(&'static str, &str)]| same_origin(&headers(pairs), HTTP);
        assert!(same(&[("host", "a.test")]));
        assert!(same(&[("host", "a.test"), ("origin", "http://a.test")]));
        assert!(!same(&[("host", "a.test"), ("origin", "http://evil.test")]));
        assert!(!same(&[("host", "a.test"), ("origin", "null")]));
        assert!(!same(&[("host", "a.test"), ("sec-fetch-site", "cross-site")]));
        assert!(!same(&[("host", "a.test"), ("sec-fetch-site", "same-site")]));
        assert!(same(&[("host", "a.test"), ("sec-fetch-site", "same-origin")]));
        // Referrer-Policy: no-referrer makes browsers send `Origin: null` on our own forms.
        assert!(same(&[("host", "a.test"), ("sec-fetch-site", "same-origin"), ("origin", "null")]));
        assert!(!same(&[("host", "a.test"), ("sec-fetch-site", "same-site"), ("origin", "http://a.test")]));
        assert!(!same_origin_required(&headers(&[("host", "a.test")]), HTTP));
        assert!(same_origin_required(&headers(&[("host", "a.test"), ("origin", "http://a.test")]), HTTP));
    }

    #[test]
    fn a_foreign_origin_is_refused_whatever_sec_fetch_site_says() {
        let h = headers(&[("host", "a.test"), ("sec-fetch-site", "same-origin"), ("origin", "https://evil.test")]);
        assert!(!same_origin(&h, HTTP) && !same_origin(&h, HTTPS));
    }

    #[test]
    fn the_scheme_is_part_of_the_origin() {
        let plain = headers(&[("host", "a.test"), ("origin", "http://a.test")]);
        let tls = headers(&[("host", "a.test"), ("origin", "https://a.test")]);
        assert!(same_origin(&plain, HTTP) && !same_origin(&plain, HTTPS));
        assert!(same_origin(&tls, HTTPS) && !same_origin(&tls, HTTP));
        assert!(!same_origin(&headers(&[("host", "a.test"), ("origin", "a.test")]), HTTP));
        assert!(!same_origin(&headers(&[("origin", "http://")]), HTTP));
    }

    #[test]
    fn allowed_origins_pass_the_api_check_only() {
        let allowed = ["https://app.test".to_owned()];
        let h = headers(&[("host", "a.test"), ("sec-fetch-site", "same-site"), ("origin", "https://app.test")]);
        assert!(api_origin(&h, HTTPS, &allowed));
        assert!(!same_origin_required(&h, HTTPS));
        let other = headers(&[("host", "a.test"), ("sec-fetch-site", "cross-site"), ("origin", "https://evil.test")]);
        assert!(!api_origin(&other, HTTPS, &allowed));
        let null = headers(&[("host", "a.test"), ("sec-fetch-site", "cross-site"), ("origin", "null")]);
        assert!(!api_origin(&null, HTTPS, &allowed));
    }
}
