//! Timestamps as the APIs show them (RFC 3339, UTC) and durations as people
//! type them (`30d`, `24h`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The last second RFC 3339 can write (9999-12-31T23:59:59Z); later times
/// are shown as it rather than failing.
const LAST_WRITABLE: u64 = 253_402_300_799;

pub fn rfc3339(unix_secs: i64) -> String {
    let secs = u64::try_from(unix_secs).unwrap_or(0).min(LAST_WRITABLE);
    let t = UNIX_EPOCH + Duration::from_secs(secs);
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

/// The longest duration accepted anywhere (a key's expiry, a grace period,
/// a retention, a timeout): a century. Longer ones overflowed the arithmetic
/// on Unix times, and a retention of 300 million years wrapped around to
/// "delete everything".
pub const LONGEST: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Parses a duration such as `30d`, `12h` or `90m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    parse_duration_or(s, "try 30d, 12h, 90m")
}

/// `parse_duration`, with `hint` at the end of a syntax error.
pub fn parse_duration_or(s: &str, hint: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration {s:?}: {e} ({hint})"))?;
    if d > LONGEST {
        return Err(format!("duration {s:?} is too long: at most 100 years"));
    }
    Ok(d)
}

pub fn now_system() -> SystemTime {
    SystemTime::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn far_times_and_long_durations_are_bounded() {
        assert_eq!(rfc3339(i64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(-5), "1970-01-01T00:00:00Z");
        assert_eq!(
            parse_duration("100y").ok(),
            None,
            "a Julian year is longer than 365 days"
        );
        assert_eq!(parse_duration("36500days").ok(), Some(LONGEST));
        for long in ["10000y", "18446744073709551615s", "300000000y"] {
            let e = parse_duration(long).unwrap_err();
            assert!(
                e.contains("at most 100 years") || e.contains("invalid"),
                "{long}: {e}"
            );
        }
    }
}
