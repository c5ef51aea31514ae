//! Writes valid wire messages as seed inputs for the cargo-fuzz targets `wire_decode` and
//! `push_pull_merge` (fuzz/seeds/): every kind of message, every primary and every update,
//! so the fuzzer starts past the magic, version and tags instead of guessing them.
//!
//! `cargo run -p cluster --example fuzz_seeds -- fuzz/seeds` (the output is committed; rerun
//! after a wire format change).

use std::path::Path;

use cluster::wire::{
    encode_packet, encode_push_pull, encode_rejected, encode_update, Envelope, Kind, MemberRecord,
    Primary, Rejection, Status, Update,
};
use cluster::NodeState;

fn env(kind: Kind) -> Envelope {
    Envelope {
        kind,
        // The default (empty) cluster name, which the push_pull_merge target's node has.
        cluster: String::new(),
        sender_name: "node-2".into(),
        sender_addr: "10.0.0.2:12345".into(),
    }
}

fn updates() -> Vec<Update> {
    vec![
        Update::Alive {
            name: "node-3".into(),
            addr: "10.0.0.3:12345".into(),
            incarnation: 2,
        },
        Update::Suspect {
            name: "node-4".into(),
            incarnation: 1,
            from: "node-2".into(),
            refused: false,
        },
        Update::Dead {
            name: "node-5".into(),
            incarnation: 3,
            from: "node-2".into(),
            refused: true,
        },
        Update::Left {
            name: "node-6".into(),
            incarnation: 7,
        },
        Update::State {
            name: "node-3".into(),
            state: NodeState::Participant,
            lamport: 42,
        },
    ]
}

fn members() -> Vec<MemberRecord> {
    vec![
        MemberRecord {
            name: "node-1".into(),
            addr: "10.0.0.1:12345".into(),
            incarnation: 0,
            status: Status::Alive,
            state: Some((NodeState::Participant, 3)),
        },
        MemberRecord {
            name: "node-2".into(),
            addr: "10.0.0.2:12345".into(),
            incarnation: 4,
            status: Status::Suspect,
            state: Some((NodeState::Viewer, 1)),
        },
        MemberRecord {
            name: "node-7".into(),
            addr: "10.0.0.7:12345".into(),
            incarnation: 9,
            status: Status::Dead,
            state: None,
        },
        MemberRecord {
            name: "node-8".into(),
            addr: "10.0.0.8:12345".into(),
            incarnation: 1,
            status: Status::Left,
            state: Some((NodeState::Terminating, 8)),
        },
    ]
}

fn main() {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/seeds".into());
    let out = Path::new(&out);
    let encoded: Vec<Vec<u8>> = updates().iter().map(encode_update).collect();
    let all: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
    let primaries = [
        Primary::Ping {
            seq: 1,
            target: "node-1".into(),
            digest: 0xdead_beef,
        },
        Primary::IndirectPing {
            seq: 2,
            target: "node-4".into(),
            addr: "10.0.0.4:12345".into(),
        },
        Primary::Ack { seq: 3 },
        Primary::Nack { seq: 4 },
    ];
    let mut messages: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, p) in primaries.iter().enumerate() {
        messages.push((
            format!("packet-{i}"),
            encode_packet(&env(Kind::Packet), Some(p), &all),
        ));
    }
    messages.push((
        "gossip-only".into(),
        encode_packet(&env(Kind::Packet), None, &all),
    ));
    for (i, u) in all.iter().enumerate() {
        messages.push((
            format!("update-{i}"),
            encode_packet(&env(Kind::Packet), None, &[u]),
        ));
    }
    messages.push((
        "push-pull-join".into(),
        encode_push_pull(&env(Kind::PushPullRequest), true, &members()),
    ));
    messages.push((
        "push-pull-response".into(),
        encode_push_pull(&env(Kind::PushPullResponse), false, &members()),
    ));
    messages.push((
        "rejected-name".into(),
        encode_rejected(
            &env(Kind::Rejected),
            &Rejection::NameConflict {
                name: "node-1".into(),
                holder_addr: "10.0.0.9:12345".into(),
            },
        ),
    ));
    messages.push((
        "rejected-cluster".into(),
        encode_rejected(
            &env(Kind::Rejected),
            &Rejection::ClusterMismatch {
                ours: "prod".into(),
                theirs: "dev".into(),
            },
        ),
    ));
    let wire = out.join("wire_decode");
    std::fs::create_dir_all(&wire).expect("create the seed directory");
    for (name, bytes) in &messages {
        std::fs::write(wire.join(name), bytes).expect("write a seed");
    }
    // push_pull_merge splits its input at 0xFF: even parts are push/pull bodies, odd parts
    // packets. One seed per message in the right slot, and one story of a join then gossip.
    let merge = out.join("push_pull_merge");
    std::fs::create_dir_all(&merge).expect("create the seed directory");
    let join = &messages
        .iter()
        .find(|(n, _)| n == "push-pull-join")
        .unwrap()
        .1;
    let mut story = join.clone();
    for (name, bytes) in &messages {
        if name.starts_with("packet") || name.starts_with("update") {
            story.push(0xff);
            story.extend_from_slice(bytes);
            story.push(0xff);
            story.extend_from_slice(join);
        }
    }
    std::fs::write(merge.join("join-then-gossip"), &story).expect("write a seed");
    std::fs::write(merge.join("join"), join).expect("write a seed");
    println!(
        "{} seeds written under {}",
        messages.len() + 2,
        out.display()
    );
}
