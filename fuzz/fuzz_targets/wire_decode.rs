//! The cluster wire decoder on arbitrary bytes: never panics; whatever decodes re-encodes to
//! something that decodes to the same message.
#![no_main]
use cluster::wire::{decode, decode_envelope, Body};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_envelope(data);
    let Ok((env, body)) = decode(data, 1 << 20) else {
        return;
    };
    if let Body::Packet { primary, updates } = &body {
        let encoded: Vec<Vec<u8>> = updates.iter().map(cluster::wire::encode_update).collect();
        let refs: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
        let again = cluster::wire::encode_packet(&env, primary.as_ref(), &refs);
        let (env2, body2) = decode(&again, 1 << 20).expect("a re-encoded packet decodes");
        assert_eq!(env, env2);
        assert_eq!(body, body2);
    }
});
