//! Wall-clock time as epoch seconds, the unit every token claim and stored timestamp uses
//! (milliseconds where a second is too coarse: the failed-login back-off).

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Formats epoch seconds as RFC 3339 (UTC); empty if out of range.
pub fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// Formats epoch seconds for people reading a terminal: `2026-12-05 03:52:18Z` (UTC);
/// empty if out of range.
pub fn human_utc(t: i64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp(t).ok().and_then(|t| t.format(&fmt).ok()).unwrap_or_default()
}

/// How far `t` is from `now`, coarsely, for people: `expired 3m ago`-style phrases take
/// it as `"3m"`. Seconds under two minutes, then minutes, hours, days.
pub fn human_span(seconds: i64) -> String {
    let s = seconds.unsigned_abs();
    match s {
        0..120 => format!("{s}s"),
        120..7_200 => format!("{}m", s / 60),
        7_200..172_800 => format!("{}h", s / 3_600),
        _ => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert!(now() > 1_600_000_000);
    }

    #[test]
    fn human_forms() {
        assert_eq!(human_utc(1_796_442_738), "2026-12-05 03:52:18Z");
        assert_eq!(human_span(-45), "45s");
        assert_eq!(human_span(180), "3m");
        assert_eq!(human_span(3 * 3_600), "3h");
        assert_eq!(human_span(3 * 86_400), "3d");
    }
}
