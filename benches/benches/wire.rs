//! Encode and decode cost of every wire message type.
//!
//! Run: `cargo bench -p benches --bench wire`. Sizes follow what a node really sends: probes
//! with a few piggybacked updates, gossip packets filled to the budget, and full-state
//! push/pull bodies for 20, 100 and 1,000 members.

use std::hint::black_box;

use cluster::wire::{
    decode, encode_packet, encode_push_pull, encode_rejected, encode_update, Envelope, Kind,
    MemberRecord, Primary, Rejection, Status, Update,
};
use cluster::NodeState;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const MAX: usize = 16 << 20;

fn env(kind: Kind) -> Envelope {
    Envelope {
        kind,
        cluster: "prod".into(),
        sender_name: "agent-7".into(),
        sender_addr: "10.1.2.3:12345".into(),
    }
}

fn updates(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let name = format!("agent-{i}");
            let u = match i % 5 {
                0 => Update::Alive {
                    name,
                    addr: format!("10.1.{}.{}:12345", i / 250, i % 250),
                    incarnation: i as u64,
                },
                1 => Update::Suspect {
                    name,
                    incarnation: 3,
                    from: "agent-1".into(),
                    refused: false,
                },
                2 => Update::Dead {
                    name,
                    incarnation: 4,
                    from: "agent-2".into(),
                    refused: false,
                },
                3 => Update::Left {
                    name,
                    incarnation: 5,
                },
                _ => Update::State {
                    name,
                    state: NodeState::Participant,
                    lamport: 1_000 + i as u64,
                },
            };
            encode_update(&u)
        })
        .collect()
}

fn members(n: usize) -> Vec<MemberRecord> {
    (0..n)
        .map(|i| MemberRecord {
            name: format!("agent-{i}"),
            addr: format!("10.1.{}.{}:12345", i / 250, i % 250),
            incarnation: (i % 7) as u64,
            status: if i % 10 == 0 {
                Status::Dead
            } else {
                Status::Alive
            },
            state: Some((NodeState::Participant, 100 + i as u64)),
        })
        .collect()
}

fn packets(c: &mut Criterion) {
    let piggyback = updates(4);
    let refs: Vec<&[u8]> = piggyback.iter().map(|u| u.as_slice()).collect();
    let gossip = updates(40);
    let gossip_refs: Vec<&[u8]> = gossip.iter().map(|u| u.as_slice()).collect();
    let cases: Vec<(&str, Option<Primary>, &[&[u8]])> = vec![
        (
            "ping+4",
            Some(Primary::Ping {
                seq: 77,
                target: "agent-9".into(),
                digest: 0x1234_5678,
            }),
            &refs,
        ),
        ("ack", Some(Primary::Ack { seq: 77 }), &[]),
        ("nack", Some(Primary::Nack { seq: 77 }), &[]),
        (
            "indirect_ping",
            Some(Primary::IndirectPing {
                seq: 77,
                target: "agent-9".into(),
                addr: "10.1.0.9:12345".into(),
            }),
            &[],
        ),
        ("gossip+40", None, &gossip_refs),
    ];
    let mut g = c.benchmark_group("wire/packet");
    for (name, primary, ups) in &cases {
        let bytes = encode_packet(&env(Kind::Packet), primary.as_ref(), ups);
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(BenchmarkId::new("encode", name), |b| {
            b.iter(|| encode_packet(black_box(&env(Kind::Packet)), primary.as_ref(), ups))
        });
        g.bench_function(BenchmarkId::new("decode", name), |b| {
            b.iter(|| decode(black_box(&bytes), MAX).unwrap())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("wire/update");
    let one = updates(5);
    g.bench_function("encode_each_kind", |b| {
        b.iter(|| {
            let u = Update::State {
                name: "agent-1".into(),
                state: NodeState::Terminating,
                lamport: 99,
            };
            encode_update(black_box(&u))
        })
    });
    g.throughput(Throughput::Bytes(one.iter().map(|u| u.len() as u64).sum()));
    g.finish();
}

fn push_pull(c: &mut Criterion) {
    let mut g = c.benchmark_group("wire/push_pull");
    for n in [20usize, 100, 1_000] {
        let ms = members(n);
        let bytes = encode_push_pull(&env(Kind::PushPullRequest), false, &ms);
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_with_input(BenchmarkId::new("encode", n), &ms, |b, ms| {
            b.iter(|| encode_push_pull(&env(Kind::PushPullRequest), false, black_box(ms)))
        });
        g.bench_with_input(BenchmarkId::new("decode", n), &bytes, |b, bytes| {
            b.iter(|| decode(black_box(bytes), MAX).unwrap())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("wire/rejected");
    let r = Rejection::NameConflict {
        name: "agent-3".into(),
        holder_addr: "10.1.0.3:12345".into(),
    };
    let bytes = encode_rejected(&env(Kind::Rejected), &r);
    g.bench_function("encode", |b| {
        b.iter(|| encode_rejected(&env(Kind::Rejected), black_box(&r)))
    });
    g.bench_function("decode", |b| {
        b.iter(|| decode(black_box(&bytes), MAX).unwrap())
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(1));
    targets = packets, push_pull
}
criterion_main!(benches);
