//! A node fed arbitrary packets and push/pull bodies (the merge of a peer's full state): it
//! never panics, and its table stays within its member bound.
#![no_main]
use std::time::Duration;

use cluster::{Config, Instant, Node};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let config = Config::default();
    let max = config.members_max;
    let now = Instant::ZERO;
    let mut node = Node::new(config, "fuzz", "10.0.0.1:12345", 1, now).unwrap();
    // Split the input into messages at 0xFF 0xFF.
    let mut t = now;
    for (i, part) in data.split(|b| *b == 0xff).enumerate() {
        t = t + Duration::from_millis(100);
        if i % 2 == 0 {
            let _ = node.handle_push_pull(t, part);
        } else {
            let _ = node.handle_packet(t, part);
        }
        node.handle_timeout(t);
        while node.poll_transmit().is_some() {}
        while node.poll_event().is_some() {}
    }
    assert!(node.members().len() <= max + 1);
});
