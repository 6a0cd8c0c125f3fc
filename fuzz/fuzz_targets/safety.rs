//! Any text through the safety scanners as the gateway runs them: the
//! normaliser, both readings, moderation and injection detection (payload
//! decoding included) must never panic, scores stay in [0, 1], and the
//! normalised text is what rules are written against: words of `[a-z0-9]`
//! separated by single spaces.
#![no_main]

use std::sync::OnceLock;

use assisters::safety::injection::Detector;
use assisters::safety::moderation::Moderator;
use assisters::safety::normalize::{alternate, alternate_letters, normalize, normalize_with_stops};
use libfuzzer_sys::fuzz_target;

// Built once: the lexicon's automaton takes a while, and the engines are
// immutable once built (the gateway shares them across requests too).
static ENGINES: OnceLock<(Moderator, Detector)> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (moderator, detector) = ENGINES.get_or_init(|| {
        (
            Moderator::new().unwrap_or_else(|e| panic!("moderation lexicon: {e}")),
            Detector::new().unwrap_or_else(|e| panic!("injection rules: {e}")),
        )
    });
    let in_shape = |norm: &str| {
        assert!(
            norm.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b' ')
                && !norm.starts_with(' ')
                && !norm.ends_with(' ')
                && !norm.contains("  "),
            "normalised text out of shape: {norm:?}"
        );
    };
    let (mut norm, mut stops) = (String::new(), Vec::new());
    normalize_with_stops(&text, &mut norm, &mut stops);
    in_shape(&norm);
    // Sentence stops fall between words (on a space, or at the end), in order.
    assert!(stops.windows(2).all(|w| w[0] < w[1]), "{stops:?}");
    assert!(
        stops.iter().all(|&i| i == norm.len() || norm.as_bytes().get(i) == Some(&b' ')),
        "{stops:?} in {norm:?}"
    );
    for reading in [alternate(&text), alternate_letters(&text)].into_iter().flatten() {
        normalize(&reading, &mut norm);
        in_shape(&norm);
    }
    let scores = moderator.scan(&text);
    assert!(scores.0.iter().all(|s| (0.0..=1.0).contains(s)), "{scores:?}");
    let v = detector.scan(&text);
    assert!((0.0..=1.0).contains(&v.score), "{v:?}");
    assert!(v.families.iter().all(|(_, s)| (0.0..=1.0).contains(s)), "{v:?}");
});
