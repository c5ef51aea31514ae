//! The queue of updates waiting to be gossiped, with a retransmit limit per update.
//!
//! An update about a member replaces any queued update of the same class about that member
//! (membership updates and node-state updates are separate classes), so the queue holds at most
//! two entries per member. Packets take the least-transmitted updates first, newest first among
//! equals (memberlist's TransmitLimitedQueue order). The queue is bounded: past its limit the
//! most-transmitted entries are dropped and counted.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::wire::{encode_update, Update};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Membership,
    State,
}

#[derive(Debug)]
struct Entry {
    bytes: Arc<[u8]>,
    transmits: u32,
    key: (Class, String),
}

/// A reference from a bucket to a slot; stale once the slot's generation moved on.
#[derive(Debug, Clone, Copy)]
struct Ticket {
    slot: u32,
    generation: u32,
}

/// Updates too large for what is left of a packet that [`BroadcastQueue::take`] skips before
/// it calls the packet full.
const MISFITS_MAX: usize = 8;

/// Bounded, retransmit-limited broadcast queue.
///
/// Entries live in slots; bucket `t` lists the entries sent `t` times, the most recently
/// (re)queued at the back. A packet takes from the back of the lowest buckets, so taking an
/// update costs O(1): no ordered index is kept per entry. A replaced or dropped entry leaves a
/// stale ticket behind, skipped when met and swept when they pile up.
#[derive(Debug)]
pub struct BroadcastQueue {
    slots: Vec<Option<Entry>>,
    generations: Vec<u32>,
    free: Vec<u32>,
    buckets: Vec<VecDeque<Ticket>>,
    by_key: BTreeMap<(Class, String), u32>,
    live: usize,
    stale: usize,
    max_entries: usize,
    /// No entry ever queued was shorter: once less budget than this is left, stop looking.
    min_len: usize,
    /// Entries dropped because the queue was full.
    pub dropped: u64,
}

impl BroadcastQueue {
    pub fn new(max_entries: usize) -> Self {
        assert!(max_entries > 0, "broadcast queue needs room for one entry");
        BroadcastQueue {
            slots: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            buckets: vec![VecDeque::new()],
            by_key: BTreeMap::new(),
            live: 0,
            stale: 0,
            max_entries,
            min_len: usize::MAX,
            dropped: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    fn current(&self, t: Ticket) -> bool {
        self.generations[t.slot as usize] == t.generation
    }

    /// Empty a slot; its tickets become stale.
    fn release(&mut self, slot: u32) -> Entry {
        let e = self.slots[slot as usize]
            .take()
            .expect("released slots are full");
        self.generations[slot as usize] = self.generations[slot as usize].wrapping_add(1);
        self.free.push(slot);
        self.live -= 1;
        e
    }

    /// Forget an entry that still has a ticket in a bucket.
    fn discard(&mut self, slot: u32) -> Entry {
        self.stale += 1;
        let e = self.release(slot);
        if self.stale > 64 && self.stale > self.live {
            let generations = &self.generations;
            for b in &mut self.buckets {
                b.retain(|t| generations[t.slot as usize] == t.generation);
            }
            self.stale = 0;
        }
        e
    }

    /// Queue `u`, replacing an older update of the same class about the same member.
    pub fn push(&mut self, u: &Update) {
        let class = match u {
            Update::State { .. } => Class::State,
            _ => Class::Membership,
        };
        let key = (class, u.subject().to_string());
        if let Some(old) = self.by_key.remove(&key) {
            self.discard(old);
        }
        while self.live >= self.max_entries {
            // Drop the entry that has been sent the most (the oldest in the highest bucket).
            let t = self
                .buckets
                .iter_mut()
                .rev()
                .find_map(|b| b.pop_front())
                .expect("a full queue has tickets");
            if !self.current(t) {
                self.stale -= 1;
                continue;
            }
            let e = self.release(t.slot);
            self.by_key.remove(&e.key);
            self.dropped += 1;
        }
        let bytes: Arc<[u8]> = encode_update(u).into();
        self.min_len = self.min_len.min(bytes.len());
        let entry = Entry {
            bytes,
            transmits: 0,
            key: key.clone(),
        };
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(entry);
                s
            }
            None => {
                self.slots.push(Some(entry));
                self.generations.push(0);
                (self.slots.len() - 1) as u32
            }
        };
        self.live += 1;
        self.by_key.insert(key, slot);
        self.buckets[0].push_back(Ticket {
            slot,
            generation: self.generations[slot as usize],
        });
    }

    /// Take updates for one packet: at most `budget_bytes` in total, least-transmitted first
    /// (most recently queued first among equals), each counted as transmitted once; updates
    /// that reach `limit` transmissions leave the queue.
    pub fn take(&mut self, budget_bytes: usize, limit: u32) -> Vec<Arc<[u8]>> {
        let mut out = Vec::new();
        let mut used = 0usize;
        let mut misfits = 0;
        let mut moved: Vec<(usize, Ticket)> = Vec::new();
        'buckets: for b in 0..self.buckets.len() {
            let mut skipped: Vec<Ticket> = Vec::new();
            while let Some(t) = self.buckets[b].pop_back() {
                if !self.current(t) {
                    self.stale -= 1;
                    continue;
                }
                if budget_bytes.saturating_sub(used) < self.min_len || misfits >= MISFITS_MAX {
                    self.buckets[b].push_back(t);
                    break;
                }
                let e = self.slots[t.slot as usize]
                    .as_mut()
                    .expect("current tickets point at entries");
                if used + e.bytes.len() > budget_bytes {
                    // Look a little further for a smaller one, not through the whole queue.
                    misfits += 1;
                    skipped.push(t);
                    continue;
                }
                used += e.bytes.len();
                out.push(e.bytes.clone());
                e.transmits += 1;
                if e.transmits >= limit {
                    let e = self.release(t.slot);
                    self.by_key.remove(&e.key);
                } else {
                    moved.push((e.transmits as usize, t));
                }
            }
            for t in skipped.into_iter().rev() {
                self.buckets[b].push_back(t);
            }
            if budget_bytes.saturating_sub(used) < self.min_len || misfits >= MISFITS_MAX {
                break 'buckets;
            }
        }
        // Requeue what was sent, after the scan so that nothing is sent twice in one packet.
        for (b, t) in moved.into_iter().rev() {
            if self.buckets.len() <= b {
                self.buckets.resize_with(b + 1, VecDeque::new);
            }
            self.buckets[b].push_back(t);
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
        assert!(sent
            .iter()
            .any(|u| u[..] == encode_update(&alive("x", 2))[..]));
        assert!(!sent
            .iter()
            .any(|u| u[..] == encode_update(&alive("x", 1))[..]));
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
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0][..], encode_update(&alive("new", 1))[..]);
    }

    #[test]
    fn replaced_updates_are_never_sent_and_every_current_one_is_sent_limit_times() {
        let mut q = BroadcastQueue::new(1024);
        let mut sent: BTreeMap<Vec<u8>, u32> = BTreeMap::new();
        for round in 1..=3u64 {
            for i in 0..300 {
                q.push(&alive(&format!("m{i}"), round));
            }
            // Send a little between rounds: some old versions went out before being replaced.
            for u in q.take(200, 4) {
                *sent.entry(u.to_vec()).or_default() += 1;
            }
        }
        assert_eq!(q.len(), 300);
        while !q.is_empty() {
            let got = q.take(512, 4);
            assert!(!got.is_empty(), "a non-empty queue fills a packet");
            for u in got {
                *sent.entry(u.to_vec()).or_default() += 1;
            }
        }
        for i in 0..300 {
            let last = encode_update(&alive(&format!("m{i}"), 3));
            assert_eq!(sent.get(&last), Some(&4), "m{i} round 3 sent 4 times");
        }
        let old: u32 = (0..300)
            .map(|i| {
                sent.get(&encode_update(&alive(&format!("m{i}"), 1)))
                    .copied()
                    .unwrap_or(0)
            })
            .sum();
        assert!(
            old <= 20,
            "only what went out before the replacement: {old}"
        );
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
        assert!(!sent
            .iter()
            .any(|u| u[..] == encode_update(&alive("a", 1))[..]));
    }
}
