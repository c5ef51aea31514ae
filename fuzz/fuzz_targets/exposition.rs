//! Both exposition parsers (text format and OpenMetrics) on arbitrary bytes: errors, never
//! panics; every series a parser accepts decodes.
#![no_main]
use agent::scrape::exposition::{parse, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse(data, Format::Text);
    let _ = parse(data, Format::OpenMetrics);
});
