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
    if let Ok(p) = parse(data) {
        TOKENIZER.with(|t| {
            for e in [Endpoint::Chat, Endpoint::Completions, Endpoint::Embeddings] {
                let _ = p.prompt_tokens(e, t);
            }
        });
        // The body an upstream gets for a stream: the client's bytes with
        // `stream_options.include_usage` spliced in, still one valid body.
        let out = p.with_usage_requested(data);
        let again = parse(&out).expect("the spliced body parses");
        assert!(again.include_usage, "include_usage is set");
    }
});
