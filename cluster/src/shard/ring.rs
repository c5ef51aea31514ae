//! The token ring: consistent hashing with virtual nodes, as ckit's `Ring(n)` does it.
//!
//! This module owns the sorted token table of one eligible peer set and the two ways of reading
//! it: a single lookup (binary search, then walk clockwise collecting distinct nodes) and a
//! merge-walk that finds the first token of every key of an already-sorted key list in one
//! linear pass. Nodes are indices into the sorted eligible names, so "tie to the smaller name"
//! is "tie to the smaller index". It does not know about ops, states or load caps.
//!
//! Tokens are derived as ckit's `internal/chash/ring.go` derives them, so our figures are
//! comparable with ckit's: one streaming xxhash64 digest per node, fed the node name, then one
//! more byte per token (the token number truncated to a byte); token `t` is the digest after
//! `t + 1` such bytes. (Facts taken from ckit; the code is ours.)

use xxhash_rust::xxh64::Xxh64;

/// The sorted tokens of one peer set. Tokens are sorted by (hash, node), i.e. ties go to the
/// smaller name. Stored as two parallel arrays so the merge-walk touches only the hashes.
#[derive(Debug, Clone)]
pub(crate) struct Ring {
    hashes: Vec<u64>,
    nodes: Vec<u32>,
    node_count: usize,
}

impl Ring {
    /// Builds the ring of `names` (sorted, distinct) with `tokens_per_node` tokens each.
    pub(crate) fn new(names: &[String], tokens_per_node: usize) -> Ring {
        assert!(
            tokens_per_node > 0,
            "a ring needs at least one token per node"
        );
        assert!(
            names.len() < u32::MAX as usize,
            "node indices must fit in u32"
        );
        let mut tokens: Vec<(u64, u32)> = Vec::with_capacity(names.len() * tokens_per_node);
        for (node, name) in names.iter().enumerate() {
            let node = node as u32;
            let mut digest = Xxh64::new(0);
            digest.update(name.as_bytes());
            for t in 0..tokens_per_node {
                digest.update(&[t as u8]);
                tokens.push((digest.digest(), node));
            }
        }
        tokens.sort_unstable();
        let (hashes, nodes) = tokens.into_iter().unzip();
        Ring {
            hashes,
            nodes,
            node_count: names.len(),
        }
    }

    /// The node holding token `t`.
    #[inline]
    pub(crate) fn node_at(&self, t: usize) -> u32 {
        self.nodes[t]
    }

    /// The index of the first token clockwise from `key`: the first token hash >= key, wrapping
    /// to 0 past the end. Must not be called on an empty ring.
    #[inline]
    pub(crate) fn first_token(&self, key: u64) -> usize {
        let t = self.hashes.partition_point(|&h| h < key);
        if t == self.hashes.len() {
            0
        } else {
            t
        }
    }

    /// The next token index clockwise.
    #[inline]
    pub(crate) fn next_token(&self, t: usize) -> usize {
        if t + 1 == self.hashes.len() {
            0
        } else {
            t + 1
        }
    }

    /// Up to `replicas` distinct nodes for `key`: the owner, then the next distinct nodes
    /// clockwise. Fewer if the ring has fewer nodes.
    pub(crate) fn lookup(&self, key: u64, replicas: usize) -> Vec<u32> {
        let want = replicas.min(self.node_count);
        let mut out: Vec<u32> = Vec::with_capacity(want);
        if want == 0 {
            return out;
        }
        let mut seen = if want > 16 {
            vec![false; self.node_count]
        } else {
            Vec::new()
        };
        let mut t = self.first_token(key);
        // Every node has a token, so one lap always finds `want <= node_count` distinct nodes.
        while out.len() < want {
            let node = self.nodes[t];
            let new = if seen.is_empty() {
                !out.contains(&node)
            } else {
                !std::mem::replace(&mut seen[node as usize], true)
            };
            if new {
                out.push(node);
            }
            t = self.next_token(t);
        }
        out
    }

    /// For every `(key, index)` of `sorted` (ascending by key), calls `f(index, first_token)`,
    /// in order.
    ///
    /// One linear merge of keys against tokens instead of a binary search per key: O(K + T) and
    /// branch-predictable. Must not be called on an empty ring.
    #[inline]
    pub(crate) fn walk_sorted(&self, sorted: &[(u64, u32)], mut f: impl FnMut(u32, usize)) {
        debug_assert!(sorted.windows(2).all(|w| w[0] <= w[1]));
        let hashes = &self.hashes[..];
        let mut t = 0usize;
        for &(key, index) in sorted {
            while t < hashes.len() && hashes[t] < key {
                t += 1;
            }
            f(index, if t == hashes.len() { 0 } else { t });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::key::mix64;
    use xxhash_rust::xxh64::xxh64;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node-{i}")).collect()
    }

    #[test]
    fn ckit_tokens_are_a_growing_xxhash_stream_of_the_name() {
        let ring = Ring::new(&names(1), 3);
        let mut expected = vec![
            xxh64(b"node-0\x00", 0),
            xxh64(b"node-0\x00\x01", 0),
            xxh64(b"node-0\x00\x01\x02", 0),
        ];
        expected.sort_unstable();
        assert_eq!(ring.hashes, expected);
    }

    #[test]
    fn owner_is_first_token_at_or_after_the_key_wrapping_around() {
        let ring = Ring::new(&names(3), 4);
        let first = ring.hashes[0];
        let last = *ring.hashes.last().unwrap();
        assert_eq!(ring.lookup(first, 1), vec![ring.nodes[0]]);
        assert_eq!(ring.lookup(first - 1, 1), vec![ring.nodes[0]]);
        assert_eq!(ring.lookup(last, 1), vec![*ring.nodes.last().unwrap()]);
        assert_eq!(ring.lookup(last + 1, 1), vec![ring.nodes[0]], "wraps");
    }

    #[test]
    fn replicas_are_distinct_and_capped_by_node_count() {
        let ring = Ring::new(&names(5), 8);
        for key in [0u64, 1 << 40, u64::MAX] {
            let all = ring.lookup(key, 10);
            assert_eq!(all.len(), 5);
            let mut sorted = all.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), 5);
            assert_eq!(ring.lookup(key, 2), all[..2]);
        }
        assert!(ring.lookup(7, 0).is_empty());
    }

    #[test]
    fn merge_walk_agrees_with_binary_search() {
        let ring = Ring::new(&names(7), 16);
        let mut keys: Vec<(u64, u32)> = (0..500u64).map(|i| (mix64(i + 1), i as u32)).collect();
        keys.push((u64::MAX, 500));
        keys.push((0, 501));
        keys.sort_unstable();
        let mut seen = 0;
        ring.walk_sorted(&keys, |index, t| {
            let key = keys.iter().find(|k| k.1 == index).unwrap().0;
            assert_eq!(t, ring.first_token(key));
            seen += 1;
        });
        assert_eq!(seen, keys.len());
    }
}
