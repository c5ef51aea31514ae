//! file_sd parsing (JSON and YAML) on arbitrary text: errors, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = agent::discovery::parse_file_sd(text, "json", "/f.json");
        let _ = agent::discovery::parse_file_sd(text, "yaml", "/f.yaml");
    }
});
