//! Consistent hashing with bounded loads over the shared target list (the default algorithm).
//!
//! This module owns the load cap and the assignment pass. Every node sees the same target list,
//! so instead of hashing each key alone we assign the whole list at once: each key goes to its
//! first ring preference whose load is below `cap = ceil(load_factor * K / N)`, and a key whose
//! preferred node is full walks clockwise to the next node that is not. Keys are taken in a
//! fixed, membership-independent order, so the result is a pure function of (keys, peers).
//! Peak load is at most `cap`, i.e. peak:mean <= load_factor (plus rounding), whatever the
//! hash luck; a join or leave moves the keys of the changed node plus the few keys at the cap
//! boundary whose overflow changes.
//!
//! It does not know about ops or states, and it keeps no history: callers that want the cheap
//! path keep the sorted keys across membership changes (see `Sharder`).

use super::ring::Ring;

/// Tuning of the bounded algorithm. The defaults were chosen by measurement (100 nodes,
/// 100k targets, see the `quality` module and the shard module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoundedConfig {
    /// Ring tokens per node (the preference order). More tokens: smaller natural imbalance,
    /// fewer full nodes, so less overflow churn; costs build time and memory (12 bytes/token).
    pub tokens_per_node: usize,
    /// Load cap as a multiple of the mean, in thousandths (1050 = 1.05). Must be >= 1000.
    pub load_factor_permille: u32,
    /// Order in which keys claim capacity (experiment knob).
    pub order: ClaimOrder,
}

/// The membership-independent order in which keys are assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimOrder {
    /// Ascending key hash: one clockwise sweep of the ring.
    Clockwise,
    /// Ascending `mix64(key)`: a pseudo-random order uncorrelated with ring position.
    Scrambled,
}

impl Default for BoundedConfig {
    fn default() -> Self {
        BoundedConfig {
            tokens_per_node: 1024,
            load_factor_permille: 1050,
            order: ClaimOrder::Clockwise,
        }
    }
}

impl BoundedConfig {
    /// The per-node load cap for `keys` keys over `nodes` nodes: `ceil(factor * keys / nodes)`.
    /// Always at least `ceil(keys / nodes)`, so the caps of all nodes cover every key.
    pub fn cap(&self, keys: usize, nodes: usize) -> u32 {
        assert!(
            self.load_factor_permille >= 1000,
            "load_factor_permille must be >= 1000, got {}",
            self.load_factor_permille
        );
        if nodes == 0 {
            return 0;
        }
        let num = keys as u128 * self.load_factor_permille as u128;
        let den = 1000u128 * nodes as u128;
        let cap = num.div_ceil(den);
        u32::try_from(cap).expect("cap fits in u32")
    }
}

/// Assigns every key to a node of `ring` under `cap`.
///
/// `sorted` holds the key hashes ascending; `index[p]` is the caller's index of `sorted[p]`;
/// `claim` lists sorted positions in claim order (empty for [`ClaimOrder::Clockwise`]).
/// Writes `owners[index[p]]` and `loads[node]`. Requires `cap * nodes >= keys` and a non-empty
/// ring.
pub(crate) fn assign(
    ring: &Ring,
    sorted: &[u64],
    index: &[u32],
    claim: &[u32],
    cap: u32,
    owners: &mut [u32],
    loads: &mut [u32],
) {
    assert!(ring.node_count() > 0, "assign needs at least one node");
    assert!(
        cap as u128 * ring.node_count() as u128 >= sorted.len() as u128,
        "cap {cap} x {} nodes cannot hold {} keys",
        ring.node_count(),
        sorted.len()
    );
    debug_assert_eq!(loads.len(), ring.node_count());
    let mut place = |first_token: usize| -> u32 {
        let mut t = first_token;
        // Terminates: the caps cover every key, so some node is below cap, and every node has
        // tokens, so the clockwise walk reaches it within one lap.
        loop {
            let node = ring.node_at(t);
            let load = &mut loads[node as usize];
            if *load < cap {
                *load += 1;
                return node;
            }
            t = ring.next_token(t);
        }
    };
    if claim.is_empty() {
        ring.walk_sorted(sorted, |pos, t| {
            owners[index[pos] as usize] = place(t);
        });
    } else {
        let mut first = vec![0u32; sorted.len()];
        ring.walk_sorted(sorted, |pos, t| first[pos] = t as u32);
        for &pos in claim {
            owners[index[pos as usize] as usize] = place(first[pos as usize] as usize);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_rounds_up_and_never_falls_below_the_mean() {
        let c = BoundedConfig::default();
        assert_eq!(c.cap(100_000, 100), 1050);
        assert_eq!(c.cap(100_000, 101), 1040); // 1039.6 rounded up
        assert_eq!(c.cap(10, 3), 4);
        assert_eq!(c.cap(0, 3), 0);
        let tight = BoundedConfig {
            load_factor_permille: 1000,
            ..c
        };
        assert_eq!(tight.cap(10, 3), 4);
        assert!(tight.cap(10, 3) * 3 >= 10);
    }
}
