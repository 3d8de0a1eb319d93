//! The passkey script of the pages (`static/passkeys.js`, compiled in) and the
//! Content-Security-Policy of the pages that load it: the site-wide policy with `'self'`
//! added to `script-src`, on those pages only.

use std::sync::LazyLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::AppState;

/// The script, compiled into the binary.
pub const SCRIPT: &str = include_str!("../../../static/passkeys.js");

/// The policy of pages that load [`SCRIPT`]: same-origin scripts, nothing else added.
pub const SCRIPT_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; connect-src 'self'; \
     script-src 'self' 'sha256-320um6M3pL9/ahVZkLPsYPkFoniSamBjygIOgV7jkYk='; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// Script URL carrying a digest of its content: cacheable for a year, new with each change.
static SCRIPT_HREF: LazyLock<String> = LazyLock::new(|| {
    let hex: String = Sha256::digest(SCRIPT.as_bytes()).iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("/static/passkeys.js?v={hex}")
});

/// Where pages load the script from.
pub fn script_href() -> &'static str {
    SCRIPT_HREF.as_str()
}

/// Gives a page that loads the script the policy that lets it run.
pub fn allow_script(mut response: Response) -> Response {
    response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(SCRIPT_CSP));
    response
}

/// The script's route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(script))
}

/// The passkey script
#[utoipa::path(get, path = "/static/passkeys.js", tag = "pages",
    params(("v" = Option<String>, Query, description = "Cache-busting digest; any value")),
    responses((status = 200, description = "JavaScript, cacheable for a year", body = String,
        content_type = "text/javascript")))]
async fn script() -> Response {
    let mut response = ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_policy_is_the_site_policy_plus_self_scripts() {
        let site = crate::http::CSP
            .replace("script-src ", "script-src 'self' ")
            .replace("img-src 'self'; ", "img-src 'self'; connect-src 'self'; ");
        assert_eq!(SCRIPT_CSP, site);
        assert!(script_href().starts_with("/static/passkeys.js?v="));
    }
}
