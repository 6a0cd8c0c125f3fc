//! A client's request body: JSON parsing and the fields the gateway acts on,
//! for every endpoint, then the token count. Must never panic.
#![no_main]

use assisters::proxy::body::parse;
use assisters::proxy::Endpoint;
use assisters::tokens::Tokenizer;
use libfuzzer_sys::fuzz_target;

thread_local! {
    static TOKENIZER: Tokenizer = Tokenizer::default();
}

fuzz_target!(|data: &[u8]| {
    if let Ok(mut p) = parse(data) {
        TOKENIZER.with(|t| {
            for e in [Endpoint::Chat, Endpoint::Completions, Endpoint::Embeddings] {
                let _ = p.prompt_tokens(e, t);
            }
        });
        let _ = p.with_usage_requested();
    }
});
