//! An in-memory, discrete-event network that drives many [`Node`]s: messages are delivered
//! after a seeded random latency, may be dropped, and cannot cross partitions; time jumps
//! straight to the next delivery or timer. The core's tests and the simulator's `fast` engine
//! both run on it.
//!
//! It reports to senders what a real transport would see ([`Unreachable`]): a request to an
//! address whose process was killed is refused; a process that is killed closes the
//! connections its peers held to it; a request across a partition, or to a host that lost
//! power, gets no answer and times out. A node can also stall (its event loop starved): what
//! arrives meanwhile waits, and is handled before its timers when it resumes.
//!
//! It owns delivery, faults and the clock of a simulated world. It must stay deterministic:
//! one seed, ordered maps, no wall clock. It does not decide anything about membership.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::membership::{Event, Node, TransmitKind, Unreachable};
use crate::time::Instant;

#[derive(Debug)]
enum Delivery {
    Packet {
        to: String,
        bytes: Vec<u8>,
    },
    PushPullRequest {
        from: String,
        to: String,
        bytes: Vec<u8>,
    },
    PushPullResponse {
        from: String,
        to: String,
        bytes: Vec<u8>,
    },
    /// `why` is `None` when the exchange was dropped by fault injection (an error that says
    /// nothing about the peer).
    PushPullFailed {
        client: String,
        peer: String,
        why: Option<Unreachable>,
    },
    /// What the client's transport saw about `peer`.
    Unreachable {
        client: String,
        peer: String,
        why: Unreachable,
    },
}

impl Delivery {
    /// The node that handles this delivery.
    fn recipient(&self) -> &str {
        match self {
            Delivery::Packet { to, .. }
            | Delivery::PushPullRequest { to, .. }
            | Delivery::PushPullResponse { to, .. } => to,
            Delivery::PushPullFailed { client, .. } | Delivery::Unreachable { client, .. } => {
                client
            }
        }
    }
}

/// Counters of what the network did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetStats {
    pub messages_sent: u64,
    pub bytes_sent: u64,
    pub dropped_loss: u64,
    pub dropped_partition: u64,
    pub dropped_dead: u64,
    /// Requests refused (nothing listening at the address).
    pub refused: u64,
    /// Connections closed under their clients by a killed process.
    pub closed: u64,
    /// Requests that timed out (partition or powered-off host).
    pub timed_out: u64,
    /// Deliveries held back because their recipient was stalled.
    pub stalled: u64,
}

/// The simulated world: nodes keyed by address.
pub struct SimNet {
    now: Instant,
    rng: ChaCha8Rng,
    nodes: BTreeMap<String, Node>,
    /// Next wakeup per node, and the same pairs ordered by time.
    wakeups: BTreeMap<String, Instant>,
    timers: BTreeSet<(Instant, String)>,
    queue: BTreeMap<(Instant, u64), Delivery>,
    seq: u64,
    latency: (Duration, Duration),
    loss: f64,
    /// Partition group of each address; addresses not listed are in group 0.
    groups: BTreeMap<String, u64>,
    /// How long a client waits for an unanswered push/pull before giving up.
    pub request_timeout: Duration,
    /// How long a client waits for an unanswered packet request (the runtime's 2 s).
    pub packet_timeout: Duration,
    /// Hosts that lost power: nothing answers, connections hang.
    down: BTreeSet<String>,
    /// Nodes whose event loop is stalled, until when.
    stalled: BTreeMap<String, Instant>,
    /// Open client connections, by server: who holds one to whom (interned addresses).
    conns: BTreeMap<u32, BTreeSet<u32>>,
    /// Interned ids by a hash of the address (looked up for every delivered message; the
    /// map is never iterated, so its order cannot leak into a run).
    ids: std::collections::HashMap<u64, u32>,
    names: Vec<String>,
    pub stats: NetStats,
    events: Vec<(Instant, String, Event)>,
}

impl SimNet {
    pub fn new(seed: u64) -> Self {
        SimNet {
            now: Instant::ZERO,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_0f_5e7),
            nodes: BTreeMap::new(),
            wakeups: BTreeMap::new(),
            timers: BTreeSet::new(),
            queue: BTreeMap::new(),
            seq: 0,
            latency: (Duration::from_millis(1), Duration::from_millis(5)),
            loss: 0.0,
            groups: BTreeMap::new(),
            request_timeout: Duration::from_secs(5),
            packet_timeout: Duration::from_secs(2),
            down: BTreeSet::new(),
            stalled: BTreeMap::new(),
            conns: BTreeMap::new(),
            ids: std::collections::HashMap::new(),
            names: Vec::new(),
            stats: NetStats::default(),
            events: Vec::new(),
        }
    }

    pub fn now(&self) -> Instant {
        self.now
    }

    pub fn set_latency(&mut self, min: Duration, max: Duration) {
        assert!(min <= max, "latency range must be ordered");
        self.latency = (min, max);
    }

    pub fn set_loss(&mut self, loss: f64) {
        assert!((0.0..=1.0).contains(&loss), "loss is a probability");
        self.loss = loss;
    }

    /// Split the world: each listed group can only talk within itself; every address not
    /// listed is alone.
    pub fn partition(&mut self, groups: &[Vec<String>]) {
        self.groups.clear();
        let mut next = 1u64;
        for g in groups {
            for a in g {
                self.groups.insert(a.clone(), next);
            }
            next += 1;
        }
        let alone: Vec<String> = self
            .nodes
            .keys()
            .filter(|a| !self.groups.contains_key(*a))
            .cloned()
            .collect();
        for a in alone {
            self.groups.insert(a, next);
            next += 1;
        }
    }

    pub fn heal(&mut self) {
        self.groups.clear();
    }

    /// Whether `a` and `b` are on the same side of every partition.
    fn same_side(&self, a: &str, b: &str) -> bool {
        self.groups.get(a).copied().unwrap_or(0) == self.groups.get(b).copied().unwrap_or(0)
    }

    /// Whether `a` and `b` are both up and on the same side of every partition.
    pub fn reachable(&self, a: &str, b: &str) -> bool {
        self.nodes.contains_key(a) && self.nodes.contains_key(b) && self.same_side(a, b)
    }

    /// Add a running node (keyed by its advertised address).
    pub fn add(&mut self, node: Node) {
        let addr = node.addr().to_string();
        assert!(
            !self.nodes.contains_key(&addr),
            "address {addr} already has a running node"
        );
        self.down.remove(&addr);
        self.stalled.remove(&addr);
        self.nodes.insert(addr.clone(), node);
        self.after_touch(&addr);
    }

    /// Kill a node's process: requests to its address are refused from now on, and every
    /// peer that held a connection to it sees that connection close. Returns it.
    pub fn crash(&mut self, addr: &str) -> Option<Node> {
        let node = self.remove(addr)?;
        let id = self.id(addr);
        let clients = self.conns.remove(&id).unwrap_or_default();
        for c in clients {
            let client = self.names[c as usize].clone();
            if self.nodes.contains_key(&client) && self.same_side(&client, addr) {
                self.stats.closed += 1;
                let at = self.now + self.sample_latency();
                self.schedule(
                    at,
                    Delivery::Unreachable {
                        client,
                        peer: addr.to_string(),
                        why: Unreachable::Closed,
                    },
                );
            }
        }
        Some(node)
    }

    /// The host at `addr` loses power: its node stops, nothing answers at the address (no
    /// refusals, no closed connections; requests time out). [`SimNet::add`] brings it back.
    pub fn power_off(&mut self, addr: &str) -> Option<Node> {
        let node = self.remove(addr)?;
        let id = self.id(addr);
        self.conns.remove(&id);
        self.down.insert(addr.to_string());
        Some(node)
    }

    /// Starve the node at `addr` for `d`: it handles nothing (messages wait, timers are late),
    /// then catches up, messages first.
    pub fn stall(&mut self, addr: &str, d: Duration) {
        if self.nodes.contains_key(addr) {
            let until = self.now + d;
            let t = self.stalled.entry(addr.to_string()).or_insert(until);
            *t = (*t).max(until);
        }
    }

    fn remove(&mut self, addr: &str) -> Option<Node> {
        if let Some(t) = self.wakeups.remove(addr) {
            self.timers.remove(&(t, addr.to_string()));
        }
        self.stalled.remove(addr);
        self.nodes.remove(addr)
    }

    /// The interned id of an address.
    fn id(&mut self, addr: &str) -> u32 {
        let key = xxhash_rust::xxh64::xxh64(addr.as_bytes(), 0);
        if let Some(&i) = self.ids.get(&key) {
            assert_eq!(self.names[i as usize], addr, "address hash collision");
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(addr.to_string());
        self.ids.insert(key, i);
        i
    }

    /// `client` opened (or reused) a connection to `server`.
    fn connected(&mut self, client: &str, server: &str) {
        let (c, s) = (self.id(client), self.id(server));
        self.conns.entry(s).or_default().insert(c);
    }

    fn stalled_until(&self, addr: &str) -> Option<Instant> {
        self.stalled.get(addr).copied().filter(|t| *t > self.now)
    }

    pub fn node(&self, addr: &str) -> Option<&Node> {
        self.nodes.get(addr)
    }

    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values()
    }

    /// Act on one node (join, set_state, leave...) and send what it produced.
    pub fn with_node<R>(
        &mut self,
        addr: &str,
        f: impl FnOnce(&mut Node, Instant) -> R,
    ) -> Option<R> {
        let now = self.now;
        let r = f(self.nodes.get_mut(addr)?, now);
        self.after_touch(addr);
        Some(r)
    }

    /// Events nodes produced since the last call, in order.
    pub fn take_events(&mut self) -> Vec<(Instant, String, Event)> {
        std::mem::take(&mut self.events)
    }

    /// The next instant anything happens, if anything is scheduled.
    pub fn next_event_at(&self) -> Option<Instant> {
        let q = self.queue.keys().next().map(|(t, _)| *t);
        let t = self.timers.iter().next().map(|(t, _)| *t);
        match (q, t) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Process everything scheduled up to and including `until`, then set the clock to it.
    pub fn run_until(&mut self, until: Instant) {
        while let Some(t) = self.next_event_at() {
            if t > until {
                break;
            }
            self.now = self.now.max(t);
            self.step();
        }
        self.now = self.now.max(until);
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    fn step(&mut self) {
        let now = self.now;
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let d = entry.remove();
            self.deliver(d);
        }
        while let Some((t, addr)) = self.timers.first().cloned() {
            if t > now {
                break;
            }
            self.timers.remove(&(t, addr.clone()));
            self.wakeups.remove(&addr);
            if let Some(until) = self.stalled_until(&addr) {
                self.wakeups.insert(addr.clone(), until);
                self.timers.insert((until, addr));
                continue;
            }
            if let Some(n) = self.nodes.get_mut(&addr) {
                n.handle_timeout(now);
            }
            self.after_touch(&addr);
        }
    }

    fn deliver(&mut self, d: Delivery) {
        let now = self.now;
        if let Some(until) = self.stalled_until(d.recipient()) {
            // Waits in the socket until the node runs again (in arrival order).
            self.stats.stalled += 1;
            self.schedule(until, d);
            return;
        }
        match d {
            Delivery::Packet { to, bytes } => {
                if let Some(n) = self.nodes.get_mut(&to) {
                    let _ = n.handle_packet(now, &bytes);
                    self.after_touch(&to);
                } else {
                    self.stats.dropped_dead += 1;
                }
            }
            Delivery::PushPullRequest { from, to, bytes } => {
                let reply = match self.nodes.get_mut(&to) {
                    Some(n) => n.handle_push_pull(now, &bytes).ok(),
                    None => None,
                };
                self.after_touch(&to);
                match reply {
                    Some(bytes) if self.reachable(&from, &to) => {
                        self.connected(&from, &to);
                        let at = now + self.sample_latency();
                        self.stats.messages_sent += 1;
                        self.stats.bytes_sent += bytes.len() as u64;
                        self.schedule(
                            at,
                            Delivery::PushPullResponse {
                                from: to,
                                to: from,
                                bytes,
                            },
                        );
                    }
                    _ => {
                        let at = now + self.request_timeout;
                        self.schedule(
                            at,
                            Delivery::PushPullFailed {
                                client: from,
                                peer: to,
                                why: Some(Unreachable::TimedOut),
                            },
                        );
                    }
                }
            }
            Delivery::PushPullResponse { from, to, bytes } => {
                if let Some(n) = self.nodes.get_mut(&to) {
                    let _ = n.handle_push_pull_response(now, &from, &bytes);
                    self.after_touch(&to);
                }
            }
            Delivery::PushPullFailed { client, peer, why } => {
                if let Some(n) = self.nodes.get_mut(&client) {
                    let reason = match why {
                        Some(Unreachable::Refused) => "connection refused",
                        Some(Unreachable::Closed) => "connection closed",
                        Some(Unreachable::TimedOut) => "request timed out",
                        None => "request dropped",
                    };
                    n.handle_push_pull_failed(now, &peer, reason);
                    if let Some(why) = why {
                        n.handle_unreachable(now, &peer, why);
                    }
                    self.after_touch(&client);
                }
            }
            Delivery::Unreachable { client, peer, why } => {
                if let Some(n) = self.nodes.get_mut(&client) {
                    n.handle_unreachable(now, &peer, why);
                    self.after_touch(&client);
                }
            }
        }
    }

    fn sample_latency(&mut self) -> Duration {
        let (lo, hi) = self.latency;
        if lo == hi {
            return lo;
        }
        let span = (hi - lo).as_micros() as u64;
        lo + Duration::from_micros(self.rng.gen_range(0..=span))
    }

    fn schedule(&mut self, at: Instant, d: Delivery) {
        self.seq += 1;
        self.queue.insert((at, self.seq), d);
    }

    /// Drain what `addr` wants to send and its events, and reschedule its timer.
    fn after_touch(&mut self, addr: &str) {
        let now = self.now;
        let Some(node) = self.nodes.get_mut(addr) else {
            return;
        };
        let mut out = Vec::new();
        while let Some(t) = node.poll_transmit() {
            out.push(t);
        }
        while let Some(e) = node.poll_event() {
            self.events.push((now, addr.to_string(), e));
        }
        let next = node.poll_timeout();
        if let Some(old) = self.wakeups.remove(addr) {
            self.timers.remove(&(old, addr.to_string()));
        }
        if let Some(t) = next {
            let t = t.max(now).max(self.stalled_until(addr).unwrap_or(now));
            self.wakeups.insert(addr.to_string(), t);
            self.timers.insert((t, addr.to_string()));
        }
        for t in out {
            self.stats.messages_sent += 1;
            self.stats.bytes_sent += t.payload.len() as u64;
            let lost = self.loss > 0.0 && self.rng.gen_bool(self.loss);
            let reachable = self.reachable(addr, &t.to);
            match t.kind {
                TransmitKind::Packet => {
                    let partitioned = !self.same_side(addr, &t.to);
                    if lost {
                        // Dropped by fault injection: the sender's transport gets an error
                        // that says nothing about the peer.
                        self.stats.dropped_loss += 1;
                    } else if partitioned || self.down.contains(&t.to) {
                        self.stats.dropped_partition += 1;
                        self.stats.timed_out += 1;
                        let at = now + self.packet_timeout;
                        self.schedule(
                            at,
                            Delivery::Unreachable {
                                client: addr.to_string(),
                                peer: t.to,
                                why: Unreachable::TimedOut,
                            },
                        );
                    } else if !reachable {
                        // Nothing listens there: refused after a round trip.
                        self.stats.dropped_dead += 1;
                        self.stats.refused += 1;
                        let at = now + self.sample_latency() * 2;
                        self.schedule(
                            at,
                            Delivery::Unreachable {
                                client: addr.to_string(),
                                peer: t.to,
                                why: Unreachable::Refused,
                            },
                        );
                    } else {
                        self.connected(addr, &t.to);
                        let at = now + self.sample_latency();
                        self.schedule(
                            at,
                            Delivery::Packet {
                                to: t.to,
                                bytes: t.payload,
                            },
                        );
                    }
                }
                TransmitKind::PushPull { .. } => {
                    let partitioned = self.groups.get(addr).copied().unwrap_or(0)
                        != self.groups.get(&t.to).copied().unwrap_or(0);
                    if lost || !reachable {
                        // Nobody listening (and no partition in the way): refused at once.
                        // Lost or partitioned: silence until the request times out.
                        let refused = !lost
                            && !partitioned
                            && !self.down.contains(&t.to)
                            && !self.nodes.contains_key(&t.to);
                        if lost {
                            self.stats.dropped_loss += 1;
                        } else if partitioned {
                            self.stats.dropped_partition += 1;
                        } else {
                            self.stats.dropped_dead += 1;
                        }
                        let (why, at) = if refused {
                            self.stats.refused += 1;
                            (Some(Unreachable::Refused), now + self.sample_latency() * 2)
                        } else if lost {
                            (None, now + self.request_timeout)
                        } else {
                            self.stats.timed_out += 1;
                            (Some(Unreachable::TimedOut), now + self.request_timeout)
                        };
                        self.schedule(
                            at,
                            Delivery::PushPullFailed {
                                client: addr.to_string(),
                                peer: t.to,
                                why,
                            },
                        );
                    } else {
                        let at = now + self.sample_latency();
                        self.schedule(
                            at,
                            Delivery::PushPullRequest {
                                from: addr.to_string(),
                                to: t.to,
                                bytes: t.payload,
                            },
                        );
                    }
                }
            }
        }
    }
}
