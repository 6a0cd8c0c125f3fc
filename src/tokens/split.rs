//! cl100k's pre-tokenizer for ASCII text, by hand: the same pieces as the
//! pattern in `bpe`, found in a few instructions a byte where the regex
//! engine spent ~500 instructions a piece (callgrind, BENCHMARKS.md).
//!
//! It answers only when every byte it must look at is ASCII, since Unicode
//! letters, numbers and spaces (and `ſ`, which `(?i)'s` matches) decide
//! pieces too; otherwise it returns `None` and the regex takes that piece.

/// The end of the piece starting at `at` (`at < text.len()`), if ASCII decides it.
pub fn ascii_piece(text: &[u8], at: usize) -> Option<usize> {
    let c = text[at];
    let next = text.get(at + 1).copied();
    if !c.is_ascii() || next.is_some_and(|b| !b.is_ascii()) {
        return None;
    }
    // `(?i:'s|'t|'re|'ve|'m|'ll|'d)`
    if c == b'\'' {
        if let Some(n) = contraction(&text[at + 1..])? {
            return Some(at + 1 + n);
        }
    }
    // `[^\r\n\p{L}\p{N}]?\p{L}+`
    if c.is_ascii_alphabetic() {
        return run(text, at + 1, |b| b.is_ascii_alphabetic());
    }
    let other = !matches!(c, b'\r' | b'\n') && !c.is_ascii_digit();
    if other && next.is_some_and(|b| b.is_ascii_alphabetic()) {
        return run(text, at + 2, |b| b.is_ascii_alphabetic());
    }
    // `\p{N}{1,3}`
    if c.is_ascii_digit() {
        let mut end = at + 1;
        while end < at + 3 {
            match text.get(end) {
                Some(b) if !b.is_ascii() => return None,
                Some(b) if b.is_ascii_digit() => end += 1,
                _ => break,
            }
        }
        return Some(end);
    }
    // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
    let start = if c == b' ' && next.is_some_and(punct) {
        at + 1
    } else {
        at
    };
    if punct(text[start]) {
        let end = run(text, start + 1, punct)?;
        return run(text, end, |b| matches!(b, b'\r' | b'\n'));
    }
    whitespace(text, at)
}

/// A run of whitespace at `at`: `\s*[\r\n]+`, `\s+$`, `\s+(?!\S)`, `\s+`.
fn whitespace(text: &[u8], at: usize) -> Option<usize> {
    let end = run(text, at, space)?;
    if let Some(last) = text[at..end]
        .iter()
        .rposition(|&b| matches!(b, b'\r' | b'\n'))
    {
        return Some(at + last + 1);
    }
    if end == text.len() || end - at == 1 {
        return Some(end);
    }
    // The last space goes with what follows it.
    Some(end - 1)
}

/// Length of the contraction at the start of `rest`, `Some(None)` if there is none.
fn contraction(rest: &[u8]) -> Option<Option<usize>> {
    let lower = |i: usize| rest.get(i).map(u8::to_ascii_lowercase);
    match lower(0) {
        None => Some(None),
        Some(b) if !b.is_ascii() => None,
        Some(b's' | b't' | b'm' | b'd') => Some(Some(1)),
        Some(b @ (b'r' | b'v' | b'l')) => {
            let want = if b == b'l' { b'l' } else { b'e' };
            match rest.get(1) {
                Some(x) if !x.is_ascii() => None,
                Some(x) if x.to_ascii_lowercase() == want => Some(Some(2)),
                _ => Some(None),
            }
        }
        Some(_) => Some(None),
    }
}

/// The end of the run of bytes matching `class` from `from`; `None` if it
/// meets a non-ASCII byte, which might belong to the class.
fn run(text: &[u8], from: usize, class: impl Fn(u8) -> bool) -> Option<usize> {
    let mut end = from;
    while let Some(&b) = text.get(end) {
        if !b.is_ascii() {
            return None;
        }
        if !class(b) {
            break;
        }
        end += 1;
    }
    Some(end)
}

/// `\s` in ASCII (Unicode's `White_Space`; not 0x1C–0x1F).
fn space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0B | 0x0C | b'\r' | b' ')
}

/// `[^\s\p{L}\p{N}]` in ASCII.
fn punct(b: u8) -> bool {
    b.is_ascii() && !space(b) && !b.is_ascii_alphanumeric()
}
