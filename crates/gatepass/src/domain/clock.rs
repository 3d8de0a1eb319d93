//! The one clock: seconds since the Unix epoch, and their RFC 3339 form.

/// Seconds since the Unix epoch (0 if the system clock is before it).
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// `secs` as an RFC 3339 UTC time; empty when out of range.
pub fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}
