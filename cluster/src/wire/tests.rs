use super::*;
use proptest::prelude::*;

fn env(kind: Kind) -> Envelope {
    Envelope {
        kind,
        cluster: "prod".into(),
        sender_name: "node-1".into(),
        sender_addr: "10.0.0.1:12345".into(),
    }
}

fn all_updates() -> Vec<Update> {
    vec![
        Update::Alive {
            name: "a".into(),
            addr: "1.2.3.4:5".into(),
            incarnation: 3,
        },
        Update::Suspect {
            name: "b".into(),
            incarnation: 300,
            from: "a".into(),
            refused: false,
        },
        Update::Dead {
            name: "c".into(),
            incarnation: u64::MAX,
            from: "a".into(),
            refused: false,
        },
        Update::Suspect {
            name: "b2".into(),
            incarnation: 301,
            from: "a".into(),
            refused: true,
        },
        Update::Dead {
            name: "c2".into(),
            incarnation: 1,
            from: "a".into(),
            refused: true,
        },
        Update::Left {
            name: "d".into(),
            incarnation: 0,
        },
        Update::State {
            name: "e".into(),
            state: NodeState::Terminating,
            lamport: 1 << 40,
        },
    ]
}

#[test]
fn packet_round_trips_with_every_primary_and_update() {
    let primaries = [
        None,
        Some(Primary::Ping {
            seq: 7,
            target: "node-2".into(),
            digest: 0xdead_beef,
        }),
        Some(Primary::IndirectPing {
            seq: u32::MAX,
            target: "node-3".into(),
            addr: "[::1]:80".into(),
        }),
        Some(Primary::Ack { seq: 0 }),
        Some(Primary::Nack { seq: 99 }),
    ];
    let encoded: Vec<Vec<u8>> = all_updates().iter().map(encode_update).collect();
    let refs: Vec<&[u8]> = encoded.iter().map(|v| v.as_slice()).collect();
    for p in primaries {
        let bytes = encode_packet(&env(Kind::Packet), p.as_ref(), &refs);
        let (e, body) = decode(&bytes, 1 << 16).unwrap();
        assert_eq!(e, env(Kind::Packet));
        assert_eq!(
            body,
            Body::Packet {
                primary: p.clone(),
                updates: all_updates()
            }
        );
    }
}

#[test]
fn push_pull_and_rejection_round_trip() {
    let members = vec![
        MemberRecord {
            name: "a".into(),
            addr: "x:1".into(),
            incarnation: 1,
            status: Status::Suspect,
            state: Some((NodeState::Participant, 12)),
        },
        MemberRecord {
            name: "b".into(),
            addr: "y:2".into(),
            incarnation: 0,
            status: Status::Left,
            state: None,
        },
    ];
    let bytes = encode_push_pull(&env(Kind::PushPullRequest), true, &members);
    let (_, body) = decode(&bytes, 1 << 16).unwrap();
    assert_eq!(
        body,
        Body::PushPull {
            join: true,
            members
        }
    );

    let r = Rejection::NameConflict {
        name: "node-1".into(),
        holder_addr: "10.0.0.9:12345".into(),
    };
    let bytes = encode_rejected(&env(Kind::Rejected), &r);
    assert_eq!(decode(&bytes, 1 << 16).unwrap().1, Body::Rejected(r));
}

#[test]
fn oversized_foreign_and_future_messages_are_rejected() {
    let bytes = encode_packet(&env(Kind::Packet), None, &[]);
    assert!(matches!(decode(&bytes, 4), Err(WireError::TooLarge { .. })));
    assert_eq!(decode(b"GET / HTTP/1.1", 100), Err(WireError::BadMagic));
    let mut future = bytes.clone();
    future[2] = 9;
    assert_eq!(decode(&future, 100), Err(WireError::Version { got: 9 }));
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert_eq!(
        decode(&trailing, 100),
        Err(WireError::TrailingBytes { count: 1 })
    );
}

#[test]
fn a_huge_declared_count_is_refused_before_allocating() {
    let mut w = Writer::new(&env(Kind::PushPullRequest));
    w.u8(0);
    w.varint(u64::MAX / 2);
    let bytes = w.finish();
    assert!(matches!(
        decode(&bytes, 1 << 20),
        Err(WireError::Truncated { .. })
    ));
}

#[test]
fn every_truncation_of_a_valid_message_is_an_error() {
    let encoded: Vec<Vec<u8>> = all_updates().iter().map(encode_update).collect();
    let refs: Vec<&[u8]> = encoded.iter().map(|v| v.as_slice()).collect();
    let bytes = encode_packet(
        &env(Kind::Packet),
        Some(&Primary::Ping {
            seq: 1,
            target: "t".into(),
            digest: 1,
        }),
        &refs,
    );
    for cut in 0..bytes.len() {
        assert!(decode(&bytes[..cut], 1 << 16).is_err(), "cut at {cut}");
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes, 1 << 16);
    }

    #[test]
    fn mutated_valid_messages_never_panic(pos in 0usize..200, val in any::<u8>()) {
        let encoded: Vec<Vec<u8>> = all_updates().iter().map(encode_update).collect();
        let refs: Vec<&[u8]> = encoded.iter().map(|v| v.as_slice()).collect();
        let mut bytes = encode_packet(&env(Kind::Packet), None, &refs);
        let i = pos % bytes.len();
        bytes[i] = val;
        let _ = decode(&bytes, 1 << 16);
    }
}
