//! Rendezvous hashing (highest random weight) over one eligible peer set.
//!
//! This module owns the score function and the per-set node hashes. Every (key, node) pair gets
//! a score `mix64(key ^ xxhash64(name))`; the owner is the node with the highest score, ties to
//! the smaller name, and the next preferences follow in descending score. The expectation is
//! exactly 1/N per node and a join or leave moves only the keys the changed node wins or held,
//! at O(N) per lookup. It does not know about ops or states.

use xxhash_rust::xxh64::xxh64;

use super::key::mix64;

/// The node hashes of one peer set, in sorted-name order.
#[derive(Debug, Clone)]
pub(crate) struct Rendezvous {
    node_hashes: Vec<u64>,
}

/// The weight of `node_hash` for `key`; higher wins.
#[inline]
fn score(key: u64, node_hash: u64) -> u64 {
    mix64(key ^ node_hash)
}

impl Rendezvous {
    /// `names` must be sorted and distinct; node `i` is `names[i]`.
    pub(crate) fn new(names: &[String]) -> Rendezvous {
        Rendezvous {
            node_hashes: names.iter().map(|n| xxh64(n.as_bytes(), 0)).collect(),
        }
    }

    /// The owner of `key`: highest score, ties to the smaller index (name). `None` if empty.
    #[inline]
    pub(crate) fn owner(&self, key: u64) -> Option<u32> {
        let mut best: Option<(u64, u32)> = None;
        for (i, &h) in self.node_hashes.iter().enumerate() {
            let s = score(key, h);
            // Strictly greater keeps the earlier (smaller-name) node on ties.
            if best.map_or(true, |(b, _)| s > b) {
                best = Some((s, i as u32));
            }
        }
        best.map(|(_, i)| i)
    }

    /// Up to `replicas` nodes in descending score order (ties to the smaller name).
    pub(crate) fn lookup(&self, key: u64, replicas: usize) -> Vec<u32> {
        let want = replicas.min(self.node_hashes.len());
        if want == 0 {
            return Vec::new();
        }
        if want == 1 {
            return self.owner(key).into_iter().collect();
        }
        // Order by (score descending, index ascending): a total order, so the result is exact.
        let mut ranked: Vec<(std::cmp::Reverse<u64>, u32)> = self
            .node_hashes
            .iter()
            .enumerate()
            .map(|(i, &h)| (std::cmp::Reverse(score(key, h)), i as u32))
            .collect();
        if want < ranked.len() {
            ranked.select_nth_unstable(want - 1);
            ranked.truncate(want);
        }
        ranked.sort_unstable();
        ranked.into_iter().map(|(_, i)| i).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node-{i}")).collect()
    }

    #[test]
    fn owner_has_the_highest_score() {
        let names = names(9);
        let r = Rendezvous::new(&names);
        for key in [0u64, 42, u64::MAX, 0xDEAD_BEEF] {
            let owner = r.owner(key).unwrap() as usize;
            let best = names
                .iter()
                .map(|n| score(key, xxh64(n.as_bytes(), 0)))
                .max()
                .unwrap();
            assert_eq!(score(key, r.node_hashes[owner]), best);
            assert_eq!(r.lookup(key, 1), vec![owner as u32]);
        }
    }

    #[test]
    fn full_lookup_is_a_permutation_in_descending_score() {
        let r = Rendezvous::new(&names(12));
        let all = r.lookup(12345, 100);
        assert_eq!(all.len(), 12);
        let scores: Vec<u64> = all
            .iter()
            .map(|&i| score(12345, r.node_hashes[i as usize]))
            .collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]));
        assert_eq!(r.lookup(12345, 3), all[..3]);
    }

    #[test]
    fn empty_set_owns_nothing() {
        let r = Rendezvous::new(&[]);
        assert_eq!(r.owner(1), None);
        assert!(r.lookup(1, 3).is_empty());
    }
}
