//! The remote-write encoder: samples built from arbitrary bytes encode to a WriteRequest that
//! decodes back to the same series and samples (values compared bit for bit, NaNs included;
//! -0 arrives as +0, as protobuf 3 omits a zero value and Prometheus sends it).
#![no_main]
use agent::remote_write::proto::{decode_write_request, encode_write_request};
use agent::scrape::{Labels, Sample};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut samples = Vec::new();
    for chunk in data.chunks(24) {
        if chunk.len() < 17 {
            break;
        }
        let series = format!("s{}", chunk[0] % 4);
        let value = f64::from_bits(u64::from_le_bytes(chunk[1..9].try_into().unwrap()));
        let ts = i64::from_le_bytes(chunk[9..17].try_into().unwrap());
        let extra = String::from_utf8_lossy(&chunk[17..]).to_string();
        let labels = Labels::from_pairs([("__name__", series), ("x", extra)]);
        samples.push(Sample { labels, timestamp_ms: ts, value });
    }
    let encoded = encode_write_request(&samples);
    let decoded = decode_write_request(&encoded).expect("our own encoding decodes");
    let mut flat: Vec<(Vec<(String, String)>, i64, u64)> = decoded
        .iter()
        .flat_map(|s| s.samples.iter().map(move |(t, v)| (s.labels.clone(), *t, v.to_bits())))
        .collect();
    let mut sent: Vec<(Vec<(String, String)>, i64, u64)> = samples
        .iter()
        .map(|s| {
            let labels = s.labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            let bits = if s.value == 0.0 { 0 } else { s.value.to_bits() };
            (labels, s.timestamp_ms, bits)
        })
        .collect();
    // The same multiset of (series, timestamp, value bits), compared sorted (a quadratic
    // search made long inputs ~100x slower to fuzz).
    flat.sort();
    sent.sort();
    assert_eq!(flat, sent);
});
