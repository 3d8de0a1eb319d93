//! Logging setup: readable text by default, JSON with `GATEPASS_LOG_FORMAT=json`.
//! Tokens, passwords and secrets are never logged; request headers that carry them are
//! marked sensitive in the router.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber (idempotent: later calls are ignored).
pub fn init(format: &str) {
    let filter = EnvFilter::try_from_env("GATEPASS_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if format.eq_ignore_ascii_case("json") {
        builder.json().flatten_event(true).with_current_span(true).try_init()
    } else {
        builder.try_init()
    };
}
