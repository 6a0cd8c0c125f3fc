//! One top-level field of an upstream's JSON answer, found without parsing
//! the rest: the gateway reads `usage` from every answer it relays, and a
//! full parse of the answer (which the client gets untouched anyway) took
//! 6.9k instructions per bench request where this walk and the parse of
//! `usage` alone take 4.5k (callgrind, BENCHMARKS.md).

use serde::de::DeserializeOwned;

/// The value of `key` in the JSON object `doc`, deserialized; `None` when
/// the key is absent or `null`, or its value does not deserialize. The walk
/// only tracks strings and nesting, so a `doc` that is not JSON may still
/// yield a value; the caller only trusts what it finds as much as the
/// upstream that sent it.
pub fn field<T: DeserializeOwned>(doc: &[u8], key: &str) -> Option<T> {
    let at = find(doc, key.as_bytes())?;
    let mut values = serde_json::Deserializer::from_slice(&doc[at..]).into_iter::<Option<T>>();
    values.next()?.ok().flatten()
}

/// Offset of the value of top-level `key` in the object `doc`.
fn find(doc: &[u8], key: &[u8]) -> Option<usize> {
    let mut i = skip_ws(doc, 0);
    if doc.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    let mut depth = 1usize;
    // At depth 1, the next string is a key (after `{` or `,`).
    let mut key_next = true;
    while let Some(&b) = doc.get(i) {
        match b {
            b'"' => {
                let end = string_end(doc, i + 1)?;
                if depth == 1 && key_next {
                    let colon = skip_ws(doc, end + 1);
                    if doc.get(colon) == Some(&b':') {
                        if &doc[i + 1..end] == key {
                            return Some(skip_ws(doc, colon + 1));
                        }
                        key_next = false;
                        i = colon + 1;
                        continue;
                    }
                }
                i = end + 1;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return None;
                }
            }
            b',' if depth == 1 => key_next = true,
            _ => {}
        }
        i += 1;
    }
    None
}

/// Index of the quote closing the string whose content starts at `from`.
fn string_end(doc: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let j = from + memchr::memchr2(b'"', b'\\', doc.get(from..)?)?;
        if doc[j] == b'"' {
            return Some(j);
        }
        from = j + 2;
    }
}

fn skip_ws(doc: &[u8], mut i: usize) -> usize {
    while doc
        .get(i)
        .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::forward::Usage;

    /// What a full parse of the document says.
    fn parsed(doc: &str) -> Option<Usage> {
        #[derive(serde::Deserialize)]
        struct WithUsage {
            usage: Option<Usage>,
        }
        serde_json::from_str::<WithUsage>(doc).ok()?.usage
    }

    #[test]
    fn finds_what_a_full_parse_finds() {
        let u = r#"{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}"#;
        let docs = [
            format!(r#"{{"id":"x","choices":[{{"message":{{"content":"hi"}}}}],"usage":{u}}}"#),
            format!(r#"{{"usage":{u},"id":"x"}}"#),
            format!(" {{ \"usage\" :\n {u} }}"),
            // Look-alikes: in a string, nested, as a value, escaped quotes.
            format!(r#"{{"content":"\"usage\":{u}","usage":null}}"#),
            format!(r#"{{"choices":[{{"usage":{u}}}],"x":1}}"#),
            format!(r#"{{"a":{{"usage":{u}}},"usage":{{"prompt_tokens":1}}}}"#),
            r#"{"note":"usage","n":[1,{"k":"}"}]}"#.to_owned(),
            r#"{"s":"a\\","usage":{"total_tokens":2}}"#.to_owned(),
            r#"{"s":"\\\"usage\\\":{}","usage":{"completion_tokens":5}}"#.to_owned(),
            r#"{"id":"x"}"#.to_owned(),
            String::new(),
        ];
        for d in &docs {
            assert_eq!(field::<Usage>(d.as_bytes(), "usage"), parsed(d), "{d}");
        }
        assert!(field::<Usage>(docs[0].as_bytes(), "usage").is_some());
        // An array is not an answer with usage (serde would read a struct
        // out of its first element).
        assert_eq!(
            field::<Usage>(br#"[{"usage":{"total_tokens":1}}]"#, "usage"),
            None
        );
    }

    /// Any prefix of an answer (a body cut short) is never read past its end.
    #[test]
    fn truncated_documents_are_safe() {
        let d = r#"{"id":"x","s":"q\"uo\\te","choices":[{"a":[1,2]}],"usage":{"total_tokens":9}}"#;
        for n in 0..d.len() {
            let _ = field::<Usage>(&d.as_bytes()[..n], "usage");
        }
    }
}
