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
    /// Connections to a member's address that were refused (nothing listening there).
    pub peers_refused: u64,
    /// Established connections to a member that the member closed.
    pub peers_closed: u64,
    /// Requests to a member that got no answer in time.
    pub peers_timed_out: u64,
    /// Out-of-cycle probes started (verifying a suspicion, or after a close or a timeout).
    pub checks: u64,
    pub checks_failed: u64,
    /// Members declared dead because two members' connections to them were refused.
    pub deaths_by_refusal: u64,
    /// Suspicions of ours withdrawn because the suspect answered the last-chance probe.
    pub suspicions_withdrawn: u64,
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

/// A probe in flight: the cycle's (`Node::probe`) or an out-of-cycle check (`Node::checks`).
#[derive(Debug)]
struct Probe {
    seq: u32,
    target: String,
    indirect_at: Instant,
    /// When an unanswered check counts as failed (the cycle probe ends at the next tick).
    deadline: Instant,
    indirect_sent: bool,
    /// The last chance a suspicion of ours gives its target: an ack withdraws the suspicion.
    last_chance: bool,
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
    /// Out-of-cycle probes: verifying someone else's suspicion, or a member whose connection
    /// closed or timed out (at most [`probe::CHECKS_MAX`]).
    checks: Vec<Probe>,
    /// When each member was last checked out of cycle (at most once per probe interval).
    checked_at: BTreeMap<String, Instant>,
    probe_order: Vec<String>,
    /// Dead members still to try in this round of reconnects.
    reconnect_order: Vec<String>,
    /// Dead members and the view version they were listed at (a round of reconnects starts
    /// from it without walking the table while the view is unchanged).
    dead_cache: (u64, Vec<String>),
    /// Live members by address, and the view version it was built at: the transport reports
    /// evidence by address, many times over for a member that just died.
    live_by_addr: std::cell::RefCell<(u64, BTreeMap<String, String>)>,
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
    /// `None` when stale; else the earliest time one needs looking at, if any.
    earliest: std::cell::Cell<Option<Option<Instant>>>,
}

impl Suspicions {
    fn earliest(&self) -> Option<Instant> {
        if let Some(e) = self.earliest.get() {
            return e;
        }
        let e = self.map.values().map(Suspicion::wake_at).min();
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
            checks: Vec::new(),
            checked_at: BTreeMap::new(),
            probe_order: Vec::new(),
            reconnect_order: Vec::new(),
            dead_cache: (u64::MAX, Vec::new()),
            live_by_addr: std::cell::RefCell::new((u64::MAX, BTreeMap::new())),
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
        for c in &self.checks {
            t = t.min(if c.indirect_sent {
                c.deadline
            } else {
                c.indirect_at
            });
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
        self.run_checks(now);
        // Suspicions near their end: a last-chance probe in the timer's last moments (the
        // member may never have heard it is suspected, e.g. when the gossip ran out during a
        // partition), then death at the deadline.
        let due: Vec<String> = if self.suspicions.earliest().is_some_and(|d| d <= now) {
            self.suspicions
                .map
                .iter()
                .filter(|(_, s)| s.wake_at() <= now)
                .map(|(n, _)| n.clone())
                .collect()
        } else {
            Vec::new()
        };
        for name in due {
            let Some(s) = self.suspicions.get_mut(&name) else {
                continue;
            };
            if s.start_last_chance(now) {
                self.last_chance(now, &name);
                continue;
            }
            if s.deadline() > now {
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
                        refused: false,
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
                self.rejoin(now);
            }
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
        self.merge(now, &env.sender_name, members);
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
                self.merge(now, &env.sender_name, members);
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

    fn refuse(&mut self, rejection: Rejection, from: String) -> Vec<u8> {
        let bytes = wire::encode_rejected(&self.envelope(Kind::Rejected), &rejection);
        self.push_event(Event::RefusedJoin { rejection, from });
        bytes
    }
}

mod apply;
mod gossip;
mod join;
mod probe;
pub use probe::{Unreachable, REFUSED_QUORUM};
mod sync;
mod view;

#[cfg(test)]
mod tests;
