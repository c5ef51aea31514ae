//! Rendezvous hashing with bounded loads over the shared target list (the default algorithm).
//!
//! This module owns the per-node load caps and the capping pass. Every node sees the same
//! target list, so instead of hashing each key alone we assign the whole list at once:
//!
//! 1. every key goes to its rendezvous winner (see `rendezvous.rs`);
//! 2. a node over its cap keeps its `cap` highest-scoring keys (its strongest affinities);
//! 3. the keys it rejected, taken in ascending key order, each go to their most preferred node
//!    (highest score) that is still below its cap.
//!
//! The result is a pure function of (keys, peers). Peak load is at most `max(cap)`, whatever
//! the hash luck. A join or leave moves the keys the changed node wins or held, plus a few keys
//! at the cap boundary of full nodes. Step 2 matters for leaves: keys inherited from a leaver
//! score lower at their new node than its own keys (they were its second choice), so a full
//! node sheds those rather than its own.
//!
//! Caps: `x = max(load_factor * mean, mean + noise_headroom * sqrt(mean))` with
//! `mean = keys / nodes`, and node `i` gets `floor(x + u_i)` with `u_i` in [0, 1) from its
//! name's hash. Rounding per node (instead of `ceil(x)` for all) means that when `x` moves by a
//! fraction on a join or leave, only that fraction of the caps steps, not all of them; with
//! 100 keys per node a shared `ceil` made a leave move ~5x the ideal. The headroom term keeps
//! the cap clear of key-count noise (a node's load has standard deviation ~sqrt(mean)) when
//! there are few keys per node, where a 5% cap would make a large share of nodes full and
//! every change churn.
//!
//! It does not know about ops or states, and it keeps no history beyond the winner table.

use xxhash_rust::xxh64::xxh64;

use super::rendezvous::{Rendezvous, Winners};

/// Tuning of the bounded algorithm; see the module docs for how the cap is derived.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoundedConfig {
    /// Cap as a multiple of the mean load. Default 1.05 (goal: peak:mean <= 1.05 at 100 nodes
    /// and 100k targets). Must be >= 1.0 and finite.
    pub load_factor: f64,
    /// Minimum headroom of the cap above the mean, in standard deviations of key-count noise
    /// (`sqrt(mean)`). Default 1.5, which is below the load factor's headroom from 450 keys per
    /// node up (so it changes nothing at 100 nodes / 100k targets) and raises the cap to
    /// ~1.15 x mean at 100 keys per node. 0 disables it. Must be >= 0 and finite.
    pub noise_headroom: f64,
}

impl Default for BoundedConfig {
    fn default() -> Self {
        BoundedConfig {
            load_factor: 1.05,
            noise_headroom: 1.5,
        }
    }
}

impl BoundedConfig {
    /// Panics with the offending field if the config is unusable.
    pub fn validate(&self) {
        assert!(
            self.load_factor.is_finite() && self.load_factor >= 1.0,
            "BoundedConfig.load_factor must be finite and >= 1.0, got {}",
            self.load_factor
        );
        assert!(
            self.noise_headroom.is_finite() && self.noise_headroom >= 0.0,
            "BoundedConfig.noise_headroom must be finite and >= 0, got {}",
            self.noise_headroom
        );
    }

    /// The unrounded cap `x` for `keys` keys over `nodes` nodes (see the module docs).
    pub fn target_load(&self, keys: usize, nodes: usize) -> f64 {
        if nodes == 0 {
            return 0.0;
        }
        let mean = keys as f64 / nodes as f64;
        (self.load_factor * mean).max(mean + self.noise_headroom * mean.sqrt())
    }

    /// The cap of each of `names` (sorted, distinct) for `keys` keys: `floor(x + u_i)`, raised
    /// where needed (rounded-down nodes closest to rounding up first) so the caps hold every
    /// key. Every cap is at most `ceil(x)`.
    pub fn caps(&self, keys: usize, names: &[String]) -> Vec<u32> {
        self.validate();
        let n = names.len();
        if n == 0 {
            return Vec::new();
        }
        let x = self.target_load(keys, n);
        // 1.05 x 1000 must be 1050, not 1050.0000000000002: snap float noise to the integer.
        let x = if (x - x.round()).abs() < 1e-9 {
            x.round()
        } else {
            x
        };
        assert!(x < u32::MAX as f64, "cap {x} does not fit in u32");
        let floor = x.floor();
        let frac = x - floor;
        // u_i in [0, 1) with 53 bits; seed 1 keeps it independent of the rendezvous scores.
        let unit = |name: &String| (xxh64(name.as_bytes(), 1) >> 11) as f64 / (1u64 << 53) as f64;
        let units: Vec<f64> = names.iter().map(unit).collect();
        let mut caps: Vec<u32> = units
            .iter()
            .map(|&u| floor as u32 + u32::from(u >= 1.0 - frac && frac > 0.0))
            .collect();
        let mut total: u64 = caps.iter().map(|&c| c as u64).sum();
        if total < keys as u64 {
            let mut down: Vec<usize> = (0..n).filter(|&i| caps[i] == floor as u32).collect();
            down.sort_by(|&a, &b| units[b].total_cmp(&units[a]).then(a.cmp(&b)));
            for i in down {
                if total >= keys as u64 {
                    break;
                }
                caps[i] += 1;
                total += 1;
            }
        }
        assert!(total >= keys as u64, "caps hold {total} of {keys} keys");
        caps
    }
}

/// Assigns every key under per-node `caps`, given the rendezvous `winners` of `keys`.
///
/// Writes `owners` (by caller index) and `loads` (by node). Requires a non-empty peer set and caps holding every key.
pub(crate) fn assign(
    rv: &Rendezvous,
    keys: &[u64],
    winners: &Winners,
    caps: &[u32],
    owners: &mut [u32],
    loads: &mut [u32],
) {
    let n = caps.len();
    assert!(n > 0, "bounded assign needs at least one node");
    debug_assert_eq!(loads.len(), n);
    owners.copy_from_slice(&winners.node);
    for &w in &winners.node {
        loads[w as usize] += 1;
    }
    let full: Vec<bool> = (0..n).map(|i| loads[i] > caps[i]).collect();
    if !full.contains(&true) {
        return;
    }
    // Bucket the keys of full nodes: offsets by node, then (score, caller index) entries.
    let mut start = vec![0usize; n + 1];
    for i in 0..n {
        start[i + 1] = start[i] + if full[i] { loads[i] as usize } else { 0 };
    }
    let mut fill = start.clone();
    let mut bucket = vec![(0u64, 0u32); start[n]];
    for (k, &w) in winners.node.iter().enumerate() {
        let w = w as usize;
        if full[w] {
            bucket[fill[w]] = (winners.score[k], k as u32);
            fill[w] += 1;
        }
    }
    // Step 2: keep the `cap` best by (score desc, key asc, index asc): a total order, so the
    // kept set is exact whatever the selection algorithm does.
    let mut rejected: Vec<u32> = Vec::new();
    for i in (0..n).filter(|&i| full[i]) {
        let b = &mut bucket[start[i]..start[i + 1]];
        let cap = caps[i] as usize;
        b.select_nth_unstable_by(cap, |x, y| {
            y.0.cmp(&x.0)
                .then(keys[x.1 as usize].cmp(&keys[y.1 as usize]))
                .then(x.1.cmp(&y.1))
        });
        rejected.extend(b[cap..].iter().map(|&(_, k)| k));
        loads[i] = caps[i];
    }
    // Step 3, in a membership-independent order: ascending (key, caller index).
    rejected.sort_unstable_by_key(|&k| (keys[k as usize], k));
    for k in rejected {
        let node = rv
            .best_where(keys[k as usize], |i| loads[i] < caps[i])
            .expect("caps hold every key, so some node is below its cap");
        loads[node as usize] += 1;
        owners[k as usize] = node;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node-{i}")).collect()
    }

    #[test]
    fn caps_are_floor_or_ceil_of_the_target_and_hold_every_key() {
        let c = BoundedConfig::default();
        for (keys, n) in [
            (100_000usize, 100usize),
            (100_000, 101),
            (100_000, 99),
            (10, 3),
        ] {
            let x = c.target_load(keys, n);
            let caps = c.caps(keys, &names(n));
            assert!(caps
                .iter()
                .all(|&cap| cap as f64 >= x.floor() && cap as f64 <= x.ceil()));
            assert!(caps.iter().map(|&c| c as usize).sum::<usize>() >= keys);
        }
        // 1.05 x 1000 is exact: every cap is 1050, so peak:mean <= 1.05.
        assert!(c.caps(100_000, &names(100)).iter().all(|&cap| cap == 1050));
    }

    #[test]
    fn only_a_fraction_of_caps_step_when_the_target_moves_a_little() {
        let c = BoundedConfig::default();
        let names = names(1000);
        // x = 105.0 -> 105.105 when one node of 1000 leaves (100 keys per node).
        let before = c.caps(100_000, &names);
        let mut after = c.caps(100_000, &names[1..]);
        after.insert(0, before[0]);
        let stepped = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        assert!(stepped < 300, "{stepped} of 1000 caps stepped");
    }

    #[test]
    fn noise_headroom_raises_the_cap_when_nodes_have_few_keys() {
        let c = BoundedConfig::default();
        assert_eq!(c.target_load(100_000, 100), 1050.0);
        let sparse = c.target_load(100_000, 1000);
        assert!((sparse - 115.0).abs() < 1e-9, "{sparse}");
        let no_headroom = BoundedConfig {
            noise_headroom: 0.0,
            ..c
        };
        assert!((no_headroom.target_load(100_000, 1000) - 105.0).abs() < 1e-9);
    }

    #[test]
    fn a_tight_load_factor_still_covers_every_key() {
        let tight = BoundedConfig {
            load_factor: 1.0,
            noise_headroom: 0.0,
        };
        for n in 1..40 {
            let caps = tight.caps(1_001, &names(n));
            assert!(caps.iter().map(|&c| c as usize).sum::<usize>() >= 1_001);
            assert!(caps.iter().all(|&c| c as usize <= 1_001usize.div_ceil(n)));
        }
    }

    #[test]
    #[should_panic(expected = "load_factor must be finite and >= 1.0")]
    fn a_load_factor_below_one_is_rejected() {
        BoundedConfig {
            load_factor: 0.9,
            ..BoundedConfig::default()
        }
        .validate();
    }
}
