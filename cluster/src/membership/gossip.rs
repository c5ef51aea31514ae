//! Dissemination: gossip rounds, piggybacking queued updates on every packet, the outbox, and
//! the encoded full state this node sends in push/pull exchanges.

use super::*;

impl Node {
    // -----------------------------------------------------------------------------------------
    // Dissemination

    pub(super) fn gossip(&mut self, now: Instant) {
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

    pub(super) fn take_broadcasts(&mut self, primary_bytes: usize) -> Vec<std::sync::Arc<[u8]>> {
        let overhead = 16 + 3 * wire::STR_BYTES_MAX.min(64) + primary_bytes;
        let budget = self.config.gossip_packet_bytes_max.saturating_sub(overhead);
        let limit = self.config.retransmit_limit(self.live_count());
        let out = self.broadcasts.take(budget, limit);
        self.stats.broadcasts_dropped = self.broadcasts.dropped;
        out
    }

    pub(super) fn send_packet(&mut self, to: String, primary: Primary) {
        self.send_packet_with(to, primary, None);
    }

    pub(super) fn send_packet_with(
        &mut self,
        to: String,
        primary: Primary,
        extra: Option<Vec<u8>>,
    ) {
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

    pub(super) fn push_out(&mut self, t: Transmit) {
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

    pub(super) fn envelope(&self, kind: Kind) -> Envelope {
        Envelope {
            kind,
            cluster: self.config.cluster_name.clone(),
            sender_name: self.name.clone(),
            sender_addr: self.addr.clone(),
        }
    }

    pub(super) fn encode_state(&self, kind: Kind, join: bool) -> Vec<u8> {
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
}
