//! Anti-entropy: full-state exchanges (push/pull) beyond the join: with a stranger that talks
//! to us, when a prober's view digest differs from ours, periodically with a random member, and
//! with a dead member in case it was only cut off.

use super::*;

impl Node {
    /// A member we have never heard of is talking to us: the gossip that announced it missed
    /// us. Exchange state with it now instead of waiting for the next periodic push/pull
    /// (memberlist waits, which is where its occasional minute-long joins come from). At most
    /// one exchange per stranger per probe interval, and a bounded table of them.
    pub(super) fn sync_with_stranger(&mut self, now: Instant, name: &str, addr: &str) {
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
    pub(super) fn view_digest(&mut self) -> u32 {
        if self.digest.0 == self.view_version {
            return self.digest.1;
        }
        // Live members, their node states and incarnations, sorted by name, self in its place:
        // what `live_members` lists, without copying it. The incarnation is in so that a node
        // that missed a refutation (it still suspects a member the others hold alive at a
        // higher incarnation) learns it at its next probe, not at the next periodic push/pull.
        let mut h = xxhash_rust::xxh64::Xxh64::new(0);
        let own = self.states[&self.name].0;
        let mut me = (!self.leaving).then_some(own);
        let mut add = |name: &str, state: NodeState, incarnation: u64| {
            h.update(name.as_bytes());
            h.update(&[0xff, state.to_wire()]);
            h.update(&incarnation.to_le_bytes());
        };
        for (name, m) in &self.members {
            if name.as_str() > self.name.as_str() {
                if let Some(s) = me.take() {
                    add(&self.name, s, self.incarnation);
                }
            }
            if matches!(m.status, Status::Alive | Status::Suspect) {
                let state = self.states.get(name).map_or(NodeState::Viewer, |&(s, _)| s);
                add(name, state, m.incarnation);
            }
        }
        if let Some(s) = me {
            add(&self.name, s, self.incarnation);
        }
        let d = h.digest() as u32;
        self.digest = (self.view_version, d);
        d
    }

    /// A prober's view differs from ours: some update missed one of us. Exchange full state
    /// (at most once per `digest_sync_interval`) instead of waiting for the periodic push/pull.
    pub(super) fn compare_digest(&mut self, now: Instant, theirs: u32, addr: &str) {
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

    /// Exchange state with one dead member, in case it was only cut off: round-robin over a
    /// shuffled list, so every dead member is tried once per `reconnect_interval` x their
    /// number (random picks left two cut-off members of a 9-node cluster apart for 40 s).
    pub(super) fn reconnect(&mut self) {
        let mut to = None;
        for _ in 0..2 {
            while let Some(name) = self.reconnect_order.pop() {
                if let Some(m) = self.members.get(&name).filter(|m| m.status == Status::Dead) {
                    to = Some(m.addr.clone());
                    break;
                }
            }
            if to.is_some() {
                break;
            }
            if self.dead_cache.0 != self.view_version {
                let dead = self
                    .members
                    .iter()
                    .filter(|(_, m)| m.status == Status::Dead)
                    .map(|(n, _)| n.clone())
                    .collect();
                self.dead_cache = (self.view_version, dead);
            }
            if self.dead_cache.1.is_empty() {
                return;
            }
            self.reconnect_order = self.dead_cache.1.clone();
            self.reconnect_order.shuffle(&mut self.rng);
        }
        let Some(to) = to else { return };
        let payload = self.encode_state(Kind::PushPullRequest, false);
        self.stats.push_pulls_tx += 1;
        self.push_out(Transmit {
            to,
            kind: TransmitKind::PushPull { join: false },
            payload,
        });
    }

    pub(super) fn periodic_push_pull(&mut self) {
        self.push_pull_with_random(Status::Alive);
    }

    /// Exchange full state with one member in `status`, picked at random (by address order,
    /// so the pick depends only on the seed).
    pub(super) fn push_pull_with_random(&mut self, status: Status) {
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
}
