//! Redaction of request bodies before they are stored: e-mail addresses,
//! phone numbers, payment card numbers (only digit runs that pass the Luhn
//! check) and `ask_` keys.

use regex::{Captures, Regex};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RedactConfig {
    pub emails: bool,
    pub phones: bool,
    pub cards: bool,
    pub api_keys: bool,
}

impl RedactConfig {
    pub fn any(&self) -> bool {
        self.emails || self.phones || self.cards || self.api_keys
    }
}

pub struct Redactor {
    email: Regex,
    phone: Regex,
    card: Regex,
    key: Regex,
}

impl Default for Redactor {
    fn default() -> Self {
        Redactor::new()
    }
}

fn re(s: &str) -> Regex {
    // The patterns are constants; a failure would be a bug caught by the tests.
    Regex::new(s).unwrap_or_else(|_| Regex::new("$^").unwrap_or_else(|_| unreachable!()))
}

impl Redactor {
    pub fn new() -> Redactor {
        Redactor {
            email: re(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),
            phone: re(r"\+?\d[\d ().-]{7,}\d"),
            card: re(r"\b(?:\d[ -]?){12,18}\d\b"),
            key: re(r"ask_[A-Za-z0-9]{20,}"),
        }
    }

    pub fn apply(&self, cfg: &RedactConfig, text: &str) -> String {
        let mut out = text.to_owned();
        if cfg.api_keys {
            out = self.key.replace_all(&out, "[REDACTED_KEY]").into_owned();
        }
        if cfg.emails {
            out = self
                .email
                .replace_all(&out, "[REDACTED_EMAIL]")
                .into_owned();
        }
        if cfg.cards {
            out = self
                .card
                .replace_all(&out, |c: &Captures<'_>| {
                    if luhn(&c[0]) {
                        "[REDACTED_CARD]".to_owned()
                    } else {
                        c[0].to_owned()
                    }
                })
                .into_owned();
        }
        if cfg.phones {
            out = self
                .phone
                .replace_all(&out, |c: &Captures<'_>| {
                    let digits = c[0].bytes().filter(u8::is_ascii_digit).count();
                    if (8..=15).contains(&digits) {
                        "[REDACTED_PHONE]".to_owned()
                    } else {
                        c[0].to_owned()
                    }
                })
                .into_owned();
        }
        out
    }
}

/// The Luhn checksum of the digits in `s` (separators ignored).
pub fn luhn(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_what_is_asked() {
        let r = Redactor::new();
        let all = RedactConfig {
            emails: true,
            phones: true,
            cards: true,
            api_keys: true,
        };
        let text = "mail ann@example.org, call +1 (415) 555-0100, card 4111 1111 1111 1111, \
                    not a card 4111 1111 1111 1112, key ask_abcdefghijklmnopqrstuvwxyz0123";
        let out = r.apply(&all, text);
        assert!(out.contains("[REDACTED_EMAIL]") && !out.contains("ann@example.org"));
        assert!(out.contains("[REDACTED_PHONE]") && !out.contains("555-0100"));
        assert!(out.contains("[REDACTED_CARD]") && !out.contains("4111 1111 1111 1111,"));
        assert!(
            out.contains("4111 1111 1111 1112"),
            "fails Luhn, kept: {out}"
        );
        assert!(out.contains("[REDACTED_KEY]") && !out.contains("ask_abc"));
        assert_eq!(r.apply(&RedactConfig::default(), text), text);
    }
}
