//! The configuration file: TOML parsing, typed deserialisation with unknown
//! keys refused, and validation. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = assisters::config::Config::from_toml(text);
    }
});
