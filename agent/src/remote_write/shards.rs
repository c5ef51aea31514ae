//! One shard of an endpoint: a bounded queue of samples read from the WAL and the task that
//! cuts it into requests (`max_samples_per_send`, or whatever is queued once the oldest has
//! waited `batch_send_deadline`) and delivers them one at a time.
//!
//! A series always goes to the same shard (by its WAL reference) and a shard has one request
//! in flight, so each series reaches the receiver in order while shards send in parallel.
//! After every delivered request the shard records how far it got in the endpoint's position
//! file (see `positions.rs`). A full queue makes the WAL reader wait; nothing is dropped.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Notify;

use super::positions::{PositionFile, Slot};
use super::send::{Delivery, Sender};
use crate::scrape::Sample;
use crate::wal::Pos;

struct State {
    queue: VecDeque<Sample>,
    /// The WAL records of the queued samples, in order: (record, how many of its samples).
    records: VecDeque<(Pos, usize)>,
    /// When the oldest queued sample arrived (for `batch_send_deadline`).
    oldest: Option<Instant>,
    /// Record of the first sample of the request in flight.
    in_flight: Option<Pos>,
    /// How far this shard has sent (as saved in the position file).
    sent: Slot,
    /// Stop once the queue is empty (before a reshard, or at shutdown).
    draining: bool,
    /// Shutdown: give up retrying at this moment.
    deadline: Option<Instant>,
}

pub struct Shard {
    pub index: usize,
    capacity: usize,
    state: Mutex<State>,
    wake: Notify,
    /// Shared by the shards of an endpoint: the reader waits on it when a queue is full.
    space: Arc<Notify>,
}

impl Shard {
    pub fn new(index: usize, capacity: usize, sent: Slot, space: Arc<Notify>) -> Arc<Shard> {
        Arc::new(Shard {
            index,
            capacity: capacity.max(1),
            state: Mutex::new(State {
                queue: VecDeque::new(),
                records: VecDeque::new(),
                oldest: None,
                in_flight: None,
                sent,
                draining: false,
                deadline: None,
            }),
            wake: Notify::new(),
            space,
        })
    }

    /// Queues from the front of `samples` (all from the WAL record at `record`) what fits;
    /// returns how many.
    pub fn push(
        &self,
        record: Pos,
        samples: &mut VecDeque<Sample>,
        max_samples_per_send: usize,
    ) -> usize {
        let (n, wake) = {
            let mut st = self.state.lock().unwrap();
            let room = self.capacity.saturating_sub(st.queue.len());
            let n = room.min(samples.len());
            if n == 0 {
                return 0;
            }
            let before = st.queue.len();
            st.queue.extend(samples.drain(..n));
            match st.records.back_mut() {
                Some((r, count)) if *r == record => *count += n,
                _ => st.records.push_back((record, n)),
            }
            if before == 0 {
                st.oldest = Some(Instant::now());
            }
            (n, before == 0 || st.queue.len() >= max_samples_per_send)
        };
        if wake {
            self.wake.notify_one();
        }
        n
    }

    /// The oldest record this shard still has to send, if any.
    pub fn oldest_unsent(&self) -> Option<Pos> {
        let st = self.state.lock().unwrap();
        st.in_flight.or_else(|| st.records.front().map(|(r, _)| *r))
    }

    /// If the shard has nothing queued or in flight, moves its saved position up to `floor`
    /// (where the reader is), so an idle shard does not hold a restart back.
    pub fn advance_idle(&self, floor: Pos, positions: &PositionFile) {
        let mut st = self.state.lock().unwrap();
        if st.queue.is_empty() && st.in_flight.is_none() && st.sent.record < floor {
            st.sent = Slot {
                record: floor,
                count: 0,
            };
            positions.write(self.index, st.sent);
        }
    }

    /// Stop once empty; with a deadline, give up retrying then (shutdown).
    pub fn drain(&self, deadline: Option<Instant>) {
        {
            let mut st = self.state.lock().unwrap();
            st.draining = true;
            if deadline.is_some() {
                st.deadline = deadline;
            }
        }
        self.wake.notify_one();
    }

    /// Samples queued (not in flight).
    pub fn queued(&self) -> usize {
        self.state.lock().unwrap().queue.len()
    }
}

/// The shard's sending task; returns when drained (see [`Shard::drain`]) or interrupted by
/// the shutdown deadline.
pub async fn run(shard: Arc<Shard>, sender: Arc<Sender>, positions: Arc<PositionFile>) {
    let q = &sender.config.queue;
    let mut batch: Vec<Sample> = Vec::new();
    let mut records: Vec<(Pos, usize)> = Vec::new();
    loop {
        let wait = {
            let mut st = shard.state.lock().unwrap();
            let len = st.queue.len();
            let due = st
                .oldest
                .is_some_and(|t| t.elapsed() >= q.batch_send_deadline);
            if len >= q.max_samples_per_send || (len > 0 && (due || st.draining)) {
                let n = len.min(q.max_samples_per_send);
                batch.extend(st.queue.drain(..n));
                take_records(&mut st.records, n, &mut records);
                st.in_flight = records.first().map(|(r, _)| *r);
                st.oldest = if st.queue.is_empty() {
                    None
                } else {
                    Some(Instant::now())
                };
                None
            } else if st.draining && len == 0 {
                return;
            } else {
                Some(match st.oldest {
                    Some(t) => q.batch_send_deadline.saturating_sub(t.elapsed()),
                    None => q.batch_send_deadline,
                })
            }
        };
        if let Some(wait) = wait {
            tokio::select! {
                _ = shard.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            continue;
        }
        shard.space.notify_one();
        let n = batch.len() as i64;
        let outcome = sender
            .deliver(&batch, || shard.state.lock().unwrap().deadline)
            .await;
        batch.clear();
        sender.metrics.samples_pending.fetch_sub(n, Relaxed);
        let mut st = shard.state.lock().unwrap();
        st.in_flight = None;
        if outcome == Delivery::Interrupted {
            return;
        }
        for (record, count) in records.drain(..) {
            if record == st.sent.record {
                st.sent.count += count as u32;
            } else {
                st.sent = Slot {
                    record,
                    count: count as u32,
                };
            }
        }
        positions.write(shard.index, st.sent);
    }
}

/// Moves the record runs of the first `n` queued samples from `queue` to `out`, splitting the
/// last run if the batch ends inside it.
fn take_records(queue: &mut VecDeque<(Pos, usize)>, mut n: usize, out: &mut Vec<(Pos, usize)>) {
    out.clear();
    while n > 0 {
        let Some(front) = queue.front_mut() else {
            return;
        };
        let take = front.1.min(n);
        out.push((front.0, take));
        front.1 -= take;
        n -= take;
        if front.1 == 0 {
            queue.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(offset: u64) -> Pos {
        Pos { segment: 0, offset }
    }

    #[test]
    fn a_batch_takes_whole_and_split_record_runs_in_order() {
        let mut q: VecDeque<(Pos, usize)> = [(pos(0), 3), (pos(10), 4), (pos(20), 2)].into();
        let mut out = Vec::new();
        take_records(&mut q, 5, &mut out);
        assert_eq!(out, vec![(pos(0), 3), (pos(10), 2)]);
        assert_eq!(q, VecDeque::from([(pos(10), 2), (pos(20), 2)]));
        take_records(&mut q, 4, &mut out);
        assert_eq!(out, vec![(pos(10), 2), (pos(20), 2)]);
        assert!(q.is_empty());
    }
}
