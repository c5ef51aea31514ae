//! Joining: contacting the join addresses with full-state exchanges, replacing them after a
//! new resolution, rejoining the ones not held as live members (repairs clusters that formed
//! apart), and retrying with backoff while a join reached nobody and the node is alone.

use super::*;

impl Node {
    /// Contact up to `join_peers_max` of `seeds` (advertised addresses) with a full-state
    /// exchange, and remember them: the node rejoins them every `rejoin_interval`, and sooner
    /// (backing off from `join_retry_min`) while a join reached nobody and it is alone.
    /// Own address is skipped, so a seed node may list itself. Returns how many were contacted;
    /// zero means this node starts (or stays) a cluster of its own.
    pub fn join(&mut self, now: Instant, seeds: &[String]) -> usize {
        self.seeds = seeds.to_vec();
        self.contact_seeds(now, seeds)
    }

    /// A rejoin repairs clusters that formed apart (a parallel start, a partition that outlived
    /// the tombstones): it contacts the join addresses this node does not hold as live members.
    /// When every one of them is a live member there is nothing to repair, and nothing is sent
    /// (ckit exchanges full state with the seeds every interval: at 50 nodes joining one seed
    /// that alone was ~60 B/s per node).
    pub(super) fn rejoin(&mut self, now: Instant) {
        let unknown: Vec<String> = self
            .seeds
            .iter()
            .filter(|s| **s != self.addr && self.live_member_at(s).is_none())
            .cloned()
            .collect();
        if unknown.is_empty() {
            self.next_join = self.config.rejoin_interval.map(|d| now + d);
        } else {
            self.contact_seeds(now, &unknown);
        }
    }

    pub(super) fn contact_seeds(&mut self, now: Instant, seeds: &[String]) -> usize {
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

    pub(super) fn join_failed(&mut self, now: Instant, to: &str, reason: &str) {
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
}
