//! What engines report: snapshots of every node's view at a fixed simulated interval, the
//! network's reachability at that moment, the log of injected events, and counters.
//!
//! This module owns the data model between engines and checkers, and nothing else: no checking
//! and no formatting. Everything here is plain data with a defined order (nodes and members
//! sorted by name, targets ascending) so that the same run always produces the same bytes.
//!
//! A node's member list is a [`View`]: shared, not copied, from one observation to the next
//! while it does not change, so that at 1,000 nodes (a million member entries per observation)
//! engines and checkers pay only for the views that changed.
//!
//! An engine builds one [`Observation`] per interval from its nodes, e.g.:
//! ```
//! use sim::observe::*;
//! let me = MemberView {
//!     name: "node-1".into(), addr: "10.0.0.1:12345".into(), status: Status::Alive,
//!     state: NodeState::Participant, incarnation: 0, lamport: 3,
//! };
//! let obs = Observation {
//!     at_ms: 500,
//!     nodes: vec![
//!         NodeObservation {
//!             name: "node-1".into(), live: true, restarts: 0, state: NodeState::Participant,
//!             incarnation: 0, lamport: 3, members: vec![me].into(), owned_targets: vec![0, 1, 2],
//!             config_targets: 3,
//!         },
//!         // a crashed node: still listed, not live
//!         NodeObservation::down("node-2", 0, 3),
//!     ],
//!     reachability: Reachability::Full,
//! };
//! assert_eq!(obs.shape_error(), None);
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

pub use cluster::NodeState;

use crate::scenario::{Action, Event};

/// The interval at which engines observe, unless an engine documents another. Half a second is
/// well under every protocol period (probe 1-5 s), so convergence times are accurate to 0.5 s,
/// and cheap enough for 1,000 nodes over a few simulated minutes.
pub const OBSERVATION_INTERVAL_MS: u64 = 500;

/// Membership status of a member as one observer sees it (SWIM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    Alive,
    Suspect,
    Dead,
    /// Left gracefully; never the same as dead.
    Left,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Alive => "alive",
            Status::Suspect => "suspect",
            Status::Dead => "dead",
            Status::Left => "left",
        }
    }

    /// Dead or left: the member is out of the cluster in this observer's view.
    pub fn is_gone(self) -> bool {
        matches!(self, Status::Dead | Status::Left)
    }
}

/// One member as one observer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub name: String,
    /// Address the observer has for it (`host:port`), as the engine names addresses.
    pub addr: String,
    pub status: Status,
    /// The member's node state as last heard by the observer.
    pub state: NodeState,
    /// SWIM incarnation number the observer holds for it.
    pub incarnation: u64,
    /// Lamport time of the member's latest state message the observer holds.
    pub lamport: u64,
}

impl MemberView {
    /// Whether the observer counts this member as a participant (owns targets): state
    /// participant and not dead/left. A suspect is still a participant until declared dead.
    pub fn is_participant(&self) -> bool {
        self.state == NodeState::Participant && !self.status.is_gone()
    }
}

/// One node at one instant: what the node is, and what it believes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeObservation {
    pub name: String,
    /// Its process is running (false after a crash, after it left and stopped, before a join).
    pub live: bool,
    /// How many times its process was restarted so far. A new value means fresh process
    /// state: its own clocks may start again from zero.
    pub restarts: u32,
    /// Its own node state.
    pub state: NodeState,
    /// Its own incarnation.
    pub incarnation: u64,
    /// Its own Lamport clock.
    pub lamport: u64,
    /// Its membership view, itself included, sorted by name. Empty when not live.
    pub members: View,
    /// Target indices it believes it owns for writes (it would scrape them), ascending.
    /// Empty when not live; always empty for viewers and terminating nodes.
    pub owned_targets: Vec<u32>,
    /// How many targets its config lists: it knows `target-0 .. target-<config_targets - 1>`.
    pub config_targets: u32,
}

impl NodeObservation {
    /// A node whose process is not running (crashed, left and stopped, not yet joined).
    pub fn down(name: impl Into<String>, restarts: u32, config_targets: u32) -> Self {
        NodeObservation {
            name: name.into(),
            live: false,
            restarts,
            state: NodeState::Viewer,
            incarnation: 0,
            lamport: 0,
            members: View::default(),
            owned_targets: Vec::new(),
            config_targets,
        }
    }

    /// How many members this node counts as participants (computed once per view).
    pub fn participant_count(&self) -> usize {
        self.members.participant_count()
    }

    /// The names this node counts as participants, sorted.
    pub fn participant_view(&self) -> Vec<&str> {
        self.members.participant_names().collect()
    }

    pub fn member(&self, name: &str) -> Option<&MemberView> {
        self.members
            .binary_search_by(|m| m.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.members[i])
    }
}

/// A membership view: members sorted by name, behind an `Arc` so that an engine can hand the
/// same view to many observations while it does not change, and checkers can tell in O(1)
/// that it did not ([`View::same`]). What checkers derive from it (participants, their
/// fingerprint, whether it is sorted) is computed once per view.
///
/// Read it as a slice (`view.iter()`, `view.len()`); build it from a `Vec` (`vec![..].into()`);
/// edit it with [`View::to_mut`], which copies it if shared and forgets what was derived.
#[derive(Clone, Default)]
pub struct View(Arc<ViewInner>);

#[derive(Clone, Default)]
struct ViewInner {
    members: Vec<MemberView>,
    derived: OnceLock<Derived>,
    /// Whether the view lists a given name (its owner's, in practice), memoised for the first
    /// name asked: the shape check asks it of every live node at every observation.
    lists: OnceLock<(String, bool)>,
}

#[derive(Clone)]
struct Derived {
    /// Indices (into the members) of the participants, in name order.
    participants: Vec<u32>,
    fingerprint: u128,
    /// The first pair of members out of order, if any.
    unsorted_at: Option<String>,
}

impl View {
    pub fn new(members: Vec<MemberView>) -> Self {
        View(Arc::new(ViewInner {
            members,
            derived: OnceLock::new(),
            lists: OnceLock::new(),
        }))
    }

    /// The same shared view (not merely equal): nothing in it changed.
    pub fn same(&self, other: &View) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The members to edit (tests, test doubles). Copies a shared view first.
    pub fn to_mut(&mut self) -> &mut Vec<MemberView> {
        let inner = Arc::make_mut(&mut self.0);
        inner.derived = OnceLock::new();
        inner.lists = OnceLock::new();
        &mut inner.members
    }

    fn derived(&self) -> &Derived {
        self.0.derived.get_or_init(|| {
            let members = &self.0.members;
            let participants: Vec<u32> = (0..members.len() as u32)
                .filter(|&i| members[i as usize].is_participant())
                .collect();
            let fingerprint = fingerprint(
                participants
                    .iter()
                    .map(|&i| members[i as usize].name.as_str()),
            );
            let unsorted_at = members
                .windows(2)
                .find(|w| w[0].name >= w[1].name)
                .map(|w| w[1].name.clone());
            Derived {
                participants,
                fingerprint,
                unsorted_at,
            }
        })
    }

    /// Whether a member is named `name`.
    pub fn lists(&self, name: &str) -> bool {
        if let Some((n, listed)) = self.0.lists.get() {
            if n == name {
                return *listed;
            }
        }
        let listed = self
            .0
            .members
            .binary_search_by(|m| m.name.as_str().cmp(name))
            .is_ok();
        let _ = self.0.lists.set((name.to_string(), listed));
        listed
    }

    /// How many members are participants ([`MemberView::is_participant`]).
    pub fn participant_count(&self) -> usize {
        self.derived().participants.len()
    }

    /// The participants' names, in name order.
    pub fn participant_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.derived()
            .participants
            .iter()
            .map(|&i| self.0.members[i as usize].name.as_str())
    }

    /// [`fingerprint`] of the participants' names: equal sets, equal fingerprints.
    pub fn participants_fingerprint(&self) -> u128 {
        self.derived().fingerprint
    }

    /// The name of the first member not strictly after its predecessor, if the view is not
    /// sorted by unique name.
    pub fn unsorted_at(&self) -> Option<&str> {
        self.derived().unsorted_at.as_deref()
    }
}

impl Deref for View {
    type Target = [MemberView];
    fn deref(&self) -> &[MemberView] {
        &self.0.members
    }
}

impl<'a> IntoIterator for &'a View {
    type Item = &'a MemberView;
    type IntoIter = std::slice::Iter<'a, MemberView>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.members.iter()
    }
}

impl From<Vec<MemberView>> for View {
    fn from(members: Vec<MemberView>) -> Self {
        View::new(members)
    }
}

impl PartialEq for View {
    fn eq(&self, other: &View) -> bool {
        self.same(other) || self.0.members == other.0.members
    }
}

impl Eq for View {}

impl fmt::Debug for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.members.fmt(f)
    }
}

/// A 128-bit fingerprint of a sequence of names (order matters): two views list the same
/// participants iff their fingerprints are equal, up to a 2^-128 chance. Lets the convergence
/// check compare a thousand views of a thousand names in O(nodes), not O(nodes x names).
pub fn fingerprint<'a>(names: impl IntoIterator<Item = &'a str>) -> u128 {
    // splitmix64 finalizer over xxhash64 of each name, in two independent lanes.
    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let (mut a, mut b, mut n) = (0x243f_6a88_85a3_08d3u64, 0x1319_8a2e_0370_7344u64, 0u64);
    for name in names {
        let k = cluster::shard::key_of_str(name);
        a = mix(a ^ k).wrapping_add(n);
        b = mix(b.rotate_left(17) ^ k ^ 0x9e37_79b9_7f4a_7c15);
        n += 1;
    }
    (u128::from(mix(a ^ n)) << 64) | u128::from(mix(b ^ n))
}

/// Which nodes can reach which at an instant: the partition in force.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Reachability {
    /// No partition: every node can reach every other (loss and latency aside).
    #[default]
    Full,
    /// A partition: nodes in the same group reach each other; a node in no group is alone.
    Groups(Vec<Vec<String>>),
}

/// The side of a partition a node is on. Two nodes can reach each other iff equal.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    Everyone,
    Group(usize),
    Alone(String),
}

impl Reachability {
    pub fn side(&self, name: &str) -> Side {
        match self {
            Reachability::Full => Side::Everyone,
            Reachability::Groups(groups) => groups
                .iter()
                .position(|g| g.iter().any(|n| n == name))
                .map_or_else(|| Side::Alone(name.to_string()), Side::Group),
        }
    }

    pub fn can_reach(&self, a: &str, b: &str) -> bool {
        a == b || self.side(a) == self.side(b)
    }

    /// The reachability after `action`, or `None` if `action` does not change it.
    pub fn after(&self, action: &Action) -> Option<Reachability> {
        match action {
            Action::Partition(groups) => Some(Reachability::Groups(groups.clone())),
            Action::Heal => Some(Reachability::Full),
            _ => None,
        }
    }
}

/// Every node at one simulated instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub at_ms: u64,
    /// Every node the run has had so far (live or not), sorted by name, names unique.
    pub nodes: Vec<NodeObservation>,
    pub reachability: Reachability,
}

impl Observation {
    pub fn node(&self, name: &str) -> Option<&NodeObservation> {
        self.nodes
            .binary_search_by(|n| n.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }

    /// Whether `name` is a live node (unknown names are not).
    pub fn is_live(&self, name: &str) -> bool {
        self.node(name).is_some_and(|n| n.live)
    }

    /// Checks the ordering rules engines must keep; the checkers rely on them. Returns what is
    /// wrong, for an engine's own tests and for `Checks` to report as an engine bug.
    pub fn shape_error(&self) -> Option<String> {
        for w in self.nodes.windows(2) {
            if w[0].name >= w[1].name {
                return Some(format!(
                    "nodes not sorted by unique name: {:?} before {:?}",
                    w[0].name, w[1].name
                ));
            }
        }
        for n in &self.nodes {
            if let Some(at) = n.members.unsorted_at() {
                return Some(format!(
                    "{}: members not sorted by unique name at {:?}",
                    n.name, at
                ));
            }
            for w in n.owned_targets.windows(2) {
                if w[0] >= w[1] {
                    return Some(format!(
                        "{}: owned_targets not ascending and unique at {}",
                        n.name, w[1]
                    ));
                }
            }
            if let Some(t) = n.owned_targets.last() {
                if *t >= n.config_targets {
                    return Some(format!(
                        "{}: owns target {t} but its config lists only {}",
                        n.name, n.config_targets
                    ));
                }
            }
            if n.live && !n.members.lists(&n.name) {
                return Some(format!(
                    "{}: a live node must list itself among its members",
                    n.name
                ));
            }
        }
        None
    }
}

/// One entry of the run's event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub at_ms: u64,
    /// One line, e.g. `crash node-3` (see `Action::describe`).
    pub description: String,
    /// Whether it changes the set of participants (crash, restart, leave, join).
    pub membership_change: bool,
    /// A partition or heal carries the reachability it puts in force.
    pub reachability: Option<Reachability>,
}

impl EventRecord {
    /// The record of a scenario event as applied; every engine logs scenario events this way.
    pub fn from_scenario(event: &Event) -> Self {
        EventRecord {
            at_ms: event.at.as_millis() as u64,
            description: event.action.describe(),
            membership_change: event.action.is_membership_change(),
            reachability: Reachability::Full.after(&event.action),
        }
    }

    /// A fault an engine added on its own (from the seed).
    pub fn new(at_ms: u64, description: impl Into<String>, membership_change: bool) -> Self {
        EventRecord {
            at_ms,
            description: description.into(),
            membership_change,
            reachability: None,
        }
    }
}

/// Faults injected during a run, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FaultCounts {
    pub partitions: u64,
    pub heals: u64,
    pub crashes: u64,
    pub restarts: u64,
    pub leaves: u64,
    pub joins: u64,
    /// `targets` events (config drift).
    pub config_changes: u64,
    /// `loss` and `latency` events.
    pub network_changes: u64,
    /// Messages (packets or requests) the network dropped.
    pub dropped_messages: u64,
    /// `power_off` events (hosts gone silent); not in reports of runs without any.
    #[serde(skip_serializing_if = "is_zero")]
    pub power_offs: u64,
    /// `stall` events (starved event loops); not in reports of runs without any.
    #[serde(skip_serializing_if = "is_zero")]
    pub stalls: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl FaultCounts {
    /// Counts one applied scenario action.
    pub fn count(&mut self, action: &Action) {
        let slot = match action {
            Action::Partition(_) => &mut self.partitions,
            Action::Heal => &mut self.heals,
            Action::Crash(_) => &mut self.crashes,
            Action::PowerOff(_) => &mut self.power_offs,
            Action::Stall { .. } => &mut self.stalls,
            Action::Restart(_) => &mut self.restarts,
            Action::Leave(_) => &mut self.leaves,
            Action::Join(_) => &mut self.joins,
            Action::Targets { .. } => &mut self.config_changes,
            Action::Loss(_) | Action::Latency(_) => &mut self.network_changes,
        };
        *slot += 1;
    }
}

/// What an engine counted over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Messages (packets and push/pull streams) handed to the network.
    pub messages_sent: u64,
    /// Bytes of those messages (payload as the core produced it).
    pub bytes_sent: u64,
    pub faults: FaultCounts,
}

/// Wall-clock figures of a run on real processes (the `process` engine). They differ from run
/// to run, so only that engine produces them; they go to report.json's `process` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct WallFigures {
    /// Wall time from the first agent spawned to the last observation.
    pub wall_ms: u64,
    /// From spawning the initial agents until every one of them answered its API.
    pub startup_ms: u64,
    /// Agent processes started: initial nodes, joins and restarts.
    pub processes_started: u64,
    /// How late observations were taken after their scheduled instant (scheduled every
    /// `OBSERVATION_INTERVAL_MS` of wall time): median and largest.
    pub observation_lag_p50_ms: u64,
    pub observation_lag_max_ms: u64,
    /// Node observations repeated from the one before because the node, running, did not
    /// answer in time.
    pub stale_node_observations: u64,
    /// Longest an event took to apply and take effect (a joined or restarted agent answering,
    /// a leaving one terminating, a reloaded one listing its new targets), on top of its lag.
    pub event_settle_max_ms: u64,
    /// How late events were applied after their scheduled instant, at most.
    pub event_lag_max_ms: u64,
    /// Observations where a participant's view had not changed for a second around the
    /// observation, and the agent's own count of the targets it scrapes
    /// (`agent_scrape_targets_owned`) was compared with the count its view gives.
    pub owned_checks: u64,
    /// Of those, how many differed (the agent scrapes what its view does not say it owns).
    pub owned_mismatches: u64,
    /// How the scenario's latency was applied: `tc netem`, or why it was not.
    pub latency: String,
}

/// Where an engine sends what it sees, as it runs.
pub trait ObservationSink {
    /// An event was applied (see the `Engine` contract for ordering).
    fn event(&mut self, record: &EventRecord);
    /// A snapshot of every node.
    fn observe(&mut self, observation: &Observation);
}

/// A sink that keeps everything, for tests and for small runs that are analysed twice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recording {
    pub events: Vec<EventRecord>,
    pub observations: Vec<Observation>,
}

impl ObservationSink for Recording {
    fn event(&mut self, record: &EventRecord) {
        self.events.push(record.clone());
    }
    fn observe(&mut self, observation: &Observation) {
        self.observations.push(observation.clone());
    }
}

impl Recording {
    /// Sends everything again, events before observations of the same instant.
    pub fn replay(&self, sink: &mut dyn ObservationSink) {
        let mut events = self.events.iter().peekable();
        for obs in &self.observations {
            while let Some(e) = events.next_if(|e| e.at_ms <= obs.at_ms) {
                sink.event(e);
            }
            sink.observe(obs);
        }
        for e in events {
            sink.event(e);
        }
    }

    /// Every node name seen in any observation.
    pub fn node_names(&self) -> BTreeSet<String> {
        self.observations
            .iter()
            .flat_map(|o| o.nodes.iter().map(|n| n.name.clone()))
            .collect()
    }
}
