//! What both engines share: the protocol config a scenario asks for, per-node seeds, and the
//! translation of a node's membership view into an observation, ownership included.
//!
//! Ownership is computed the way the agent computes it: the default sharding algorithm over
//! the participants the node sees, for the targets its config lists. Identical views share one
//! computation (a small cache keyed by the participants' fingerprint), which is what makes
//! 1,000-node runs affordable.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cluster::shard::{key_of_str, Algorithm, Op, Peer, Sharder};
use cluster::{Config, NodeState};

use crate::observe::{MemberView, NodeObservation, Status, View};
use crate::scenario::Scenario;

/// Port every simulated node listens on.
pub const PORT: u16 = 7946;

/// The address a node advertises: its name is its host name in both engines.
pub fn addr_of(name: &str) -> String {
    format!("{name}:{PORT}")
}

/// The name back from an address produced by [`addr_of`].
pub fn name_of(addr: &str) -> &str {
    addr.rsplit_once(':').map_or(addr, |(h, _)| h)
}

/// How long a leaving node may take to spread the news before its process stops
/// (the agent's bound on graceful shutdown).
pub const LEAVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Rejoin interval when the scenario does not set one (Alloy's `--cluster.rejoin-interval`).
pub const DEFAULT_REJOIN: Duration = Duration::from_secs(60);

/// The core config for a scenario: defaults with the scenario's overrides on top.
pub fn protocol_config(s: &Scenario) -> Config {
    let p = &s.cluster.protocol;
    let mut c = Config::default();
    if let Some(v) = p.probe_interval {
        c.probe_interval = v;
    }
    if let Some(v) = p.probe_timeout {
        c.probe_timeout = v;
    }
    if let Some(v) = p.indirect_checks {
        c.indirect_checks = v as usize;
    }
    if let Some(v) = p.suspicion_mult {
        c.suspicion_mult = v;
    }
    if let Some(v) = p.suspicion_max_timeout_mult {
        c.suspicion_max_timeout_mult = v;
    }
    if let Some(v) = p.retransmit_mult {
        c.retransmit_mult = v;
    }
    if let Some(v) = p.gossip_interval {
        c.gossip_interval = v;
    }
    if let Some(v) = p.gossip_nodes {
        c.gossip_nodes = v as usize;
    }
    if let Some(v) = p.gossip_to_the_dead {
        c.gossip_to_the_dead = v;
    }
    if let Some(v) = p.push_pull_interval {
        c.push_pull_interval = v;
    }
    if let Some(v) = p.awareness_max_multiplier {
        c.awareness_max_multiplier = v;
    }
    if let Some(v) = p.tombstone_ttl {
        c.tombstone_ttl = v;
    }
    if let Some(v) = p.suspicion_unit {
        c.suspicion_unit = v;
    }
    if let Some(v) = p.verifiers {
        c.verifiers = v as usize;
    }
    if let Some(v) = p.join_peers_max {
        c.join_peers_max = v as usize;
    }
    c.rejoin_interval = rejoin_interval(s);
    c
}

/// The rejoin interval a scenario asks for; zero disables rejoin.
pub fn rejoin_interval(s: &Scenario) -> Option<Duration> {
    match s.cluster.protocol.rejoin_interval {
        Some(d) if d.is_zero() => None,
        Some(d) => Some(d),
        None => Some(DEFAULT_REJOIN),
    }
}

/// The seed of one process of one node: differs per node and per restart, fixed per run seed.
pub fn node_seed(run_seed: u64, name: &str, restarts: u32) -> u64 {
    let h = key_of_str(name);
    run_seed
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(h)
        .wrapping_add((restarts as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9))
}

/// Status translation from the core's type.
pub fn status(s: cluster::Status) -> Status {
    match s {
        cluster::Status::Alive => Status::Alive,
        cluster::Status::Suspect => Status::Suspect,
        cluster::Status::Dead => Status::Dead,
        cluster::Status::Left => Status::Left,
    }
}

/// Target indices each participant owns, by participant name.
pub type Owners = Arc<BTreeMap<String, Vec<u32>>>;

/// Caches assignments by (participants, target count): nodes with the same view share one
/// computation. Keyed by the participants' fingerprint and count, so a lookup costs the same
/// at 1,000 nodes as at 10.
#[derive(Default)]
pub struct OwnershipCache {
    sharders: BTreeMap<u32, Sharder>,
    assignments: BTreeMap<(u128, usize, u32), Owners>,
    /// Per node: the key of its last computation and what it owned. While views change in a
    /// storm (every node's different from every other's) the shared entries above do not
    /// last, but a node whose participants did not change still costs nothing.
    last: BTreeMap<String, ((u128, usize, u32), Vec<u32>)>,
    /// The shard key of target `i`; `None`: `key_of_str("target-<i>")`.
    target_key: Option<fn(u32) -> u64>,
}

/// Entries kept before the cache is cleared; views change in bursts, then settle.
const CACHE_ENTRIES_MAX: usize = 256;

impl OwnershipCache {
    /// A cache whose target `i` has shard key `target_key(i)`, for an engine whose nodes key
    /// their targets another way (the agent keys a scrape target by its labels).
    pub fn with_target_key(target_key: fn(u32) -> u64) -> Self {
        OwnershipCache {
            target_key: Some(target_key),
            ..OwnershipCache::default()
        }
    }

    /// Compute at once what [`owned_by`](Self::owned_by) will be asked for `nodes` (name,
    /// view, target count), nearest views one after the other: the sharder moves from one
    /// participant set to the next incrementally, so during a storm (a 1,000-node start, when
    /// every node's view differs from every other's) sorting by size turns a thousand
    /// recomputations into a thousand small steps.
    pub fn prepare<'a>(&mut self, nodes: impl IntoIterator<Item = (&'a str, &'a View, u32)>) {
        let mut misses: Vec<((u128, usize, u32), &'a str, &'a View)> = nodes
            .into_iter()
            .filter(|(_, view, _)| view.participant_count() > 0)
            .map(|(name, view, targets)| {
                let key = (
                    view.participants_fingerprint(),
                    view.participant_count(),
                    targets,
                );
                (key, name, view)
            })
            .filter(|(key, name, _)| self.last.get(*name).is_none_or(|(k, _)| k != key))
            .collect();
        misses.sort_by_key(|&(key, name, _)| (key.2, key.1, key.0, name));
        for (key, name, view) in misses {
            let owned = self
                .owners(view, key.2)
                .get(name)
                .cloned()
                .unwrap_or_default();
            self.last.insert(name.to_string(), (key, owned));
        }
    }

    /// The target indices `name` owns, as it computes them from its view `view` and its
    /// config's `targets` targets.
    pub fn owned_by(&mut self, name: &str, view: &View, targets: u32) -> Vec<u32> {
        let key = (
            view.participants_fingerprint(),
            view.participant_count(),
            targets,
        );
        if let Some((k, owned)) = self.last.get(name) {
            if *k == key {
                return owned.clone();
            }
        }
        let owned = self
            .owners(view, targets)
            .get(name)
            .cloned()
            .unwrap_or_default();
        self.last.insert(name.to_string(), (key, owned.clone()));
        owned
    }

    /// Target indices each participant owns, as a node whose view is `view` and whose config
    /// lists `targets` targets computes it.
    pub fn owners(&mut self, view: &View, targets: u32) -> Owners {
        let key = (
            view.participants_fingerprint(),
            view.participant_count(),
            targets,
        );
        if let Some(a) = self.assignments.get(&key) {
            return a.clone();
        }
        let target_key = self.target_key;
        let sharder = self.sharders.entry(targets).or_insert_with(|| {
            let mut s = Sharder::new(Algorithm::default());
            let keys: Vec<u64> = (0..targets)
                .map(|i| target_key.map_or_else(|| key_of_str(&format!("target-{i}")), |k| k(i)))
                .collect();
            s.set_keys(&keys);
            s
        });
        let peers: Vec<Peer> = view
            .participant_names()
            .map(|n| Peer::participant(n.to_string()))
            .collect();
        sharder.set_peers(&peers);
        let assignment = sharder.assign(Op::Write);
        let mut lists: Vec<Vec<u32>> = vec![Vec::new(); assignment.peers().len()];
        for i in 0..assignment.len() {
            if let Some(o) = assignment.owner_index(i) {
                lists[o].push(i as u32);
            }
        }
        let by_owner: BTreeMap<String, Vec<u32>> = assignment
            .peers()
            .iter()
            .cloned()
            .zip(lists)
            .filter(|(_, owned)| !owned.is_empty())
            .collect();
        let result = Arc::new(by_owner);
        if self.assignments.len() >= CACHE_ENTRIES_MAX {
            self.assignments.clear();
        }
        self.assignments.insert(key, result.clone());
        result
    }
}

/// A node's member list from the core's type, as observations hold it.
pub fn view_of(members: &[cluster::MemberView]) -> View {
    view_from(members.to_vec())
}

/// [`view_of`] for a list the caller owns: names and addresses move, nothing is copied.
pub fn view_from(members: Vec<cluster::MemberView>) -> View {
    members
        .into_iter()
        .map(|m| MemberView {
            name: m.name,
            addr: m.addr,
            status: status(m.status),
            state: m.state,
            incarnation: m.incarnation,
            lamport: m.lamport,
        })
        .collect::<Vec<_>>()
        .into()
}

/// What the engines know about a live node, turned into an observation.
pub struct LiveNode<'a> {
    pub name: &'a str,
    pub restarts: u32,
    pub state: NodeState,
    pub incarnation: u64,
    pub lamport: u64,
    /// Its member list ([`view_of`]), shared with earlier observations when unchanged.
    pub view: View,
    pub config_targets: u32,
}

impl LiveNode<'_> {
    pub fn observe(self, cache: &mut OwnershipCache) -> NodeObservation {
        let owned_targets =
            if self.state == NodeState::Participant && self.view.participant_count() > 0 {
                cache.owned_by(self.name, &self.view, self.config_targets)
            } else {
                Vec::new()
            };
        NodeObservation {
            name: self.name.to_string(),
            live: true,
            restarts: self.restarts,
            state: self.state,
            incarnation: self.incarnation,
            lamport: self.lamport,
            members: self.view,
            owned_targets,
            config_targets: self.config_targets,
        }
    }
}
