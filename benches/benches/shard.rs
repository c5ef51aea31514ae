//! Sharding benchmarks: single-key lookups, whole-list recomputation and peer-set builds.
//!
//! Sizes follow ANCHORS.md (keys xxhash64("target-<i>"), nodes node-0..node-(N-1)) so the
//! numbers line up with ckit's: lookup at 10/100/1,000 nodes, recomputing 100k targets at 100
//! nodes (goal for `bounded`: <= 5 ms), and `set_peers` build time. Short measurement windows
//! keep a full run to a few minutes on 2 cores.

use std::hint::black_box;
use std::time::Duration;

use cluster::shard::{key_of_str, Algorithm, Op, Peer, Sharder};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};

const TARGETS: usize = 100_000;

fn peers(n: usize) -> Vec<Peer> {
    (0..n)
        .map(|i| Peer::participant(format!("node-{i}")))
        .collect()
}

fn keys(n: usize) -> Vec<u64> {
    (0..n).map(|i| key_of_str(&format!("target-{i}"))).collect()
}

/// One `lookup(key, 1, Write)`, cycling through 4,096 keys.
fn lookup(c: &mut Criterion) {
    let probe = keys(4_096);
    let mut group = c.benchmark_group("shard/lookup");
    for algorithm in Algorithm::ALL {
        for n in [10usize, 100, 1_000] {
            let mut s = Sharder::new(algorithm);
            s.set_peers(&peers(n));
            let mut i = 0usize;
            group.bench_function(BenchmarkId::new(algorithm.as_str(), n), |b| {
                b.iter(|| {
                    i = (i + 1) & 4_095;
                    black_box(s.lookup(black_box(probe[i]), 1, Op::Write).len())
                })
            });
        }
    }
    group.finish();
}

/// Owners of 100k targets at 100 nodes:
/// - `assign`: recompute from the cached state (sorted keys, ring or winner table);
/// - `join_leave`: one membership change (node-100 alternately joins and leaves) + `assign`,
///   what an agent pays per membership event;
/// - `cold`: new sharder, `set_peers`, `set_keys`, `assign` (no cache at all).
fn recompute(c: &mut Criterion) {
    let keys = keys(TARGETS);
    let small = peers(100);
    let large = peers(101);
    let mut group = c.benchmark_group("shard/recompute_100k_targets_100_nodes");
    group.sample_size(20);
    for algorithm in [Algorithm::Bounded, Algorithm::Ring, Algorithm::Rendezvous] {
        let mut s = Sharder::new(algorithm);
        s.set_peers(&small);
        s.set_keys(&keys);
        group.bench_function(BenchmarkId::new(algorithm.as_str(), "assign"), |b| {
            b.iter(|| black_box(s.assign(Op::Write).counts()[0]))
        });
        let mut joined = false;
        group.bench_function(BenchmarkId::new(algorithm.as_str(), "join_leave"), |b| {
            b.iter(|| {
                joined = !joined;
                s.set_peers(if joined { &large } else { &small });
                black_box(s.assign(Op::Write).counts()[0])
            })
        });
        group.bench_function(BenchmarkId::new(algorithm.as_str(), "cold"), |b| {
            b.iter(|| {
                let mut s = Sharder::new(algorithm);
                s.set_peers(&small);
                s.set_keys(&keys);
                black_box(s.assign(Op::Write).counts()[0])
            })
        });
    }
    group.finish();
}

/// `set_peers` on an empty sharder (no targets): ring token build, rendezvous node hashes.
fn set_peers(c: &mut Criterion) {
    let mut group = c.benchmark_group("shard/set_peers");
    group.sample_size(10);
    for algorithm in [Algorithm::Ring, Algorithm::Bounded] {
        for n in [10usize, 100, 1_000] {
            let list = peers(n);
            group.bench_function(BenchmarkId::new(algorithm.as_str(), n), |b| {
                b.iter_batched(
                    || Sharder::new(algorithm),
                    |mut s| {
                        s.set_peers(&list);
                        s
                    },
                    BatchSize::LargeInput,
                )
            });
        }
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = lookup, recompute, set_peers
}
criterion_main!(benches);
