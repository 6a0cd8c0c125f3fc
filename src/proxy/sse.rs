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
    /// The last line ended in '\r': a '\n' opening the next chunk is that
    /// line's ending, not an empty line.
    after_cr: bool,
    /// Nothing fed yet: a byte-order mark there is not part of the stream.
    at_start: bool,
}

impl Parser {
    pub fn new(max_event: usize) -> Parser {
        Parser {
            buf: BytesMut::new(),
            data: Vec::new(),
            has_data: false,
            max_event,
            after_cr: false,
            at_start: true,
        }
    }

    /// Appends `chunk` and pushes every event it completes onto `out`.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<Event>) -> Result<(), SseError> {
        if std::mem::take(&mut self.after_cr) {
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            } else {
                self.after_cr = chunk.is_empty();
            }
        }
        self.buf.extend_from_slice(chunk);
        if self.at_start && !self.buf.is_empty() {
            const BOM: &[u8] = "\u{feff}".as_bytes();
            if self.buf.len() < BOM.len() && BOM.starts_with(&self.buf) {
                return Ok(()); // maybe a mark split across chunks
            }
            if self.buf.starts_with(BOM) {
                let _ = self.buf.split_to(BOM.len());
            }
            self.at_start = false;
        }
        while let Some(end) = memchr::memchr2(b'\n', b'\r', &self.buf) {
            // A '\r' ends its line at once (a stream may end its lines with
            // '\r' alone); a '\n' after it, here or in the next chunk, is
            // the same line ending.
            let skip = match (self.buf[end], self.buf.get(end + 1)) {
                (b'\r', Some(b'\n')) => 2,
                (b'\r', None) => {
                    self.after_cr = true;
                    1
                }
                _ => 1,
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
    fn carriage_returns_alone_end_lines_at_once() {
        let mut p = Parser::new(1 << 20);
        let mut out = Vec::new();
        // The event is whole at its second '\r': it must not wait for more.
        p.feed(b"data: {\"a\":1}\r\r", &mut out).unwrap();
        assert_eq!(out, vec![Event::Json(Bytes::from_static(b"{\"a\":1}"))]);
        p.feed(b"data: [DONE]\r\r", &mut out).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[1], Event::Done);
        // "\r" then "\n" across chunks is one line ending, not two.
        let evs = parse_all(&[b"data: {\"b\":2}\r", b"\n", b"\r", b"\ndata: [DONE]\n\n"]);
        assert_eq!(evs.len(), 2, "{evs:?}");
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_event() {
        let want = vec![Event::Json(Bytes::from_static(b"{}")), Event::Done];
        assert_eq!(
            parse_all(&["\u{feff}data: {}\n\ndata: [DONE]\n\n".as_bytes()]),
            want
        );
        assert_eq!(
            parse_all(&[b"\xef", b"\xbb", b"\xbfdata: {}\n\n", b"data: [DONE]\n\n"]),
            want
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
