//! The queue of updates waiting to be gossiped, with a retransmit limit per update.
//!
//! An update about a member replaces any queued update of the same class about that member
//! (membership updates and node-state updates are separate classes), so the queue holds at most
//! two entries per member. Packets take the least-transmitted updates first, newest first among
//! equals (memberlist's TransmitLimitedQueue order). The queue is bounded: past its limit the
//! most-transmitted entries are dropped and counted.

use std::collections::BTreeMap;

use crate::wire::{encode_update, Update};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Membership,
    State,
}

#[derive(Debug)]
struct Entry {
    bytes: Vec<u8>,
    transmits: u32,
    id: u64,
}

/// Bounded, retransmit-limited broadcast queue.
#[derive(Debug)]
pub struct BroadcastQueue {
    entries: BTreeMap<(Class, String), Entry>,
    /// (transmits, reverse id) -> key: iteration order = send priority.
    order: BTreeMap<(u32, u64), (Class, String)>,
    next_id: u64,
    max_entries: usize,
    /// Entries dropped because the queue was full.
    pub dropped: u64,
}

impl BroadcastQueue {
    pub fn new(max_entries: usize) -> Self {
        assert!(max_entries > 0, "broadcast queue needs room for one entry");
        BroadcastQueue {
            entries: BTreeMap::new(),
            order: BTreeMap::new(),
            next_id: 0,
            max_entries,
            dropped: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Queue `u`, replacing an older update of the same class about the same member.
    pub fn push(&mut self, u: &Update) {
        let class = match u {
            Update::State { .. } => Class::State,
            _ => Class::Membership,
        };
        let key = (class, u.subject().to_string());
        if let Some(old) = self.entries.remove(&key) {
            self.order.remove(&(old.transmits, u64::MAX - old.id));
        }
        while self.entries.len() >= self.max_entries {
            // Drop the entry that has been sent the most (the last in priority order).
            let (&ord, _) = self.order.iter().next_back().expect("non-empty");
            let k = self.order.remove(&ord).expect("present");
            self.entries.remove(&k);
            self.dropped += 1;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.order.insert((0, u64::MAX - id), key.clone());
        self.entries.insert(
            key,
            Entry {
                bytes: encode_update(u),
                transmits: 0,
                id,
            },
        );
    }

    /// Take updates for one packet: at most `budget_bytes` in total, each counted as transmitted
    /// once; updates that reach `limit` transmissions leave the queue.
    pub fn take(&mut self, budget_bytes: usize, limit: u32) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut used = 0usize;
        let mut picked = Vec::new();
        for (ord, key) in &self.order {
            let e = &self.entries[key];
            if used + e.bytes.len() > budget_bytes {
                continue;
            }
            used += e.bytes.len();
            out.push(e.bytes.clone());
            picked.push((*ord, key.clone()));
        }
        for (ord, key) in picked {
            self.order.remove(&ord);
            let e = self.entries.get_mut(&key).expect("picked entries exist");
            e.transmits += 1;
            if e.transmits >= limit {
                self.entries.remove(&key);
            } else {
                self.order.insert((e.transmits, ord.1), key);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::NodeState;

    fn alive(name: &str, inc: u64) -> Update {
        Update::Alive {
            name: name.into(),
            addr: "a:1".into(),
            incarnation: inc,
        }
    }

    #[test]
    fn newer_update_about_a_member_replaces_the_older_one() {
        let mut q = BroadcastQueue::new(16);
        q.push(&alive("x", 1));
        q.push(&alive("x", 2));
        q.push(&Update::State {
            name: "x".into(),
            state: NodeState::Participant,
            lamport: 4,
        });
        assert_eq!(q.len(), 2, "one membership and one state entry for x");
        let sent = q.take(1 << 16, 10);
        assert!(sent.contains(&encode_update(&alive("x", 2))));
        assert!(!sent.contains(&encode_update(&alive("x", 1))));
    }

    #[test]
    fn updates_leave_after_the_retransmit_limit() {
        let mut q = BroadcastQueue::new(16);
        q.push(&alive("x", 1));
        for _ in 0..3 {
            assert_eq!(q.take(1 << 16, 3).len(), 1);
        }
        assert!(q.is_empty());
        assert!(q.take(1 << 16, 3).is_empty());
    }

    #[test]
    fn least_transmitted_go_first_and_the_budget_holds() {
        let mut q = BroadcastQueue::new(16);
        q.push(&alive("old", 1));
        q.take(1 << 16, 10);
        q.push(&alive("new", 1));
        let one = encode_update(&alive("new", 1)).len();
        let sent = q.take(one, 10);
        assert_eq!(sent, vec![encode_update(&alive("new", 1))]);
    }

    #[test]
    fn a_full_queue_drops_the_most_transmitted_and_counts_it() {
        let mut q = BroadcastQueue::new(2);
        q.push(&alive("a", 1));
        q.take(1 << 16, 10);
        q.push(&alive("b", 1));
        q.push(&alive("c", 1));
        assert_eq!(q.len(), 2);
        assert_eq!(q.dropped, 1);
        let sent = q.take(1 << 16, 10);
        assert!(!sent.contains(&encode_update(&alive("a", 1))));
    }
}
