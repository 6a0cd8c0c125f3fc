//! Timestamps as the APIs show them (RFC 3339, UTC) and durations as people
//! type them (`30d`, `24h`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn rfc3339(unix_secs: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(u64::try_from(unix_secs).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Parses an RFC 3339 timestamp into Unix seconds.
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    let t = humantime::parse_rfc3339_weak(s).map_err(|e| {
        format!("invalid timestamp {s:?}: {e} (expected RFC 3339, e.g. 2027-01-31T00:00:00Z)")
    })?;
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .map_err(|_| format!("timestamp {s:?} is before 1970"))
}

/// Parses a duration such as `30d`, `12h` or `90m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration {s:?}: {e} (try 30d, 12h, 90m)"))
}

pub fn now_system() -> SystemTime {
    SystemTime::now()
}
