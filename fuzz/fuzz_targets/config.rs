//! The configuration lexer, parser, function folding and evaluator on arbitrary text: errors,
//! never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(src) = std::str::from_utf8(data) {
        let _ = agent::config::Config::from_str(src, "fuzz.alloy");
    }
});
