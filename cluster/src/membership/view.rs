//! Read-only views of a node for its driver and its users: identity, counters, local health,
//! the member list, the live set (sharding's input) and the cached counts behind them.

use super::*;

impl Node {
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
    pub(super) fn tombstone_count(&self) -> usize {
        self.members.len() + 1 - self.live_count()
    }

    /// When the oldest tombstone may be forgotten (recomputed only after the table changed).
    pub(super) fn first_tombstone_expiry(&self) -> Option<Instant> {
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
}
