//! Reading a client's JSON body: content type, size limit (from
//! `Content-Length` before reading, and while the body streams in), and the
//! fields the gateway routes, limits and counts on.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap};
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::{Map, Value};

use super::Endpoint;
use crate::error::{ApiError, EdgeError, RequestError};
use crate::tokens::Tokenizer;

pub async fn read_json(
    headers: &HeaderMap,
    body: Body,
    limit: u64,
    idle: Duration,
) -> Result<Bytes, ApiError> {
    check_content_type(headers)?;
    let encoding = content_encoding(headers)?;
    if let Some(len) = headers.get(header::CONTENT_LENGTH) {
        let len: u64 = len
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ApiError::invalid("Invalid Content-Length header.", None))?;
        if len > limit {
            // A client that waits for `100 Continue` sends nothing more: it
            // gets the 413 without being asked for the body (polling the
            // body would send the 100 and take the whole upload).
            let waits = headers
                .get(header::EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
            if !waits {
                drain(body).await;
            }
            return Err(RequestError::TooLarge { limit }.into());
        }
    }
    if let Some(enc) = encoding {
        return decode(body, enc, limit, idle).await;
    }
    // Counted as it streams in: a chunked body has no Content-Length.
    let mut body = body;
    let mut buf = bytes::BytesMut::new();
    loop {
        let frame = tokio::time::timeout(idle, body.frame())
            .await
            .map_err(|_| slow_body(idle))?;
        match frame {
            None => return Ok(buf.freeze()),
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    if (buf.len() + d.len()) as u64 > limit {
                        drain(body).await;
                        return Err(RequestError::TooLarge { limit }.into());
                    }
                    buf.extend_from_slice(&d);
                }
            }
            Some(Err(e)) => {
                return Err(ApiError::invalid(
                    format!("The request body could not be read: {e}."),
                    None,
                ))
            }
        }
    }
}

fn slow_body(idle: Duration) -> ApiError {
    EdgeError::RequestTimeout {
        part: "body",
        after: idle,
    }
    .into()
}

#[derive(Debug, Clone, Copy)]
enum Encoding {
    Gzip,
    Deflate,
    Brotli,
    Zstd,
}

fn content_encoding(headers: &HeaderMap) -> Result<Option<Encoding>, ApiError> {
    let mut found = None;
    for v in headers.get_all(header::CONTENT_ENCODING) {
        for token in v.to_str().unwrap_or("?").split(',').map(str::trim) {
            let enc = match token.to_ascii_lowercase().as_str() {
                "" | "identity" => continue,
                "gzip" | "x-gzip" => Encoding::Gzip,
                "deflate" => Encoding::Deflate,
                "br" => Encoding::Brotli,
                "zstd" => Encoding::Zstd,
                other => {
                    return Err(ApiError::invalid(
                        format!("Unsupported Content-Encoding {other:?}: send gzip, deflate, br, zstd or none."),
                        None,
                    ))
                }
            };
            if found.replace(enc).is_some() {
                return Err(ApiError::invalid(
                    "Only one Content-Encoding is accepted.",
                    None,
                ));
            }
        }
    }
    Ok(found)
}

/// Decompresses a body as it arrives, refusing it (413) as soon as the
/// decompressed size passes `limit`: a decompression bomb costs at most
/// `limit` bytes of memory.
async fn decode(body: Body, enc: Encoding, limit: u64, idle: Duration) -> Result<Bytes, ApiError> {
    use futures_util::StreamExt;
    use tokio::io::AsyncReadExt;
    let stream = body.into_data_stream();
    let timed = futures_util::stream::unfold(stream, move |mut s| async move {
        match tokio::time::timeout(idle, s.next()).await {
            Ok(Some(Ok(b))) => Some((Ok(b), s)),
            Ok(Some(Err(e))) => Some((Err(std::io::Error::other(e)), s)),
            Ok(None) => None,
            Err(_) => Some((Err(std::io::ErrorKind::TimedOut.into()), s)),
        }
    });
    let reader = tokio_util::io::StreamReader::new(Box::pin(timed));
    use async_compression::tokio::bufread as dec;
    let decoder: std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>> = match enc {
        // Every member or frame is read (RFC 1952 allows several), and
        // bytes after the last that are not one are refused, not dropped.
        Encoding::Gzip => {
            let mut d = dec::GzipDecoder::new(reader);
            d.multiple_members(true);
            Box::pin(d)
        }
        Encoding::Deflate => Box::pin(dec::ZlibDecoder::new(reader)),
        Encoding::Brotli => Box::pin(dec::BrotliDecoder::new(reader)),
        Encoding::Zstd => {
            let mut d = dec::ZstdDecoder::new(reader);
            d.multiple_members(true);
            Box::pin(d)
        }
    };
    let mut out = Vec::new();
    match decoder.take(limit + 1).read_to_end(&mut out).await {
        Ok(_) if out.len() as u64 > limit => Err(RequestError::TooLarge { limit }.into()),
        Ok(_) => Ok(out.into()),
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Err(slow_body(idle)),
        Err(_) => Err(ApiError::invalid(
            format!("The request body is not valid {enc:?} data (Content-Encoding).")
                .to_lowercase(),
            None,
        )),
    }
}

/// Reads and discards a refused body, up to 64 MiB or 5 s, so a client still
/// sending reads the 413 instead of a reset connection (which would lose the
/// answer); the 413 says `Connection: close`.
async fn drain(mut body: Body) {
    const MAX: usize = 64 * 1024 * 1024;
    let mut seen = 0;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while seen < MAX {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(f))) => seen += f.data_ref().map_or(0, |d| d.len()),
            _ => return,
        }
    }
}

fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Err(RequestError::ContentType("missing".into()).into());
    };
    let ct = ct.to_str().unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if mime.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(RequestError::ContentType(format!("{mime:?}")).into())
    }
}

/// A parsed request body and the fields the gateway acts on; everything
/// else passes through untouched.
#[derive(Debug)]
pub struct Parsed {
    pub model: String,
    pub stream: bool,
    pub include_usage: bool,
    /// `max_completion_tokens`, else `max_tokens`.
    pub max_tokens: Option<u64>,
    /// Number of choices asked for.
    pub n: u64,
    pub doc: Map<String, Value>,
}

fn type_error(field: &str, expected: &str) -> ApiError {
    ApiError::invalid(
        format!("Invalid type for '{field}': expected {expected}."),
        Some(field),
    )
}

/// Parses a chat, completions or embeddings body with the default depth bound.
pub fn parse(body: &[u8]) -> Result<Parsed, ApiError> {
    parse_for(body, Endpoint::Chat, 64)
}

/// Parses strictly (no duplicate keys, at most `max_depth` levels) and
/// reads the fields the gateway acts on. Only `/v1/moderations` may omit
/// the model.
pub fn parse_for(body: &[u8], endpoint: Endpoint, max_depth: usize) -> Result<Parsed, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(RequestError::Json(if first.is_none() {
            "the body is empty; expected a JSON object".into()
        } else {
            "expected a JSON object at line 1".into()
        })
        .into());
    }
    let doc = match crate::validate::json::parse_object(body, max_depth) {
        Ok(d) => d,
        Err(crate::validate::json::StrictError::Syntax(e)) => {
            return Err(RequestError::Json(e).into())
        }
        Err(crate::validate::json::StrictError::Refused(r)) => {
            return Err(ApiError::invalid(r.message, Some(&r.param)))
        }
    };
    let model = match doc.get("model") {
        None | Some(Value::Null) if endpoint == Endpoint::Moderations => {
            crate::safety::endpoint::MODEL.to_owned()
        }
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(ApiError::invalid(
                "You must provide a model parameter.",
                Some("model"),
            ))
        }
        Some(_) => return Err(type_error("model", "a string")),
    };
    let stream = match doc.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(type_error("stream", "a boolean")),
    };
    let include_usage = doc
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let uint = |field: &str| -> Result<Option<u64>, ApiError> {
        match doc.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| type_error(field, "a non-negative integer")),
        }
    };
    // Both may be sent, and an upstream may read either: reserve for the larger.
    let max_tokens = uint("max_completion_tokens")?.max(uint("max_tokens")?);
    // `best_of` candidates are generated (and billed) like choices.
    let n = uint("n")?.max(uint("best_of")?).unwrap_or(1).max(1);
    Ok(Parsed {
        model,
        stream,
        include_usage,
        max_tokens,
        n,
        doc,
    })
}

impl Parsed {
    /// Prompt tokens: every string the model will read.
    pub fn prompt_tokens(&self, endpoint: Endpoint, tok: &Tokenizer) -> u64 {
        let count = match endpoint {
            Endpoint::Chat => match self.doc.get("messages") {
                Some(Value::Array(m)) => tok.count_chat(m),
                _ => 0,
            },
            Endpoint::Completions => self.doc.get("prompt").map_or(0, |p| tok.count_input(p)),
            Endpoint::Embeddings | Endpoint::Moderations => {
                self.doc.get("input").map_or(0, |p| tok.count_input(p))
            }
        };
        count as u64
    }

    /// `body` (the bytes this was parsed from) with
    /// `stream_options.include_usage` set, so the upstream reports the usage
    /// the gateway must charge. Only that one member is rewritten: the rest
    /// goes as the client wrote it. (Printing the parsed map sorted every
    /// object's keys, and structured outputs follow a schema's property
    /// order, so a model asked to reason before it answers answered first;
    /// integers past 64 bits became floats.)
    pub fn with_usage_requested(&self, body: &[u8]) -> Bytes {
        let options = match self.doc.get("stream_options") {
            Some(Value::Object(o)) => {
                let mut o = o.clone();
                o.insert("include_usage".into(), Value::Bool(true));
                Value::Object(o)
            }
            _ => serde_json::json!({"include_usage": true}),
        };
        let options = serde_json::to_vec(&options).unwrap_or_default();
        let mut out = Vec::with_capacity(body.len() + options.len() + 20);
        match member_value_span(body, "stream_options") {
            Some((start, end)) => {
                out.extend_from_slice(&body[..start]);
                out.extend_from_slice(&options);
                out.extend_from_slice(&body[end..]);
            }
            None => {
                // The body is an object (parsed above): add the member first.
                let open = body.iter().position(|&b| b == b'{').unwrap_or(0);
                let empty = body[open + 1..]
                    .iter()
                    .find(|b| !b.is_ascii_whitespace())
                    .is_none_or(|&b| b == b'}');
                out.extend_from_slice(&body[..=open]);
                out.extend_from_slice(b"\"stream_options\":");
                out.extend_from_slice(&options);
                if !empty {
                    out.push(b',');
                }
                out.extend_from_slice(&body[open + 1..]);
            }
        }
        Bytes::from(out)
    }
}

/// Where the value of the top-level member `name` lies in `body`, a JSON
/// object already read strictly (well formed, no duplicate keys). Keys are
/// compared decoded, so an escaped spelling of `name` is found too.
fn member_value_span(body: &[u8], name: &str) -> Option<(usize, usize)> {
    let mut at = skip_ws(body, 0);
    if body.get(at) != Some(&b'{') {
        return None;
    }
    at += 1;
    loop {
        at = skip_ws(body, at);
        match body.get(at)? {
            b'}' => return None,
            b',' => at = skip_ws(body, at + 1),
            _ => {}
        }
        let (key, end) = next_value::<std::borrow::Cow<str>>(body, at)?;
        at = skip_ws(body, end);
        if body.get(at) != Some(&b':') {
            return None;
        }
        let start = skip_ws(body, at + 1);
        let (_, end) = next_value::<serde::de::IgnoredAny>(body, start)?;
        if key == name {
            return Some((start, end));
        }
        at = end;
    }
}

/// The JSON value at `at` and the offset just past it.
fn next_value<'a, T: serde::Deserialize<'a>>(body: &'a [u8], at: usize) -> Option<(T, usize)> {
    let mut values = serde_json::Deserializer::from_slice(body.get(at..)?).into_iter::<T>();
    let v = values.next()?.ok()?;
    Some((v, at + values.byte_offset()))
}

fn skip_ws(body: &[u8], mut at: usize) -> usize {
    while body.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let p = parse(br#"{"model":"m","stream":true,"max_tokens":5,"n":2,"extra":{"x":[1]}}"#)
            .unwrap();
        assert_eq!(
            (p.model.as_str(), p.stream, p.max_tokens, p.n),
            ("m", true, Some(5), 2)
        );
        assert!(parse(br#"["m"]"#).is_err());
        assert!(parse(br#"{"model":3}"#).is_err());
        assert!(parse(br#"{"stream":true}"#).is_err());
        assert!(parse(br#"{"model":"m","stream":"yes"}"#).is_err());
        assert!(parse(br#"{"model":"m","max_tokens":-1}"#).is_err());
        assert!(parse(br#"{"model":"m""#).is_err());
        assert!(parse(b"").is_err());
        assert!(parse(br#"{"model":"m","model":"n"}"#).is_err());
        assert!(parse_for(br#"{"input":"x"}"#, Endpoint::Moderations, 8).is_ok());
    }

    #[test]
    fn usage_is_requested_without_losing_fields() {
        let body = br#"{"model":"m","stream":true,"stream_options":{"x":1},"y":2}"#;
        let p = parse(body).unwrap();
        let v: Value = serde_json::from_slice(&p.with_usage_requested(body)).unwrap();
        assert_eq!(
            v["stream_options"],
            serde_json::json!({"x": 1, "include_usage": true})
        );
        assert_eq!(v["y"], 2);
    }

    #[test]
    fn usage_is_requested_without_touching_the_rest() {
        let cases: [(&[u8], &str); 5] = [
            (
                br#" {"model":"m", "zeta":1,"alpha":2.50,"seed":123456789012345678901234}"#,
                r#" {"stream_options":{"include_usage":true},"model":"m", "zeta":1,"alpha":2.50,"seed":123456789012345678901234}"#,
            ),
            (
                br#"{"b":[1,{"s":"}\"{"}], "stream_options" : null ,"a":1}"#,
                r#"{"b":[1,{"s":"}\"{"}], "stream_options" : {"include_usage":true} ,"a":1}"#,
            ),
            (
                br#"{"model":"m","stream_options":{"include_usage":false,"z":[]}}"#,
                r#"{"model":"m","stream_options":{"include_usage":true,"z":[]}}"#,
            ),
            (
                br#"{"model":"m","stream_options":7}"#,
                r#"{"model":"m","stream_options":{"include_usage":true}}"#,
            ),
            (b"{ }", r#"{"stream_options":{"include_usage":true} }"#),
        ];
        for (body, want) in cases {
            let doc = crate::validate::json::parse_object(body, 8).unwrap();
            let p = Parsed {
                model: "m".into(),
                stream: true,
                include_usage: false,
                max_tokens: None,
                n: 1,
                doc,
            };
            let out = p.with_usage_requested(body);
            assert_eq!(std::str::from_utf8(&out).unwrap(), want);
        }
    }
}
