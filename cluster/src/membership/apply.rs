//! Applying updates to the member table: alive, suspect, dead, left and node-state news,
//! full-state merges, refutation, tombstones, and the caches kept in step with the table.
//!
//! What a piece of news does to the table is decided here; when to raise a suspicion is the
//! failure detector's (`probe.rs`).

use super::probe::REFUSED_QUORUM;
use super::*;

impl Node {
    // -----------------------------------------------------------------------------------------
    // Applying updates

    /// If `name`@`addr` clashes with a live holder of that name, the holder's address.
    pub(super) fn conflicts_with(&self, name: &str, addr: &str) -> Option<String> {
        if name == self.name {
            return (addr != self.addr).then(|| self.addr.clone());
        }
        let m = self.members.get(name)?;
        (matches!(m.status, Status::Alive | Status::Suspect) && m.addr != addr)
            .then(|| m.addr.clone())
    }

    /// Merge a peer's full state (`from` sent it). Its suspicions and verdicts of death are
    /// that peer's accusations, handled as gossip from it would be: a verdict about a member we
    /// hold alive is only a suspicion (stale verdicts from a node that was cut off must not
    /// kill), one about a member we suspect counts as a confirmation, or as the verdict once
    /// our own suspicion has run its minimum (a node that missed the gossip of a death learns
    /// it at its next exchange instead of waiting out its own timer).
    pub(super) fn merge(&mut self, now: Instant, from: &str, records: Vec<MemberRecordRef>) {
        for r in records {
            let (name, incarnation) = (r.name, r.incarnation);
            let membership = match r.status {
                Status::Alive => UpdateRef::Alive {
                    name,
                    addr: r.addr,
                    incarnation,
                },
                Status::Suspect => UpdateRef::Suspect {
                    name,
                    incarnation,
                    from,
                    refused: false,
                },
                Status::Dead => UpdateRef::Dead {
                    name,
                    incarnation,
                    from,
                    refused: false,
                },
                Status::Left => UpdateRef::Left { name, incarnation },
            };
            if !self.is_old_news(&membership) {
                self.apply(now, membership.to_owned());
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
    pub(super) fn answer_accusation(&mut self, incarnation: u64) {
        if self.leaving {
            return;
        }
        if incarnation >= self.incarnation {
            self.refute(incarnation);
        } else {
            self.announce_alive();
        }
    }

    pub(super) fn refute(&mut self, seen_incarnation: u64) {
        self.incarnation = self.incarnation.max(seen_incarnation) + 1;
        self.stats.refutations += 1;
        self.adjust_awareness(1);
        self.announce_alive();
        self.changed();
    }

    pub(super) fn announce_alive(&mut self) {
        self.broadcasts.push(&Update::Alive {
            name: self.name.clone(),
            addr: self.addr.clone(),
            incarnation: self.incarnation,
        });
    }

    pub(super) fn announce_state(&mut self, state: NodeState) {
        let t = self.lamport.tick();
        self.states.insert(self.name.clone(), (state, t));
        self.broadcasts.push(&Update::State {
            name: self.name.clone(),
            state,
            lamport: t,
        });
    }

    pub(super) fn make_room(&mut self) -> bool {
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
    pub(super) fn is_old_news(&mut self, u: &UpdateRef) -> bool {
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
    pub(super) fn within_bounds(&self, u: &Update) -> bool {
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

    pub(super) fn apply(&mut self, now: Instant, u: Update) {
        if !self.within_bounds(&u) {
            self.stats.updates_out_of_bounds += 1;
            return;
        }
        let subject = u.subject().to_string();
        self.apply_to_table(now, u);
        self.sync_hot(&subject);
    }

    pub(super) fn name_hash(&self, name: &str) -> u64 {
        xxhash_rust::xxh64::xxh64(name.as_bytes(), self.hot_key)
    }

    /// Bring `hot` in step with the table for `name`.
    pub(super) fn sync_hot(&mut self, name: &str) {
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

    pub(super) fn apply_to_table(&mut self, now: Instant, u: Update) {
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
                refused,
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
                    let (news, quorum) = match self.suspicions.get_mut(&name) {
                        Some(s) => {
                            let news = s.confirm(&from, refused);
                            (news, s.refusals() >= REFUSED_QUORUM)
                        }
                        None => (false, false),
                    };
                    if news {
                        self.broadcasts.push(&Update::Suspect {
                            name: name.clone(),
                            incarnation,
                            from: from.clone(),
                            refused,
                        });
                    }
                    if quorum {
                        self.declare_dead_by_refusal(now, name, incarnation);
                    } else if news && refused {
                        self.verify(now, &name, &from, true);
                    }
                    return;
                }
                m.status = Status::Suspect;
                m.incarnation = incarnation;
                m.since = now;
                let (min, max) = self.config.suspicion_timeouts(n);
                let expected = self.config.verifiers as u32;
                let k = if n.saturating_sub(2) < expected as usize {
                    0
                } else {
                    expected
                };
                self.suspicions.insert(
                    name.clone(),
                    Suspicion::new(
                        incarnation,
                        &from,
                        refused,
                        now,
                        min,
                        max,
                        k,
                        self.config.probe_timeout * 2,
                    ),
                );
                self.broadcasts.push(&Update::Suspect {
                    name: name.clone(),
                    incarnation,
                    from: from.clone(),
                    refused,
                });
                self.changed();
                self.verify(now, &name, &from, refused);
            }
            Update::Dead {
                name,
                incarnation,
                from,
                refused,
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
                if refused && from != self.name {
                    // A verdict that rests on a refused connection is that accuser's refusal:
                    // with one more (ours, when we check, or another member's) it is final.
                    self.apply(
                        now,
                        Update::Suspect {
                            name,
                            incarnation,
                            from,
                            refused: true,
                        },
                    );
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
                        sus.confirm(&from, false);
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
                            refused: false,
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
                    refused,
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

    pub(super) fn collect_tombstones(&mut self, now: Instant) {
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
    pub(super) fn rebuild_roster(&mut self) {
        self.view_version += 1;
        let members = &self.members;
        self.roster.retain(|n| members.contains_key(n));
    }

    pub(super) fn changed(&mut self) {
        self.view_version += 1;
        if self.events.back() != Some(&Event::MembershipChanged) {
            self.push_event(Event::MembershipChanged);
        }
    }

    pub(super) fn push_event(&mut self, e: Event) {
        if self.events.len() >= EVENTS_MAX {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }
}
