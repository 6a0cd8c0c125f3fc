//! Server-sent events: parsing an upstream's stream into events, and writing
//! events back out.
//!
//! The gateway never copies upstream bytes to the client verbatim: each event
//! is parsed and re-framed, and only JSON payloads (or `[DONE]`) are sent on,
//! so text inside an upstream event cannot forge events of its own.

use bytes::{Bytes, BytesMut};

/// One upstream event reduced to what OpenAI streams use: its data.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    Done,
    /// A JSON payload, compact on one line.
    Json(Bytes),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SseError {
    #[error("an event exceeded {0} bytes")]
    TooLong(usize),
}

/// Incremental parser: feed bytes as they arrive, take complete events.
pub struct Parser {
    buf: BytesMut,
    data: Vec<u8>,
    has_data: bool,
    max_event: usize,
}

impl Parser {
    pub fn new(max_event: usize) -> Parser {
        Parser {
            buf: BytesMut::new(),
            data: Vec::new(),
            has_data: false,
            max_event,
        }
    }

    /// Appends `chunk` and pushes every event it completes onto `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Event>) -> Result<(), SseError> {
        self.buf.extend_from_slice(chunk);
        while let Some(end) = memchr::memchr2(b'\n', b'\r', &self.buf) {
            // A lone '\r' at the end might be the first half of "\r\n".
            if self.buf[end] == b'\r' && end + 1 == self.buf.len() {
                break;
            }
            let skip = if self.buf[end] == b'\r' && self.buf.get(end + 1) == Some(&b'\n') {
                2
            } else {
                1
            };
            let line = self.buf.split_to(end + skip);
            self.line(&line[..end], out);
        }
        if self.buf.len() + self.data.len() > self.max_event {
            return Err(SseError::TooLong(self.max_event));
        }
        Ok(())
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<Event>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(0) => return, // comment
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        if field == b"data" {
            if self.has_data {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
            self.has_data = true;
        }
    }

    fn dispatch(&mut self, out: &mut Vec<Event>) {
        if !self.has_data {
            return;
        }
        let data = std::mem::take(&mut self.data);
        self.has_data = false;
        if data.trim_ascii() == b"[DONE]" {
            out.push(Event::Done);
            return;
        }
        if data.contains(&b'\n') || data.contains(&b'\r') {
            match serde_json::from_slice::<serde_json::Value>(&data) {
                Ok(v) => out.push(Event::Json(Bytes::from(v.to_string()))),
                Err(_) => tracing::warn!("dropped a non-JSON event from an upstream stream"),
            }
        } else if std::str::from_utf8(&data).is_ok()
            && serde_json::from_slice::<serde::de::IgnoredAny>(&data).is_ok()
        {
            // Validated without building a tree: one line of JSON passes as
            // is. (serde_json does not check the UTF-8 of strings it skips:
            // raw bytes reached clients, and the stream's moderation, which
            // could not read them, let their text through.)
            out.push(Event::Json(Bytes::from(data)));
        } else {
            tracing::warn!("dropped a non-JSON event from an upstream stream");
        }
    }
}

/// Appends one event in wire form.
pub fn write_event(out: &mut BytesMut, ev: &Event) {
    match ev {
        Event::Done => out.extend_from_slice(b"data: [DONE]\n\n"),
        Event::Json(j) => {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(j);
            out.extend_from_slice(b"\n\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<Event> {
        let mut p = Parser::new(1 << 20);
        let mut out = Vec::new();
        for c in chunks {
            assert!(p.feed(c, &mut out).is_ok());
        }
        out
    }

    #[test]
    fn events_split_anywhere() {
        let evs = parse_all(&[
            b"data: {\"a\"",
            b":1}\r",
            b"\n\r\n: ping\n\ndata: [DONE]\n\n",
        ]);
        assert_eq!(
            evs,
            vec![Event::Json(Bytes::from_static(b"{\"a\":1}")), Event::Done]
        );
    }

    #[test]
    fn multi_line_data_is_recompacted() {
        let evs = parse_all(&[b"data: {\"a\":\ndata: 1}\n\n"]);
        assert_eq!(evs, vec![Event::Json(Bytes::from_static(b"{\"a\":1}"))]);
    }

    #[test]
    fn non_json_cannot_forge_events() {
        let evs = parse_all(&[b"data: hello\n\ndata: {\"x\":\"a\\n\\ndata: [DONE]\"}\n\n"]);
        assert_eq!(evs.len(), 1);
        let mut out = BytesMut::new();
        write_event(&mut out, &evs[0]);
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 2);
    }

    #[test]
    fn events_that_are_not_utf8_are_dropped() {
        let evs = parse_all(&[b"data: {\"t\":\"kill \xff\"}\n\ndata: {\"t\":\"ok\"}\n\n"]);
        assert_eq!(
            evs,
            vec![Event::Json(Bytes::from_static(b"{\"t\":\"ok\"}"))]
        );
    }

    #[test]
    fn oversized_events_are_refused() {
        let mut p = Parser::new(8);
        let mut out = Vec::new();
        assert_eq!(
            p.feed(b"data: 0123456789", &mut out),
            Err(SseError::TooLong(8))
        );
    }
}
