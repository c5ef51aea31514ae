//! Failure detection: the probe cycle (SWIM's direct and indirect probes with Lifeguard's
//! local health), out-of-cycle checks, and the evidence the transport reports about a peer's
//! address (a refused connection, a closed connection, a request that timed out).
//!
//! It decides when to suspect a member and when a suspicion has enough independent evidence;
//! the member table itself (what a suspicion or a death does) is `mod.rs`'s.

use super::*;

/// Out-of-cycle checks in flight at once; a trigger beyond this is ignored (the probe cycle
/// still covers the member).
pub(super) const CHECKS_MAX: usize = 16;

/// Distinct members whose connections to a member were refused that make it dead at once. A
/// live member's listener cannot refuse, so two independent refusals are proof that its process
/// is gone; one is not (a single node behind a rejecting firewall must not kill anyone).
pub const REFUSED_QUORUM: usize = 2;

/// What the transport saw when it talked to an address: evidence about the member there
/// ([`Node::handle_unreachable`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreachable {
    /// The connection was refused: nothing listens at the address (the process was killed, or
    /// is restarting). A live member cannot cause this, so it is strong evidence: it raises a
    /// suspicion that others verify at once, and [`REFUSED_QUORUM`] refusals are a death.
    Refused,
    /// The peer closed an established connection, as a process that exits does with all its
    /// sockets. Not evidence by itself (a restarted peer closes too): it prompts a check, whose
    /// new connection is either answered or refused.
    Closed,
    /// A request got no answer in time (a partition, a host that is gone, a stalled peer). It
    /// prompts a check: a full probe, direct then indirect.
    TimedOut,
}

impl Node {
    /// The transport's evidence about the member at `addr`: see [`Unreachable`]. Addresses that
    /// are no live member's are ignored, and so is everything while this node leaves.
    pub fn handle_unreachable(&mut self, now: Instant, addr: &str, why: Unreachable) {
        if self.leaving || addr == self.addr {
            return;
        }
        let Some(name) = self.live_member_at(addr) else {
            return;
        };
        let incarnation = self.members[&name].incarnation;
        match why {
            Unreachable::Refused => {
                self.stats.peers_refused += 1;
                let from = self.name.clone();
                self.apply(
                    now,
                    Update::Suspect {
                        name,
                        incarnation,
                        from,
                        refused: true,
                    },
                );
            }
            Unreachable::Closed => {
                self.stats.peers_closed += 1;
                self.start_check(now, &name);
            }
            Unreachable::TimedOut => {
                self.stats.peers_timed_out += 1;
                self.start_check(now, &name);
            }
        }
    }

    /// The live member advertised at `addr`, from an index rebuilt when the view changed.
    pub(super) fn live_member_at(&self, addr: &str) -> Option<String> {
        let mut index = self.live_by_addr.borrow_mut();
        if index.0 != self.view_version {
            index.1 = self
                .members
                .iter()
                .filter(|(_, m)| matches!(m.status, Status::Alive | Status::Suspect))
                .map(|(n, m)| (m.addr.clone(), n.clone()))
                .collect();
            index.0 = self.view_version;
        }
        index.1.get(addr).cloned()
    }

    /// Someone else suspects `name`: check it ourselves right away if the accusation rests on a
    /// refused connection (cheap to confirm: our connection is refused too, or the member
    /// answers and refutes), or if we are one of the `verifiers` members chosen for it, so the
    /// suspicion collects its confirmations in a round trip instead of waiting for the probe
    /// cycles of others (or the member hears of it and refutes in that same round trip).
    pub(super) fn verify(&mut self, now: Instant, name: &str, accuser: &str, refused: bool) {
        if accuser != self.name && (refused || self.is_verifier(name, accuser)) {
            self.start_check(now, name);
        }
    }

    /// Whether this node ranks among the first `verifiers` live members (the suspect and its
    /// accuser excluded) by a hash of (member, suspect): every node computes the same ranking
    /// from its view, so about `verifiers` members check each suspicion, not all of them.
    fn is_verifier(&self, name: &str, accuser: &str) -> bool {
        let rank = |member: &str| {
            let mut h = xxhash_rust::xxh64::Xxh64::new(0x7e51_f1e5);
            h.update(member.as_bytes());
            h.update(&[0xff]);
            h.update(name.as_bytes());
            h.digest()
        };
        let mine = rank(&self.name);
        let ahead = self
            .members
            .iter()
            .filter(|(n, m)| {
                matches!(m.status, Status::Alive | Status::Suspect)
                    && n.as_str() != name
                    && n.as_str() != accuser
                    && rank(n) < mine
            })
            .take(self.config.verifiers)
            .count();
        ahead < self.config.verifiers
    }

    /// Probe `name` now, out of cycle: a ping (carrying the suspicion, if any, so the member
    /// can refute on its ack), indirect pings after `probe_timeout`, failure after twice that.
    /// At most once per member per probe interval and [`CHECKS_MAX`] at once.
    pub(super) fn start_check(&mut self, now: Instant, name: &str) {
        if self.leaving
            || self.checks.len() >= CHECKS_MAX
            || self.checks.iter().any(|c| c.target == name)
        {
            return;
        }
        let window = self.config.probe_interval;
        if self
            .checked_at
            .get(name)
            .is_some_and(|t| now.saturating_since(*t) < window)
        {
            return;
        }
        self.checked_at
            .retain(|_, t| now.saturating_since(*t) < window);
        self.checked_at.insert(name.to_string(), now);
        self.launch_check(now, name, false);
    }

    /// A suspicion of ours ran out: before the verdict, probe the suspect once more, directly
    /// (telling it, so it can refute on the ack) and through others. An answer from it proves it
    /// alive: we withdraw our suspicion (see [`Node::withdraw_suspicion`]).
    pub(super) fn last_chance(&mut self, now: Instant, name: &str) {
        if let Some(c) = self.checks.iter_mut().find(|c| c.target == name) {
            c.last_chance = true;
            return;
        }
        self.launch_check(now, name, true);
    }

    fn launch_check(&mut self, now: Instant, name: &str, last_chance: bool) {
        let Some(m) = self.members.get(name) else {
            return;
        };
        if !matches!(m.status, Status::Alive | Status::Suspect) {
            return;
        }
        let (addr, suspect_inc) = (
            m.addr.clone(),
            (m.status == Status::Suspect).then_some(m.incarnation),
        );
        self.stats.checks += 1;
        let seq = self.next_seq();
        // Not scaled by local health: a check follows evidence (a suspicion to verify, a
        // request that already timed out, a closed connection), and what it concludes is only
        // a suspicion, which the member can still refute.
        let timeout = self.config.probe_timeout;
        self.checks.push(Probe {
            seq,
            target: name.to_string(),
            indirect_at: now + timeout,
            deadline: now + timeout * 2,
            indirect_sent: false,
            last_chance,
            expected_nacks: 0,
            nacks: 0,
            acked: false,
        });
        let extra = suspect_inc.map(|incarnation| self.suspect_update(name, incarnation));
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

    /// Checks whose direct ping is late get indirect pings; unanswered ones fail.
    pub(super) fn run_checks(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.checks.len() {
            let c = &self.checks[i];
            if !c.indirect_sent && now >= c.indirect_at {
                let (seq, target) = (c.seq, c.target.clone());
                let helpers = self.send_indirect(seq, &target);
                let c = &mut self.checks[i];
                c.indirect_sent = true;
                c.expected_nacks = helpers;
            }
            let c = &self.checks[i];
            let all_nacked = c.indirect_sent && c.expected_nacks > 0 && c.nacks >= c.expected_nacks;
            if now >= c.deadline || all_nacked {
                let c = self.checks.swap_remove(i);
                self.check_failed(now, c.target);
            } else {
                i += 1;
            }
        }
    }

    /// A check got no ack: our own (timeout) suspicion, or a confirmation of one.
    fn check_failed(&mut self, now: Instant, target: String) {
        self.stats.checks_failed += 1;
        let Some(m) = self.members.get(&target) else {
            return;
        };
        if !matches!(m.status, Status::Alive | Status::Suspect) {
            return;
        }
        let incarnation = m.incarnation;
        let from = self.name.clone();
        self.apply(
            now,
            Update::Suspect {
                name: target,
                incarnation,
                from,
                refused: false,
            },
        );
    }

    /// The member we suspect answered our last-chance probe: it is alive, whatever its
    /// refutation's fate (lost gossip, say). Hold it alive again at the same incarnation; no
    /// news is broadcast (others decide on their own evidence, and it refutes itself, having
    /// been told).
    pub(super) fn withdraw_suspicion(&mut self, now: Instant, name: &str) {
        if self.suspicions.remove(name).is_none() {
            return;
        }
        self.stats.suspicions_withdrawn += 1;
        if let Some(m) = self.members.get_mut(name) {
            if m.status == Status::Suspect {
                m.status = Status::Alive;
                m.since = now;
            }
        }
        self.sync_hot(name);
        self.changed();
    }

    /// Enough members' connections to `name` were refused: it is dead, no timer needed.
    pub(super) fn declare_dead_by_refusal(&mut self, now: Instant, name: String, incarnation: u64) {
        self.suspicions.remove(&name);
        self.stats.deaths_by_refusal += 1;
        let from = self.name.clone();
        self.apply(
            now,
            Update::Dead {
                name,
                incarnation,
                from,
                refused: true,
            },
        );
    }

    // -----------------------------------------------------------------------------------------
    // Probing

    pub(super) fn scaled(&self, d: Duration) -> Duration {
        d * (self.awareness + 1)
    }

    pub(super) fn adjust_awareness(&mut self, delta: i64) {
        let max = self.config.awareness_max_multiplier as i64 - 1;
        self.awareness = (self.awareness as i64 + delta).clamp(0, max) as u32;
    }

    pub(super) fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    pub(super) fn is_probeable(&self, name: &str) -> bool {
        self.members
            .get(name)
            .is_some_and(|m| matches!(m.status, Status::Alive | Status::Suspect))
    }

    pub(super) fn start_probe(&mut self, now: Instant) {
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
            deadline: now + self.scaled(self.config.probe_interval),
            indirect_sent: false,
            last_chance: false,
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

    pub(super) fn suspect_update(&self, name: &str, incarnation: u64) -> Vec<u8> {
        wire::encode_update(&Update::Suspect {
            name: name.to_string(),
            incarnation,
            from: self.name.clone(),
            refused: false,
        })
    }

    pub(super) fn send_indirect_probes(&mut self) {
        let Some(p) = self.probe.as_ref() else { return };
        let (seq, target) = (p.seq, p.target.clone());
        let helpers = self.send_indirect(seq, &target);
        let p = self.probe.as_mut().expect("checked above");
        p.indirect_sent = true;
        p.expected_nacks = helpers;
    }

    /// Ask `indirect_checks` random alive members to ping `target` for us and answer `seq`.
    /// Returns how many were asked (the nacks to expect).
    fn send_indirect(&mut self, seq: u32, target: &str) -> u32 {
        let Some(addr) = self.members.get(target).map(|m| m.addr.clone()) else {
            return 0;
        };
        let mut helpers: Vec<String> = self
            .members
            .iter()
            .filter(|(n, m)| n.as_str() != target && m.status == Status::Alive)
            .map(|(_, m)| m.addr.clone())
            .collect();
        helpers.shuffle(&mut self.rng);
        helpers.truncate(self.config.indirect_checks);
        for h in &helpers {
            self.send_packet(
                h.clone(),
                Primary::IndirectPing {
                    seq,
                    target: target.to_string(),
                    addr: addr.clone(),
                },
            );
        }
        helpers.len() as u32
    }

    pub(super) fn finish_probe(&mut self, now: Instant) {
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
                        refused: false,
                    },
                );
            }
        }
    }

    pub(super) fn handle_primary(&mut self, now: Instant, env: &Envelope, p: Primary) {
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
                if let Some(i) = self.checks.iter().position(|c| c.seq == seq) {
                    let c = self.checks.swap_remove(i);
                    if c.last_chance {
                        self.withdraw_suspicion(now, &c.target);
                    }
                    return;
                }
                if let Some(f) = self.forwards.remove(&seq) {
                    self.send_packet(f.origin_addr, Primary::Ack { seq: f.origin_seq });
                }
            }
            Primary::Nack { seq } => {
                if let Some(p) = self.probe.as_mut() {
                    if p.seq == seq {
                        p.nacks += 1;
                        // Every helper failed to reach it too: no need to wait for the tick.
                        if p.indirect_sent && !p.acked && p.nacks >= p.expected_nacks {
                            self.finish_probe(now);
                        }
                        return;
                    }
                }
                if let Some(c) = self.checks.iter_mut().find(|c| c.seq == seq) {
                    c.nacks += 1;
                    if c.nacks >= c.expected_nacks {
                        self.run_checks(now);
                    }
                }
            }
        }
    }
}
