//! One cluster node's protocol state machine: SWIM membership with Lifeguard, and ckit node
//! states ordered by a Lamport clock.
//!
//! [`Node`] owns the member table, the probe cycle, suspicion timers, the broadcast queue,
//! push/pull merging, join and leave, and the name-conflict and cluster-name checks. It is
//! sans-I/O: the driver feeds it bytes and `now`, asks [`Node::poll_timeout`] when to call
//! [`Node::handle_timeout`], and drains [`Node::poll_transmit`] and [`Node::poll_event`].
//! It must not read clocks, touch sockets or iterate in an unspecified order.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::time::Duration;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::broadcast::BroadcastQueue;
use crate::config::{Config, ConfigError};
use crate::lamport::LamportClock;
use crate::state::NodeState;
use crate::suspicion::Suspicion;
use crate::time::Instant;
use crate::wire::{
    self, BodyOf, Envelope, Kind, MemberRecordRef, Primary, Rejection, Status, Update, UpdateRef,
    WireError,
};

/// Indirect-probe requests this node serves at once; more are ignored (the asker then counts a
/// missing nack against its own health, which is what Lifeguard wants from an overloaded peer).
const FORWARDS_MAX: usize = 1024;
/// Unknown senders we are syncing with at once; more wait for the next window.
const STRANGERS_MAX: usize = 16;
/// Events kept for the driver; older ones are dropped first.
const EVENTS_MAX: usize = 1024;

/// What the driver must send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransmitKind {
    /// A one-way packet (ckit: `POST /api/v1/ckit/transport/message`).
    Packet,
    /// A full-state exchange; the answer goes to [`Node::handle_push_pull_response`]
    /// (ckit: `POST /api/v1/ckit/transport/stream`).
    PushPull { join: bool },
}

/// One message to send to `to` (an advertised address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub to: String,
    pub kind: TransmitKind,
    pub payload: Vec<u8>,
}

/// Things the driver (and the user) should know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Some member's status, address or node state changed: recompute ownership.
    MembershipChanged,
    /// A join attempt reached the cluster through `via`.
    Joined { via: String },
    /// Every seed of a join attempt failed; the node runs as its own cluster until a rejoin.
    JoinFailed { errors: Vec<(String, String)> },
    /// The cluster refused this node. Fatal for a name conflict.
    JoinRejected { by: String, rejection: Rejection },
    /// This node refused a join (counted too).
    RefusedJoin { rejection: Rejection, from: String },
}

/// Counters (monotonic) and a few gauges, read by metrics and the simulator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub packets_rx: u64,
    pub packets_tx: u64,
    pub bytes_rx: u64,
    pub bytes_tx: u64,
    pub packets_rx_failed: u64,
    pub packets_tx_failed: u64,
    pub push_pulls_rx: u64,
    pub push_pulls_tx: u64,
    pub push_pulls_failed: u64,
    /// Gossip events received, by `UpdateRef::event_name`.
    pub events_received: BTreeMap<&'static str, u64>,
    pub name_conflicts: u64,
    pub cluster_mismatches: u64,
    pub refutations: u64,
    /// Full-state exchanges started because a prober's view digest differed from ours.
    pub digest_syncs: u64,
    pub probes_failed: u64,
    pub members_refused_full: u64,
    pub outbox_dropped: u64,
    pub broadcasts_dropped: u64,
    /// Updates refused because their incarnation or Lamport time is beyond what the member
    /// could have reached ([`crate::config::INCARNATION_MAX`] and friends).
    pub updates_out_of_bounds: u64,
}

/// A member as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub name: String,
    pub addr: String,
    pub incarnation: u64,
    pub status: Status,
    pub state: NodeState,
    pub lamport: u64,
    pub is_self: bool,
}

#[derive(Debug, Clone)]
struct Member {
    addr: String,
    incarnation: u64,
    status: Status,
    since: Instant,
}

#[derive(Debug)]
struct Probe {
    seq: u32,
    target: String,
    indirect_at: Instant,
    indirect_sent: bool,
    expected_nacks: u32,
    nacks: u32,
    acked: bool,
}

#[derive(Debug)]
struct Forward {
    origin_addr: String,
    origin_seq: u32,
    deadline: Instant,
}

#[derive(Debug, Default)]
struct JoinAttempt {
    pending: BTreeSet<String>,
    errors: Vec<(String, String)>,
    succeeded: bool,
}

/// A cluster node's protocol state.
#[derive(Debug)]
pub struct Node {
    config: Config,
    name: String,
    addr: String,
    incarnation: u64,
    leaving: bool,
    members: BTreeMap<String, Member>,
    /// Node states by member name, self included: (state, Lamport time of the winning message).
    states: BTreeMap<String, (NodeState, u64)>,
    lamport: LamportClock,
    rng: ChaCha8Rng,
    broadcasts: BroadcastQueue,
    outbox: VecDeque<Transmit>,
    events: VecDeque<Event>,
    suspicions: Suspicions,
    probe: Option<Probe>,
    probe_order: Vec<String>,
    next_probe: Instant,
    next_gossip: Instant,
    next_push_pull: Instant,
    next_gc: Instant,
    seq: u32,
    forwards: BTreeMap<u32, Forward>,
    awareness: u32,
    join: Option<JoinAttempt>,
    /// Addresses to (re)join, and when to do it next.
    seeds: Vec<String>,
    next_join: Option<Instant>,
    join_backoff: Duration,
    next_reconnect: Option<Instant>,
    /// Recent state exchanges with unknown senders, by name.
    stranger_syncs: BTreeMap<String, Instant>,
    /// Cached view digest and the view version it was computed at.
    digest: (u64, u32),
    last_digest_sync: Option<Instant>,
    stats: Stats,
    view_version: u64,
    /// Names of `members` in insertion order, for sampling gossip targets without walking the
    /// table (rebuilt when tombstones are forgotten).
    roster: Vec<String>,
    /// Live count (self included) and the view version it was computed at.
    live_cache: std::cell::Cell<(u64, usize)>,
    /// Earliest tombstone expiry and the view version it was computed at.
    tombstone_cache: std::cell::Cell<(u64, Option<Instant>)>,
    /// What [`Node::is_old_news`] needs of `members` and `states`, by a keyed 64-bit hash of
    /// the name: a large cluster gossips each update to every node many times, and most
    /// arrivals are checked here and dropped, so the check must cost one cache line, not a
    /// walk over heap strings. Kept in step by `apply` and the table's removals.
    hot: HashMap<u64, Hot, BuildHasherDefault<PreHashed>>,
    /// Key of the name hash (per node, from its seed: peers cannot aim collisions at it).
    hot_key: u64,
    /// The member list of our last full-state message, and what it depended on.
    state_cache: std::cell::RefCell<Option<(StateKey, std::sync::Arc<[u8]>)>>,
}

/// Open suspicions by member, with their earliest deadline cached: a node of a partitioned
/// large cluster suspects hundreds of members at once, and its next timeout is asked for after
/// every message.
#[derive(Debug, Default)]
struct Suspicions {
    map: BTreeMap<String, Suspicion>,
    /// `None` when stale; else the earliest deadline, if any.
    earliest: std::cell::Cell<Option<Option<Instant>>>,
}

impl Suspicions {
    fn earliest(&self) -> Option<Instant> {
        if let Some(e) = self.earliest.get() {
            return e;
        }
        let e = self.map.values().map(Suspicion::deadline).min();
        self.earliest.set(Some(e));
        e
    }

    fn get(&self, name: &str) -> Option<&Suspicion> {
        self.map.get(name)
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut Suspicion> {
        self.earliest.set(None);
        self.map.get_mut(name)
    }

    fn insert(&mut self, name: String, s: Suspicion) {
        self.earliest.set(None);
        self.map.insert(name, s);
    }

    fn remove(&mut self, name: &str) -> Option<Suspicion> {
        self.earliest.set(None);
        self.map.remove(name)
    }
}

/// A member's status, incarnation and address hash, and the Lamport time of its node state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Hot {
    member: Option<(Status, u64, u64)>,
    lamport: Option<u64>,
}

fn addr_hash(addr: &str) -> u64 {
    xxhash_rust::xxh64::xxh64(addr.as_bytes(), 0)
}

/// Hasher for keys that are already uniform 64-bit hashes.
#[derive(Default)]
struct PreHashed(u64);

impl std::hash::Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | b as u64;
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// What an encoded member list depends on besides the member table.
type StateKey = (u64, u64, bool, (NodeState, u64));

fn check_ident(field: &'static str, v: &str) -> Result<(), ConfigError> {
    if v.is_empty() || v.len() > wire::STR_BYTES_MAX {
        return Err(ConfigError {
            field,
            reason: format!("must be 1 to {} bytes, got {:?}", wire::STR_BYTES_MAX, v),
        });
    }
    Ok(())
}

impl Node {
    /// A node named `name` that peers reach at `addr`, starting as a viewer at `now`.
    /// All randomness comes from `seed`.
    pub fn new(
        config: Config,
        name: &str,
        addr: &str,
        seed: u64,
        now: Instant,
    ) -> Result<Node, ConfigError> {
        config.validate()?;
        check_ident("node_name", name)?;
        check_ident("advertise_addr", addr)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Spread periodic work so that nodes started together do not probe in lock step.
        let probe_jitter = config.probe_interval.mul_f64(rng.gen::<f64>());
        let push_pull_jitter = config.push_pull_interval.mul_f64(rng.gen::<f64>());
        let mut node = Node {
            broadcasts: BroadcastQueue::new(config.broadcast_queue_max),
            name: name.to_string(),
            addr: addr.to_string(),
            incarnation: 0,
            leaving: false,
            members: BTreeMap::new(),
            states: BTreeMap::new(),
            lamport: LamportClock::new(),
            rng,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            suspicions: Suspicions::default(),
            probe: None,
            probe_order: Vec::new(),
            next_probe: now + probe_jitter,
            next_gossip: now + config.gossip_interval,
            next_push_pull: now + config.push_pull_interval + push_pull_jitter,
            next_gc: now + Duration::from_secs(1),
            seq: 0,
            forwards: BTreeMap::new(),
            awareness: 0,
            join: None,
            seeds: Vec::new(),
            next_join: None,
            join_backoff: config.join_retry_min,
            next_reconnect: config.reconnect_interval.map(|d| now + d),
            stranger_syncs: BTreeMap::new(),
            digest: (u64::MAX, 0),
            last_digest_sync: None,
            stats: Stats::default(),
            view_version: 0,
            roster: Vec::new(),
            live_cache: std::cell::Cell::new((u64::MAX, 0)),
            tombstone_cache: std::cell::Cell::new((u64::MAX, None)),
            state_cache: std::cell::RefCell::new(None),
            hot: HashMap::default(),
            hot_key: seed ^ 0x6a09_e667_f3bc_c908,
            config,
        };
        let t = node.lamport.tick();
        node.states
            .insert(node.name.clone(), (NodeState::Viewer, t));
        node.announce_alive();
        node.broadcasts.push(&Update::State {
            name: node.name.clone(),
            state: NodeState::Viewer,
            lamport: t,
        });
        Ok(node)
    }

    // -----------------------------------------------------------------------------------------
    // Accessors

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    pub fn lamport_time(&self) -> u64 {
        self.lamport.now()
    }

    pub fn state(&self) -> NodeState {
        self.states[&self.name].0
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Lifeguard local health score: 0 is healthy, higher means this node is likely the
    /// problem (`cluster_node_gossip_health_score`).
    pub fn health_score(&self) -> u32 {
        self.awareness
    }

    /// Bumps on every visible change of the member table.
    pub fn view_version(&self) -> u64 {
        self.view_version
    }

    /// Updates still queued for gossip.
    pub fn broadcasts_pending(&self) -> usize {
        self.broadcasts.len()
    }

    pub fn is_leaving(&self) -> bool {
        self.leaving
    }

    /// True once the last join attempt reached someone, or when none was made.
    pub fn has_joined(&self) -> bool {
        self.join.as_ref().map_or(true, |j| j.succeeded)
    }

    /// Every member this node knows, itself and tombstones included, sorted by name.
    pub fn members(&self) -> Vec<MemberView> {
        let mut out: Vec<MemberView> = self
            .members
            .iter()
            .map(|(name, m)| {
                let (state, lamport) = self
                    .states
                    .get(name)
                    .copied()
                    .unwrap_or((NodeState::Viewer, 0));
                MemberView {
                    name: name.clone(),
                    addr: m.addr.clone(),
                    incarnation: m.incarnation,
                    status: m.status,
                    state,
                    lamport,
                    is_self: false,
                }
            })
            .collect();
        let (state, lamport) = self.states[&self.name];
        let me = MemberView {
            name: self.name.clone(),
            addr: self.addr.clone(),
            incarnation: self.incarnation,
            status: if self.leaving {
                Status::Left
            } else {
                Status::Alive
            },
            state,
            lamport,
            is_self: true,
        };
        let pos = out.partition_point(|m| m.name < me.name);
        out.insert(pos, me);
        out
    }

    /// Members that are alive or suspect (self included), with their node state, sorted by
    /// name: the input of sharding.
    pub fn live_members(&self) -> Vec<(String, NodeState)> {
        self.members()
            .into_iter()
            .filter(|m| matches!(m.status, Status::Alive | Status::Suspect))
            .map(|m| (m.name, m.state))
            .collect()
    }

    /// Number of alive or suspect members, self included.
    pub fn live_count(&self) -> usize {
        // Every change of a member's status bumps `view_version` (see `changed`), and members
        // leave the table only as tombstones, so the count only needs recounting then.
        let (version, count) = self.live_cache.get();
        if version == self.view_version {
            return count;
        }
        let count = 1 + self
            .members
            .values()
            .filter(|m| matches!(m.status, Status::Alive | Status::Suspect))
            .count();
        self.live_cache.set((self.view_version, count));
        count
    }

    /// Dead and left members still remembered.
    fn tombstone_count(&self) -> usize {
        self.members.len() + 1 - self.live_count()
    }

    /// When the oldest tombstone may be forgotten (recomputed only after the table changed).
    fn first_tombstone_expiry(&self) -> Option<Instant> {
        if self.tombstone_count() == 0 {
            return None;
        }
        let (version, expiry) = self.tombstone_cache.get();
        if version == self.view_version {
            return expiry;
        }
        let expiry = self
            .members
            .values()
            .filter(|m| matches!(m.status, Status::Dead | Status::Left))
            .map(|m| m.since + self.config.tombstone_ttl)
            .min();
        self.tombstone_cache.set((self.view_version, expiry));
        expiry
    }

    // -----------------------------------------------------------------------------------------
    // Driver interface

    /// The next time [`Node::handle_timeout`] has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.next_probe.min(self.next_gc);
        if !self.broadcasts.is_empty() {
            t = t.min(self.next_gossip);
        }
        if !self.config.push_pull_interval.is_zero() {
            t = t.min(self.next_push_pull);
        }
        if let Some(p) = &self.probe {
            if !p.acked && !p.indirect_sent {
                t = t.min(p.indirect_at);
            }
        }
        if let Some(d) = self.suspicions.earliest() {
            t = t.min(d);
        }
        for f in self.forwards.values() {
            t = t.min(f.deadline);
        }
        if let Some(j) = self.next_join {
            t = t.min(j);
        }
        if let Some(r) = self.next_reconnect {
            t = t.min(r);
        }
        Some(t)
    }

    /// The next message to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Run every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Indirect probes once the direct ack is late.
        let need_indirect =
            matches!(&self.probe, Some(p) if !p.acked && !p.indirect_sent && now >= p.indirect_at);
        if need_indirect {
            self.send_indirect_probes();
        }
        if now >= self.next_probe {
            self.finish_probe(now);
            if !self.leaving {
                self.start_probe(now);
            }
            self.next_probe = now + self.scaled(self.config.probe_interval);
        }
        // Suspicions that ran out: a last-chance probe first (the member may never have heard
        // it is suspected, e.g. when the gossip ran out during a partition), then death.
        let expired: Vec<String> = if self.suspicions.earliest().is_some_and(|d| d <= now) {
            self.suspicions
                .map
                .iter()
                .filter(|(_, s)| s.deadline() <= now)
                .map(|(n, _)| n.clone())
                .collect()
        } else {
            Vec::new()
        };
        let grace = self.scaled(self.config.probe_timeout) * 2;
        for name in expired {
            let probe_again = self
                .suspicions
                .get_mut(&name)
                .is_some_and(|s| s.last_chance(grace));
            if probe_again {
                self.probe_suspect(&name);
                continue;
            }
            if let Some(s) = self.suspicions.remove(&name) {
                let from = self.name.clone();
                self.apply(
                    now,
                    Update::Dead {
                        name,
                        incarnation: s.incarnation,
                        from,
                    },
                );
            }
        }
        // Indirect probes we serve that got no ack: tell the asker (Lifeguard nack).
        let late: Vec<u32> = self
            .forwards
            .iter()
            .filter(|(_, f)| f.deadline <= now)
            .map(|(s, _)| *s)
            .collect();
        for seq in late {
            let f = self.forwards.remove(&seq).expect("listed");
            self.send_packet(f.origin_addr, Primary::Nack { seq: f.origin_seq });
        }
        if now >= self.next_gossip {
            self.gossip(now);
            self.next_gossip = now + self.config.gossip_interval;
        }
        if self.next_reconnect.is_some_and(|t| now >= t) {
            self.reconnect();
            self.next_reconnect = self.config.reconnect_interval.map(|d| now + d);
        }
        if !self.config.push_pull_interval.is_zero() && now >= self.next_push_pull {
            self.periodic_push_pull();
            self.next_push_pull = now + self.config.push_pull_interval_for(self.live_count());
        }
        if now >= self.next_gc {
            self.collect_tombstones(now);
            self.next_gc = now + Duration::from_secs(1);
        }
        if self.next_join.is_some_and(|t| now >= t) {
            self.next_join = None;
            if !self.leaving {
                let seeds = self.seeds.clone();
                self.join(now, &seeds);
            }
        }
    }

    /// Contact up to `join_peers_max` of `seeds` (advertised addresses) with a full-state
    /// exchange, and remember them: the node rejoins them every `rejoin_interval`, and sooner
    /// (backing off from `join_retry_min`) while a join reached nobody and it is alone.
    /// Own address is skipped, so a seed node may list itself. Returns how many were contacted;
    /// zero means this node starts (or stays) a cluster of its own.
    pub fn join(&mut self, now: Instant, seeds: &[String]) -> usize {
        self.seeds = seeds.to_vec();
        self.next_join = self.config.rejoin_interval.map(|d| now + d);
        let mut picked = BTreeSet::new();
        let mut order = Vec::new();
        for s in seeds {
            if *s != self.addr && !s.is_empty() && picked.insert(s.clone()) {
                order.push(s.clone());
            }
        }
        order.truncate(self.config.join_peers_max);
        if order.is_empty() {
            return 0;
        }
        let payload = self.encode_state(Kind::PushPullRequest, true);
        for to in &order {
            self.stats.push_pulls_tx += 1;
            self.push_out(Transmit {
                to: to.clone(),
                kind: TransmitKind::PushPull { join: true },
                payload: payload.clone(),
            });
        }
        self.join = Some(JoinAttempt {
            pending: order.iter().cloned().collect(),
            ..JoinAttempt::default()
        });
        order.len()
    }

    /// Replace the join addresses (after a fresh DNS resolution, say) without joining now,
    /// unless this node is alone: then it joins the new addresses at once.
    pub fn set_seeds(&mut self, now: Instant, seeds: &[String]) {
        if seeds == self.seeds.as_slice() {
            return;
        }
        self.seeds = seeds.to_vec();
        if self.live_count() == 1 && !self.leaving && !seeds.is_empty() {
            self.join(now, seeds);
        }
    }

    /// Move this node to `next` (viewer -> participant -> terminating only).
    pub fn set_state(&mut self, next: NodeState) -> Result<(), String> {
        let current = self.state();
        if current == next {
            return Ok(());
        }
        if !current.can_become(next) {
            return Err(format!("a {current} node cannot become {next}"));
        }
        self.announce_state(next);
        self.changed();
        Ok(())
    }

    /// Leave gracefully: announce `left` and stop probing. Keep driving the node until
    /// [`Node::broadcasts_pending`] is zero (bounded by the caller) so the news spreads.
    pub fn leave(&mut self) {
        if self.leaving {
            return;
        }
        self.leaving = true;
        self.probe = None;
        self.broadcasts.push(&Update::Left {
            name: self.name.clone(),
            incarnation: self.incarnation,
        });
        self.changed();
    }

    /// Decode `bytes`, counting them, or counting the failure.
    fn decode_counted<'a>(
        &mut self,
        bytes: &'a [u8],
        max: usize,
    ) -> Result<(Envelope, BodyOf<UpdateRef<'a>, MemberRecordRef<'a>>), WireError> {
        match wire::decode_ref(bytes, max) {
            Ok(v) => {
                self.stats.bytes_rx += bytes.len() as u64;
                Ok(v)
            }
            Err(e) => {
                self.stats.packets_rx_failed += 1;
                Err(e)
            }
        }
    }

    /// A packet arrived (`POST .../message`).
    pub fn handle_packet(&mut self, now: Instant, bytes: &[u8]) -> Result<(), WireError> {
        let (env, body) = self.decode_counted(bytes, self.config.packet_bytes_max)?;
        self.stats.packets_rx += 1;
        let BodyOf::Packet { primary, updates } = body else {
            self.stats.packets_rx_failed += 1;
            return Err(WireError::UnexpectedKind {
                expected: "packet",
                got: env.kind,
            });
        };
        if env.cluster != self.config.cluster_name {
            self.stats.cluster_mismatches += 1;
            return Ok(());
        }
        if self
            .conflicts_with(&env.sender_name, &env.sender_addr)
            .is_some()
        {
            self.stats.name_conflicts += 1;
            return Ok(());
        }
        if !self.members.contains_key(&env.sender_name) && env.sender_name != self.name {
            self.sync_with_stranger(now, &env.sender_name, &env.sender_addr);
        }
        // Updates first: a refutation they trigger then rides on the ack built below.
        let mut counts: Vec<(&'static str, u64)> = Vec::with_capacity(5);
        for u in updates {
            let event = u.event_name();
            match counts.iter_mut().find(|(e, _)| *e == event) {
                Some((_, n)) => *n += 1,
                None => counts.push((event, 1)),
            }
            if !self.is_old_news(&u) {
                self.apply(now, u.to_owned());
            }
        }
        for (event, n) in counts {
            *self.stats.events_received.entry(event).or_default() += n;
        }
        if let Some(p) = primary {
            self.handle_primary(now, &env, p);
        }
        Ok(())
    }

    /// A push/pull request arrived (`POST .../stream`). Returns the answer to send back: this
    /// node's full state, or a refusal.
    pub fn handle_push_pull(&mut self, now: Instant, bytes: &[u8]) -> Result<Vec<u8>, WireError> {
        let (env, body) = self.decode_counted(bytes, self.config.push_pull_bytes_max)?;
        self.stats.push_pulls_rx += 1;
        let BodyOf::PushPull { join, members } = body else {
            self.stats.packets_rx_failed += 1;
            return Err(WireError::UnexpectedKind {
                expected: "push/pull request",
                got: env.kind,
            });
        };
        if env.kind != Kind::PushPullRequest {
            self.stats.packets_rx_failed += 1;
            return Err(WireError::UnexpectedKind {
                expected: "push/pull request",
                got: env.kind,
            });
        }
        if env.cluster != self.config.cluster_name {
            self.stats.cluster_mismatches += 1;
            let rejection = Rejection::ClusterMismatch {
                ours: self.config.cluster_name.clone(),
                theirs: env.cluster.clone(),
            };
            return Ok(self.refuse(rejection, env.sender_addr));
        }
        if let Some(holder_addr) = self.conflicts_with(&env.sender_name, &env.sender_addr) {
            self.stats.name_conflicts += 1;
            let rejection = Rejection::NameConflict {
                name: env.sender_name.clone(),
                holder_addr,
            };
            return Ok(self.refuse(rejection, env.sender_addr));
        }
        let _ = join;
        self.merge(now, members);
        let reply = self.encode_state(Kind::PushPullResponse, false);
        self.stats.bytes_tx += reply.len() as u64;
        Ok(reply)
    }

    /// The answer to a push/pull this node sent to `from`.
    pub fn handle_push_pull_response(
        &mut self,
        now: Instant,
        from: &str,
        bytes: &[u8],
    ) -> Result<(), WireError> {
        let (env, body) = match self.decode_counted(bytes, self.config.push_pull_bytes_max) {
            Ok(v) => v,
            Err(e) => {
                self.join_failed(now, from, &format!("bad answer: {e}"));
                return Err(e);
            }
        };
        match body {
            BodyOf::Rejected(rejection) => {
                match &rejection {
                    Rejection::NameConflict { .. } => self.stats.name_conflicts += 1,
                    Rejection::ClusterMismatch { .. } => self.stats.cluster_mismatches += 1,
                }
                let in_join = self.join.as_ref().is_some_and(|j| j.pending.contains(from));
                if in_join && matches!(rejection, Rejection::NameConflict { .. }) {
                    if let Some(j) = self.join.as_mut() {
                        j.pending.remove(from);
                    }
                    self.push_event(Event::JoinRejected {
                        by: from.to_string(),
                        rejection,
                    });
                } else {
                    self.join_failed(now, from, &rejection.to_string());
                }
                Ok(())
            }
            BodyOf::PushPull { members, .. } if env.kind == Kind::PushPullResponse => {
                if env.cluster != self.config.cluster_name {
                    self.stats.cluster_mismatches += 1;
                    self.join_failed(now, from, "answer from another cluster");
                    return Ok(());
                }
                self.merge(now, members);
                if let Some(j) = self.join.as_mut() {
                    if j.pending.remove(from) && !j.succeeded {
                        j.succeeded = true;
                        self.join_backoff = self.config.join_retry_min;
                        self.push_event(Event::Joined {
                            via: from.to_string(),
                        });
                    }
                }
                Ok(())
            }
            _ => {
                self.stats.packets_rx_failed += 1;
                self.join_failed(now, from, "unexpected answer");
                Err(WireError::UnexpectedKind {
                    expected: "push/pull response",
                    got: env.kind,
                })
            }
        }
    }

    /// The driver could not complete a push/pull with `to` (connect error, timeout, HTTP error).
    pub fn handle_push_pull_failed(&mut self, now: Instant, to: &str, reason: &str) {
        self.stats.push_pulls_failed += 1;
        self.join_failed(now, to, reason);
    }

    /// The driver could not deliver a packet to `to`.
    pub fn handle_packet_failed(&mut self, _to: &str) {
        self.stats.packets_tx_failed += 1;
    }

    // -----------------------------------------------------------------------------------------
    // Probing

    fn scaled(&self, d: Duration) -> Duration {
        d * (self.awareness + 1)
    }

    fn adjust_awareness(&mut self, delta: i64) {
        let max = self.config.awareness_max_multiplier as i64 - 1;
        self.awareness = (self.awareness as i64 + delta).clamp(0, max) as u32;
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn is_probeable(&self, name: &str) -> bool {
        self.members
            .get(name)
            .is_some_and(|m| matches!(m.status, Status::Alive | Status::Suspect))
    }

    fn start_probe(&mut self, now: Instant) {
        let mut target = None;
        for _ in 0..2 {
            while let Some(name) = self.probe_order.pop() {
                if self.is_probeable(&name) {
                    target = Some(name);
                    break;
                }
            }
            if target.is_some() {
                break;
            }
            // Round over: a fresh shuffled order (SWIM's round-robin over a random permutation).
            self.probe_order = self
                .members
                .iter()
                .filter(|(_, m)| matches!(m.status, Status::Alive | Status::Suspect))
                .map(|(n, _)| n.clone())
                .collect();
            self.probe_order.shuffle(&mut self.rng);
        }
        let Some(target) = target else { return };
        let (addr, suspect_inc) = {
            let m = &self.members[&target];
            (
                m.addr.clone(),
                (m.status == Status::Suspect).then_some(m.incarnation),
            )
        };
        let seq = self.next_seq();
        self.probe = Some(Probe {
            seq,
            target: target.clone(),
            indirect_at: now + self.scaled(self.config.probe_timeout),
            indirect_sent: false,
            expected_nacks: 0,
            nacks: 0,
            acked: false,
        });
        // Tell a suspect member it is suspected, so it can refute even when the gossip about it
        // ran out while it was unreachable (after a partition heals, say).
        let extra = suspect_inc.map(|incarnation| self.suspect_update(&target, incarnation));
        let digest = self.view_digest();
        self.send_packet_with(
            addr,
            Primary::Ping {
                seq,
                target,
                digest,
            },
            extra,
        );
    }

    fn suspect_update(&self, name: &str, incarnation: u64) -> Vec<u8> {
        wire::encode_update(&Update::Suspect {
            name: name.to_string(),
            incarnation,
            from: self.name.clone(),
        })
    }

    /// A ping that carries the suspicion to the suspect itself; its refutation comes back on
    /// the ack (updates are applied before the ack is built).
    fn probe_suspect(&mut self, name: &str) {
        let Some(m) = self.members.get(name) else {
            return;
        };
        let (addr, incarnation) = (m.addr.clone(), m.incarnation);
        let seq = self.next_seq();
        let extra = Some(self.suspect_update(name, incarnation));
        let digest = self.view_digest();
        self.send_packet_with(
            addr,
            Primary::Ping {
                seq,
                target: name.to_string(),
                digest,
            },
            extra,
        );
    }

    /// A member we have never heard of is talking to us: the gossip that announced it missed
    /// us. Exchange state with it now instead of waiting for the next periodic push/pull
    /// (memberlist waits, which is where its occasional minute-long joins come from). At most
    /// one exchange per stranger per probe interval, and a bounded table of them.
    fn sync_with_stranger(&mut self, now: Instant, name: &str, addr: &str) {
        let window = self.config.probe_interval;
        self.stranger_syncs
            .retain(|_, at| now.saturating_since(*at) < window);
        if self.stranger_syncs.contains_key(name) || self.stranger_syncs.len() >= STRANGERS_MAX {
            return;
        }
        self.stranger_syncs.insert(name.to_string(), now);
        let payload = self.encode_state(Kind::PushPullRequest, false);
        self.stats.push_pulls_tx += 1;
        self.push_out(Transmit {
            to: addr.to_string(),
            kind: TransmitKind::PushPull { join: false },
            payload,
        });
    }

    /// A summary of what sharding depends on: the live members and their node states. Two
    /// nodes with the same digest almost surely compute the same owners.
    fn view_digest(&mut self) -> u32 {
        if self.digest.0 == self.view_version {
            return self.digest.1;
        }
        // Live members and their states, sorted by name, self in its place: what
        // `live_members` lists, without copying it.
        let mut h = xxhash_rust::xxh64::Xxh64::new(0);
        let own = self.states[&self.name].0;
        let mut me = (!self.leaving).then_some(own);
        for (name, m) in &self.members {
            if name.as_str() > self.name.as_str() {
                if let Some(s) = me.take() {
                    h.update(self.name.as_bytes());
                    h.update(&[0xff, s.to_wire()]);
                }
            }
            if matches!(m.status, Status::Alive | Status::Suspect) {
                let state = self.states.get(name).map_or(NodeState::Viewer, |&(s, _)| s);
                h.update(name.as_bytes());
                h.update(&[0xff, state.to_wire()]);
            }
        }
        if let Some(s) = me {
            h.update(self.name.as_bytes());
            h.update(&[0xff, s.to_wire()]);
        }
        let d = h.digest() as u32;
        self.digest = (self.view_version, d);
        d
    }

    /// A prober's view differs from ours: some update missed one of us. Exchange full state
    /// (at most once per `digest_sync_interval`) instead of waiting for the periodic push/pull.
    fn compare_digest(&mut self, now: Instant, theirs: u32, addr: &str) {
        let Some(every) = self.config.digest_sync_interval else {
            return;
        };
        if theirs == self.view_digest()
            || self
                .last_digest_sync
                .is_some_and(|t| now.saturating_since(t) < every)
        {
            return;
        }
        self.last_digest_sync = Some(now);
        self.stats.digest_syncs += 1;
        let payload = self.encode_state(Kind::PushPullRequest, false);
        self.stats.push_pulls_tx += 1;
        self.push_out(Transmit {
            to: addr.to_string(),
            kind: TransmitKind::PushPull { join: false },
            payload,
        });
    }

    /// Exchange state with one random dead member, in case it was only cut off.
    fn reconnect(&mut self) {
        self.push_pull_with_random(Status::Dead);
    }

    fn periodic_push_pull(&mut self) {
        self.push_pull_with_random(Status::Alive);
    }

    /// Exchange full state with one member in `status`, picked at random (by address order,
    /// so the pick depends only on the seed).
    fn push_pull_with_random(&mut self, status: Status) {
        let mut candidates: Vec<String> = self
            .members
            .values()
            .filter(|m| m.status == status)
            .map(|m| m.addr.clone())
            .collect();
        if candidates.is_empty() {
            return;
        }
        candidates.sort();
        let to = candidates[self.rng.gen_range(0..candidates.len())].clone();
        let payload = self.encode_state(Kind::PushPullRequest, false);
        self.stats.push_pulls_tx += 1;
        self.push_out(Transmit {
            to,
            kind: TransmitKind::PushPull { join: false },
            payload,
        });
    }

    fn send_indirect_probes(&mut self) {
        let Some(p) = self.probe.as_ref() else { return };
        let (seq, target) = (p.seq, p.target.clone());
        let Some(addr) = self.members.get(&target).map(|m| m.addr.clone()) else {
            return;
        };
        let mut helpers: Vec<String> = self
            .members
            .iter()
            .filter(|(n, m)| **n != target && m.status == Status::Alive)
            .map(|(_, m)| m.addr.clone())
            .collect();
        helpers.shuffle(&mut self.rng);
        helpers.truncate(self.config.indirect_checks);
        for h in &helpers {
            self.send_packet(
                h.clone(),
                Primary::IndirectPing {
                    seq,
                    target: target.clone(),
                    addr: addr.clone(),
                },
            );
        }
        let p = self.probe.as_mut().expect("checked above");
        p.indirect_sent = true;
        p.expected_nacks = helpers.len() as u32;
    }

    fn finish_probe(&mut self, now: Instant) {
        let Some(p) = self.probe.take() else { return };
        if p.acked {
            self.adjust_awareness(-1);
            return;
        }
        self.stats.probes_failed += 1;
        // Lifeguard: missing nacks mean our own network may be the problem.
        let delta = if p.expected_nacks > 0 {
            (p.expected_nacks - p.nacks.min(p.expected_nacks)) as i64
        } else {
            1
        };
        self.adjust_awareness(delta);
        if let Some(m) = self.members.get(&p.target) {
            // Already suspect: our own failed probe is an independent confirmation.
            if matches!(m.status, Status::Alive | Status::Suspect) {
                let incarnation = m.incarnation;
                let from = self.name.clone();
                self.apply(
                    now,
                    Update::Suspect {
                        name: p.target,
                        incarnation,
                        from,
                    },
                );
            }
        }
    }

    fn handle_primary(&mut self, now: Instant, env: &Envelope, p: Primary) {
        match p {
            Primary::Ping {
                seq,
                target,
                digest,
            } => {
                if target == self.name && !self.leaving {
                    self.send_packet(env.sender_addr.clone(), Primary::Ack { seq });
                    self.compare_digest(now, digest, &env.sender_addr);
                }
            }
            Primary::IndirectPing { seq, target, addr } => {
                if self.forwards.len() >= FORWARDS_MAX {
                    return;
                }
                let local = self.next_seq();
                self.forwards.insert(
                    local,
                    Forward {
                        origin_addr: env.sender_addr.clone(),
                        origin_seq: seq,
                        deadline: now + self.config.probe_timeout,
                    },
                );
                let digest = self.view_digest();
                self.send_packet(
                    addr,
                    Primary::Ping {
                        seq: local,
                        target,
                        digest,
                    },
                );
            }
            Primary::Ack { seq } => {
                if let Some(p) = self.probe.as_mut() {
                    if p.seq == seq {
                        p.acked = true;
                        return;
                    }
                }
                if let Some(f) = self.forwards.remove(&seq) {
                    self.send_packet(f.origin_addr, Primary::Ack { seq: f.origin_seq });
                }
            }
            Primary::Nack { seq } => {
                if let Some(p) = self.probe.as_mut() {
                    if p.seq == seq {
                        p.nacks += 1;
                    }
                }
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Dissemination

    fn gossip(&mut self, now: Instant) {
        if self.broadcasts.is_empty() {
            return;
        }
        // Random members, as memberlist's kRandomNodes: random draws from the roster (at most
        // 3 per member), so a round costs O(gossip_nodes), not O(members).
        let want = self.config.gossip_nodes;
        let mut targets: Vec<String> = Vec::with_capacity(want);
        let mut picked: Vec<usize> = Vec::with_capacity(want);
        let n = self.roster.len();
        for _ in 0..3 * n {
            if targets.len() >= want {
                break;
            }
            let i = self.rng.gen_range(0..n);
            if picked.contains(&i) {
                continue;
            }
            let Some(m) = self.members.get(&self.roster[i]) else {
                continue;
            };
            let eligible = match m.status {
                Status::Alive | Status::Suspect => true,
                Status::Dead => now.saturating_since(m.since) < self.config.gossip_to_the_dead,
                Status::Left => false,
            };
            if eligible {
                picked.push(i);
                targets.push(m.addr.clone());
            }
        }
        for to in targets {
            let updates = self.take_broadcasts(0);
            if updates.is_empty() {
                break;
            }
            let refs: Vec<&[u8]> = updates.iter().map(|u| &u[..]).collect();
            let payload = wire::encode_packet(&self.envelope(Kind::Packet), None, &refs);
            self.push_out(Transmit {
                to,
                kind: TransmitKind::Packet,
                payload,
            });
        }
    }

    fn take_broadcasts(&mut self, primary_bytes: usize) -> Vec<std::sync::Arc<[u8]>> {
        let overhead = 16 + 3 * wire::STR_BYTES_MAX.min(64) + primary_bytes;
        let budget = self.config.gossip_packet_bytes_max.saturating_sub(overhead);
        let limit = self.config.retransmit_limit(self.live_count());
        let out = self.broadcasts.take(budget, limit);
        self.stats.broadcasts_dropped = self.broadcasts.dropped;
        out
    }

    fn send_packet(&mut self, to: String, primary: Primary) {
        self.send_packet_with(to, primary, None);
    }

    fn send_packet_with(&mut self, to: String, primary: Primary, extra: Option<Vec<u8>>) {
        let mut updates = self.take_broadcasts(32 + extra.as_ref().map_or(0, |e| e.len()));
        updates.extend(extra.map(std::sync::Arc::from));
        let refs: Vec<&[u8]> = updates.iter().map(|u| &u[..]).collect();
        let payload = wire::encode_packet(&self.envelope(Kind::Packet), Some(&primary), &refs);
        self.push_out(Transmit {
            to,
            kind: TransmitKind::Packet,
            payload,
        });
    }

    fn push_out(&mut self, t: Transmit) {
        if t.kind == TransmitKind::Packet {
            self.stats.packets_tx += 1;
        }
        self.stats.bytes_tx += t.payload.len() as u64;
        if self.outbox.len() >= self.config.outbox_max {
            self.outbox.pop_front();
            self.stats.outbox_dropped += 1;
        }
        self.outbox.push_back(t);
    }

    fn envelope(&self, kind: Kind) -> Envelope {
        Envelope {
            kind,
            cluster: self.config.cluster_name.clone(),
            sender_name: self.name.clone(),
            sender_addr: self.addr.clone(),
        }
    }

    fn encode_state(&self, kind: Kind, join: bool) -> Vec<u8> {
        let own = self.states[&self.name];
        let key = (self.view_version, self.incarnation, self.leaving, own);
        let mut cache = self.state_cache.borrow_mut();
        let body = match &*cache {
            Some((k, body)) if *k == key => body.clone(),
            _ => {
                let me = wire::MemberRecordRef {
                    name: &self.name,
                    addr: &self.addr,
                    incarnation: self.incarnation,
                    status: if self.leaving {
                        Status::Left
                    } else {
                        Status::Alive
                    },
                    state: Some(own),
                };
                // Sorted by name, self in its place (the order `members()` reports).
                let mut records = Vec::with_capacity(self.members.len() + 1);
                let mut me = Some(me);
                for (name, m) in &self.members {
                    if me.is_some() && name.as_str() > self.name.as_str() {
                        records.extend(me.take());
                    }
                    records.push(wire::MemberRecordRef {
                        name,
                        addr: &m.addr,
                        incarnation: m.incarnation,
                        status: m.status,
                        state: self.states.get(name).copied(),
                    });
                }
                records.extend(me);
                let body: std::sync::Arc<[u8]> =
                    wire::encode_member_records(records.into_iter()).into();
                *cache = Some((key, body.clone()));
                body
            }
        };
        wire::encode_push_pull_body(&self.envelope(kind), join, &body)
    }

    fn refuse(&mut self, rejection: Rejection, from: String) -> Vec<u8> {
        let bytes = wire::encode_rejected(&self.envelope(Kind::Rejected), &rejection);
        self.push_event(Event::RefusedJoin { rejection, from });
        bytes
    }

    fn join_failed(&mut self, now: Instant, to: &str, reason: &str) {
        let Some(j) = self.join.as_mut() else { return };
        if !j.pending.remove(to) {
            return;
        }
        j.errors.push((to.to_string(), reason.to_string()));
        if j.pending.is_empty() && !j.succeeded {
            let errors = j.errors.clone();
            self.push_event(Event::JoinFailed { errors });
            if self.live_count() == 1 {
                // Alone: retry soon rather than at the rejoin interval, backing off.
                let retry = now + self.join_backoff;
                self.next_join = Some(self.next_join.map_or(retry, |t| t.min(retry)));
                let cap = self
                    .config
                    .rejoin_interval
                    .unwrap_or(Duration::from_secs(60));
                self.join_backoff = (self.join_backoff * 2).min(cap);
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Applying updates

    /// If `name`@`addr` clashes with a live holder of that name, the holder's address.
    fn conflicts_with(&self, name: &str, addr: &str) -> Option<String> {
        if name == self.name {
            return (addr != self.addr).then(|| self.addr.clone());
        }
        let m = self.members.get(name)?;
        (matches!(m.status, Status::Alive | Status::Suspect) && m.addr != addr)
            .then(|| m.addr.clone())
    }

    fn merge(&mut self, now: Instant, records: Vec<MemberRecordRef>) {
        for r in records {
            let (name, incarnation) = (r.name, r.incarnation);
            let membership = match r.status {
                Status::Alive => UpdateRef::Alive {
                    name,
                    addr: r.addr,
                    incarnation,
                },
                // A peer's verdict of death is only a suspicion here: we do not trust it
                // blindly (memberlist does the same). The accuser is us.
                Status::Suspect | Status::Dead => UpdateRef::Suspect {
                    name,
                    incarnation,
                    from: "",
                },
                Status::Left => UpdateRef::Left { name, incarnation },
            };
            if !self.is_old_news(&membership) {
                let mut u = membership.to_owned();
                if let Update::Suspect { from, .. } = &mut u {
                    *from = self.name.clone();
                }
                self.apply(now, u);
            }
            if let Some((state, lamport)) = r.state {
                let u = UpdateRef::State {
                    name,
                    state,
                    lamport,
                };
                if !self.is_old_news(&u) {
                    self.apply(now, u.to_owned());
                }
            }
        }
    }

    /// Someone says we are suspect, dead or gone at `incarnation`. Current news: refute with a
    /// higher incarnation. Stale news (already refuted): announce the current incarnation again,
    /// since the accuser evidently missed it.
    fn answer_accusation(&mut self, incarnation: u64) {
        if self.leaving {
            return;
        }
        if incarnation >= self.incarnation {
            self.refute(incarnation);
        } else {
            self.announce_alive();
        }
    }

    fn refute(&mut self, seen_incarnation: u64) {
        self.incarnation = self.incarnation.max(seen_incarnation) + 1;
        self.stats.refutations += 1;
        self.adjust_awareness(1);
        self.announce_alive();
        self.changed();
    }

    fn announce_alive(&mut self) {
        self.broadcasts.push(&Update::Alive {
            name: self.name.clone(),
            addr: self.addr.clone(),
            incarnation: self.incarnation,
        });
    }

    fn announce_state(&mut self, state: NodeState) {
        let t = self.lamport.tick();
        self.states.insert(self.name.clone(), (state, t));
        self.broadcasts.push(&Update::State {
            name: self.name.clone(),
            state,
            lamport: t,
        });
    }

    fn make_room(&mut self) -> bool {
        if self.members.len() < self.config.members_max - 1 {
            return true;
        }
        // Forget the oldest tombstone to make room.
        let oldest = self
            .members
            .iter()
            .filter(|(_, m)| matches!(m.status, Status::Dead | Status::Left))
            .min_by_key(|(n, m)| (m.since, (*n).clone()))
            .map(|(n, _)| n.clone());
        match oldest {
            Some(n) => {
                self.members.remove(&n);
                self.states.remove(&n);
                self.sync_hot(&n);
                self.rebuild_roster();
                true
            }
            None => {
                self.stats.members_refused_full += 1;
                false
            }
        }
    }

    /// Whether applying `u` would change nothing (the same early returns as [`Node::apply`],
    /// checked without allocating). Most gossip a member of a large cluster receives is news
    /// it already has. The Lamport clock still observes every state update.
    fn is_old_news(&mut self, u: &UpdateRef) -> bool {
        let subject = match *u {
            UpdateRef::Alive { name, .. }
            | UpdateRef::Suspect { name, .. }
            | UpdateRef::Dead { name, .. }
            | UpdateRef::Left { name, .. }
            | UpdateRef::State { name, .. } => name,
        };
        if subject == self.name {
            return false;
        }
        let hot = self
            .hot
            .get(&self.name_hash(subject))
            .copied()
            .unwrap_or_default();
        match *u {
            UpdateRef::Alive {
                addr, incarnation, ..
            } => hot.member.is_some_and(|(status, inc, hash)| {
                // A different address (hash) may be a name conflict: `apply` decides.
                let conflict =
                    matches!(status, Status::Alive | Status::Suspect) && hash != addr_hash(addr);
                !conflict && incarnation <= inc
            }),
            UpdateRef::Suspect { incarnation, .. } | UpdateRef::Dead { incarnation, .. } => {
                hot.member.is_none_or(|(status, inc, _)| {
                    incarnation < inc || matches!(status, Status::Dead | Status::Left)
                })
            }
            UpdateRef::Left { incarnation, .. } => hot
                .member
                .is_none_or(|(status, inc, _)| incarnation < inc || status == Status::Left),
            UpdateRef::State { lamport, .. } => {
                let old = hot.lamport.is_some_and(|t| t >= lamport);
                if old {
                    self.lamport.observe(lamport);
                }
                old
            }
        }
    }

    /// Whether `u`'s incarnation or Lamport time is one its subject could have reached: below
    /// the caps, and not far above what we know of it.
    fn within_bounds(&self, u: &Update) -> bool {
        use crate::config::{INCARNATION_JUMP_MAX, INCARNATION_MAX, LAMPORT_JUMP_MAX, LAMPORT_MAX};
        match u {
            Update::Alive {
                name, incarnation, ..
            }
            | Update::Suspect {
                name, incarnation, ..
            }
            | Update::Dead {
                name, incarnation, ..
            }
            | Update::Left { name, incarnation } => {
                let known = if *name == self.name {
                    Some(self.incarnation)
                } else {
                    self.members.get(name).map(|m| m.incarnation)
                };
                *incarnation <= INCARNATION_MAX
                    && known.is_none_or(|k| *incarnation <= k.saturating_add(INCARNATION_JUMP_MAX))
            }
            Update::State { lamport, .. } => {
                *lamport <= LAMPORT_MAX
                    && *lamport <= self.lamport.now().saturating_add(LAMPORT_JUMP_MAX)
            }
        }
    }

    fn apply(&mut self, now: Instant, u: Update) {
        if !self.within_bounds(&u) {
            self.stats.updates_out_of_bounds += 1;
            return;
        }
        let subject = u.subject().to_string();
        self.apply_to_table(now, u);
        self.sync_hot(&subject);
    }

    fn name_hash(&self, name: &str) -> u64 {
        xxhash_rust::xxh64::xxh64(name.as_bytes(), self.hot_key)
    }

    /// Bring `hot` in step with the table for `name`.
    fn sync_hot(&mut self, name: &str) {
        let key = self.name_hash(name);
        let hot = Hot {
            member: self
                .members
                .get(name)
                .map(|m| (m.status, m.incarnation, addr_hash(&m.addr))),
            lamport: self.states.get(name).map(|&(_, t)| t),
        };
        if hot == Hot::default() {
            self.hot.remove(&key);
        } else {
            self.hot.insert(key, hot);
        }
    }

    fn apply_to_table(&mut self, now: Instant, u: Update) {
        let is_me = u.subject() == self.name;
        match u {
            Update::Alive {
                name,
                addr,
                incarnation,
            } => {
                if is_me {
                    if addr != self.addr {
                        self.stats.name_conflicts += 1;
                    } else if incarnation > self.incarnation && !self.leaving {
                        // An earlier run of this node announced a higher incarnation.
                        self.refute(incarnation);
                    }
                    return;
                }
                match self.members.get_mut(&name) {
                    None => {
                        if !self.make_room() {
                            return;
                        }
                        self.roster.push(name.clone());
                        self.members.insert(
                            name.clone(),
                            Member {
                                addr: addr.clone(),
                                incarnation,
                                status: Status::Alive,
                                since: now,
                            },
                        );
                    }
                    Some(m) => {
                        if matches!(m.status, Status::Alive | Status::Suspect) && m.addr != addr {
                            self.stats.name_conflicts += 1;
                            return;
                        }
                        if incarnation <= m.incarnation {
                            return;
                        }
                        m.addr = addr.clone();
                        m.incarnation = incarnation;
                        m.status = Status::Alive;
                        m.since = now;
                        self.suspicions.remove(&name);
                    }
                }
                self.broadcasts.push(&Update::Alive {
                    name,
                    addr,
                    incarnation,
                });
                self.changed();
            }
            Update::Suspect {
                name,
                incarnation,
                from,
            } => {
                if is_me {
                    self.answer_accusation(incarnation);
                    return;
                }
                let n = self.live_count();
                let Some(m) = self.members.get_mut(&name) else {
                    return;
                };
                if incarnation < m.incarnation || matches!(m.status, Status::Dead | Status::Left) {
                    return;
                }
                if m.status == Status::Suspect {
                    m.incarnation = incarnation;
                    let confirmed = self
                        .suspicions
                        .get_mut(&name)
                        .is_some_and(|s| s.confirm(&from));
                    if confirmed {
                        self.broadcasts.push(&Update::Suspect {
                            name,
                            incarnation,
                            from,
                        });
                    }
                    return;
                }
                m.status = Status::Suspect;
                m.incarnation = incarnation;
                m.since = now;
                let (min, max) = self.config.suspicion_timeouts(n);
                let expected = self.config.suspicion_mult.saturating_sub(2);
                let k = if n.saturating_sub(2) < expected as usize {
                    0
                } else {
                    expected
                };
                self.suspicions.insert(
                    name.clone(),
                    Suspicion::new(incarnation, &from, now, min, max, k),
                );
                self.broadcasts.push(&Update::Suspect {
                    name,
                    incarnation,
                    from,
                });
                self.changed();
            }
            Update::Dead {
                name,
                incarnation,
                from,
            } => {
                if is_me {
                    self.answer_accusation(incarnation);
                    return;
                }
                let Some(m) = self.members.get_mut(&name) else {
                    return;
                };
                if incarnation < m.incarnation || matches!(m.status, Status::Dead | Status::Left) {
                    return;
                }
                let unripe = m.status == Status::Suspect
                    && self
                        .suspicions
                        .get(&name)
                        .is_some_and(|sus| !sus.is_ripe(now));
                if from != self.name && unripe {
                    // We only just started suspecting it: count the verdict as a confirmation
                    // and let our own (now shorter) timer decide.
                    if let Some(sus) = self.suspicions.get_mut(&name) {
                        sus.confirm(&from);
                    }
                    return;
                }
                if m.status == Status::Alive && from != self.name {
                    // Someone else's verdict about a member we hold alive (it may be stale: a
                    // node that was cut off declares everyone dead, then the network heals).
                    // Suspect it instead, so it gets a chance to refute; if it really is gone
                    // our own suspicion timer, shortened by the accusers, confirms it.
                    self.apply(
                        now,
                        Update::Suspect {
                            name,
                            incarnation,
                            from,
                        },
                    );
                    return;
                }
                m.status = Status::Dead;
                m.incarnation = incarnation;
                m.since = now;
                self.suspicions.remove(&name);
                self.broadcasts.push(&Update::Dead {
                    name,
                    incarnation,
                    from,
                });
                self.changed();
            }
            Update::Left { name, incarnation } => {
                if is_me {
                    self.answer_accusation(incarnation);
                    return;
                }
                match self.members.get_mut(&name) {
                    None => return,
                    Some(m) => {
                        if incarnation < m.incarnation || m.status == Status::Left {
                            return;
                        }
                        m.status = Status::Left;
                        m.incarnation = incarnation;
                        m.since = now;
                    }
                }
                self.suspicions.remove(&name);
                self.broadcasts.push(&Update::Left { name, incarnation });
                self.changed();
            }
            Update::State {
                name,
                state,
                lamport,
            } => {
                self.lamport.observe(lamport);
                let known = self.states.get(&name).copied();
                if is_me {
                    let (mine, my_time) = known.expect("own state is always present");
                    if lamport > my_time || (lamport == my_time && state != mine) {
                        // A message about us from an earlier run: restate the truth, newer.
                        self.stats.refutations += 1;
                        self.announce_state(mine);
                    }
                    return;
                }
                if known.is_some_and(|(_, t)| t >= lamport) {
                    return;
                }
                if known.is_none()
                    && !self.members.contains_key(&name)
                    && self.states.len() >= self.config.members_max
                {
                    self.stats.members_refused_full += 1;
                    return;
                }
                self.states.insert(name.clone(), (state, lamport));
                self.broadcasts.push(&Update::State {
                    name,
                    state,
                    lamport,
                });
                self.changed();
            }
        }
    }

    fn collect_tombstones(&mut self, now: Instant) {
        let ttl = self.config.tombstone_ttl;
        let expired: Vec<String> = if self.first_tombstone_expiry().is_none_or(|t| now < t) {
            Vec::new()
        } else {
            self.members
                .iter()
                .filter(|(_, m)| {
                    matches!(m.status, Status::Dead | Status::Left)
                        && now.saturating_since(m.since) >= ttl
                })
                .map(|(n, _)| n.clone())
                .collect()
        };
        if !expired.is_empty() {
            for n in &expired {
                self.members.remove(n);
                self.states.remove(n);
                self.sync_hot(n);
            }
            self.rebuild_roster();
        }
        // States heard for names we never saw alive are dropped with the same delay.
        if self.states.len() > self.config.members_max / 2 {
            let orphans: Vec<String> = self
                .states
                .keys()
                .filter(|n| **n != self.name && !self.members.contains_key(*n))
                .cloned()
                .collect();
            for n in orphans {
                self.states.remove(&n);
                self.sync_hot(&n);
            }
        }
    }

    /// After members were removed from the table (forgotten tombstones).
    fn rebuild_roster(&mut self) {
        self.view_version += 1;
        let members = &self.members;
        self.roster.retain(|n| members.contains_key(n));
    }

    fn changed(&mut self) {
        self.view_version += 1;
        if self.events.back() != Some(&Event::MembershipChanged) {
            self.push_event(Event::MembershipChanged);
        }
    }

    fn push_event(&mut self, e: Event) {
        if self.events.len() >= EVENTS_MAX {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::SimNet;
    use crate::wire::MemberRecord;

    /// The digest as first written: over a copy of `live_members()`.
    fn digest_of_copies(n: &Node) -> u32 {
        let mut h = xxhash_rust::xxh64::Xxh64::new(0);
        for (name, state) in n.live_members() {
            h.update(name.as_bytes());
            h.update(&[0xff, state.to_wire()]);
        }
        h.digest() as u32
    }

    /// The full state as first written: from a copy of `members()`.
    fn state_of_copies(n: &Node, kind: Kind, join: bool) -> Vec<u8> {
        let records: Vec<MemberRecord> = n
            .members()
            .into_iter()
            .map(|m| MemberRecord {
                state: n.states.get(&m.name).copied(),
                name: m.name,
                addr: m.addr,
                incarnation: m.incarnation,
                status: m.status,
            })
            .collect();
        wire::encode_push_pull(&n.envelope(kind), join, &records)
    }

    /// The cached and copy-free digest, live count and full state stay equal to what a fresh
    /// copy of the table gives, through joins, a crash (suspect, dead), a leave, forgotten
    /// tombstones and a restart.
    #[test]
    fn cached_summaries_match_the_table() {
        let addr = |i: usize| format!("10.0.0.{i}:7946");
        let config = Config {
            tombstone_ttl: Duration::from_secs(20),
            ..Config::default()
        };
        let mut net = SimNet::new(7);
        for i in 1..=8 {
            let n = Node::new(
                config.clone(),
                &format!("node-{i}"),
                &addr(i),
                i as u64,
                net.now(),
            )
            .unwrap();
            net.add(n);
            net.with_node(&addr(i), |nd, now| {
                nd.join(now, &[addr(1)]);
                nd.set_state(NodeState::Participant).unwrap();
            });
        }
        let mut checked = 0;
        let mut suspected = 0;
        for step in 0..240 {
            net.run_for(Duration::from_millis(500));
            match step {
                40 => {
                    net.crash(&addr(3));
                }
                60 => {
                    net.with_node(&addr(5), |nd, _| nd.leave());
                }
                70 => {
                    net.crash(&addr(5));
                }
                150 => {
                    let n = Node::new(config.clone(), "node-3", &addr(3), 99, net.now()).unwrap();
                    net.add(n);
                    net.with_node(&addr(3), |nd, now| {
                        nd.join(now, &[addr(1)]);
                    });
                }
                _ => {}
            }
            for i in 1..=8 {
                let Some(n) = net.node(&addr(i)) else {
                    continue;
                };
                // Self always counts (a leaving node too: it still runs the protocol).
                let live = 1 + n
                    .members()
                    .iter()
                    .filter(|m| !m.is_self && matches!(m.status, Status::Alive | Status::Suspect))
                    .count();
                assert_eq!(n.live_count(), live, "node-{i} at step {step}");
                assert_eq!(
                    n.encode_state(Kind::PushPullRequest, true),
                    state_of_copies(n, Kind::PushPullRequest, true)
                );
                for (name, m) in &n.members {
                    assert_eq!(
                        n.hot[&n.name_hash(name)].member,
                        Some((m.status, m.incarnation, addr_hash(&m.addr))),
                        "node-{i}: hot index of {name}"
                    );
                }
                for (name, &(_, t)) in &n.states {
                    if *name != n.name {
                        assert_eq!(
                            n.hot[&n.name_hash(name)].lamport,
                            Some(t),
                            "node-{i}: {name}'s lamport"
                        );
                    }
                }
                let names: BTreeSet<u64> = n
                    .members
                    .keys()
                    .chain(n.states.keys())
                    .map(|k| n.name_hash(k))
                    .collect();
                assert!(n.hot.keys().all(|k| names.contains(k)));
                assert_eq!(
                    n.suspicions.earliest(),
                    n.suspicions.map.values().map(Suspicion::deadline).min(),
                    "node-{i}: cached earliest suspicion deadline"
                );
                suspected += n.suspicions.map.len();
                let want = digest_of_copies(n);
                net.with_node(&addr(i), |nd, _| {
                    assert_eq!(nd.view_digest(), want, "node-{i} at step {step}");
                });
                checked += 1;
            }
        }
        assert!(checked > 1000);
        assert!(suspected > 0, "the crash was suspected");
        let n1 = net.node(&addr(1)).unwrap();
        assert!(n1.stats.members_refused_full == 0);
        assert!(
            n1.members().iter().all(|m| m.name != "node-5"),
            "node-5's tombstone was forgotten (the roster was rebuilt)"
        );
    }
}
