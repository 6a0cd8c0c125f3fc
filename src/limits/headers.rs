//! OpenAI's rate-limit response headers, with resets in its duration format.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};

use super::Admission;

/// `1s`, `6m0s`, `1h2m3s`, `250ms`: the format OpenAI uses for resets.
/// Written without `format!`: two of these go on every answer.
pub fn openai_duration(d: Duration) -> String {
    let mut out = String::with_capacity(12);
    let mut push = |n: u64, unit: &str| {
        out.push_str(itoa::Buffer::new().format(n));
        out.push_str(unit);
    };
    let ms = d.as_millis();
    if ms < 1000 {
        push(ms as u64, "ms");
        return out;
    }
    let secs = d.as_secs() + u64::from(d.subsec_millis() > 0);
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        push(h, "h");
    }
    if h > 0 || m > 0 {
        push(m, "m");
    }
    push(s, "s");
    out
}

/// Time until a per-minute quota with `remaining` of `limit` left is full again.
fn reset(limit: u32, remaining: u32) -> Duration {
    if limit == 0 {
        return Duration::ZERO;
    }
    let missing = u64::from(limit.saturating_sub(remaining));
    Duration::from_millis(missing * 60_000 / u64::from(limit))
}

fn value(d: Duration) -> HeaderValue {
    // Digits and letters only: always a valid header value.
    HeaderValue::try_from(openai_duration(d)).unwrap_or(HeaderValue::from_static("0s"))
}

// Built at compile time: a `&str` name is parsed and checked on every insert.
const NAMES: [HeaderName; 6] = [
    HeaderName::from_static("x-ratelimit-limit-requests"),
    HeaderName::from_static("x-ratelimit-remaining-requests"),
    HeaderName::from_static("x-ratelimit-reset-requests"),
    HeaderName::from_static("x-ratelimit-limit-tokens"),
    HeaderName::from_static("x-ratelimit-remaining-tokens"),
    HeaderName::from_static("x-ratelimit-reset-tokens"),
];

pub fn apply_headers(h: &mut HeaderMap, a: &Admission) {
    let values = [
        HeaderValue::from(a.requests_limit),
        HeaderValue::from(a.requests_remaining),
        value(reset(a.requests_limit, a.requests_remaining)),
        HeaderValue::from(a.tokens_limit),
        HeaderValue::from(a.tokens_remaining),
        value(a.tokens_reset),
    ];
    h.reserve(NAMES.len());
    for (name, value) in NAMES.into_iter().zip(values) {
        h.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_openai_format() {
        assert_eq!(openai_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(openai_duration(Duration::from_secs(1)), "1s");
        assert_eq!(openai_duration(Duration::from_millis(1500)), "2s");
        assert_eq!(openai_duration(Duration::from_secs(360)), "6m0s");
        assert_eq!(openai_duration(Duration::from_secs(3723)), "1h2m3s");
        assert_eq!(openai_duration(Duration::from_secs(7200)), "2h0m0s");
        assert_eq!(openai_duration(Duration::ZERO), "0ms");
    }

    #[test]
    fn resets_scale_with_what_is_missing() {
        assert_eq!(reset(10, 10), Duration::ZERO);
        assert_eq!(reset(10, 9), Duration::from_secs(6));
        assert_eq!(reset(10, 0), Duration::from_secs(60));
    }
}
