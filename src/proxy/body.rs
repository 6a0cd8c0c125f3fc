//! Reading a client's JSON body: content type, size limit (from
//! `Content-Length` before reading, and while the body streams in), and the
//! few fields the gateway routes on.

use axum::body::Body;
use axum::http::{header, HeaderMap};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Deserialize;

use crate::error::{ApiError, RequestError};

pub async fn read_json(headers: &HeaderMap, body: Body, limit: u64) -> Result<Bytes, ApiError> {
    check_content_type(headers)?;
    if let Some(len) = headers.get(header::CONTENT_LENGTH) {
        let len: u64 = len
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ApiError::invalid("Invalid Content-Length header.", None))?;
        if len > limit {
            return Err(RequestError::TooLarge { limit }.into());
        }
    }
    let limited = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(RequestError::TooLarge { limit }.into())
        }
        Err(e) => Err(ApiError::invalid(
            format!("The request body could not be read: {e}."),
            None,
        )),
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

/// The fields the gateway needs before forwarding; everything else in the
/// body passes through untouched.
#[derive(Debug)]
pub struct Head {
    pub model: String,
    pub stream: bool,
}

pub fn parse_head(body: &[u8]) -> Result<Head, ApiError> {
    #[derive(Deserialize)]
    struct Raw {
        model: Option<serde_json::Value>,
        stream: Option<serde_json::Value>,
    }
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(RequestError::Json(if first.is_none() {
            "the body is empty; expected a JSON object".into()
        } else {
            "expected a JSON object at line 1".into()
        })
        .into());
    }
    let raw: Raw = serde_json::from_slice(body).map_err(|e| RequestError::Json(e.to_string()))?;
    let model = match raw.model {
        Some(serde_json::Value::String(m)) if !m.is_empty() => m,
        Some(serde_json::Value::String(_)) | None => {
            return Err(ApiError::invalid(
                "You must provide a model parameter.",
                Some("model"),
            ))
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "Invalid type for 'model': expected a string.",
                Some("model"),
            ))
        }
    };
    let stream = match raw.stream {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Bool(b)) => b,
        Some(_) => {
            return Err(ApiError::invalid(
                "Invalid type for 'stream': expected a boolean.",
                Some("stream"),
            ))
        }
    };
    Ok(Head { model, stream })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_fields() {
        let h = parse_head(br#"{"model":"m","stream":true,"extra":{"x":[1]}}"#);
        assert!(matches!(h, Ok(Head { ref model, stream: true }) if model == "m"));
        assert!(parse_head(br#"["m"]"#).is_err());
        assert!(parse_head(br#"{"model":3}"#).is_err());
        assert!(parse_head(br#"{"stream":true}"#).is_err());
        assert!(parse_head(br#"{"model":"m","stream":"yes"}"#).is_err());
        assert!(parse_head(br#"{"model":"m""#).is_err());
        assert!(parse_head(b"").is_err());
    }
}
