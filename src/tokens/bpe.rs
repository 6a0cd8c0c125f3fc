//! A count-only byte-pair encoder for `cl100k_base`, small enough to keep
//! resident: the vocabulary lives in one byte arena with a hash table of
//! token ids (~2 MB), where the general-purpose crates held 20–33 MB of
//! automata and maps for the same answers (BENCHMARKS.md).
//!
//! Pre-tokenization is tiktoken's cl100k pattern (by hand for ASCII text,
//! in `split`). Its `\s+(?!\S)` needs a look-ahead the `regex` engines
//! lack, so, as GitHub's `bpe-openai` does,
//! it becomes `\s+\s` matched as a separate pattern whose last character is
//! given back. Merging is tiktoken's (lowest rank first, leftmost on ties)
//! with a heap, so a long run of letters costs O(n log n), not O(n²).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::BuildHasher;
use std::io::BufRead;

use base64::Engine;
use hashbrown::HashTable;
use regex_automata::meta::Regex;
use regex_automata::{Anchored, Input};

/// tiktoken's `cl100k_base.tiktoken` (MIT, OpenAI): one `base64 rank` line
/// per token, ranks 0..100255 in order.
const VOCAB: &[u8] = include_bytes!("cl100k_base.tiktoken.gz");

const PATTERNS: [&str; 3] = [
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+$",
    // `\s+(?!\S)`: the last character is a look-ahead, dropped from the piece.
    r"\s+\s",
    r"\s+",
];
const LOOKAHEAD: usize = 1;

/// The vocabulary's size: tokens, and their bytes back to back.
const TOKENS: usize = 100_256;
const ARENA_BYTES: usize = 643_830;

/// Pieces longer than this are merged in chunks of it. No word is this
/// long; a megabyte run of one letter or of spaces is, and merging it whole
/// took a second. Chunks keep the time linear and the count within a token
/// per chunk of the exact one (exact for runs of one character).
const CHUNK: usize = 1024;

type Hasher = rustc_hash::FxBuildHasher;

pub struct Bpe {
    /// Every token's bytes, back to back, in rank order.
    arena: Vec<u8>,
    /// `starts[r]..starts[r + 1]` is token `r` in the arena.
    starts: Vec<u32>,
    /// Token ids, found by hashing their bytes.
    ids: HashTable<u32>,
    hasher: Hasher,
    /// The longest token, in bytes: a longer candidate is never looked up.
    longest: usize,
    split: Regex,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("the cl100k vocabulary is unreadable: {0}")]
    Vocab(String),
    #[error("the pre-tokenizer pattern does not compile: {0}")]
    Pattern(String),
}

impl Bpe {
    pub fn cl100k() -> Result<Bpe, LoadError> {
        let bad = |e: &dyn std::fmt::Display| LoadError::Vocab(e.to_string());
        // Line by line: the whole decompressed file (1.6 MB) never exists,
        // so the load leaves no garbage behind in the allocator's pages.
        let lines = std::io::BufReader::new(flate2::read::GzDecoder::new(VOCAB)).lines();
        // Slack: `decode_vec` reserves its estimate of each line's bytes, and
        // an estimate past the capacity would double the arena.
        let mut arena = Vec::with_capacity(ARENA_BYTES + 256);
        let mut starts = Vec::with_capacity(TOKENS + 1);
        let mut longest = 0;
        for (rank, line) in lines.enumerate() {
            let line = line.map_err(|e| bad(&e))?;
            let (b64, r) = line.split_once(' ').ok_or_else(|| bad(&line))?;
            if r.parse::<usize>().ok() != Some(rank) {
                return Err(bad(&format!("rank {r} out of order")));
            }
            let start = arena.len();
            starts.push(u32::try_from(start).map_err(|e| bad(&e))?);
            base64::engine::general_purpose::STANDARD
                .decode_vec(b64, &mut arena)
                .map_err(|e| bad(&e))?;
            longest = longest.max(arena.len() - start);
        }
        starts.push(u32::try_from(arena.len()).map_err(|e| bad(&e))?);
        let hasher = Hasher::default();
        let token = |id: u32| token(&arena, &starts, id);
        let mut ids = HashTable::with_capacity(starts.len() - 1);
        for id in 0..starts.len() as u32 - 1 {
            ids.insert_unique(hasher.hash_one(token(id)), id, |&i| {
                hasher.hash_one(token(i))
            });
        }
        // The regex only sees pieces with non-ASCII text (`split` takes the
        // rest), so its lazy DFA does not need the default 2 MB of cache.
        let split = Regex::builder()
            .configure(Regex::config().hybrid_cache_capacity(256 << 10))
            .build_many(&PATTERNS)
            .map_err(|e| LoadError::Pattern(e.to_string()))?;
        Ok(Bpe {
            split,
            arena,
            starts,
            ids,
            hasher,
            longest,
        })
    }

    fn token(&self, id: u32) -> &[u8] {
        token(&self.arena, &self.starts, id)
    }

    /// The bytes of these token ids, at most `max` of them (a token can be
    /// 128 bytes: a few bytes of request must not become megabytes of
    /// text); ids outside the vocabulary are skipped.
    pub fn decode(&self, ids: impl IntoIterator<Item = u64>, max: usize) -> Vec<u8> {
        let tokens = (self.starts.len() as u64).saturating_sub(1);
        let mut out = Vec::new();
        for id in ids {
            if id < tokens {
                out.extend_from_slice(self.token(id as u32));
                if out.len() >= max {
                    out.truncate(max);
                    break;
                }
            }
        }
        out
    }

    fn rank(&self, bytes: &[u8]) -> Option<u32> {
        // Without this, merging a long run (a megabyte of one letter or of
        // spaces) hashed ever longer candidates: seconds instead of ms.
        if bytes.len() > self.longest {
            return None;
        }
        let h = self.hasher.hash_one(bytes);
        self.ids.find(h, |&id| self.token(id) == bytes).copied()
    }

    /// Tokens of `text`, as tiktoken counts them (special tokens are text).
    pub fn count(&self, text: &str) -> usize {
        let mut merger = Merger::default();
        let mut at = 0;
        let mut n = 0;
        while at < text.len() {
            let Some(end) = super::split::ascii_piece(text.as_bytes(), at)
                .or_else(|| self.regex_piece(text, at))
            else {
                // Unreachable with these patterns (`\s+` or a letter/number/
                // other run always matches); count the rest byte-wise.
                n += self.count_piece(&text.as_bytes()[at..], &mut merger);
                break;
            };
            if end == at {
                break;
            }
            n += self.count_piece(&text.as_bytes()[at..end], &mut merger);
            at = end;
        }
        n
    }

    /// The end of the piece at `at`, by the pattern.
    fn regex_piece(&self, text: &str, at: usize) -> Option<usize> {
        let input = Input::new(&text[at..]).anchored(Anchored::Yes);
        let m = self.split.find(input)?;
        let mut end = at + m.end();
        if m.pattern().as_usize() == LOOKAHEAD {
            let last = text[at..end].chars().next_back().map_or(0, char::len_utf8);
            end -= last;
        }
        Some(end)
    }

    fn count_piece(&self, piece: &[u8], merger: &mut Merger) -> usize {
        if piece.len() <= 1 || self.rank(piece).is_some() {
            return piece.len().min(1);
        }
        if piece.len() > CHUNK {
            return piece
                .chunks(CHUNK)
                .map(|c| self.count_piece(c, merger))
                .sum();
        }
        merger.run(self, piece)
    }
}

/// Token `id`'s bytes in the arena.
fn token<'a>(arena: &'a [u8], starts: &[u32], id: u32) -> &'a [u8] {
    let i = id as usize;
    &arena[starts[i] as usize..starts[i + 1] as usize]
}

/// Reusable buffers for merging one piece.
#[derive(Default)]
struct Merger {
    /// Start offset of the symbol after each live symbol (`piece.len()` at the end).
    next: Vec<usize>,
    prev: Vec<usize>,
    alive: Vec<bool>,
    heap: BinaryHeap<Reverse<(u32, usize, usize)>>,
}

impl Merger {
    /// Symbols left after merging the lowest-ranked adjacent pair until no
    /// pair is a token. Symbols are indexed by their start offset; a heap
    /// entry `(rank, left, right_end)` is stale once either side changed.
    fn run(&mut self, bpe: &Bpe, piece: &[u8]) -> usize {
        let len = piece.len();
        self.next.clear();
        self.prev.clear();
        self.alive.clear();
        self.heap.clear();
        // Start with one symbol per byte: every byte is a cl100k token.
        self.next.extend(1..=len);
        self.prev.extend((0..len).map(|i| i.wrapping_sub(1)));
        self.alive.resize(len, true);
        for i in 0..len - 1 {
            if let Some(r) = bpe.rank(&piece[i..i + 2]) {
                self.heap.push(Reverse((r, i, i + 2)));
            }
        }
        let mut symbols = len;
        while let Some(Reverse((_, left, end))) = self.heap.pop() {
            let right = self.next[left];
            if !self.alive[left] || right >= len || self.next[right] != end {
                continue;
            }
            // Merge `right` into `left`.
            self.alive[right] = false;
            self.next[left] = end;
            if end < len {
                self.prev[end] = left;
            }
            symbols -= 1;
            let before = self.prev[left];
            if before != usize::MAX {
                if let Some(r) = bpe.rank(&piece[before..end]) {
                    self.heap.push(Reverse((r, before, end)));
                }
            }
            if end < len {
                let after = self.next[end];
                if let Some(r) = bpe.rank(&piece[left..after]) {
                    self.heap.push(Reverse((r, left, after)));
                }
            }
        }
        symbols
    }
}
