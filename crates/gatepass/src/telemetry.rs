//! Logging setup: readable text by default, JSON with `GATEPASS_LOG_FORMAT=json`.
//! Tokens, passwords and secrets are never logged; request headers that carry them are
//! marked sensitive in the router.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber (idempotent: later calls are ignored).
pub fn init(format: &str) {
    let filter = EnvFilter::try_from_env("GATEPASS_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    // Colour only on a terminal: escape codes in a log file or journald are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // A log pipe that breaks (its reader died) must not take requests down with it: the
    // subscriber would otherwise report the failed write with `eprintln!`, which panics
    // on the same broken stderr, inside the request's span.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .log_internal_errors(false);
    let _ = if format.eq_ignore_ascii_case("json") {
        builder.json().flatten_event(true).with_current_span(true).try_init()
    } else {
        builder.try_init()
    };
}
