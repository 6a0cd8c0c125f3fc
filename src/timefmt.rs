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

/// Parses an RFC 3339 timestamp into Unix seconds: `Z` or a `±HH:MM`
/// offset is required. (A time without one had been read as UTC, so an
/// operator west of Greenwich who left it off scheduled a window hours
/// early; and offsets, valid RFC 3339, were refused.)
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    let bad = |why: &str| {
        format!("invalid timestamp {s:?}: {why} (expected RFC 3339, e.g. 2027-01-31T00:00:00Z or 2027-01-31T02:00:00+02:00)")
    };
    let t = s.trim();
    let (local, offset) = match t.char_indices().rev().nth(5) {
        _ if t.ends_with(['Z', 'z']) => (&t[..t.len() - 1], 0),
        Some((i, sign @ ('+' | '-'))) if t.as_bytes().get(i + 3) == Some(&b':') => {
            let hh: i64 = t[i + 1..i + 3].parse().map_err(|_| bad("bad offset"))?;
            let mm: i64 = t[i + 4..].parse().map_err(|_| bad("bad offset"))?;
            if hh > 23 || mm > 59 {
                return Err(bad("bad offset"));
            }
            let secs = hh * 3600 + mm * 60;
            (&t[..i], if sign == '+' { secs } else { -secs })
        }
        _ => {
            return Err(bad(
                "a time zone is required: Z or an offset such as +02:00",
            ))
        }
    };
    let utc =
        humantime::parse_rfc3339_weak(&format!("{local}Z")).map_err(|e| bad(&e.to_string()))?;
    let secs = utc
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .map_err(|_| format!("timestamp {s:?} is before 1970"))?;
    // Local time minus its offset is UTC.
    let secs = secs - offset;
    if secs < 0 {
        return Err(format!("timestamp {s:?} is before 1970"));
    }
    Ok(secs)
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
    }

    #[test]
    fn timestamps_need_a_zone_and_may_have_an_offset() {
        let z = parse_rfc3339("2027-01-31T02:00:00Z").unwrap();
        assert_eq!(parse_rfc3339("2027-01-31T04:00:00+02:00"), Ok(z));
        assert_eq!(parse_rfc3339("2027-01-30T21:00:00-05:00"), Ok(z));
        assert_eq!(parse_rfc3339("2027-01-31T02:00:00.5Z"), Ok(z));
        for bad in [
            "2027-01-31T02:00:00",
            "2027-01-31 02:00:00",
            "2027-01-31T02:00:00+25:00",
            "soon",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
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
