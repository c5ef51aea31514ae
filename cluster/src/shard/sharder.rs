//! The [`Sharder`]: one algorithm, the current peer set and the current target list, kept
//! ready so that a membership change costs one index rebuild and one linear pass.
//!
//! This module owns the caches (the eligible peer views per op, the sorted keys and anything
//! else derived from the keys alone) and dispatches lookups and whole-set assignments to the
//! algorithm modules. Everything is rebuilt from sorted inputs, so the result never depends on
//! the order peers or keys were given in (beyond the caller's key indices).

use super::assignment::{Assignment, NO_OWNER};
use super::bounded::{self, BoundedConfig, ClaimOrder};
use super::hashmod;
use super::key::mix64;
use super::peer::eligible_names;
use super::rendezvous::Rendezvous;
use super::ring::{Ring, TokenScheme};
use super::{Algorithm, Op, Peer};

/// Tokens per node of the `ring` algorithm: ckit's `Ring(512)` as Agent and Alloy configure it.
pub const RING_TOKENS_PER_NODE: usize = 512;

/// Owner lookups and whole-list assignment for one algorithm.
///
/// ```
/// use cluster::shard::{key_of_str, Algorithm, Op, Peer, Sharder};
/// let mut sharder = Sharder::new(Algorithm::Bounded);
/// sharder.set_peers(&[Peer::participant("a"), Peer::participant("b")]);
/// sharder.set_keys(&[key_of_str("target-0"), key_of_str("target-1")]);
/// let owners = sharder.assign(Op::Write);
/// assert!(owners.owner_of(0).is_some());
/// ```
#[derive(Debug, Clone)]
pub struct Sharder {
    algorithm: Algorithm,
    bounded: BoundedConfig,
    write: View,
    /// `None` while the read-eligible set equals the write-eligible set (no terminating nodes).
    read: Option<View>,
    keys: Keys,
}

/// The index of one eligible peer set.
#[derive(Debug, Clone)]
struct View {
    names: Vec<String>,
    index: Index,
}

#[derive(Debug, Clone)]
enum Index {
    /// `ring` (ckit tokens) and `bounded` (its preference ring).
    Ring(Ring),
    Rendezvous(Rendezvous),
    Hashmod,
    Empty,
}

/// The target list and what is derived from it alone; rebuilt only by `set_keys`.
#[derive(Debug, Clone, Default)]
struct Keys {
    /// Keys in the caller's order.
    keys: Vec<u64>,
    /// Keys ascending (ties by caller index).
    sorted: Vec<u64>,
    /// `index[p]`: caller index of `sorted[p]`.
    index: Vec<u32>,
    /// Sorted positions in claim order (bounded with `ClaimOrder::Scrambled` only).
    claim: Vec<u32>,
    /// Prometheus digests by caller index (hashmod only).
    digests: Vec<u64>,
}

impl Sharder {
    /// An empty sharder (no peers, no keys). `bounded` uses [`BoundedConfig::default`].
    pub fn new(algorithm: Algorithm) -> Sharder {
        Sharder {
            algorithm,
            bounded: BoundedConfig::default(),
            write: View::empty(),
            read: None,
            keys: Keys::default(),
        }
    }

    /// A `bounded` sharder with explicit tuning.
    pub fn with_bounded_config(config: BoundedConfig) -> Sharder {
        // Validates the factor now rather than on the first assign.
        config.cap(0, 1);
        Sharder {
            bounded: config,
            ..Sharder::new(Algorithm::Bounded)
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Replaces the peer set. Peers may come in any order; see [`Peer`] for duplicates.
    pub fn set_peers(&mut self, peers: &[Peer]) {
        let write = eligible_names(peers, Op::Write);
        let read = eligible_names(peers, Op::Read);
        self.read = if read == write {
            None
        } else {
            Some(self.build(read))
        };
        self.write = self.build(write);
    }

    /// Replaces the target list. Owners in an [`Assignment`] are reported by index into `keys`.
    /// Cheap when the list is unchanged.
    pub fn set_keys(&mut self, keys: &[u64]) {
        if keys == self.keys.keys.as_slice() {
            return;
        }
        assert!(
            keys.len() < u32::MAX as usize,
            "key indices must fit in u32"
        );
        let mut pairs: Vec<(u64, u32)> = keys
            .iter()
            .enumerate()
            .map(|(i, &k)| (k, i as u32))
            .collect();
        pairs.sort_unstable();
        let (sorted, index): (Vec<u64>, Vec<u32>) = pairs.into_iter().unzip();
        let claim = if self.algorithm == Algorithm::Bounded
            && self.bounded.order == ClaimOrder::Scrambled
        {
            let mut order: Vec<(u64, u32)> = sorted
                .iter()
                .enumerate()
                .map(|(p, &k)| (mix64(k), p as u32))
                .collect();
            order.sort_unstable();
            order.into_iter().map(|(_, p)| p).collect()
        } else {
            Vec::new()
        };
        let digests = if self.algorithm == Algorithm::Hashmod {
            keys.iter().map(|&k| hashmod::key_digest(k)).collect()
        } else {
            Vec::new()
        };
        self.keys = Keys {
            keys: keys.to_vec(),
            sorted,
            index,
            claim,
            digests,
        };
    }

    /// The current target list, in the order given to [`set_keys`](Self::set_keys).
    pub fn keys(&self) -> &[u64] {
        &self.keys.keys
    }

    /// The peers eligible for `op`, sorted by name.
    pub fn peers(&self, op: Op) -> &[String] {
        &self.view(op).names
    }

    /// Up to `replicas` owners of `key` for `op`: the owner first, then the next preferences.
    /// Fewer if fewer peers are eligible; empty if none is.
    ///
    /// For `bounded` this is the plain preference order of its ring, without load caps: the
    /// capped owner of a target depends on the whole target list, so use
    /// [`assign`](Self::assign) to decide what to scrape.
    pub fn lookup(&self, key: u64, replicas: usize, op: Op) -> Vec<&str> {
        let view = self.view(op);
        let nodes = match &view.index {
            Index::Ring(ring) => ring.lookup(key, replicas),
            Index::Rendezvous(r) => r.lookup(key, replicas),
            Index::Hashmod => hashmod::lookup(hashmod::key_digest(key), view.names.len(), replicas),
            Index::Empty => Vec::new(),
        };
        nodes
            .into_iter()
            .map(|n| view.names[n as usize].as_str())
            .collect()
    }

    /// The owner of every key of the current target list for `op`.
    pub fn assign(&self, op: Op) -> Assignment {
        let view = self.view(op);
        let keys = &self.keys;
        let n = view.names.len();
        let mut owners = vec![NO_OWNER; keys.keys.len()];
        let mut counts = vec![0u32; n];
        match &view.index {
            Index::Empty => {}
            Index::Ring(ring) if self.algorithm == Algorithm::Bounded => {
                let cap = self.bounded.cap(keys.keys.len(), n);
                bounded::assign(
                    ring,
                    &keys.sorted,
                    &keys.index,
                    &keys.claim,
                    cap,
                    &mut owners,
                    &mut counts,
                );
            }
            Index::Ring(ring) => {
                ring.walk_sorted(&keys.sorted, |pos, t| {
                    owners[keys.index[pos] as usize] = ring.node_at(t);
                });
            }
            Index::Rendezvous(r) => {
                for (owner, &key) in owners.iter_mut().zip(&keys.keys) {
                    *owner = r.owner(key).expect("non-empty view");
                }
            }
            Index::Hashmod => {
                for (owner, &d) in owners.iter_mut().zip(&keys.digests) {
                    *owner = (d % n as u64) as u32;
                }
            }
        }
        if self.algorithm != Algorithm::Bounded {
            for &o in &owners {
                if o != NO_OWNER {
                    counts[o as usize] += 1;
                }
            }
        }
        Assignment {
            peers: view.names.clone(),
            owners,
            counts,
        }
    }

    fn view(&self, op: Op) -> &View {
        match op {
            Op::Write => &self.write,
            Op::Read => self.read.as_ref().unwrap_or(&self.write),
        }
    }

    fn build(&self, names: Vec<String>) -> View {
        let index = if names.is_empty() {
            Index::Empty
        } else {
            match self.algorithm {
                Algorithm::Bounded => Index::Ring(Ring::new(
                    &names,
                    self.bounded.tokens_per_node,
                    TokenScheme::SplitMix,
                )),
                Algorithm::Ring => {
                    Index::Ring(Ring::new(&names, RING_TOKENS_PER_NODE, TokenScheme::Ckit))
                }
                Algorithm::Rendezvous => Index::Rendezvous(Rendezvous::new(&names)),
                Algorithm::Hashmod => Index::Hashmod,
            }
        };
        View { names, index }
    }
}

impl View {
    fn empty() -> View {
        View {
            names: Vec::new(),
            index: Index::Empty,
        }
    }
}
