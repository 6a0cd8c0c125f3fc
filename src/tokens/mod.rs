//! Token counting with `cl100k_base`, the real BPE tokenizer (issue 3 asks
//! for one, not a division of characters). Every request is counted, so the
//! encoder is our own count-only one (`bpe`): the same counts as tiktoken and
//! GitHub's `bpe-openai` (checked against it in the tests) in ~2 MB instead
//! of ~33 MB, except on pieces over 1 KiB (a run of one character or a
//! "word" no language has), which are counted in chunks: linear time, at
//! most a token per KiB over. Loaded on first use. Counts of texts seen
//! lately are remembered (`memo`).

mod bpe;
mod memo;
mod split;

use std::sync::OnceLock;

use serde_json::Value;

pub use bpe::{Bpe, LoadError};

#[derive(Default)]
pub struct Tokenizer {
    bpe: OnceLock<Option<Bpe>>,
    memo: memo::Memo,
}

/// OpenAI's accounting for chat prompts: every message costs a few framing
/// tokens, and the reply is primed with three more.
const TOKENS_PER_MESSAGE: usize = 3;
const REPLY_PRIMING: usize = 3;

impl Tokenizer {
    fn bpe(&self) -> Option<&Bpe> {
        self.bpe
            .get_or_init(|| {
                Bpe::cl100k()
                    .inspect_err(
                        |e| tracing::error!(error = %e, "token counting falls back to bytes"),
                    )
                    .ok()
            })
            .as_ref()
    }

    /// The text of a prompt given as token ids, at most `max` bytes (lossy
    /// where ids split a character).
    pub fn decode(&self, ids: impl IntoIterator<Item = u64>, max: usize) -> String {
        let bytes = self.bpe().map(|b| b.decode(ids, max)).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    pub fn count(&self, text: &str) -> usize {
        match self.bpe() {
            Some(b) if text.len() >= memo::MIN_BYTES => self.memo.count(text, |t| b.count(t)),
            Some(b) => b.count(text),
            // Never under-counts: every token is at least one byte.
            None => text.len(),
        }
    }

    /// Tokens of every string inside `v` (a prompt or an input list).
    pub fn count_value(&self, v: &Value) -> usize {
        let mut texts = Vec::new();
        collect_strings(v, &mut texts);
        texts.iter().map(|t| self.count(t)).sum()
    }

    /// Tokens of a completion prompt or an embedding input: text, token ids
    /// (integers, a token each; counted as none, such requests reserved
    /// nothing), or lists of either.
    pub fn count_input(&self, v: &Value) -> usize {
        match v {
            Value::String(s) => self.count(s),
            Value::Number(_) => 1,
            Value::Array(a) => a.iter().map(|x| self.count_input(x)).sum(),
            other => self.count_value(other),
        }
    }

    /// Prompt tokens of a chat `messages` array, counting every string the
    /// model reads (content parts, names, tool call arguments).
    pub fn count_chat(&self, messages: &[Value]) -> usize {
        let mut total = REPLY_PRIMING;
        for m in messages {
            total += TOKENS_PER_MESSAGE + self.count_value(m);
        }
        total
    }
}

/// A prompt or input given as token ids: the ids, when every item is one.
pub fn ids_of(v: &[Value]) -> Option<Vec<u64>> {
    v.iter().map(Value::as_u64).collect()
}

/// Every string value inside `v` (keys excluded, media skipped), in
/// document order.
pub fn collect_strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| collect_strings(x, out)),
        Value::Object(o) => o
            .iter()
            .filter(|(k, _)| !is_media(k))
            .for_each(|(_, x)| collect_strings(x, out)),
        _ => {}
    }
}

/// Does this key hold media (a base64 image, audio or file in a content
/// part) rather than text the model reads as tokens? Counted as text, a
/// 900 KB image was a million characters and as many tokens.
pub fn is_media(key: &str) -> bool {
    matches!(key, "image_url" | "input_audio" | "file" | "audio")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_real_tokens() {
        let t = Tokenizer::default();
        assert_eq!(t.count("hello world"), 2);
        assert_eq!(t.count(""), 0);
        let msgs = vec![serde_json::json!({"role": "user", "content": "hello world"})];
        // 3 priming + 3 framing + "user" (1) + "hello world" (2)
        assert_eq!(t.count_chat(&msgs), 9);
        // Token ids count one each, beside text.
        let input = serde_json::json!([[1, 2, 3], "hello world", [4]]);
        assert_eq!(t.count_input(&input), 6);
    }

    /// The same counts as `bpe-openai` (itself checked against tiktoken) on
    /// text that exercises every pre-tokenizer branch and long merges.
    #[test]
    fn counts_like_bpe_openai() {
        let ours = Bpe::cl100k().unwrap_or_else(|e| panic!("{e}"));
        let theirs = bpe_openai::cl100k_base();
        let mut samples: Vec<String> = vec![
            String::new(),
            "Hello, world! It's 2026; we'll see.\n\n  indented\ttab  \r\n".into(),
            "   leading and trailing spaces   ".into(),
            "numbers 1234567 3.14159 -42 0x1F".into(),
            "Ünïcödé naïve café 東京 🤖🤖 ok".into(),
            "I'M SHOUTING, YOU'RE NOT'S 'll 'd".into(),
            "{\"json\": [1, 2, {\"k\": null}]}\n".into(),
            "a".repeat(5000),
            "ab".repeat(3000),
            "!@#$%^&*()_+=-`~[]{}|;:,.<>/?".repeat(20),
            "\n\n\n   \n \t\t \n".into(),
            "x".repeat(3) + &" ".repeat(9) + "y",
        ];
        // Every Unicode scalar class the pattern distinguishes, mixed.
        let alphabet: Vec<char> = "aZ9 \n\t'’.,é東🤖-_\r0".chars().collect();
        samples.extend(random_texts(
            &alphabet,
            0x2545_f491,
            &[1, 2, 3, 7, 31, 200],
            200,
        ));
        for s in &samples {
            assert_eq!(ours.count(s), theirs.count(s.as_str()), "{s:?}");
        }
    }

    /// The ASCII fast path (`split`) cuts exactly where the pattern does:
    /// every ASCII class (letters, digits, `\s` and the bytes `\s` leaves
    /// out, quotes for contractions, punctuation) mixed with a few non-ASCII
    /// characters that send a piece back to the regex.
    #[test]
    fn ascii_pieces_like_bpe_openai() {
        let ours = Bpe::cl100k().unwrap_or_else(|e| panic!("{e}"));
        let theirs = bpe_openai::cl100k_base();
        let mut alphabet: Vec<char> = (0u8..128).map(char::from).collect();
        alphabet.extend("'''''sStTrReEvVlLmMdD     \n\n\r\r\t0123ſé١\u{85}\u{a0}東".chars());
        for s in random_texts(&alphabet, 0x9e37_79b9, &[1, 2, 3, 4, 6, 12, 40, 300], 400) {
            assert_eq!(ours.count(&s), theirs.count(s.as_str()), "{s:?}");
        }
    }

    /// `per_len` strings of each length in `lens`, drawn from `alphabet` by
    /// a xorshift generator: the same texts on every run.
    fn random_texts(
        alphabet: &[char],
        mut seed: u64,
        lens: &[usize],
        per_len: usize,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for &len in lens {
            for _ in 0..per_len {
                let s: String = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        alphabet[(seed % alphabet.len() as u64) as usize]
                    })
                    .collect();
                out.push(s);
            }
        }
        out
    }

    /// A piece longer than a chunk (a 20 KB "word") is counted in linear
    /// time, never below the exact count and at most one token per chunk over.
    #[test]
    fn long_pieces_are_bounded() {
        let ours = Bpe::cl100k().unwrap_or_else(|e| panic!("{e}"));
        let theirs = bpe_openai::cl100k_base();
        let mut seed = 7u64;
        let word: String = (0..20_000)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                char::from(b'a' + (seed % 26) as u8)
            })
            .collect();
        let (n, exact) = (ours.count(&word), theirs.count(word.as_str()));
        assert!(n >= exact && n <= exact + 20, "{n} vs {exact}");
        for run in [" ".repeat(20_000), "a".repeat(20_000), "7".repeat(20_000)] {
            assert_eq!(ours.count(&run), theirs.count(run.as_str()));
        }
    }
}
