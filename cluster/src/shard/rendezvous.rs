//! Rendezvous hashing (highest random weight) over one eligible peer set, and the table of
//! per-key winners that `rendezvous` and `bounded` assignments are read from.
//!
//! This module owns the score function and the [`Winners`] table. Every (key, node) pair gets a
//! score `mix64(key ^ xxhash64(name))`; a key prefers nodes in descending score, ties to the
//! smaller name. The expectation is exactly 1/N per node, and a join or leave changes the
//! winner only of the keys the new node wins or the old node held, so the table is kept up to
//! date incrementally: a join costs one score per key, a leave N scores per key it held, and a
//! target-list change N scores per new key. The result is always identical to a from-scratch
//! computation (the property tests check this). It does not know about ops, states or caps.

use xxhash_rust::xxh64::xxh64;

use super::assignment::NO_OWNER as NONE;
use super::key::mix64;

/// The node hashes of one peer set, in sorted-name order (node `i` is `names[i]`).
#[derive(Debug, Clone)]
pub(crate) struct Rendezvous {
    node_hashes: Vec<u64>,
}

/// The weight of `node_hash` for `key`; higher wins.
#[inline]
pub(crate) fn score(key: u64, node_hash: u64) -> u64 {
    mix64(key ^ node_hash)
}

/// Whether `(score, node)` `a` is preferred to `b`: higher score, then smaller node index.
#[inline]
fn prefers(a: (u64, u32), b: (u64, u32)) -> bool {
    a.0 > b.0 || (a.0 == b.0 && a.1 < b.1)
}

impl Rendezvous {
    /// `names` must be sorted and distinct.
    pub(crate) fn new(names: &[String]) -> Rendezvous {
        assert!(names.len() < NONE as usize, "node indices must fit in u32");
        Rendezvous {
            node_hashes: names.iter().map(|n| xxh64(n.as_bytes(), 0)).collect(),
        }
    }

    pub(crate) fn node_hashes(&self) -> &[u64] {
        &self.node_hashes
    }

    /// The (score, node) of the owner of `key`: highest score, ties to the smaller name.
    /// `(0, NONE)` if the set is empty.
    #[inline]
    pub(crate) fn winner(&self, key: u64) -> (u64, u32) {
        let Some((&first, rest)) = self.node_hashes.split_first() else {
            return (0, NONE);
        };
        let mut best = (score(key, first), 0u32);
        for (i, &h) in rest.iter().enumerate() {
            let s = score(key, h);
            // Strictly greater: on equal scores the earlier (smaller-name) node stays.
            if s > best.0 {
                best = (s, i as u32 + 1);
            }
        }
        best
    }

    /// The preferred node among those `allowed`, or `None` if none is.
    pub(crate) fn best_where(&self, key: u64, allowed: impl Fn(usize) -> bool) -> Option<u32> {
        let mut best: Option<(u64, u32)> = None;
        for (i, &h) in self.node_hashes.iter().enumerate() {
            if !allowed(i) {
                continue;
            }
            let cand = (score(key, h), i as u32);
            if best.is_none_or(|b| prefers(cand, b)) {
                best = Some(cand);
            }
        }
        best.map(|(_, i)| i)
    }

    /// Up to `replicas` nodes in preference order.
    pub(crate) fn lookup(&self, key: u64, replicas: usize) -> Vec<u32> {
        let want = replicas.min(self.node_hashes.len());
        if want == 0 {
            return Vec::new();
        }
        if want == 1 {
            return vec![self.winner(key).1];
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

/// The rendezvous winner of every key of a target list under one peer set.
#[derive(Debug, Clone, Default)]
pub(crate) struct Winners {
    /// Winning node index per key (caller order); `NONE` if the set is empty.
    pub(crate) node: Vec<u32>,
    /// The winning score per key.
    pub(crate) score: Vec<u64>,
}

impl Winners {
    /// From scratch: N scores per key.
    pub(crate) fn compute(rv: &Rendezvous, keys: &[u64]) -> Winners {
        let mut w = Winners {
            node: Vec::with_capacity(keys.len()),
            score: Vec::with_capacity(keys.len()),
        };
        for &key in keys {
            let (s, n) = rv.winner(key);
            w.node.push(n);
            w.score.push(s);
        }
        w
    }

    /// Moves the table from peer set `old_names` to `new_names` (both sorted, distinct) for the
    /// same `keys`. Keys whose winner left are recomputed; every other key only meets the
    /// joined nodes. Falls back to [`compute`](Self::compute) when that is cheaper.
    pub(crate) fn retarget(
        &mut self,
        old_names: &[String],
        new_names: &[String],
        new_rv: &Rendezvous,
        keys: &[u64],
    ) {
        debug_assert_eq!(self.node.len(), keys.len());
        // old index -> new index (NONE if it left), and the joined nodes' new indices.
        let mut translate = vec![NONE; old_names.len()];
        let mut joined: Vec<u32> = Vec::new();
        let mut i = 0;
        for (j, name) in new_names.iter().enumerate() {
            while i < old_names.len() && old_names[i] < *name {
                i += 1;
            }
            if i < old_names.len() && old_names[i] == *name {
                translate[i] = j as u32;
                i += 1;
            } else {
                joined.push(j as u32);
            }
        }
        let left = translate.iter().filter(|&&t| t == NONE).count();
        let n = new_names.len();
        // Rough cost in scores: every key meets the joined nodes; the leavers' keys meet all.
        let incremental =
            keys.len() * joined.len() + keys.len() * left / old_names.len().max(1) * n;
        if old_names.is_empty() || incremental >= keys.len() * n {
            *self = Winners::compute(new_rv, keys);
            return;
        }
        let hashes = new_rv.node_hashes();
        for (k, &key) in keys.iter().enumerate() {
            let moved = translate[self.node[k] as usize];
            if moved == NONE {
                let (s, w) = new_rv.winner(key);
                self.node[k] = w;
                self.score[k] = s;
                continue;
            }
            let mut best = (self.score[k], moved);
            for &j in &joined {
                let cand = (score(key, hashes[j as usize]), j);
                if prefers(cand, best) {
                    best = cand;
                }
            }
            self.score[k] = best.0;
            self.node[k] = best.1;
        }
    }

    /// Moves the table from the target list `old_sorted` to `new_sorted` (both as ascending
    /// `(key, caller index)` pairs; `new_len` keys in the new list) under the same peer set:
    /// keys present in both keep their entry, new keys are computed.
    pub(crate) fn rekey(
        &self,
        old_sorted: &[(u64, u32)],
        new_sorted: &[(u64, u32)],
        rv: &Rendezvous,
    ) -> Winners {
        let mut w = Winners {
            node: vec![NONE; new_sorted.len()],
            score: vec![0; new_sorted.len()],
        };
        let mut o = 0;
        for &(key, idx) in new_sorted {
            while o < old_sorted.len() && old_sorted[o].0 < key {
                o += 1;
            }
            let (s, n) = if o < old_sorted.len() && old_sorted[o].0 == key {
                let old = old_sorted[o].1 as usize;
                (self.score[old], self.node[old])
            } else {
                rv.winner(key)
            };
            w.node[idx as usize] = n;
            w.score[idx as usize] = s;
        }
        w
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
            let (s, owner) = r.winner(key);
            let best = names
                .iter()
                .map(|n| score(key, xxh64(n.as_bytes(), 0)))
                .max()
                .unwrap();
            assert_eq!(s, best);
            assert_eq!(r.lookup(key, 1), vec![owner]);
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
        assert_eq!(r.best_where(12345, |i| i != all[0] as usize), Some(all[1]));
    }

    #[test]
    fn empty_set_owns_nothing() {
        let r = Rendezvous::new(&[]);
        assert_eq!(r.winner(1).1, NONE);
        assert!(r.lookup(1, 3).is_empty());
        assert_eq!(r.best_where(1, |_| true), None);
    }

    #[test]
    fn retarget_after_join_and_leave_equals_recompute() {
        let keys: Vec<u64> = (0..2_000u64).map(|i| mix64(i + 1)).collect();
        let all = names(12);
        let before: Vec<String> = all[..10].to_vec();
        // node-1 leaves, node-10 and node-11 join.
        let after: Vec<String> = all.iter().filter(|n| *n != "node-1").cloned().collect();
        let mut after_sorted = after.clone();
        after_sorted.sort();
        let mut before_sorted = before.clone();
        before_sorted.sort();
        let old_rv = Rendezvous::new(&before_sorted);
        let new_rv = Rendezvous::new(&after_sorted);
        let mut w = Winners::compute(&old_rv, &keys);
        w.retarget(&before_sorted, &after_sorted, &new_rv, &keys);
        let fresh = Winners::compute(&new_rv, &keys);
        assert_eq!(w.node, fresh.node);
        assert_eq!(w.score, fresh.score);
    }
}
