//! Token counts of texts seen lately. Chat clients send the whole
//! conversation on every turn, and apps the same system prompt on every
//! request, so most of a prompt was counted before: hashing a text costs a
//! few instructions a byte, counting it about thirty.
//!
//! A direct-mapped table of atomics: no lock, a fixed 32 KiB, the newest
//! text of a slot wins it. The hash is keyed at random per process, so
//! which texts share a slot (and a 40-bit tag) cannot be chosen from
//! outside; a count read for the wrong text would anyway only misjudge the
//! up-front reservation that the upstream's reported usage settles.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

const SLOTS: usize = 4096;
const COUNT_BITS: u32 = 24;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
/// Shorter texts are counted faster than they are hashed and looked up.
pub const MIN_BYTES: usize = 64;

pub struct Memo {
    hasher: RandomState,
    slots: Box<[AtomicU64]>,
}

impl Default for Memo {
    fn default() -> Self {
        Memo {
            hasher: RandomState::new(),
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Memo {
    /// The count of `text`, from the table or from `count` (then kept).
    pub fn count(&self, text: &str, count: impl FnOnce(&str) -> usize) -> usize {
        let h = self.hasher.hash_one(text);
        let slot = &self.slots[(h as usize) % SLOTS];
        // The tag is the hash's top 40 bits, never 0 (an empty slot).
        let tag = (h >> COUNT_BITS) | 1;
        let seen = slot.load(Ordering::Relaxed);
        if seen >> COUNT_BITS == tag {
            return (seen & COUNT_MASK) as usize;
        }
        let n = count(text);
        if let Ok(small) = u64::try_from(n) {
            if small <= COUNT_MASK {
                slot.store(tag << COUNT_BITS | small, Ordering::Relaxed);
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_once_and_tells_texts_apart() {
        let m = Memo::default();
        let calls = std::cell::Cell::new(0);
        let count = |t: &str| {
            calls.set(calls.get() + 1);
            t.len()
        };
        let texts: Vec<String> = (0..2000).map(|i| format!("text number {i}")).collect();
        for t in &texts {
            assert_eq!(m.count(t, count), t.len());
        }
        let first = calls.get();
        assert_eq!(first, texts.len());
        for t in &texts {
            assert_eq!(m.count(t, count), t.len());
        }
        // Most are still in the table (a few share a slot with a later one).
        assert!(
            calls.get() - first < texts.len() / 2,
            "{}",
            calls.get() - first
        );
        // A count too large for a slot is returned, not kept.
        assert_eq!(m.count("huge", |_| 1 << 30), 1 << 30);
        assert_eq!(m.count("huge", |_| 7), 7);
    }
}
