//! An upstream's SSE bytes, fed in arbitrary chunkings: the parser and the
//! re-framing must never panic, and whatever is re-emitted must parse back
//! to the same events (no forged events).
#![no_main]

use assisters::proxy::sse::{write_event, Parser};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let cut = usize::from(split).min(rest.len());
    let mut p = Parser::new(64 * 1024);
    let mut events = Vec::new();
    if p.feed(&rest[..cut], &mut events).is_err() || p.feed(&rest[cut..], &mut events).is_err() {
        return;
    }
    let mut out = bytes::BytesMut::new();
    for e in &events {
        write_event(&mut out, e);
    }
    let mut again = Vec::new();
    let mut p2 = Parser::new(64 * 1024);
    assert!(p2.feed(&out, &mut again).is_ok());
    assert_eq!(again.len(), events.len(), "re-framing changed the events");
});
