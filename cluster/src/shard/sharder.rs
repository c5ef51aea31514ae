//! The [`Sharder`]: one algorithm, the current peer set and the current target list, kept
//! ready so that a membership or target change costs work proportional to what changed.
//!
//! This module owns the caches: the eligible peer view per op (names, and the ring or the
//! rendezvous winner table), the sorted target list, and anything else derived from the targets
//! alone (hashmod digests). It dispatches lookups and whole-list assignments to the algorithm
//! modules. Every cache is a function of the current inputs only, so results never depend on
//! the history of calls or on the order peers were given in.

use super::assignment::{Assignment, NO_OWNER};
use super::bounded::{self, BoundedConfig};
use super::hashmod;
use super::peer::eligible_names;
use super::rendezvous::{Rendezvous, Winners};
use super::ring::Ring;
use super::{Algorithm, Op, Peer};

/// Tokens per node of the `ring` algorithm: ckit's `Ring(512)` as Agent and Alloy configure it.
pub const RING_TOKENS_PER_NODE: usize = 512;

/// Owner lookups and whole-list assignment for one algorithm.
///
/// Typical use: `set_keys` when the target list changes, `set_peers` when membership or a
/// state changes, then `assign(Op::Write)` to learn what to scrape. Costs (K targets, N
/// eligible peers):
/// - `ring`: `set_peers` builds 512 tokens per node (O(N log N)); `assign` is one merge-walk
///   of the sorted targets against the tokens, O(K + N).
/// - `rendezvous` and `bounded`: a table of per-target winners is kept. The first fill costs
///   K x N scores; after that a join costs K scores, a leave N scores per target the leaver
///   held, a target-list change N scores per new target. `bounded`'s `assign` adds the capping
///   pass, O(K + N x rejected keys).
/// - `hashmod`: md5 per target on `set_keys`; `assign` is O(K).
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
    keys: Keys,
    write: View,
    /// `None` while the read-eligible set equals the write-eligible set (no terminating nodes).
    read: Option<View>,
}

/// The target list and what is derived from it alone; rebuilt only by `set_keys`.
#[derive(Debug, Clone, Default)]
struct Keys {
    /// Keys in the caller's order.
    keys: Vec<u64>,
    /// `(key, caller index)` ascending.
    sorted: Vec<(u64, u32)>,
    /// Prometheus digests by caller index (hashmod only).
    digests: Vec<u64>,
}

/// One eligible peer set and its index.
#[derive(Debug, Clone)]
struct View {
    names: Vec<String>,
    index: Index,
}

#[derive(Debug, Clone)]
enum Index {
    /// No eligible peer.
    Empty,
    Ring(Ring),
    /// `rendezvous` and `bounded`: the scores and the winner of every current key.
    Hrw {
        rv: Rendezvous,
        winners: Winners,
    },
    Hashmod,
}

impl Sharder {
    /// An empty sharder (no peers, no keys). `bounded` uses [`BoundedConfig::default`].
    pub fn new(algorithm: Algorithm) -> Sharder {
        Sharder {
            algorithm,
            bounded: BoundedConfig::default(),
            keys: Keys::default(),
            write: View::empty(),
            read: None,
        }
    }

    /// A `bounded` sharder with explicit tuning. Panics if the config is invalid.
    pub fn with_bounded_config(config: BoundedConfig) -> Sharder {
        config.validate();
        Sharder {
            bounded: config,
            ..Sharder::new(Algorithm::Bounded)
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn bounded_config(&self) -> BoundedConfig {
        self.bounded
    }

    /// Replaces the peer set. Peers may come in any order; see [`Peer`] for duplicates.
    pub fn set_peers(&mut self, peers: &[Peer]) {
        let write = eligible_names(peers, Op::Write);
        let read = eligible_names(peers, Op::Read);
        let read_view = if read == write {
            None
        } else {
            // Start from the closest existing view: usually one node away.
            let mut view = self.read.take().unwrap_or_else(|| self.write.clone());
            view.update(self.algorithm, read, &self.keys);
            Some(view)
        };
        self.write.update(self.algorithm, write, &self.keys);
        self.read = read_view;
    }

    /// Replaces the target list. Owners in an [`Assignment`] are reported by index into `keys`.
    /// Free when the list is unchanged; otherwise O(K log K) plus the new targets' scores.
    pub fn set_keys(&mut self, keys: &[u64]) {
        if keys == self.keys.keys.as_slice() {
            return;
        }
        assert!(
            keys.len() < u32::MAX as usize,
            "key indices must fit in u32"
        );
        let mut sorted: Vec<(u64, u32)> = keys
            .iter()
            .enumerate()
            .map(|(i, &k)| (k, i as u32))
            .collect();
        sorted.sort_unstable();
        let digests = if self.algorithm == Algorithm::Hashmod {
            keys.iter().map(|&k| hashmod::key_digest(k)).collect()
        } else {
            Vec::new()
        };
        let new = Keys {
            keys: keys.to_vec(),
            sorted,
            digests,
        };
        for view in std::iter::once(&mut self.write).chain(self.read.as_mut()) {
            if let Index::Hrw { rv, winners } = &mut view.index {
                *winners = winners.rekey(&self.keys.sorted, &new.sorted, rv);
            }
        }
        self.keys = new;
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
    /// For `bounded` this is the plain rendezvous preference order, without load caps: the
    /// capped owner of a target depends on the whole target list, so use
    /// [`assign`](Self::assign) to decide what to scrape.
    pub fn lookup(&self, key: u64, replicas: usize, op: Op) -> Vec<&str> {
        let view = self.view(op);
        let nodes = match &view.index {
            Index::Empty => Vec::new(),
            Index::Ring(ring) => ring.lookup(key, replicas),
            Index::Hrw { rv, .. } => rv.lookup(key, replicas),
            Index::Hashmod => hashmod::lookup(hashmod::key_digest(key), view.names.len(), replicas),
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
            Index::Ring(ring) => {
                ring.walk_sorted(&keys.sorted, |index, t| {
                    owners[index as usize] = ring.node_at(t);
                });
                count(&owners, &mut counts);
            }
            Index::Hrw { rv, winners } if self.algorithm == Algorithm::Bounded => {
                let caps = self.bounded.caps(keys.keys.len(), &view.names);
                bounded::assign(rv, &keys.keys, winners, &caps, &mut owners, &mut counts);
            }
            Index::Hrw { winners, .. } => {
                owners.copy_from_slice(&winners.node);
                count(&owners, &mut counts);
            }
            Index::Hashmod => {
                for (owner, &d) in owners.iter_mut().zip(&keys.digests) {
                    *owner = (d % n as u64) as u32;
                }
                count(&owners, &mut counts);
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
}

fn count(owners: &[u32], counts: &mut [u32]) {
    for &o in owners {
        if o != NO_OWNER {
            counts[o as usize] += 1;
        }
    }
}

impl View {
    fn empty() -> View {
        View {
            names: Vec::new(),
            index: Index::Empty,
        }
    }

    /// Moves this view to the eligible set `names` (sorted, distinct).
    fn update(&mut self, algorithm: Algorithm, names: Vec<String>, keys: &Keys) {
        if names == self.names {
            return;
        }
        if names.is_empty() {
            *self = View::empty();
            return;
        }
        self.index = match (std::mem::replace(&mut self.index, Index::Empty), algorithm) {
            (_, Algorithm::Ring) => Index::Ring(Ring::new(&names, RING_TOKENS_PER_NODE)),
            (_, Algorithm::Hashmod) => Index::Hashmod,
            (Index::Hrw { mut winners, .. }, _) => {
                let rv = Rendezvous::new(&names);
                winners.retarget(&self.names, &names, &rv, &keys.keys);
                Index::Hrw { rv, winners }
            }
            (_, Algorithm::Rendezvous | Algorithm::Bounded) => {
                let rv = Rendezvous::new(&names);
                let winners = Winners::compute(&rv, &keys.keys);
                Index::Hrw { rv, winners }
            }
        };
        self.names = names;
    }
}
