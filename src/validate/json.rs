//! Strict JSON reading of a request body: one object, no duplicate keys,
//! bounded nesting. (`serde_json` already refuses invalid UTF-8, lone
//! surrogates, `NaN` and trailing garbage; a plain `Map` would silently keep
//! the last of two equal keys, and the gateway and the upstream could then
//! read different requests.)

use std::cell::RefCell;
use std::fmt;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Where the reader is, as a chain on the stack: nothing is allocated
/// unless an error needs the path.
#[derive(Clone, Copy)]
enum At<'a> {
    Root,
    Key(&'a str, &'a At<'a>),
    Index(usize, &'a At<'a>),
}

impl At<'_> {
    fn depth(&self) -> usize {
        match self {
            At::Root => 0,
            At::Key(_, p) | At::Index(_, p) => 1 + p.depth(),
        }
    }

    /// `messages[3].content` form.
    fn param(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            At::Root => {}
            At::Key(k, p) => {
                p.write(out);
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            At::Index(i, p) => {
                p.write(out);
                out.push_str(&format!("[{i}]"));
            }
        }
    }
}

/// Why a structurally valid JSON text is still refused, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub param: String,
    pub message: String,
}

struct Ctx {
    max_depth: usize,
    refusal: RefCell<Option<Refusal>>,
}

#[derive(Clone, Copy)]
struct Seed<'c, 'a> {
    ctx: &'c Ctx,
    at: &'a At<'a>,
}

impl<'de> DeserializeSeed<'de> for Seed<'_, '_> {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl Seed<'_, '_> {
    fn refuse<E: serde::de::Error>(&self, param: String, message: String) -> E {
        let e = E::custom(&message);
        *self.ctx.refusal.borrow_mut() = Some(Refusal { param, message });
        e
    }

    fn enter<E: serde::de::Error>(&self) -> Result<(), E> {
        if self.at.depth() >= self.ctx.max_depth {
            return Err(self.refuse(
                self.at.param(),
                format!(
                    "The JSON body is nested more than {} levels deep.",
                    self.ctx.max_depth
                ),
            ));
        }
        Ok(())
    }
}

impl<'de> Visitor<'de> for Seed<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number is not finite"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.enter()?;
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        loop {
            let at = At::Index(out.len(), self.at);
            let seed = Seed {
                ctx: self.ctx,
                at: &at,
            };
            match seq.next_element_seed(seed)? {
                Some(v) => out.push(v),
                None => return Ok(Value::Array(out)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.enter()?;
        Ok(Value::Object(self.object(&mut map)?))
    }
}

impl Seed<'_, '_> {
    fn object<'de, A: MapAccess<'de>>(&self, map: &mut A) -> Result<Map<String, Value>, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let at = At::Key(&key, self.at);
            if out.contains_key(&key) {
                return Err(self.refuse(
                    at.param(),
                    format!(
                        "The key {key:?} appears twice in the same object; send each key once."
                    ),
                ));
            }
            let v = map.next_value_seed(Seed {
                ctx: self.ctx,
                at: &at,
            })?;
            out.insert(key, v);
        }
        Ok(out)
    }
}

/// Either a refusal with the offending field, or `serde_json`'s own
/// syntax error (which says where it broke).
#[derive(Debug)]
pub enum StrictError {
    Refused(Refusal),
    Syntax(String),
}

/// Reads one JSON object; the caller has checked that the body starts with `{`.
pub fn parse_object(body: &[u8], max_depth: usize) -> Result<Map<String, Value>, StrictError> {
    let ctx = Ctx {
        max_depth: max_depth.max(1),
        refusal: RefCell::new(None),
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let seed = Seed {
        ctx: &ctx,
        at: &At::Root,
    };
    let parsed = de
        .deserialize_map(ObjectOnly(seed))
        .and_then(|m| de.end().map(|()| m));
    match parsed {
        Ok(m) => Ok(m),
        Err(e) => Err(match ctx.refusal.into_inner() {
            Some(r) => StrictError::Refused(r),
            None => StrictError::Syntax(e.to_string()),
        }),
    }
}

use serde::Deserializer as _;

struct ObjectOnly<'c, 'a>(Seed<'c, 'a>);

impl<'de> Visitor<'de> for ObjectOnly<'_, '_> {
    type Value = Map<String, Value>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        self.0.object(&mut map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(body: &str) -> Refusal {
        match parse_object(body.as_bytes(), 4) {
            Err(StrictError::Refused(r)) => r,
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn duplicates_and_depth_name_the_field() {
        assert_eq!(refusal(r#"{"model":"a","model":"b"}"#).param, "model");
        assert_eq!(
            refusal(r#"{"messages":[{"role":"user"},{"role":"user","role":"x"}]}"#).param,
            "messages[1].role"
        );
        assert_eq!(refusal(r#"{"a":{"b":{"c":{"d":{}}}}}"#).param, "a.b.c.d");
        assert!(parse_object(br#"{"a":{"b":{"c":1}}}"#, 4).is_ok());
    }

    #[test]
    fn syntax_errors_stay_syntax_errors() {
        for bad in [
            &br#"{"a":NaN}"#[..],
            br#"{"a":1} x"#,
            br#"{"a":"\ud800"}"#,
            b"{\"a\":\"\xff\"}",
            br#"{"a":1e999}"#,
        ] {
            assert!(
                matches!(parse_object(bad, 8), Err(StrictError::Syntax(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
