//! `/docs`: an API explorer (Swagger UI) over `/openapi.json`, served from the binary:
//! nothing is loaded from a CDN, so it works offline and under a strict CSP.

use axum::Router;
use axum::http::{HeaderValue, header};
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa_swagger_ui::{Config, SwaggerUi};

/// Content-Security-Policy of the explorer's pages: its own scripts and styles (Swagger
/// UI sets inline style attributes and uses data: images), requests to this origin only.
pub const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                            img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
                            form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The explorer's routes (`/docs` and the files under `/docs/`).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let config = Config::new(["/openapi.json"]).try_it_out_enabled(true).persist_authorization(false);
    Router::from(SwaggerUi::new("/docs").config(config))
        .layer(SetResponseHeaderLayer::overriding(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(DOCS_CSP)))
}
