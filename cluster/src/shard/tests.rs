//! Behaviour of the sharding module as a whole: determinism, eligibility, minimal movement and
//! the bounded algorithm's guarantees. Property tests use modest sizes so the debug build stays
//! fast; the full-size figures come from `quality::distribution` in release (see the benches).

use proptest::prelude::*;

use super::quality::{distribution, distribution_of};
use super::*;
use crate::NodeState;

fn participants(n: usize) -> Vec<Peer> {
    (0..n)
        .map(|i| Peer::participant(format!("node-{i}")))
        .collect()
}

fn keys(n: usize, salt: u64) -> Vec<u64> {
    (0..n)
        .map(|i| key_of_str(&format!("target-{i}-{salt}")))
        .collect()
}

fn sharder(algorithm: Algorithm, peers: &[Peer], keys: &[u64]) -> Sharder {
    let mut s = Sharder::new(algorithm);
    s.set_peers(peers);
    s.set_keys(keys);
    s
}

fn algorithm() -> impl Strategy<Value = Algorithm> {
    prop::sample::select(Algorithm::ALL.to_vec())
}

fn state() -> impl Strategy<Value = NodeState> {
    prop::sample::select(vec![
        NodeState::Viewer,
        NodeState::Participant,
        NodeState::Participant,
        NodeState::Terminating,
    ])
}

/// A peer list of distinct names with random states.
fn peer_list(max: usize) -> impl Strategy<Value = Vec<Peer>> {
    prop::collection::btree_map(0u32..200, state(), 0..max).prop_map(|m| {
        m.into_iter()
            .map(|(i, s)| Peer::new(format!("peer-{i}"), s))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Every node must compute the same owners from the same membership, whatever order its
    /// membership layer lists peers in.
    #[test]
    fn same_peers_in_any_order_give_same_owners(
        algorithm in algorithm(),
        peers in peer_list(12),
        seed in any::<u64>(),
        key_count in 0usize..300,
    ) {
        let keys = keys(key_count, seed);
        let mut shuffled = peers.clone();
        // Deterministic shuffle from the seed.
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let a = sharder(algorithm, &peers, &keys);
        let b = sharder(algorithm, &shuffled, &keys);
        for op in Op::ALL {
            prop_assert_eq!(a.assign(op), b.assign(op));
            for &k in keys.iter().take(20) {
                prop_assert_eq!(a.lookup(k, 3, op), b.lookup(k, 3, op));
            }
        }
    }

    /// The cached paths (incremental rendezvous winners, sorted keys kept across changes) must
    /// give exactly what a fresh sharder computes from the final inputs.
    #[test]
    fn a_sharder_after_any_changes_equals_a_fresh_one(
        algorithm in algorithm(),
        steps in prop::collection::vec((peer_list(10), 0usize..200, any::<u64>()), 1..5),
    ) {
        let mut s = Sharder::new(algorithm);
        let mut last_keys = Vec::new();
        for (peers, key_count, salt) in &steps {
            s.set_peers(peers);
            // Keep half of the previous keys so some entries are reused.
            let mut ks: Vec<u64> = last_keys.iter().copied().step_by(2).collect();
            ks.extend(keys(*key_count, *salt));
            s.set_keys(&ks);
            last_keys = ks;
        }
        let (peers, _, _) = steps.last().unwrap();
        let fresh = sharder(algorithm, peers, &last_keys);
        for op in Op::ALL {
            prop_assert_eq!(s.assign(op), fresh.assign(op));
        }
    }

    /// Ring and rendezvous lookups: when the owner leaves, its keys go to their second
    /// preference and the rest of the preference list shifts up.
    #[test]
    fn removing_the_owner_promotes_its_next_preference(
        algorithm in prop::sample::select(vec![Algorithm::Ring, Algorithm::Rendezvous]),
        nodes in 2usize..12,
        key in any::<u64>(),
    ) {
        let peers = participants(nodes);
        let before = sharder(algorithm, &peers, &[]);
        let prefs: Vec<String> = before.lookup(key, nodes, Op::Write).into_iter().map(String::from).collect();
        prop_assert_eq!(prefs.len(), nodes);
        let rest: Vec<Peer> = peers.iter().filter(|p| p.name != prefs[0]).cloned().collect();
        let after = sharder(algorithm, &rest, &[]);
        prop_assert_eq!(after.lookup(key, nodes, Op::Write), prefs[1..].to_vec());
    }

    /// The cap is a hard limit and every key gets an owner, for any sizes and tuning.
    #[test]
    fn bounded_never_exceeds_its_caps(
        nodes in 1usize..30,
        key_count in 0usize..3000,
        load_factor in 1.0f64..1.3,
        noise_headroom in 0.0f64..3.0,
        salt in any::<u64>(),
    ) {
        let config = BoundedConfig { load_factor, noise_headroom };
        let peers = participants(nodes);
        let keys = keys(key_count, salt);
        let mut s = Sharder::with_bounded_config(config);
        s.set_peers(&peers);
        s.set_keys(&keys);
        let a = s.assign(Op::Write);
        let caps = config.caps(key_count, a.peers());
        for (count, cap) in a.counts().iter().zip(&caps) {
            prop_assert!(count <= cap, "count {} over cap {}", count, cap);
        }
        prop_assert!((0..key_count).all(|i| a.owner_of(i).is_some()));
        prop_assert_eq!(a.counts().iter().map(|&c| c as usize).sum::<usize>(), key_count);
    }
}

#[test]
fn terminating_nodes_own_for_read_only_and_viewers_never() {
    let peers = [
        Peer::participant("a"),
        Peer::new("t", NodeState::Terminating),
        Peer::new("v", NodeState::Viewer),
    ];
    let keys = keys(500, 1);
    for algorithm in Algorithm::ALL {
        let s = sharder(algorithm, &peers, &keys);
        let write = s.assign(Op::Write);
        let read = s.assign(Op::Read);
        assert_eq!(write.peers(), ["a"], "{algorithm}");
        assert_eq!(write.count_of("a"), 500, "{algorithm}");
        assert_eq!(read.peers(), ["a", "t"], "{algorithm}");
        assert!(
            read.count_of("t") > 0,
            "{algorithm}: terminating owns reads"
        );
        assert_eq!(read.count_of("v"), 0, "{algorithm}");
        for &k in &keys[..20] {
            assert_eq!(s.lookup(k, 5, Op::Write), ["a"], "{algorithm}");
            let r = s.lookup(k, 5, Op::Read);
            assert_eq!(r.len(), 2, "{algorithm}");
            assert!(!r.contains(&"v"), "{algorithm}");
        }
    }
}

#[test]
fn no_eligible_peer_means_no_owner() {
    let viewers = [Peer::new("v", NodeState::Viewer)];
    for algorithm in Algorithm::ALL {
        let s = sharder(algorithm, &viewers, &keys(10, 0));
        let a = s.assign(Op::Read);
        assert!(a.peers().is_empty());
        assert_eq!(a.owner_of(3), None);
        assert!(s.lookup(1, 3, Op::Write).is_empty());
    }
}

#[test]
fn hashmod_matches_a_hand_computed_md5() {
    // md5("12345") = 827ccb0eea8a706c 4c34a16891f84e7b; 0x4c34a16891f84e7b % 10 = 7 and % 3 = 0.
    let s = sharder(Algorithm::Hashmod, &participants(10), &[12345]);
    assert_eq!(s.lookup(12345, 1, Op::Write), ["node-7"]);
    assert_eq!(s.assign(Op::Write).owner_of(0), Some("node-7"));
    let abc = [
        Peer::participant("c"),
        Peer::participant("a"),
        Peer::participant("b"),
    ];
    let s = sharder(Algorithm::Hashmod, &abc, &[12345]);
    assert_eq!(s.lookup(12345, 2, Op::Write), ["a", "b"]);
}

#[test]
fn bounded_lookup_is_the_rendezvous_preference_order() {
    let peers = participants(9);
    let b = sharder(Algorithm::Bounded, &peers, &[]);
    let r = sharder(Algorithm::Rendezvous, &peers, &[]);
    for k in keys(50, 3) {
        assert_eq!(b.lookup(k, 4, Op::Write), r.lookup(k, 4, Op::Write));
    }
}

#[test]
fn lookup_returns_fewer_owners_when_fewer_peers_are_eligible() {
    for algorithm in Algorithm::ALL {
        let s = sharder(algorithm, &participants(2), &[]);
        let owners = s.lookup(99, 5, Op::Write);
        assert_eq!(owners.len(), 2, "{algorithm}");
        assert_ne!(owners[0], owners[1], "{algorithm}");
    }
}

#[test]
fn moved_from_counts_owner_changes_by_name() {
    let keys = keys(2_000, 9);
    let before = Assignment::compute(Algorithm::Ring, &participants(5), &keys, Op::Write);
    let same = Assignment::compute(Algorithm::Ring, &participants(5), &keys, Op::Write);
    assert_eq!(same.moved_from(&before), 0);
    let joined = Assignment::compute(Algorithm::Ring, &participants(6), &keys, Op::Write);
    // On a ring a join only moves keys to the new node.
    assert_eq!(
        joined.moved_from(&before),
        joined.count_of("node-5") as usize
    );
    let none = Assignment::compute(Algorithm::Ring, &[], &keys, Op::Write);
    assert_eq!(none.moved_from(&before), keys.len());
    assert_eq!(none.moved_from(&none), 0);
}

#[test]
fn join_and_leave_move_close_to_the_ideal() {
    // 20 nodes x 250 targets each. Ring movement varies with the new node's token luck, so
    // the bound is loose; rendezvous and bounded are tighter.
    for (algorithm, bound) in [
        (Algorithm::Ring, 1.35),
        (Algorithm::Rendezvous, 1.2),
        (Algorithm::Bounded, 1.2),
    ] {
        for seed in 0..3 {
            let r = distribution(algorithm, 20, 5_000, seed);
            assert!(r.join_ratio() < bound, "seed {seed}: {r:?}");
            assert!(r.leave_ratio() < bound, "seed {seed}: {r:?}");
            assert!(
                r.join_ratio() > 0.6 && r.leave_ratio() > 0.6,
                "seed {seed}: {r:?}"
            );
        }
    }
}

/// Guards the default algorithm's promise at a size the debug build runs in about a second:
/// 40 nodes x 1,000 targets each (the regime of the 100-node goal). Release measurements at
/// 100 nodes x 100k targets over 20 seeds gave moved/ideal <= 1.07 on join and leave.
#[test]
fn bounded_keeps_peak_within_cap_and_movement_near_ideal() {
    for seed in 0..2 {
        let r = distribution(Algorithm::Bounded, 40, 40_000, seed);
        assert!(r.peak_to_mean <= 1.05 + 1e-9, "seed {seed}: {r:?}");
        assert!(r.join_ratio() <= 1.10, "seed {seed}: {r:?}");
        assert!(r.leave_ratio() <= 1.10, "seed {seed}: {r:?}");
    }
}

#[test]
fn bounded_is_better_balanced_than_plain_rendezvous() {
    let config = BoundedConfig::default();
    let b = distribution_of(&Sharder::with_bounded_config(config), 40, 40_000, 0);
    let r = distribution(Algorithm::Rendezvous, 40, 40_000, 0);
    assert!(b.peak_to_mean < r.peak_to_mean, "{b:?} vs {r:?}");
    assert!(b.cv < r.cv, "{b:?} vs {r:?}");
}
