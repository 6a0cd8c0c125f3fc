//! One top-level field of an upstream's JSON answer, read while the answer
//! is checked to be JSON: the gateway charges every answer its `usage`, and
//! fails over from one the client could not read. Everything else is
//! skipped, never built (a full parse into a `Value` took 6.9k instructions
//! per bench request, BENCHMARKS.md).

use serde::de::DeserializeOwned;

/// Checks that `doc` is one JSON object (its strings UTF-8 too, which
/// serde_json does not check in what it skips) and reads its top-level
/// `key` on the way: `None` when it is not, `Some(None)` when the key is
/// absent, `null` or of another shape. One pass where a check and then
/// [`field`] were two (~3k instructions an answer).
pub fn object_field<T: DeserializeOwned>(doc: &[u8], key: &str) -> Option<Option<T>> {
    std::str::from_utf8(doc).ok()?;
    let mut de = serde_json::Deserializer::from_slice(doc);
    let found =
        serde::Deserializer::deserialize_map(&mut de, Top::<T> { key, found: None }).ok()?;
    de.end().ok()?;
    Some(found)
}

struct Top<'k, T> {
    key: &'k str,
    found: Option<T>,
}

impl<'de, T: DeserializeOwned> serde::de::Visitor<'de> for Top<'_, T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<M: serde::de::MapAccess<'de>>(
        mut self,
        mut map: M,
    ) -> Result<Option<T>, M::Error> {
        while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if k == self.key && self.found.is_none() {
                // Read leniently: a value of another shape is no usage,
                // not an unreadable answer.
                let v: serde_json::Value = map.next_value()?;
                self.found = serde_json::from_value(v).ok();
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(self.found)
    }
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
            // Another shape is no usage, not an unreadable answer.
            r#"{"usage":"lots"}"#.to_owned(),
        ];
        for d in &docs {
            // What a full parse says: not an object, or its usage.
            let want = serde_json::from_str::<serde_json::Value>(d)
                .ok()
                .filter(serde_json::Value::is_object)
                .map(|_| parsed(d));
            assert_eq!(object_field::<Usage>(d.as_bytes(), "usage"), want, "{d}");
        }
        assert!(object_field::<Usage>(docs[0].as_bytes(), "usage").is_some_and(|u| u.is_some()));
    }

    /// What is not one JSON object is refused: nothing, an array, text
    /// after the object, a string that is not UTF-8.
    #[test]
    fn what_is_not_an_answer_is_refused() {
        for d in [
            &b""[..],
            br#"[{"usage":{"total_tokens":1}}]"#,
            br#"{"id":"x"} trailing"#,
            b"{\"s\":\"\xff\"}",
            br#"{"id": "x", "choices": [ this is not json"#,
        ] {
            assert_eq!(
                object_field::<Usage>(d, "usage"),
                None,
                "{}",
                String::from_utf8_lossy(d)
            );
        }
    }

    /// Any prefix of an answer (a body cut short) is refused, never read
    /// past its end.
    #[test]
    fn truncated_documents_are_refused() {
        let d = r#"{"id":"x","s":"q\"uo\\te","choices":[{"a":[1,2]}],"usage":{"total_tokens":9}}"#;
        for n in 0..d.len() {
            assert_eq!(object_field::<Usage>(&d.as_bytes()[..n], "usage"), None);
        }
        assert!(object_field::<Usage>(d.as_bytes(), "usage").is_some());
    }
}
